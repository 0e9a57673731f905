//! Each rule type at its boundaries: equal, one cent (or second, or action) either side.

use serde_json::{Value, json};

use super::super::{
    ActionType, Decision, Evaluation, Facts, Policy, ReasonCode, Request, evaluate,
};
use super::{NOON, instant, local, policy, request, run, spend};

fn one(rule: Value) -> Policy {
    policy(json!([rule]))
}

/// The decision and reason code alone.
fn outcome(evaluation: &Evaluation) -> (Decision, Option<ReasonCode>) {
    (evaluation.decision, evaluation.reason_code)
}

const ALLOW: (Decision, Option<ReasonCode>) = (Decision::Allow, None);

fn blocked(reason: ReasonCode) -> (Decision, Option<ReasonCode>) {
    (Decision::Block, Some(reason))
}

#[test]
fn the_seed_refund_escalates() {
    let policy = one(json!({"id": "r2", "type": "escalation_threshold", "above_cents": 20000,
                            "action_types": ["refund"], "description": "Escalate refunds over $200"}));
    let evaluation = run(&policy, &request(ActionType::Refund, 30000));
    assert_eq!(evaluation.decision, Decision::Escalate);
    assert_eq!(evaluation.reason_code, Some(ReasonCode::EscalationThresholdExceeded));
    assert_eq!(evaluation.violated_rule_id.as_deref(), Some("r2"));
    assert_eq!(evaluation.violated_rule_description.as_deref(), Some("Escalate refunds over $200"));
    assert_eq!(
        evaluation.message.as_deref(),
        Some("Refund of $300.00 exceeds the escalation threshold of $200.00.")
    );
    assert_eq!(evaluation.next_step, Some("Route to human approval before proceeding."));
    assert!(evaluation.decline_message.as_deref().is_some_and(|m| m.contains("$200.00")));
    assert_eq!(evaluation.violations.len(), 1);
    assert_eq!(evaluation.violations[0].rule_type, "escalation_threshold");
    assert_eq!(evaluation.violations[0].decision, Decision::Escalate);
    // Other action types are not covered; at the threshold nothing fires.
    assert_eq!(outcome(&run(&policy, &spend(30000))), ALLOW);
    assert_eq!(outcome(&run(&policy, &request(ActionType::Refund, 20000))), ALLOW);
    let over = run(&policy, &request(ActionType::Refund, 20001));
    assert_eq!(over.decision, Decision::Escalate);
}

#[test]
fn escalation_threshold_without_action_types_covers_everything() {
    let policy = one(json!({"id": "e", "type": "escalation_threshold", "above_cents": 0}));
    for action in ActionType::ALL {
        assert_eq!(outcome(&run(&policy, &request(*action, 0))), ALLOW);
        assert_eq!(run(&policy, &request(*action, 1)).decision, Decision::Escalate);
    }
}

#[test]
fn per_tx_limit_allows_the_limit_and_blocks_a_cent_more() {
    let policy = one(json!({"id": "p", "type": "per_tx_limit", "max_cents": 10000}));
    assert_eq!(outcome(&run(&policy, &spend(9999))), ALLOW);
    assert_eq!(outcome(&run(&policy, &spend(10000))), ALLOW);
    let over = run(&policy, &spend(10001));
    assert_eq!(outcome(&over), blocked(ReasonCode::PerTxLimitExceeded));
    assert_eq!(over.violated_rule_id.as_deref(), Some("p"));
    assert_eq!(over.violated_rule_description, None);
    assert_eq!(
        over.message.as_deref(),
        Some("Spend of $100.01 exceeds the per-transaction limit of $100.00.")
    );
    assert_eq!(
        over.decline_message.as_deref(),
        Some(
            "This spend exceeds your per-transaction limit of $100.00. Do not retry or split it \
             into smaller amounts."
        )
    );
    assert_eq!(over.next_step, Some("Do not proceed with this action."));

    let refunds = one(json!({"id": "p", "type": "per_tx_limit", "max_cents": 100,
                             "action_types": ["refund", "credit"]}));
    assert_eq!(outcome(&run(&refunds, &spend(101))), ALLOW);
    assert_eq!(outcome(&run(&refunds, &request(ActionType::Discount, 101))), ALLOW);
    assert_eq!(run(&refunds, &request(ActionType::Credit, 101)).decision, Decision::Block);
    assert_eq!(run(&refunds, &request(ActionType::Refund, 101)).decision, Decision::Block);
}

