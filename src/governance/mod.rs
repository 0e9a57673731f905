//! The policy engine: owner policies over agent spending, evaluated without I/O.
//!
//! A policy ([`policy::Policy`]) is a list of typed rules. [`evaluate::evaluate`] takes the
//! policy, one [`Request`] and the [`Facts`] the store counted for it (spend in each budget
//! period, recent actions, whether an identical request was seen, the agent's state) and
//! returns an [`Evaluation`]: `allow | block | escalate`, the rule that decided, messages, and
//! every rule that fired. Precedence: agent revoked or halted > block > escalate > allow. Same
//! inputs, same answer: the engine reads no clock and no database.
//!
//! The store asks [`policy::Policy::needs`] which facts a request needs, answers them in the
//! same transaction as the decision, and passes them in.
//!
//! Files: `policy` (the document's types and the facts each rule needs), `parse` (validation),
//! `period` (local-time periods and clocks), `rules` (each rule type's test and the words it
//! answers with), `evaluate` (precedence), `classify` (action type from free text), `mandate`
//! (what a mandate admits).

pub mod classify;
pub mod evaluate;
pub mod mandate;
mod parse;
mod period;
pub mod policy;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::vocab::string_enum;

pub use classify::classify;
pub use evaluate::evaluate;
pub use mandate::{Mandate, MandateRefusal, MandateSpend, MandateStatus};
pub use policy::{Need, Policy, PolicyError, Rule, RuleKind};

string_enum!(
    /// What the engine answers.
    Decision {
        /// Go ahead.
        Allow = "allow",
        /// Refused.
        Block = "block",
        /// A human must approve first.
        Escalate = "escalate",
    }
);

string_enum!(
    /// The kind of action a request is (seed vocabulary). Escrow activations are `spend`.
    ActionType {
        /// Money back to a customer.
        Refund = "refund",
        /// A credit to an account.
        Credit = "credit",
        /// A price reduction.
        Discount = "discount",
        /// Paying for something (escrow activations, payments).
        Spend = "spend",
    }
);

string_enum!(
    /// How sure the engine is of the action type: `high` when the caller named it, else the
    /// keyword classifier's confidence.
    Confidence {
        /// Named by the caller, or an unambiguous keyword match.
        High = "high",
        /// Only weaker keywords matched, or strong keywords of several types.
        Medium = "medium",
        /// No keyword matched; the engine assumed `spend`.
        Low = "low",
    }
);

string_enum!(
    /// Why a rule fired (the API's `reason_code`).
    ReasonCode {
        /// Above `per_tx_limit.max_cents`.
        PerTxLimitExceeded = "per_tx_limit_exceeded",
        /// Above `escalation_threshold.above_cents`.
        EscalationThresholdExceeded = "escalation_threshold_exceeded",
        /// The period's committed spend plus this one is above `period_budget.max_cents`.
        PeriodBudgetExceeded = "period_budget_exceeded",
        /// No counterparty identifier is on the allowlist.
        CounterpartyNotAllowed = "counterparty_not_allowed",
        /// A counterparty identifier is on the denylist.
        CounterpartyDenied = "counterparty_denied",
        /// The category is on `blocked_categories`.
        CategoryBlocked = "category_blocked",
        /// The category is missing from `allowed_categories`.
        CategoryNotAllowed = "category_not_allowed",
        /// The country is on `geography_block`.
        GeographyBlocked = "geography_blocked",
        /// Outside the `schedule` window.
        OutsideSchedule = "outside_schedule",
        /// More than `velocity.max_actions` in `window_seconds`.
        VelocityExceeded = "velocity_exceeded",
        /// A refund older than `refund_age_limit.max_days`.
        RefundAgeExceeded = "refund_age_exceeded",
        /// A discount above `discount_cap.max_percent`.
        DiscountCapExceeded = "discount_cap_exceeded",
        /// The same request within `duplicate_window_seconds`.
        DuplicateRequest = "duplicate_request",
        /// The owner halted the agent.
        AgentHalted = "agent_halted",
        /// The agent is revoked.
        AgentRevoked = "agent_revoked",
        /// What the agent's budget lease has left is less than the amount.
        LeaseExhausted = "lease_exhausted",
        /// The mandate named is revoked.
        MandateRevoked = "mandate_revoked",
        /// The mandate named is not valid yet.
        MandateNotYetValid = "mandate_not_yet_valid",
        /// The mandate named is no longer valid.
        MandateExpired = "mandate_expired",
        /// The mandate does not allow this action type.
        MandateActionNotAllowed = "mandate_action_not_allowed",
        /// The mandate does not allow this counterparty.
        MandateCounterpartyNotAllowed = "mandate_counterparty_not_allowed",
        /// The mandate does not allow this category.
        MandateCategoryNotAllowed = "mandate_category_not_allowed",
        /// Above the mandate's `per_tx_max_cents`.
        MandatePerTxExceeded = "mandate_per_tx_exceeded",
        /// The mandate's spent plus this one is above its `max_total_cents`.
        MandateExhausted = "mandate_exhausted",
    }
);

