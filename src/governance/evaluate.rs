//! The evaluator: one request against one policy and its counted facts.

use super::{Evaluation, Facts, Policy, Request};

/// Evaluates `request` against `policy` given `facts`. Pure and deterministic.
pub fn evaluate(policy: &Policy, request: &Request, facts: &Facts) -> Evaluation {
    let _ = (policy, request, facts);
    todo!("governance engine")
}