#[test]
fn period_budget_counts_committed_spend_plus_this_one() {
    let policy = one(json!({"id": "b", "type": "period_budget", "period": "day",
                            "max_cents": 1000, "timezone": "UTC"}));
    let spent = |cents: u64| Facts {
        period_spent_cents: [("b".to_owned(), cents)].into_iter().collect(),
        ..Facts::default()
    };
    assert_eq!(outcome(&evaluate(&policy, &spend(100), &spent(900))), ALLOW);
    assert_eq!(outcome(&evaluate(&policy, &spend(99), &spent(900))), ALLOW);
    let over = evaluate(&policy, &spend(101), &spent(900));
    assert_eq!(outcome(&over), blocked(ReasonCode::PeriodBudgetExceeded));
    assert_eq!(
        over.message.as_deref(),
        Some("Spend of $1.01 would exceed the daily budget of $10.00.")
    );
    // Nothing counted is zero; spend counted for another rule does not count here.
    assert_eq!(outcome(&run(&policy, &spend(1000))), ALLOW);
    assert_eq!(run(&policy, &spend(1001)).decision, Decision::Block);
    let other = Facts {
        period_spent_cents: [("other".to_owned(), 1000)].into_iter().collect(),
        ..Facts::default()
    };
    assert_eq!(outcome(&evaluate(&policy, &spend(1000), &other)), ALLOW);
    // A zero amount still fits a spent budget; one cent does not.
    assert_eq!(outcome(&evaluate(&policy, &spend(0), &spent(1000))), ALLOW);
    assert_eq!(evaluate(&policy, &spend(1), &spent(1000)).decision, Decision::Block);
    // Overflow saturates and blocks.
    assert_eq!(evaluate(&policy, &spend(u64::MAX), &spent(u64::MAX)).decision, Decision::Block);
}

fn with_counterparties(ids: &[&str]) -> Request {
    let mut request = spend(500);
    request.counterparties = ids.iter().map(|s| (*s).to_owned()).collect();
    request
}

const ADDRESS: &str = "0x00000000000000000000000000000000000000aB";

#[test]
fn counterparty_lists_match_addresses_in_any_case_and_the_rest_exactly() {
    let allow = one(json!({"id": "a", "type": "counterparty_allowlist",
                           "counterparties": ["agent_7", ADDRESS]}));
    let not_allowed = blocked(ReasonCode::CounterpartyNotAllowed);
    assert_eq!(outcome(&run(&allow, &with_counterparties(&[]))), not_allowed);
    assert_eq!(outcome(&run(&allow, &with_counterparties(&["agent_7"]))), ALLOW);
    assert_eq!(outcome(&run(&allow, &with_counterparties(&["AGENT_7"]))), not_allowed);
    assert_eq!(outcome(&run(&allow, &with_counterparties(&["agent_7 "]))), not_allowed);
    assert_eq!(outcome(&run(&allow, &with_counterparties(&["x", "agent_7"]))), ALLOW);
    let upper = ADDRESS.to_uppercase().replacen("0X", "0x", 1);
    assert_eq!(outcome(&run(&allow, &with_counterparties(&[&upper]))), ALLOW);
    assert_eq!(outcome(&run(&allow, &with_counterparties(&[&ADDRESS.to_lowercase()]))), ALLOW);
    // One hex digit short is not an address, so case matters again.
    let short_address = format!("0x{}aB", "0".repeat(37));
    let short = one(json!({"id": "a", "type": "counterparty_allowlist",
                           "counterparties": [short_address]}));
    assert_eq!(outcome(&run(&short, &with_counterparties(&[&short_address]))), ALLOW);
    let short_lower = short_address.to_lowercase();
    assert_eq!(outcome(&run(&short, &with_counterparties(&[&short_lower]))), not_allowed);

    let deny = one(json!({"id": "d", "type": "counterparty_denylist",
                          "counterparties": ["mallory", ADDRESS]}));
    let denied = blocked(ReasonCode::CounterpartyDenied);
    assert_eq!(outcome(&run(&deny, &with_counterparties(&[]))), ALLOW);
    assert_eq!(outcome(&run(&deny, &with_counterparties(&["Mallory"]))), ALLOW);
    assert_eq!(outcome(&run(&deny, &with_counterparties(&["mallory"]))), denied);
    assert_eq!(outcome(&run(&deny, &with_counterparties(&["ok", "mallory"]))), denied);
    assert_eq!(outcome(&run(&deny, &with_counterparties(&[&upper]))), denied);
}

fn with_categories(categories: &[&str]) -> Request {
    let mut request = spend(500);
    request.categories = categories.iter().map(|s| (*s).to_owned()).collect();
    request
}

