//! The evaluator: one request against one policy and its counted facts.
//!
//! The agent's standing decides first: a revoked or halted agent is blocked whatever the rules
//! say. Otherwise every rule is tested (the duplicate guard first, then the rules in policy
//! order) and all that fire are reported; the first block decides, else the first escalation,
//! else the request is allowed.

use super::rules::{self, Fired, Subject};
use super::{AgentState, Decision, Evaluation, Facts, Policy, ReasonCode, Request};

/// What a blocked agent is told to do next.
pub const BLOCK_NEXT_STEP: &str = "Do not proceed with this action.";
/// What an escalated agent is told to do next.
pub const ESCALATE_NEXT_STEP: &str = "Route to human approval before proceeding.";

/// Evaluates `request` against `policy` given `facts`. Pure and deterministic.
pub fn evaluate(policy: &Policy, request: &Request, facts: &Facts) -> Evaluation {
    match facts.agent {
        AgentState::Revoked => {
            return standing(
                ReasonCode::AgentRevoked,
                "The agent is revoked; it can no longer spend.",
                "Your spending access is revoked. Do not retry.",
            );
        }
        AgentState::Halted => {
            return standing(
                ReasonCode::AgentHalted,
                "The agent is halted by its owner; all of its spending is blocked.",
                "Your owner has halted your spending. Do not retry until you are resumed.",
            );
        }
        AgentState::Active => {}
    }

    let subject = Subject::new(request);
    let mut fired: Vec<Fired> = rules::bounds(&subject, facts);
    if policy.duplicate_window_seconds > 0 && facts.duplicate {
        fired.push(rules::duplicate(policy.duplicate_window_seconds, &subject));
    }
    fired.extend(policy.rules.iter().filter_map(|rule| rules::check(rule, &subject, facts)));

    let first = |decision| fired.iter().position(|f| f.violation.decision == decision);
    let Some(deciding) = first(Decision::Block).or_else(|| first(Decision::Escalate)) else {
        return Evaluation {
            decision: Decision::Allow,
            reason_code: None,
            violated_rule_id: None,
            violated_rule_description: None,
            message: None,
            decline_message: None,
            next_step: None,
            violations: Vec::new(),
        };
    };
    let Fired { violation, description, decline } = fired[deciding].clone();
    let next_step = match violation.decision {
        Decision::Escalate => ESCALATE_NEXT_STEP,
        Decision::Block | Decision::Allow => BLOCK_NEXT_STEP,
    };
    Evaluation {
        decision: violation.decision,
        reason_code: Some(violation.reason_code),
        violated_rule_id: Some(violation.rule_id),
        violated_rule_description: description,
        message: Some(violation.message),
        decline_message: Some(decline),
        next_step: Some(next_step),
        violations: fired.into_iter().map(|f| f.violation).collect(),
    }
}

/// A block for the agent's standing, which no rule decides.
fn standing(reason: ReasonCode, message: &str, decline: &str) -> Evaluation {
    Evaluation {
        decision: Decision::Block,
        reason_code: Some(reason),
        violated_rule_id: None,
        violated_rule_description: None,
        message: Some(message.to_owned()),
        decline_message: Some(decline.to_owned()),
        next_step: Some(BLOCK_NEXT_STEP),
        violations: Vec::new(),
    }
}