string_enum!(
    /// The agent's standing, which decides before any rule.
    AgentState {
        /// May spend within its policy.
        Active = "active",
        /// Halted by its owner (circuit breaker): every spend is blocked.
        Halted = "halted",
        /// Revoked for good.
        Revoked = "revoked",
    }
);

/// Request metadata the seed rules read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metadata {
    /// Days since the purchase a refund is for (`refund_age_limit`).
    pub days_since_purchase: Option<u64>,
    /// The discount asked for, in percent (`discount_cap`). A ratio, not money.
    pub discount_percent: Option<f64>,
}

/// One request to spend, as the engine sees it. Built by the API layer from a check, an
/// activation or (later) a payment; amounts are integer cents.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What kind of action.
    pub action_type: ActionType,
    /// Amount in cents (deposit + fee for an activation).
    pub amount_cents: u64,
    /// Every identifier the counterparty goes by (agent id, wallet address, free id). The
    /// first is the one the duplicate guard fingerprints.
    pub counterparties: Vec<String>,
    /// Categories of what is bought (e.g. an agreement's `service_id` and `unit`).
    pub categories: Vec<String>,
    /// ISO 3166-1 alpha-2 country, upper case, when known.
    pub country: Option<String>,
    /// When the request is made, unix seconds.
    pub at: i64,
    /// Seed metadata.
    pub metadata: Metadata,
}

/// What the store counted for a request, keyed by the rule id that needed it
/// ([`policy::Policy::needs`]). A missing entry counts as zero / not seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The agent's standing.
    pub agent: AgentState,
    /// Committed spend in cents inside each `period_budget` rule's current period.
    pub period_spent_cents: BTreeMap<String, u64>,
    /// The agent's counted actions inside each `velocity` rule's window.
    pub recent_actions: BTreeMap<String, u64>,
    /// Whether an identical request was counted within `duplicate_window_seconds`.
    pub duplicate: bool,
    /// The budget lease the agent spends under, when it holds one.
    pub lease: Option<LeaseFact>,
    /// Why the mandate the spend is made under refuses it, when it does.
    pub mandate_refusal: Option<MandateFact>,
}

/// A budget lease as a decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFact {
    /// `bls_…`.
    pub lease_id: String,
    /// Its capacity in cents.
    pub amount_cents: u64,
    /// What its child holds or spent under it.
    pub counted_cents: u64,
}

/// A mandate's refusal, as its own check ([`crate::governance::mandate`]) worded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MandateFact {
    /// `mdt_…`.
    pub mandate_id: String,
    /// Why.
    pub reason_code: ReasonCode,
    /// A sentence built from the mandate's limits and the amount.
    pub message: String,
}

// `string_enum!` declares the enum and its derives, so `#[derive(Default)]` cannot be added.
#[allow(clippy::derivable_impls)]
impl Default for AgentState {
    fn default() -> Self {
        AgentState::Active
    }
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    /// The rule's id (`duplicate_guard` for the duplicate guard).
    pub rule_id: String,
    /// The rule's type.
    pub rule_type: String,
    /// What this rule alone would decide (`block` or `escalate`).
    pub decision: Decision,
    /// Why it fired.
    pub reason_code: ReasonCode,
    /// A sentence built only from the rule's parameters and the amount.
    pub message: String,
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The decision.
    pub decision: Decision,
    /// Why (None on allow).
    pub reason_code: Option<ReasonCode>,
    /// The rule that decided (None on allow and for agent state).
    pub violated_rule_id: Option<String>,
    /// That rule's description.
    pub violated_rule_description: Option<String>,
    /// A human-readable explanation (None on allow).
    pub message: Option<String>,
    /// A short counter-message for the agent's model; never repeats request text.
    pub decline_message: Option<String>,
    /// What the agent should do next (None on allow).
    pub next_step: Option<&'static str>,
    /// Every rule that fired, in policy order (the duplicate guard first).
    pub violations: Vec<Violation>,
}

/// Cents as dollars for messages: `30000` → `$300.00`.
pub fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}