#[test]
fn categories_match_trimmed_and_case_insensitively() {
    let blocked_list = one(json!({"id": "c", "type": "blocked_categories",
                                  "categories": ["Gambling"]}));
    let category_blocked = blocked(ReasonCode::CategoryBlocked);
    assert_eq!(outcome(&run(&blocked_list, &with_categories(&[]))), ALLOW);
    assert_eq!(outcome(&run(&blocked_list, &with_categories(&["games"]))), ALLOW);
    assert_eq!(outcome(&run(&blocked_list, &with_categories(&[" gambling\t"]))), category_blocked);
    assert_eq!(
        outcome(&run(&blocked_list, &with_categories(&["x", "GAMBLING"]))),
        category_blocked
    );

    let allowed = one(json!({"id": "c", "type": "allowed_categories", "categories": ["compute"]}));
    let not_allowed = blocked(ReasonCode::CategoryNotAllowed);
    assert_eq!(outcome(&run(&allowed, &with_categories(&[]))), not_allowed);
    assert_eq!(outcome(&run(&allowed, &with_categories(&["data"]))), not_allowed);
    assert_eq!(outcome(&run(&allowed, &with_categories(&["  "]))), not_allowed);
    assert_eq!(outcome(&run(&allowed, &with_categories(&["Compute "]))), ALLOW);
    assert_eq!(outcome(&run(&allowed, &with_categories(&["data", "compute"]))), ALLOW);
}

#[test]
fn geography_block_needs_a_listed_country() {
    let policy = one(json!({"id": "g", "type": "geography_block", "countries": ["kp", "IR"]}));
    let at = |country: Option<&str>| {
        let mut request = spend(500);
        request.country = country.map(str::to_owned);
        outcome(&run(&policy, &request))
    };
    assert_eq!(at(None), ALLOW);
    assert_eq!(at(Some("US")), ALLOW);
    assert_eq!(at(Some("KP")), blocked(ReasonCode::GeographyBlocked));
    assert_eq!(at(Some("ir")), blocked(ReasonCode::GeographyBlocked));
    assert_eq!(at(Some(" Kp ")), blocked(ReasonCode::GeographyBlocked));
}

fn spend_at(at: i64) -> Request {
    let mut request = spend(500);
    request.at = at;
    request
}

#[test]
fn schedule_allows_from_start_until_just_before_end_in_local_time() {
    let zone = "America/New_York";
    let policy = one(json!({"id": "s", "type": "schedule", "timezone": zone,
                            "days": ["mon", "tue", "wed", "thu", "fri"],
                            "start": "09:00", "end": "17:00"}));
    let outside = blocked(ReasonCode::OutsideSchedule);
    let at = |time: &str| outcome(&run(&policy, &spend_at(local(time, zone))));
    assert_eq!(at("2025-01-15T08:59:59"), outside);
    assert_eq!(at("2025-01-15T09:00:00"), ALLOW);
    assert_eq!(at("2025-01-15T09:00:01"), ALLOW);
    assert_eq!(at("2025-01-15T16:59:59"), ALLOW);
    assert_eq!(at("2025-01-15T17:00:00"), outside);
    assert_eq!(at("2025-01-18T12:00:00"), outside, "Saturday");
    assert_eq!(at("2025-01-19T12:00:00"), outside, "Sunday");
    assert_eq!(at("2025-01-20T12:00:00"), ALLOW, "Monday");
    // Local, not UTC: 14:00Z is 09:00 in New York in winter, 10:00 in summer.
    let utc = |text: &str| outcome(&run(&policy, &spend_at(instant(text))));
    assert_eq!(utc("2025-01-15T13:59:59Z"), outside);
    assert_eq!(utc("2025-01-15T14:00:00Z"), ALLOW);
    assert_eq!(utc("2025-07-16T13:00:00Z"), ALLOW);
    assert_eq!(utc("2025-07-16T12:59:59Z"), outside);
    let message = run(&policy, &spend_at(NOON)).message;
    assert_eq!(
        message.as_deref(),
        Some(
            "Spend of $5.00 is outside the allowed schedule (mon, tue, wed, thu, fri 09:00 to \
             17:00 America/New_York)."
        )
    );
}

