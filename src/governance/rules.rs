//! Each rule type's test against one request, and the words it answers with.
//!
//! Every message and decline message is built from the rule's own parameters, the amount and the
//! action type. Counterparties, categories, the country and metadata come from the agent's
//! request and may carry instructions meant for a model, so they are never repeated.

use super::policy::{DUPLICATE_GUARD_ID, Period, Rule, RuleKind};
use super::{ActionType, Decision, Facts, ReasonCode, Request, Violation, dollars, period};

/// A rule that fired, with what the agent is told if it decides.
#[derive(Debug, Clone)]
pub(super) struct Fired {
    pub(super) violation: Violation,
    pub(super) description: Option<String>,
    pub(super) decline: String,
}

/// The request with its free-text fields folded once for matching.
pub(super) struct Subject<'a> {
    request: &'a Request,
    /// Categories trimmed and lower-cased.
    categories: Vec<String>,
    /// The country trimmed and upper-cased.
    country: Option<String>,
}

impl<'a> Subject<'a> {
    pub(super) fn new(request: &'a Request) -> Self {
        Subject {
            request,
            categories: request.categories.iter().map(|c| category_key(c)).collect(),
            country: request.country.as_deref().map(|c| c.trim().to_ascii_uppercase()),
        }
    }

    /// "Refund of $300.00": the opening of most messages.
    fn what(&self) -> String {
        format!(
            "{} of {}",
            capitalized(self.request.action_type),
            dollars(self.request.amount_cents)
        )
    }

    fn action(&self) -> &'static str {
        self.request.action_type.as_str()
    }
}

/// The duplicate guard's violation: an identical request within `window` seconds.
pub(super) fn duplicate(window: u64, subject: &Subject<'_>) -> Fired {
    Fired {
        violation: Violation {
            rule_id: DUPLICATE_GUARD_ID.to_owned(),
            rule_type: DUPLICATE_GUARD_ID.to_owned(),
            decision: Decision::Block,
            reason_code: ReasonCode::DuplicateRequest,
            message: format!(
                "{} repeats an identical request made within the last {window} seconds.",
                subject.what()
            ),
        },
        description: Some(format!("Duplicate request within {window} seconds")),
        decline: format!(
            "This request repeats one made within the last {window} seconds. Do not retry it."
        ),
    }
}

/// What binds besides the policy's rules, first: the agent's budget lease (its amount less
/// what its child counted) and the mandate the spend is made under.
pub(super) fn bounds(subject: &Subject<'_>, facts: &Facts) -> Vec<Fired> {
    let mut fired = Vec::new();
    if let Some(lease) = &facts.lease {
        let left = lease.amount_cents.saturating_sub(lease.counted_cents);
        if subject.request.amount_cents > left {
            fired.push(Fired {
                violation: Violation {
                    rule_id: lease.lease_id.clone(),
                    rule_type: "budget_lease".to_owned(),
                    decision: Decision::Block,
                    reason_code: ReasonCode::LeaseExhausted,
                    message: format!(
                        "{} is more than the {} left of the agent's budget lease of {}.",
                        subject.what(),
                        dollars(left),
                        dollars(lease.amount_cents)
                    ),
                },
                description: Some(format!("Budget lease of {}", dollars(lease.amount_cents))),
                decline: format!(
                    "Your budget lease has {} left, less than this amount. Ask for a larger \
                     lease instead of retrying.",
                    dollars(left)
                ),
            });
        }
    }
    if let Some(mandate) = &facts.mandate_refusal {
        fired.push(Fired {
            violation: Violation {
                rule_id: mandate.mandate_id.clone(),
                rule_type: "mandate".to_owned(),
                decision: Decision::Block,
                reason_code: mandate.reason_code,
                message: mandate.message.clone(),
            },
            description: Some("Mandate".to_owned()),
            decline: "Your mandate does not cover this spend. Do not retry it under this \
                      mandate."
                .to_owned(),
        });
    }
    fired
}

