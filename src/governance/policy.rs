//! Policy documents: typed rules, parsed and validated from the owner's JSON, and the facts
//! each rule needs the store to count.

use serde::Serialize;

use super::{ActionType, period};

/// A validated policy document (one version's content).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Policy {
    /// The rules, in the owner's order.
    pub rules: Vec<Rule>,
    /// Seconds within which an identical request is blocked as a duplicate; 0 turns it off.
    pub duplicate_window_seconds: u64,
    /// The price list spend-guard estimates read when a request names no prices.
    #[serde(skip_serializing_if = "Prices::is_empty")]
    pub prices: Prices,
}

/// A policy's price list: per model, cents per million input and output tokens; per tool,
/// cents per call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Prices {
    /// By model name.
    pub tokens: std::collections::BTreeMap<String, TokenPrice>,
    /// Cents per call, by tool name.
    pub tools: std::collections::BTreeMap<String, u64>,
}

impl Prices {
    /// Whether it lists nothing.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.tools.is_empty()
    }
}

/// What a model's tokens cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPrice {
    /// Cents per million input tokens.
    pub input_per_million_cents: u64,
    /// Cents per million output tokens.
    pub output_per_million_cents: u64,
}

/// One rule: an owner-chosen id, an optional description, and its typed parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Unique within the policy.
    pub id: String,
    /// Shown as `violated_rule_description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The type and its parameters.
    #[serde(flatten)]
    pub kind: RuleKind,
}

/// Every rule type and its parameters (money in integer cents). Serializes as
/// `{"type": "<snake_case>", …params}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RuleKind {
    /// Block above `max_cents` (for `action_types` when given).
    PerTxLimit {
        /// Highest amount allowed.
        max_cents: u64,
        /// Only these action types; all when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        action_types: Option<Vec<ActionType>>,
    },
    /// Escalate above `above_cents` (for `action_types` when given).
    EscalationThreshold {
        /// Highest amount that does not escalate.
        above_cents: u64,
        /// Only these action types; all when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        action_types: Option<Vec<ActionType>>,
    },
    /// Block when the period's committed spend plus this request passes `max_cents`.
    PeriodBudget {
        /// `day`, `week` (from Monday) or `month`.
        period: Period,
        /// The budget.
        max_cents: u64,
        /// IANA time zone the period is counted in.
        timezone: String,
    },
    /// Block unless a counterparty identifier is listed.
    CounterpartyAllowlist {
        /// Agent ids, wallet addresses (compared case-insensitively) or free identifiers.
        counterparties: Vec<String>,
    },
    /// Block when a counterparty identifier is listed.
    CounterpartyDenylist {
        /// Agent ids, wallet addresses (compared case-insensitively) or free identifiers.
        counterparties: Vec<String>,
    },
    /// Block these categories.
    BlockedCategories {
        /// Categories (compared case-insensitively).
        categories: Vec<String>,
    },
    /// Block every category but these (and requests without one).
    AllowedCategories {
        /// Categories (compared case-insensitively).
        categories: Vec<String>,
    },
    /// Block these countries.
    GeographyBlock {
        /// ISO 3166-1 alpha-2 codes.
        countries: Vec<String>,
    },
    /// Block outside `[start, end)` on `days`, local time in `timezone`.
    Schedule {
        /// IANA time zone.
        timezone: String,
        /// `mon` … `sun`.
        days: Vec<String>,
        /// `HH:MM`, inclusive.
        start: String,
        /// `HH:MM`, exclusive.
        end: String,
    },
    /// Block the action after `max_actions` in the last `window_seconds`.
    Velocity {
        /// Actions allowed in the window.
        max_actions: u64,
        /// The sliding window.
        window_seconds: u64,
    },
    /// Block refunds older than `max_days`.
    RefundAgeLimit {
        /// Oldest purchase refundable, in days.
        max_days: u64,
    },
    /// Block discounts above `max_percent`.
    DiscountCap {
        /// Largest discount, in percent.
        max_percent: f64,
    },
}