#[test]
fn a_schedule_ending_at_midnight_covers_the_last_second() {
    let policy = one(json!({"id": "s", "type": "schedule", "timezone": "Asia/Tokyo",
                            "days": ["WED"], "start": "00:00", "end": "24:00"}));
    let at = |time: &str| outcome(&run(&policy, &spend_at(local(time, "Asia/Tokyo"))));
    assert_eq!(at("2025-01-14T23:59:59"), blocked(ReasonCode::OutsideSchedule));
    assert_eq!(at("2025-01-15T00:00:00"), ALLOW);
    assert_eq!(at("2025-01-15T23:59:59"), ALLOW);
    assert_eq!(at("2025-01-16T00:00:00"), blocked(ReasonCode::OutsideSchedule));
}

#[test]
fn velocity_allows_up_to_max_actions() {
    let policy =
        one(json!({"id": "v", "type": "velocity", "max_actions": 3, "window_seconds": 60}));
    let recent = |count: u64| Facts {
        recent_actions: [("v".to_owned(), count)].into_iter().collect(),
        ..Facts::default()
    };
    assert_eq!(outcome(&run(&policy, &spend(1))), ALLOW);
    assert_eq!(outcome(&evaluate(&policy, &spend(1), &recent(2))), ALLOW);
    let over = evaluate(&policy, &spend(1), &recent(3));
    assert_eq!(outcome(&over), blocked(ReasonCode::VelocityExceeded));
    assert_eq!(
        over.message.as_deref(),
        Some("Spend of $0.01 would exceed the limit of 3 actions in 60 seconds.")
    );
    assert_eq!(evaluate(&policy, &spend(1), &recent(u64::MAX)).decision, Decision::Block);
}

#[test]
fn refund_age_limit_reads_refunds_with_an_age() {
    let policy = one(json!({"id": "a", "type": "refund_age_limit", "max_days": 30}));
    let refund = |action: ActionType, days: Option<u64>| {
        let mut request = request(action, 500);
        request.metadata.days_since_purchase = days;
        outcome(&run(&policy, &request))
    };
    assert_eq!(refund(ActionType::Refund, None), ALLOW);
    assert_eq!(refund(ActionType::Refund, Some(29)), ALLOW);
    assert_eq!(refund(ActionType::Refund, Some(30)), ALLOW);
    assert_eq!(refund(ActionType::Refund, Some(31)), blocked(ReasonCode::RefundAgeExceeded));
    assert_eq!(refund(ActionType::Credit, Some(31)), ALLOW);
    assert_eq!(refund(ActionType::Spend, Some(365)), ALLOW);
}

#[test]
fn discount_cap_reads_discounts_with_a_percent() {
    let policy = one(json!({"id": "d", "type": "discount_cap", "max_percent": 20}));
    let discount = |action: ActionType, percent: Option<f64>| {
        let mut request = request(action, 500);
        request.metadata.discount_percent = percent;
        run(&policy, &request)
    };
    assert_eq!(outcome(&discount(ActionType::Discount, None)), ALLOW);
    assert_eq!(outcome(&discount(ActionType::Discount, Some(19.99))), ALLOW);
    assert_eq!(outcome(&discount(ActionType::Discount, Some(20.0))), ALLOW);
    let over = discount(ActionType::Discount, Some(20.01));
    assert_eq!(outcome(&over), blocked(ReasonCode::DiscountCapExceeded));
    assert_eq!(
        over.message.as_deref(),
        Some("Discount of $5.00 is above the discount cap of 20%.")
    );
    assert_eq!(outcome(&discount(ActionType::Discount, Some(f64::NAN))).0, Decision::Block);
    assert_eq!(outcome(&discount(ActionType::Spend, Some(90.0))), ALLOW);
}

#[test]
fn the_duplicate_guard_blocks_a_repeat_within_its_window() {
    let mut policy = one(json!({"id": "p", "type": "per_tx_limit", "max_cents": 100}));
    let seen = Facts { duplicate: true, ..Facts::default() };
    // Off by default: a counted duplicate changes nothing.
    assert_eq!(outcome(&evaluate(&policy, &spend(1), &seen)), ALLOW);
    policy.duplicate_window_seconds = 60;
    assert_eq!(outcome(&run(&policy, &spend(1))), ALLOW);
    let repeat = evaluate(&policy, &spend(1), &seen);
    assert_eq!(outcome(&repeat), blocked(ReasonCode::DuplicateRequest));
    assert_eq!(repeat.violated_rule_id.as_deref(), Some("duplicate_guard"));
    assert_eq!(
        repeat.violated_rule_description.as_deref(),
        Some("Duplicate request within 60 seconds")
    );
    assert_eq!(repeat.violations.len(), 1);
    assert_eq!(repeat.violations[0].rule_type, "duplicate_guard");
}
