//! Parsing: the shapes accepted, the values normalized, and every refusal naming rule and field.

use serde_json::{Value, json};

use super::super::policy::{Policy, PolicyError, RuleKind};
use super::super::{ActionType, Need};
use super::policy;

/// One of each rule type, written canonically.
fn every_rule_type() -> Value {
    json!({
        "rules": [
            {"id": "r1", "type": "per_tx_limit", "max_cents": 10000},
            {"id": "r2", "type": "escalation_threshold", "above_cents": 20000,
             "action_types": ["refund"], "description": "Escalate refunds over $200"},
            {"id": "budget.day", "type": "period_budget", "period": "day", "max_cents": 50000,
             "timezone": "America/New_York"},
            {"id": "allow-1", "type": "counterparty_allowlist",
             "counterparties": ["agent_7", "0x00000000000000000000000000000000000000aB"]},
            {"id": "deny_1", "type": "counterparty_denylist", "counterparties": ["mallory"]},
            {"id": "cat-block", "type": "blocked_categories", "categories": ["gambling"]},
            {"id": "cat-allow", "type": "allowed_categories", "categories": ["compute", "Data"]},
            {"id": "geo", "type": "geography_block", "countries": ["KP", "IR"]},
            {"id": "hours", "type": "schedule", "timezone": "Europe/Paris",
             "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "24:00"},
            {"id": "rate", "type": "velocity", "max_actions": 5, "window_seconds": 3600},
            {"id": "age", "type": "refund_age_limit", "max_days": 30},
            {"id": "cap", "type": "discount_cap", "max_percent": 12.5},
        ],
        "duplicate_window_seconds": 60,
    })
}

fn parsed(document: &Value) -> Policy {
    Policy::parse(document).unwrap_or_else(|e| panic!("refused: {e}"))
}

fn refused(document: Value) -> PolicyError {
    match Policy::parse(&document) {
        Ok(policy) => panic!("accepted {document}: {policy:?}"),
        Err(e) => e,
    }
}

/// Refuses a policy whose second rule (index 1) is `rule`, after a valid `r0`.
fn refused_rule(rule: Value) -> PolicyError {
    refused(json!({"rules": [{"id": "r0", "type": "refund_age_limit", "max_days": 1}, rule]}))
}

/// The error names rule `id` at index 1 and `field`, and the message says `text`.
#[track_caller]
fn assert_names(error: &PolicyError, id: Option<&str>, field: &str, text: &str) {
    assert_eq!(error.rule_id.as_deref(), id, "{error:?}");
    assert_eq!(error.index, Some(1), "{error:?}");
    assert_eq!(error.field, field, "{error:?}");
    assert!(error.message.contains(text), "{:?} lacks {text:?}", error.message);
    match id {
        Some(id) => assert!(error.message.starts_with(&format!("rule `{id}`")), "{error:?}"),
        None => assert!(error.message.starts_with("rule at index 1"), "{error:?}"),
    }
}

#[test]
fn the_seed_rule_parses_and_serializes_as_written() {
    let rule = json!({"id": "r2", "type": "escalation_threshold", "above_cents": 20000,
                      "action_types": ["refund"], "description": "Escalate refunds over $200"});
    let policy = policy(json!([rule.clone()]));
    assert_eq!(
        policy.rules[0].kind,
        RuleKind::EscalationThreshold {
            above_cents: 20000,
            action_types: Some(vec![ActionType::Refund])
        }
    );
    assert_eq!(policy.duplicate_window_seconds, 0);
    let written = serde_json::to_value(&policy).unwrap();
    assert_eq!(written, json!({"rules": [rule], "duplicate_window_seconds": 0}));
}

#[test]
fn every_rule_type_round_trips() {
    let document = every_rule_type();
    let policy = parsed(&document);
    assert_eq!(policy.rules.len(), 12);
    let written = serde_json::to_value(&policy).unwrap();
    assert_eq!(written, document, "a canonical document serializes back unchanged");
    for (rule, value) in policy.rules.iter().zip(document["rules"].as_array().unwrap()) {
        assert_eq!(value["type"], rule.kind.type_name(), "type_name agrees with serde");
    }
    assert_eq!(parsed(&written), policy);
}

#[test]
fn values_are_normalized_and_stay_so() {
    let document = json!({"rules": [
        {"id": "g", "type": "geography_block", "countries": ["us", "Gb"]},
        {"id": "s", "type": "schedule", "timezone": "america/NEW_york", "days": ["MON", "Sun"],
         "start": "00:00", "end": "23:59"},
        {"id": "c", "type": "blocked_categories", "categories": ["  Gambling "]},
        {"id": "b", "type": "period_budget", "period": "week", "max_cents": 0, "timezone": "utc"},
        {"id": "d", "type": "discount_cap", "max_percent": 50, "description": null},
        {"id": "t", "type": "per_tx_limit", "max_cents": 1, "action_types": null},
    ], "duplicate_window_seconds": null});
    let policy = parsed(&document);
    let written = serde_json::to_value(&policy).unwrap();
    assert_eq!(written["rules"][0]["countries"], json!(["US", "GB"]));
    assert_eq!(written["rules"][1]["timezone"], "America/New_York");
    assert_eq!(written["rules"][1]["days"], json!(["mon", "sun"]));
    assert_eq!(written["rules"][2]["categories"], json!(["Gambling"]));
    assert_eq!(written["rules"][3]["timezone"], "UTC");
    assert_eq!(
        written["rules"][4],
        json!({"id": "d", "type": "discount_cap", "max_percent": 50.0})
    );
    assert_eq!(written["rules"][5], json!({"id": "t", "type": "per_tx_limit", "max_cents": 1}));
    assert_eq!(written["duplicate_window_seconds"], 0);
    assert_eq!(parsed(&written), policy);
}

#[test]
fn limits_are_inclusive() {
    let entry = "x".repeat(256);
    let many: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
    let id = "a".repeat(64);
    let rules: Vec<Value> = (0..100)
        .map(|i| json!({"id": format!("r{i}"), "type": "refund_age_limit", "max_days": 0}))
        .collect();
    parsed(&json!({"rules": rules}));
    parsed(&json!({"rules": [], "duplicate_window_seconds": 2_678_400}));
    let policy = parsed(&json!({"rules": [
        {"id": id, "type": "blocked_categories", "categories": [entry], "description": "d".repeat(256)},
        {"id": "many", "type": "counterparty_denylist", "counterparties": many},
        {"id": "max", "type": "per_tx_limit", "max_cents": 1_000_000_000_000_000u64},
        {"id": "v", "type": "velocity", "max_actions": 1, "window_seconds": 2_678_400},
        {"id": "v2", "type": "velocity", "max_actions": 1, "window_seconds": 1},
        {"id": "p0", "type": "discount_cap", "max_percent": 0},
        {"id": "p100", "type": "discount_cap", "max_percent": 100},
        {"id": "s", "type": "schedule", "timezone": "UTC", "days": ["mon"], "start": "23:59",
         "end": "24:00"},
    ]}));
    assert_eq!(
        policy.needs(100),
        vec![
            Need::RecentActions { rule_id: "v".into(), since: 100 - 2_678_400 },
            Need::RecentActions { rule_id: "v2".into(), since: 99 },
        ]
    );
    assert!(matches!(
        policy.rules[0].kind,
        RuleKind::BlockedCategories { .. } if policy.rules[0].id.len() == 64
    ));
}

#[test]
fn the_document_itself_is_checked() {
    let top = |document: Value, field: &str, text: &str| {
        let e = refused(document);
        assert_eq!((e.rule_id.as_deref(), e.index, e.field.as_str()), (None, None, field));
        assert!(e.message.contains(text), "{:?} lacks {text:?}", e.message);
    };
    top(json!([]), "rules", "JSON object");
    top(json!({}), "rules", "`rules` must be a list");
    top(json!({"rules": {}}), "rules", "`rules` must be a list");
    top(json!({"rules": [], "extra": 1}), "extra", "unknown field `extra`");
    let rules: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("r{i}"), "type": "refund_age_limit", "max_days": 0}))
        .collect();
    top(json!({"rules": rules}), "rules", "at most 100 rules");
    for bad in [json!(2_678_401), json!(-1), json!(1.5), json!("60")] {
        top(json!({"rules": [], "duplicate_window_seconds": bad}), "duplicate_window_seconds", "");
    }
}