crate::vocab::string_enum!(
    /// A budget period.
    Period {
        /// A calendar day.
        Day = "day",
        /// Monday 00:00 to the next Monday 00:00.
        Week = "week",
        /// A calendar month.
        Month = "month",
    }
);

/// A fact a rule needs counted, for the request at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Committed spend in `[from, to)` (unix seconds) for the `period_budget` rule `rule_id`.
    PeriodSpent {
        /// The rule.
        rule_id: String,
        /// Period start.
        from: i64,
        /// Period end.
        to: i64,
    },
    /// Counted actions at or after `since` for the `velocity` rule `rule_id`.
    RecentActions {
        /// The rule.
        rule_id: String,
        /// Window start.
        since: i64,
    },
    /// Whether an identical request was counted at or after `since`.
    Duplicate {
        /// Window start.
        since: i64,
    },
}

/// Why a policy document is refused: the rule (by id, or index when it has none) and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    /// The offending rule's id, when it has one.
    pub rule_id: Option<String>,
    /// Its position in `rules`, when the error is in a rule.
    pub index: Option<usize>,
    /// The field at fault (`type`, `max_cents`, …).
    pub field: String,
    /// What is wrong, naming the rule.
    pub message: String,
}

/// The rule id the duplicate guard reports as; no rule may take it.
pub const DUPLICATE_GUARD_ID: &str = "duplicate_guard";

impl RuleKind {
    /// The rule's `type` as the owner writes it (`per_tx_limit`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            RuleKind::PerTxLimit { .. } => "per_tx_limit",
            RuleKind::EscalationThreshold { .. } => "escalation_threshold",
            RuleKind::PeriodBudget { .. } => "period_budget",
            RuleKind::CounterpartyAllowlist { .. } => "counterparty_allowlist",
            RuleKind::CounterpartyDenylist { .. } => "counterparty_denylist",
            RuleKind::BlockedCategories { .. } => "blocked_categories",
            RuleKind::AllowedCategories { .. } => "allowed_categories",
            RuleKind::GeographyBlock { .. } => "geography_block",
            RuleKind::Schedule { .. } => "schedule",
            RuleKind::Velocity { .. } => "velocity",
            RuleKind::RefundAgeLimit { .. } => "refund_age_limit",
            RuleKind::DiscountCap { .. } => "discount_cap",
        }
    }
}

impl Policy {
    /// Parses and validates an owner's document
    /// `{"rules": [{"id", "type", "description"?, …params}], "duplicate_window_seconds"?}`.
    ///
    /// Values are normalized (country codes upper case, day names lower case, time zones as the
    /// database spells them, categories trimmed), so serializing the result and parsing it again
    /// gives the same policy.
    pub fn parse(document: &serde_json::Value) -> Result<Policy, PolicyError> {
        super::parse::document(document)
    }

    /// The facts [`super::evaluate`] needs the store to count for a request made at `at` (unix
    /// seconds): the duplicate window first, then each `period_budget` and `velocity` rule in
    /// policy order.
    pub fn needs(&self, at: i64) -> Vec<Need> {
        let mut needs = Vec::new();
        if self.duplicate_window_seconds > 0 {
            needs
                .push(Need::Duplicate { since: seconds_before(at, self.duplicate_window_seconds) });
        }
        for rule in &self.rules {
            match &rule.kind {
                RuleKind::PeriodBudget { period, timezone, .. } => {
                    let (from, to) = period::bounds(*period, &period::zone(timezone), at);
                    needs.push(Need::PeriodSpent { rule_id: rule.id.clone(), from, to });
                }
                RuleKind::Velocity { window_seconds, .. } => needs.push(Need::RecentActions {
                    rule_id: rule.id.clone(),
                    since: seconds_before(at, *window_seconds),
                }),
                _ => {}
            }
        }
        needs
    }
}

/// `at - seconds`, saturating: windows are validated to a month, but the fields are public.
fn seconds_before(at: i64, seconds: u64) -> i64 {
    at.saturating_sub(i64::try_from(seconds).unwrap_or(i64::MAX))
}