/// Tests `rule` against the request; `None` when it does not fire.
pub(super) fn check(rule: &Rule, subject: &Subject<'_>, facts: &Facts) -> Option<Fired> {
    let request = subject.request;
    let amount = request.amount_cents;
    let action = subject.action();
    let block = |reason, message: String, decline: String| {
        Some(fired(rule, Decision::Block, reason, message, decline))
    };
    match &rule.kind {
        RuleKind::PerTxLimit { max_cents, action_types } => {
            if !covers(action_types.as_deref(), request.action_type) || amount <= *max_cents {
                return None;
            }
            let limit = dollars(*max_cents);
            block(
                ReasonCode::PerTxLimitExceeded,
                format!("{} exceeds the per-transaction limit of {limit}.", subject.what()),
                format!(
                    "This {action} exceeds your per-transaction limit of {limit}. Do not retry or \
                     split it into smaller amounts."
                ),
            )
        }
        RuleKind::EscalationThreshold { above_cents, action_types } => {
            if !covers(action_types.as_deref(), request.action_type) || amount <= *above_cents {
                return None;
            }
            let threshold = dollars(*above_cents);
            Some(fired(
                rule,
                Decision::Escalate,
                ReasonCode::EscalationThresholdExceeded,
                format!("{} exceeds the escalation threshold of {threshold}.", subject.what()),
                format!(
                    "This {action} is above {threshold} and needs a human's approval. Wait for \
                     it; do not retry or split it into smaller amounts."
                ),
            ))
        }
        RuleKind::PeriodBudget { period, max_cents, .. } => {
            let spent = facts.period_spent_cents.get(&rule.id).copied().unwrap_or(0);
            if spent.saturating_add(amount) <= *max_cents {
                return None;
            }
            let budget = format!("{} budget of {}", adjective(*period), dollars(*max_cents));
            block(
                ReasonCode::PeriodBudgetExceeded,
                format!("{} would exceed the {budget}.", subject.what()),
                format!(
                    "This {action} would exceed your {budget}. Do not retry or split it into \
                     smaller amounts before the {} ends.",
                    period.as_str()
                ),
            )
        }
        RuleKind::CounterpartyAllowlist { counterparties } => {
            if request.counterparties.iter().any(|c| listed_counterparty(counterparties, c)) {
                return None;
            }
            block(
                ReasonCode::CounterpartyNotAllowed,
                format!("{} is to a counterparty that is not on the allowlist.", subject.what()),
                "This counterparty is not on your allowlist. Do not retry it under another \
                 identifier."
                    .to_owned(),
            )
        }
        RuleKind::CounterpartyDenylist { counterparties } => {
            if !request.counterparties.iter().any(|c| listed_counterparty(counterparties, c)) {
                return None;
            }
            block(
                ReasonCode::CounterpartyDenied,
                format!("{} is to a counterparty on the denylist.", subject.what()),
                "This counterparty is blocked for you. Do not retry it under another identifier."
                    .to_owned(),
            )
        }
        RuleKind::BlockedCategories { categories } => {
            if !subject.categories.iter().any(|c| listed_category(categories, c)) {
                return None;
            }
            block(
                ReasonCode::CategoryBlocked,
                format!("{} is in a blocked category.", subject.what()),
                "This category is blocked for you. Do not retry it under another category."
                    .to_owned(),
            )
        }
        RuleKind::AllowedCategories { categories } => {
            if subject.categories.iter().any(|c| listed_category(categories, c)) {
                return None;
            }
            block(
                ReasonCode::CategoryNotAllowed,
                format!("{} is not in an allowed category.", subject.what()),
                "This category is not allowed for you. Do not retry it under another category."
                    .to_owned(),
            )
        }
        RuleKind::GeographyBlock { countries } => {
            let country = subject.country.as_deref()?;
            if !countries.iter().any(|listed| listed.eq_ignore_ascii_case(country)) {
                return None;
            }
            block(
                ReasonCode::GeographyBlocked,
                format!("{} is to a blocked country.", subject.what()),
                "Spending in this country is blocked for you. Do not retry.".to_owned(),
            )
        }
        RuleKind::Schedule { timezone, days, start, end } => {
            if in_schedule(timezone, days, start, end, request.at) {
                return None;
            }
            // The parameters were validated to day names, HH:MM and a zone name.
            let window = format!("{} {start} to {end} {timezone}", days.join(", "));
            block(
                ReasonCode::OutsideSchedule,
                format!("{} is outside the allowed schedule ({window}).", subject.what()),
                format!("Spending is allowed only {window}. Do not retry outside that window."),
            )
        }
        RuleKind::Velocity { max_actions, window_seconds } => {
            let recent = facts.recent_actions.get(&rule.id).copied().unwrap_or(0);
            if recent.saturating_add(1) <= *max_actions {
                return None;
            }
            let limit = format!("{max_actions} actions in {window_seconds} seconds");
            block(
                ReasonCode::VelocityExceeded,
                format!("{} would exceed the limit of {limit}.", subject.what()),
                format!("You have reached your limit of {limit}. Wait before retrying."),
            )
        }
        RuleKind::RefundAgeLimit { max_days } => {
            let days = request.metadata.days_since_purchase?;
            if request.action_type != ActionType::Refund || days <= *max_days {
                return None;
            }
            block(
                ReasonCode::RefundAgeExceeded,
                format!(
                    "{} is for a purchase older than the {max_days}-day limit.",
                    subject.what()
                ),
                format!("This refund is past the {max_days}-day limit. Do not retry it."),
            )
        }
        RuleKind::DiscountCap { max_percent } => {
            let percent = request.metadata.discount_percent?;
            // A percent that is not a number fails closed.
            let within = percent <= *max_percent;
            if request.action_type != ActionType::Discount || within {
                return None;
            }
            block(
                ReasonCode::DiscountCapExceeded,
                format!("{} is above the discount cap of {max_percent}%.", subject.what()),
                format!("This discount is above your {max_percent}% cap. Do not retry above it."),
            )
        }
    }
}