#[test]
fn ids_are_checked() {
    let e = refused_rule(json!(["not", "an", "object"]));
    assert_names(&e, None, "rules", "JSON object");
    let e = refused_rule(json!({"type": "refund_age_limit", "max_days": 1}));
    assert_names(&e, None, "id", "`id` is required");
    for bad in
        [json!(""), json!("has space"), json!("a/b"), json!("é"), json!(7), json!("a".repeat(65))]
    {
        let e = refused_rule(json!({"id": bad, "type": "refund_age_limit", "max_days": 1}));
        assert_names(&e, None, "id", "`id` must be 1 to 64 characters");
    }
    let e = refused_rule(json!({"id": "r0", "type": "refund_age_limit", "max_days": 2}));
    assert_names(&e, Some("r0"), "id", "already used");
    let e =
        refused_rule(json!({"id": "duplicate_guard", "type": "refund_age_limit", "max_days": 2}));
    assert_names(&e, Some("duplicate_guard"), "id", "reserved");
}

#[test]
fn types_and_fields_are_checked() {
    let e = refused_rule(json!({"id": "r1", "max_days": 1}));
    assert_names(&e, Some("r1"), "type", "`type` is required");
    let e = refused_rule(json!({"id": "r1", "type": "spend_limit"}));
    assert_names(&e, Some("r1"), "type", "unknown type `spend_limit`");
    let e = refused_rule(json!({"id": "r1", "type": 3}));
    assert_names(&e, Some("r1"), "type", "`type` must be a string");
    let e = refused_rule(json!({"id": "r1", "type": "refund_age_limit", "max_days": 1, "max": 2}));
    assert_names(&e, Some("r1"), "max", "rule `r1` (refund_age_limit): unknown field `max`");
    // A parameter of another rule type is unknown here.
    let e =
        refused_rule(json!({"id": "r1", "type": "per_tx_limit", "max_cents": 1, "period": "day"}));
    assert_names(&e, Some("r1"), "period", "unknown field `period`");
    let e = refused_rule(json!({"id": "r1", "type": "per_tx_limit"}));
    assert_names(&e, Some("r1"), "max_cents", "rule `r1` (per_tx_limit): `max_cents` is required");
    let e = refused_rule(json!({"id": "r1", "type": "per_tx_limit", "max_cents": null}));
    assert_names(&e, Some("r1"), "max_cents", "`max_cents` is required");
    for bad in [json!(7), json!("d".repeat(257))] {
        let e = refused_rule(json!({"id": "r1", "type": "refund_age_limit", "max_days": 1,
                                    "description": bad}));
        assert_names(&e, Some("r1"), "description", "at most 256 characters");
    }
}

