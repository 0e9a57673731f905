//! Properties over random policies, requests and facts: determinism, precedence, violations that
//! name real rules, no request text in messages, and policies that survive a serialize/parse.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use super::super::policy::{DUPLICATE_GUARD_ID, Period, Rule, RuleKind};
use super::super::{
    ActionType, AgentState, Decision, Evaluation, Facts, Metadata, Policy, Request, evaluate,
};

const ZONES: [&str; 7] = [
    "UTC",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/Santiago",
];
const COUNTERPARTIES: [&str; 3] =
    ["xqvAGNT0001", "xqvAGNT0002", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"];
const CATEGORIES: [&str; 2] = ["zkcCATG0001", "zkcCATG0002"];
const COUNTRIES: [&str; 4] = ["US", "KP", "IR", "GB"];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MAX_WINDOW: u64 = 31 * 24 * 60 * 60;
/// Rule ids are `r0` … `r7`.
const MAX_RULES: usize = 8;

fn cents() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 0u64..5000, 1 => 0u64..=1_000_000_000_000_000]
}

fn action_types() -> impl Strategy<Value = Option<Vec<ActionType>>> {
    proptest::option::of(subsequence(ActionType::ALL.to_vec(), 1..=4))
}

fn zone() -> impl Strategy<Value = String> {
    select(&ZONES[..]).prop_map(str::to_owned)
}

fn list(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(select(pool).prop_map(str::to_owned), 1..4)
}

fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn rule_kind() -> impl Strategy<Value = RuleKind> {
    prop_oneof![
        (cents(), action_types())
            .prop_map(|(max_cents, action_types)| RuleKind::PerTxLimit { max_cents, action_types }),
        (cents(), action_types()).prop_map(|(above_cents, action_types)| {
            RuleKind::EscalationThreshold { above_cents, action_types }
        }),
        (select(Period::ALL), cents(), zone()).prop_map(|(period, max_cents, timezone)| {
            RuleKind::PeriodBudget { period, max_cents, timezone }
        }),
        list(&COUNTERPARTIES)
            .prop_map(|counterparties| RuleKind::CounterpartyAllowlist { counterparties }),
        list(&COUNTERPARTIES)
            .prop_map(|counterparties| RuleKind::CounterpartyDenylist { counterparties }),
        list(&CATEGORIES).prop_map(|categories| RuleKind::BlockedCategories { categories }),
        list(&CATEGORIES).prop_map(|categories| RuleKind::AllowedCategories { categories }),
        proptest::collection::btree_set(select(&COUNTRIES[..]), 1..4).prop_map(|countries| {
            RuleKind::GeographyBlock {
                countries: countries.into_iter().map(str::to_owned).collect(),
            }
        }),
        (
            zone(),
            subsequence(&DAYS[..], 1..=7),
            (0u32..1440).prop_flat_map(|s| (Just(s), s + 1..=1440))
        )
            .prop_map(|(timezone, days, (start, end))| RuleKind::Schedule {
                timezone,
                days: days.into_iter().map(str::to_owned).collect(),
                start: clock(start),
                end: clock(end),
            }),
        (1u64..6, 1u64..=MAX_WINDOW).prop_map(|(max_actions, window_seconds)| RuleKind::Velocity {
            max_actions,
            window_seconds
        }),
        (0u64..60).prop_map(|max_days| RuleKind::RefundAgeLimit { max_days }),
        // Quarter percents print and parse back exactly.
        (0u32..=400).prop_map(|q| RuleKind::DiscountCap { max_percent: f64::from(q) / 4.0 }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    let rules = proptest::collection::vec((rule_kind(), any::<bool>()), 0..=MAX_RULES);
    let window = prop_oneof![Just(0u64), 1u64..=MAX_WINDOW];
    (rules, window).prop_map(|(kinds, duplicate_window_seconds)| Policy {
        rules: kinds
            .into_iter()
            .enumerate()
            .map(|(i, (kind, described))| Rule {
                id: format!("r{i}"),
                description: described.then(|| format!("Rule number {i}")),
                kind,
            })
            .collect(),
        duplicate_window_seconds,
        prices: Default::default(),
    })
}

/// Distinctive strings, from the policies' pools (in other cases and padding) or new.
fn planted(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        select(pool).prop_map(str::to_owned),
        select(pool).prop_map(str::to_uppercase),
        select(pool).prop_map(|s| format!("  {}\t", s.to_lowercase())),
        "[a-z]{4}[A-Z]{4}[0-9]{4}",
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        (select(ActionType::ALL), prop_oneof![3 => 0u64..6000, 1 => any::<u64>()]),
        proptest::collection::vec(planted(&COUNTERPARTIES), 0..3),
        proptest::collection::vec(planted(&CATEGORIES), 0..3),
        proptest::option::of(prop_oneof![
            select(&COUNTRIES[..]).prop_map(str::to_owned),
            Just("kp".to_owned())
        ]),
        0i64..4_102_444_800,
        (proptest::option::of(0u64..90), proptest::option::of(0.0f64..=100.0)),
    )
        .prop_map(
            |((action_type, amount_cents), counterparties, categories, country, at, meta)| {
                Request {
                    action_type,
                    amount_cents,
                    counterparties,
                    categories,
                    country,
                    at,
                    metadata: Metadata { days_since_purchase: meta.0, discount_percent: meta.1 },
                }
            },
        )
}

fn counts(range: std::ops::Range<u64>) -> impl Strategy<Value = BTreeMap<String, u64>> {
    proptest::collection::btree_map(
        (0..MAX_RULES).prop_map(|i| format!("r{i}")),
        range,
        0..MAX_RULES,
    )
}

fn facts() -> impl Strategy<Value = Facts> {
    let agent = prop_oneof![
        8 => Just(AgentState::Active),
        1 => Just(AgentState::Halted),
        1 => Just(AgentState::Revoked),
    ];
    (agent, counts(0..10_000), counts(0..8), proptest::bool::weighted(0.15)).prop_map(
        |(agent, period_spent_cents, recent_actions, duplicate)| Facts {
            agent,
            period_spent_cents,
            recent_actions,
            duplicate,
            ..Facts::default()
        },
    )
}

/// Precedence and the shape of the answer, for an active agent.
fn check_decision(policy: &Policy, facts: &Facts, evaluation: &Evaluation) {
    let first = |decision| evaluation.violations.iter().find(|v| v.decision == decision);
    let deciding = first(Decision::Block).or_else(|| first(Decision::Escalate));
    match deciding {
        Some(v) => {
            assert_eq!(evaluation.decision, v.decision);
            assert_eq!(evaluation.reason_code, Some(v.reason_code));
            assert_eq!(evaluation.violated_rule_id.as_deref(), Some(v.rule_id.as_str()));
            assert_eq!(evaluation.message.as_deref(), Some(v.message.as_str()));
            assert!(evaluation.decline_message.is_some());
            let step = match v.decision {
                Decision::Escalate => "Route to human approval before proceeding.",
                _ => "Do not proceed with this action.",
            };
            assert_eq!(evaluation.next_step, Some(step));
        }
        None => {
            assert_eq!(evaluation.decision, Decision::Allow);
            assert!(evaluation.violations.is_empty());
            assert_eq!(evaluation.reason_code, None);
            assert_eq!(evaluation.violated_rule_id, None);
            assert_eq!(evaluation.message, None);
            assert_eq!(evaluation.decline_message, None);
            assert_eq!(evaluation.next_step, None);
        }
    }
    assert!(evaluation.violations.iter().all(|v| v.decision != Decision::Allow));
    // Violations name real rules, in policy order, the duplicate guard first and only when on.
    let position = |id: &str| {
        if id == DUPLICATE_GUARD_ID {
            assert!(policy.duplicate_window_seconds > 0 && facts.duplicate);
            return Some(0);
        }
        policy.rules.iter().position(|r| r.id == id).map(|p| p + 1)
    };
    let positions: Vec<_> = evaluation.violations.iter().map(|v| position(&v.rule_id)).collect();
    assert!(positions.iter().all(Option::is_some), "unknown rule in {positions:?}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "out of order: {positions:?}");
    let guarded = policy.duplicate_window_seconds > 0 && facts.duplicate;
    assert_eq!(positions.first() == Some(&Some(0)), guarded);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn evaluation_follows_precedence(policy in policy(), request in request(), facts in facts()) {
        let evaluation = evaluate(&policy, &request, &facts);
        prop_assert_eq!(&evaluation, &evaluate(&policy, &request, &facts));

        match facts.agent {
            AgentState::Revoked | AgentState::Halted => {
                let reason = if facts.agent == AgentState::Revoked { "agent_revoked" } else { "agent_halted" };
                prop_assert_eq!(evaluation.decision, Decision::Block);
                prop_assert_eq!(evaluation.reason_code.map(|r| r.as_str()), Some(reason));
                prop_assert_eq!(evaluation.violated_rule_id, None);
            }
            AgentState::Active => check_decision(&policy, &facts, &evaluation),
        }

        let texts = evaluation
            .violations
            .iter()
            .map(|v| v.message.as_str())
            .chain(evaluation.message.as_deref())
            .chain(evaluation.decline_message.as_deref());
        for text in texts {
            let text = text.to_lowercase();
            for planted in request.counterparties.iter().chain(&request.categories) {
                let planted = planted.trim().to_lowercase();
                prop_assert!(!text.contains(&planted), "{:?} repeats {:?}", text, planted);
            }
        }
    }

    #[test]
    fn policies_survive_serialize_and_parse(policy in policy()) {
        let document = serde_json::to_value(&policy).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Policy::parse(&document), Ok(policy));
    }
}