fn fired(
    rule: &Rule,
    decision: Decision,
    reason_code: ReasonCode,
    message: String,
    decline: String,
) -> Fired {
    Fired {
        violation: Violation {
            rule_id: rule.id.clone(),
            rule_type: rule.kind.type_name().to_owned(),
            decision,
            reason_code,
            message,
        },
        description: rule.description.clone(),
        decline,
    }
}

/// Whether an `action_types` filter covers `action` (absent: every type).
fn covers(filter: Option<&[ActionType]>, action: ActionType) -> bool {
    filter.is_none_or(|types| types.contains(&action))
}

fn capitalized(action: ActionType) -> &'static str {
    match action {
        ActionType::Refund => "Refund",
        ActionType::Credit => "Credit",
        ActionType::Discount => "Discount",
        ActionType::Spend => "Spend",
    }
}

fn adjective(period: Period) -> &'static str {
    match period {
        Period::Day => "daily",
        Period::Week => "weekly",
        Period::Month => "monthly",
    }
}

/// `0x` and 40 hex digits: an EVM address, whose hex case carries no meaning.
fn is_evm_address(text: &str) -> bool {
    text.len() == 42
        && text.starts_with("0x")
        && text.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

fn listed_counterparty(list: &[String], identifier: &str) -> bool {
    let address = is_evm_address(identifier);
    list.iter().any(|entry| {
        if address && is_evm_address(entry) {
            entry.eq_ignore_ascii_case(identifier)
        } else {
            entry == identifier
        }
    })
}

fn category_key(category: &str) -> String {
    category.trim().to_lowercase()
}

/// `key` is already folded by [`category_key`].
fn listed_category(list: &[String], key: &str) -> bool {
    list.iter().any(|entry| category_key(entry) == key)
}

/// Whether `at` falls on one of `days`, at or after `start` and before `end`, local time in
/// `timezone`. Bounds that do not parse (a policy built by hand) make an empty window.
fn in_schedule(timezone: &str, days: &[String], start: &str, end: &str, at: i64) -> bool {
    let (Some(start), Some(end)) = (period::clock_minutes(start), period::clock_minutes(end))
    else {
        return false;
    };
    let (weekday, second) = period::local_clock(&period::zone(timezone), at);
    days.iter().any(|day| period::weekday(day) == Some(weekday))
        && start * 60 <= second
        && second < end * 60
}
