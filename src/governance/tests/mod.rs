//! Tests of the policy engine: parsing, periods, each rule's boundaries, precedence, and
//! properties over random policies.

mod parse;
mod period;
mod precedence;
mod props;
mod rules;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::{ActionType, Evaluation, Facts, Metadata, Policy, Request, evaluate};

/// A policy with these rules (panics if the document is refused).
fn policy(rules: Value) -> Policy {
    match Policy::parse(&json!({ "rules": rules })) {
        Ok(policy) => policy,
        Err(e) => panic!("policy refused: {e}"),
    }
}

/// Wednesday 2025-01-15 12:00:00 UTC.
const NOON: i64 = 1_736_942_400;

/// A request with no counterparties, categories, country or metadata, made at [`NOON`].
fn request(action_type: ActionType, amount_cents: u64) -> Request {
    Request {
        action_type,
        amount_cents,
        counterparties: Vec::new(),
        categories: Vec::new(),
        country: None,
        at: NOON,
        metadata: Metadata::default(),
    }
}

fn spend(amount_cents: u64) -> Request {
    request(ActionType::Spend, amount_cents)
}

/// Evaluates with an active agent and nothing counted.
fn run(policy: &Policy, request: &Request) -> Evaluation {
    evaluate(policy, request, &Facts::default())
}

/// Unix seconds of an instant written in RFC 3339 (`2025-03-09T07:00:00Z`).
fn instant(text: &str) -> i64 {
    text.parse::<Timestamp>().map(|t| t.as_second()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Unix seconds of a local wall-clock time (`2025-03-09T00:00:00`) in `zone`.
fn local(date_time: &str, zone: &str) -> i64 {
    let tz = TimeZone::get(zone).unwrap_or_else(|e| panic!("{zone}: {e}"));
    let civil: DateTime = date_time.parse().unwrap_or_else(|e| panic!("{date_time}: {e}"));
    civil.to_zoned(tz).map(|z| z.timestamp().as_second()).unwrap_or_else(|e| panic!("{e}"))
}