#[test]
fn cents_are_whole_and_bounded() {
    let e = refused_rule(json!({"id": "r2", "type": "escalation_threshold", "above_cents": 100.5}));
    assert_eq!(
        e.message,
        "rule `r2` (escalation_threshold): `above_cents` must be a whole number of cents"
    );
    assert_names(&e, Some("r2"), "above_cents", "whole number of cents");
    let cases = [
        (json!(100.0), "whole number of cents"),
        (json!(-1), "must not be negative"),
        (json!("100"), "whole number of cents"),
        (json!(1_000_000_000_000_001u64), "from 0 to 1000000000000000 cents"),
        (json!(true), "whole number of cents"),
    ];
    for (bad, text) in cases {
        let e = refused_rule(json!({"id": "r2", "type": "per_tx_limit", "max_cents": bad}));
        assert_names(&e, Some("r2"), "max_cents", text);
        let e = refused_rule(json!({"id": "r2", "type": "period_budget", "period": "day",
                                    "max_cents": bad, "timezone": "UTC"}));
        assert_names(&e, Some("r2"), "max_cents", text);
    }
}

#[test]
fn lists_are_checked() {
    let long = "x".repeat(257);
    let many: Vec<String> = (0..1001).map(|i| format!("c{i}")).collect();
    let cases = [
        (json!([]), "1 to 1000 entries"),
        (json!(many), "1 to 1000 entries"),
        (json!("solo"), "must be a list"),
        (json!(["ok", ""]), "`counterparties[1]` must be a non-empty string"),
        (json!(["ok", long]), "at most 256 characters"),
        (json!([1]), "`counterparties[0]` must be a string"),
    ];
    for (bad, text) in cases {
        for kind in ["counterparty_allowlist", "counterparty_denylist"] {
            let e = refused_rule(json!({"id": "l", "type": kind, "counterparties": bad}));
            assert_names(&e, Some("l"), "counterparties", text);
        }
    }
    for kind in ["blocked_categories", "allowed_categories"] {
        let e = refused_rule(json!({"id": "l", "type": kind, "categories": ["   "]}));
        assert_names(&e, Some("l"), "categories", "`categories[0]` must be a non-empty string");
    }
    for bad in [json!(["USA"]), json!(["U"]), json!(["1A"]), json!(["ÜS"]), json!([])] {
        let e = refused_rule(json!({"id": "g", "type": "geography_block", "countries": bad}));
        assert_names(&e, Some("g"), "countries", "countries");
    }
    for bad in [json!(["loan"]), json!(["Refund"]), json!([]), json!("refund")] {
        let e = refused_rule(json!({"id": "t", "type": "per_tx_limit", "max_cents": 1,
                                    "action_types": bad}));
        assert_names(&e, Some("t"), "action_types", "action_types");
    }
}

#[test]
fn zones_periods_and_schedules_are_checked() {
    for bad in
        [json!("Mars/Olympus_Mons"), json!("Etc/Unknown"), json!(""), json!("+05:00"), json!(5)]
    {
        let e = refused_rule(json!({"id": "b", "type": "period_budget", "period": "day",
                                    "max_cents": 1, "timezone": bad}));
        assert_names(&e, Some("b"), "timezone", "timezone");
        let e = refused_rule(json!({"id": "s", "type": "schedule", "timezone": bad,
                                    "days": ["mon"], "start": "09:00", "end": "17:00"}));
        assert_names(&e, Some("s"), "timezone", "timezone");
    }
    let e = refused_rule(json!({"id": "b", "type": "period_budget", "period": "year",
                                "max_cents": 1, "timezone": "UTC"}));
    assert_names(&e, Some("b"), "period", "day, week or month");

    let schedule = |days: Value, start: &str, end: &str| {
        refused_rule(json!({"id": "s", "type": "schedule", "timezone": "UTC", "days": days,
                            "start": start, "end": end}))
    };
    let e = schedule(json!(["monday"]), "09:00", "17:00");
    assert_names(&e, Some("s"), "days", "`days[0]` must be a day");
    let e = schedule(json!(["mon", "Tue", "MON"]), "09:00", "17:00");
    assert_names(&e, Some("s"), "days", "`days[2]` must be a day not listed before");
    let e = schedule(json!([]), "09:00", "17:00");
    assert_names(&e, Some("s"), "days", "1 to 1000 entries");
    for start in ["9:00", "24:00", "23:60", "25:00", "0900", "09:00:00", "ab:cd", " 09:00"] {
        let e = schedule(json!(["mon"]), start, "24:00");
        assert_names(&e, Some("s"), "start", "`start` must be a time HH:MM from 00:00 to 23:59");
    }
    for end in ["24:01", "24:30", "7:00", ""] {
        let e = schedule(json!(["mon"]), "00:00", end);
        assert_names(&e, Some("s"), "end", "`end` must be a time HH:MM from 00:00 to 24:00");
    }
    for (start, end) in [("09:00", "09:00"), ("17:00", "09:00")] {
        let e = schedule(json!(["mon"]), start, end);
        assert_names(&e, Some("s"), "end", "`end` must be later than `start`");
    }
}

#[test]
fn counts_windows_and_percents_are_checked() {
    let velocity = |max: Value, window: Value| {
        refused_rule(json!({"id": "v", "type": "velocity", "max_actions": max,
                            "window_seconds": window}))
    };
    assert_names(&velocity(json!(0), json!(60)), Some("v"), "max_actions", "from 1 to");
    assert_names(&velocity(json!(1.5), json!(60)), Some("v"), "max_actions", "whole number");
    assert_names(&velocity(json!(1), json!(0)), Some("v"), "window_seconds", "from 1 to 2678400");
    let e = velocity(json!(1), json!(2_678_401));
    assert_names(&e, Some("v"), "window_seconds", "from 1 to 2678400 seconds");
    let e = refused_rule(json!({"id": "a", "type": "refund_age_limit", "max_days": -3}));
    assert_names(&e, Some("a"), "max_days", "must not be negative");
    for bad in [json!(-0.5), json!(100.01), json!("10"), json!(null)] {
        let e = refused_rule(json!({"id": "d", "type": "discount_cap", "max_percent": bad}));
        assert_names(&e, Some("d"), "max_percent", "max_percent");
    }
}
