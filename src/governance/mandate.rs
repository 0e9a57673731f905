//! Mandates: an owner's standing grant to one agent to spend within bounds — a total, a
//! per-transaction cap, a validity window, and the action types, counterparties and categories
//! it covers. [`Mandate::admits`] decides whether one spend fits, given what the mandate has
//! already counted; like the policy engine it reads no clock and no database, so the store
//! counts `spent_cents` (the sum of its holds' counted cents) in the caller's transaction and
//! passes it in.
//!
//! Bounds: amounts are inclusive (a spend equal to `per_tx_max_cents`, or that brings the
//! total exactly to `max_total_cents`, is admitted); the window is `[valid_from, valid_until)`,
//! like an execution token's expiry, so the second `valid_until` names is already outside it.

use crate::agreement::ids::MandateId;
use crate::vocab::string_enum;

use super::{ActionType, ReasonCode, dollars};

string_enum!(
    /// Where a mandate stands. Revocation is final: nothing moves a mandate back to `active`.
    MandateStatus {
        /// In force (within its window).
        Active = "active",
        /// Revoked by the owner, or with its agent (revoked or halted).
        Revoked = "revoked",
    }
);

/// A mandate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mandate {
    /// `mdt_…`.
    pub id: MandateId,
    /// The account whose owner granted it.
    pub account_id: String,
    /// The one agent it is granted to.
    pub agent_id: String,
    /// Active or revoked.
    pub status: MandateStatus,
    /// The most its spends may add up to, in cents.
    pub max_total_cents: u64,
    /// The most one spend may be, in cents; `None`: only the total bounds it.
    pub per_tx_max_cents: Option<u64>,
    /// Unix seconds from which it may be spent; `None`: from its creation.
    pub valid_from: Option<i64>,
    /// Unix seconds from which it may no longer be spent; `None`: until revoked.
    pub valid_until: Option<i64>,
    /// The action types it covers; empty: any.
    pub action_types: Vec<ActionType>,
    /// The counterparties it may pay (any identifier, compared case-insensitively); empty: any.
    pub counterparties: Vec<String>,
    /// The categories it covers (compared trimmed and case-insensitively); empty: any.
    pub categories: Vec<String>,
    /// What it is for, in the owner's words.
    pub purpose: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Why (`agent_revoked`, `agent_halted`, or the owner's reason).
    pub revoke_reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

/// One spend asked of a mandate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MandateSpend<'a> {
    /// The amount in cents.
    pub amount_cents: u64,
    /// Its action type (`refund`, `credit`, `discount`, `spend`).
    pub action_type: &'a str,
    /// Every identifier the counterparty goes by; one listed identifier is enough.
    pub counterparties: &'a [String],
    /// Its categories; one listed category is enough.
    pub categories: &'a [String],
    /// When it is made, unix seconds.
    pub at: i64,
}

/// Why a mandate does not admit a spend. [`MandateRefusal::reason_code`] is the stable code,
/// [`MandateRefusal::message`] a sentence built only from the mandate and the amount (never
/// from request text, so it is safe to show an agent's model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub enum MandateRefusal {
    /// The mandate is revoked.
    Revoked,
    /// Its window has not opened yet.
    NotYetValid {
        /// Unix seconds it opens at.
        valid_from: i64,
    },
    /// Its window has closed.
    Expired {
        /// Unix seconds it closed at.
        valid_until: i64,
    },
    /// The action type is not one it covers.
    ActionNotAllowed,
    /// No identifier of the counterparty is one it may pay.
    CounterpartyNotAllowed,
    /// No category of the spend is one it covers (or the spend has none).
    CategoryNotAllowed,
    /// The amount is above its per-transaction cap.
    PerTxExceeded {
        /// The cap, in cents.
        per_tx_max_cents: u64,
        /// The amount asked.
        amount_cents: u64,
    },
    /// What it has counted plus the amount would pass its total.
    Exhausted {
        /// The total, in cents.
        max_total_cents: u64,
        /// What it has counted already.
        spent_cents: u64,
        /// The amount asked.
        amount_cents: u64,
    },
}

impl MandateRefusal {
    /// The stable machine code (`mandate_…`).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            MandateRefusal::Revoked => ReasonCode::MandateRevoked,
            MandateRefusal::NotYetValid { .. } => ReasonCode::MandateNotYetValid,
            MandateRefusal::Expired { .. } => ReasonCode::MandateExpired,
            MandateRefusal::ActionNotAllowed => ReasonCode::MandateActionNotAllowed,
            MandateRefusal::CounterpartyNotAllowed => ReasonCode::MandateCounterpartyNotAllowed,
            MandateRefusal::CategoryNotAllowed => ReasonCode::MandateCategoryNotAllowed,
            MandateRefusal::PerTxExceeded { .. } => ReasonCode::MandatePerTxExceeded,
            MandateRefusal::Exhausted { .. } => ReasonCode::MandateExhausted,
        }
    }

    /// A human-readable explanation.
    pub fn message(&self) -> String {
        match self {
            MandateRefusal::Revoked => "This mandate was revoked.".to_owned(),
            MandateRefusal::NotYetValid { valid_from } => {
                format!("This mandate is valid only from {}.", crate::time::rfc3339(*valid_from))
            }
            MandateRefusal::Expired { valid_until } => {
                format!("This mandate expired at {}.", crate::time::rfc3339(*valid_until))
            }
            MandateRefusal::ActionNotAllowed => {
                "This mandate does not cover this action type.".to_owned()
            }
            MandateRefusal::CounterpartyNotAllowed => {
                "This mandate does not cover this counterparty.".to_owned()
            }
            MandateRefusal::CategoryNotAllowed => {
                "This mandate does not cover this category.".to_owned()
            }
            MandateRefusal::PerTxExceeded { per_tx_max_cents, amount_cents } => format!(
                "A spend of {} exceeds this mandate's per-transaction limit of {}.",
                dollars(*amount_cents),
                dollars(*per_tx_max_cents)
            ),
            MandateRefusal::Exhausted { max_total_cents, spent_cents, amount_cents } => format!(
                "A spend of {} would exceed this mandate's total of {} ({} already counted).",
                dollars(*amount_cents),
                dollars(*max_total_cents),
                dollars(*spent_cents)
            ),
        }
    }
}

impl Mandate {
    /// Whether the mandate admits `spend`, given the `spent_cents` it has already counted.
    /// Checks in order: revoked, window, action type, counterparty, category, per-transaction
    /// cap, total; the first that fails is the answer.
    pub fn admits(&self, spend: &MandateSpend, spent_cents: u64) -> Result<(), MandateRefusal> {
        if self.status == MandateStatus::Revoked {
            return Err(MandateRefusal::Revoked);
        }
        if let Some(valid_from) = self.valid_from
            && spend.at < valid_from
        {
            return Err(MandateRefusal::NotYetValid { valid_from });
        }
        if let Some(valid_until) = self.valid_until
            && spend.at >= valid_until
        {
            return Err(MandateRefusal::Expired { valid_until });
        }
        if !self.action_types.is_empty()
            && !self.action_types.iter().any(|a| a.as_str() == spend.action_type)
        {
            return Err(MandateRefusal::ActionNotAllowed);
        }
        if !self.counterparties.is_empty()
            && !spend.counterparties.iter().any(|c| self.covers_counterparty(c))
        {
            return Err(MandateRefusal::CounterpartyNotAllowed);
        }
        if !self.categories.is_empty()
            && !spend.categories.iter().any(|c| {
                let key = category_key(c);
                self.categories.iter().any(|listed| category_key(listed) == key)
            })
        {
            return Err(MandateRefusal::CategoryNotAllowed);
        }
        if let Some(per_tx_max_cents) = self.per_tx_max_cents
            && spend.amount_cents > per_tx_max_cents
        {
            return Err(MandateRefusal::PerTxExceeded {
                per_tx_max_cents,
                amount_cents: spend.amount_cents,
            });
        }
        if spent_cents.checked_add(spend.amount_cents).is_none_or(|t| t > self.max_total_cents) {
            return Err(MandateRefusal::Exhausted {
                max_total_cents: self.max_total_cents,
                spent_cents,
                amount_cents: spend.amount_cents,
            });
        }
        Ok(())
    }

    /// Whether `identifier` is one of the counterparties listed (case-insensitively).
    pub fn covers_counterparty(&self, identifier: &str) -> bool {
        let identifier = identifier.trim().to_lowercase();
        self.counterparties.iter().any(|listed| listed.trim().to_lowercase() == identifier)
    }

    /// What is left of the total after `spent_cents` (zero once the total is reached, or when
    /// the owner lowered the total below what was already counted).
    pub fn remaining_cents(&self, spent_cents: u64) -> u64 {
        self.max_total_cents.saturating_sub(spent_cents)
    }

    /// Whether the mandate's window has closed at `at`.
    pub fn expired_at(&self, at: i64) -> bool {
        self.valid_until.is_some_and(|until| at >= until)
    }
}

fn category_key(category: &str) -> String {
    category.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: i64 = 1_700_000_000;

    fn mandate() -> Mandate {
        Mandate {
            id: MandateId("mdt_test".into()),
            account_id: "acct_1".into(),
            agent_id: "agt_1".into(),
            status: MandateStatus::Active,
            max_total_cents: 10_000,
            per_tx_max_cents: Some(2_500),
            valid_from: Some(AT - 100),
            valid_until: Some(AT + 100),
            action_types: vec![ActionType::Spend],
            counterparties: vec![
                "vendor_42".into(),
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
            ],
            categories: vec!["api_calls".into()],
            purpose: Some("API credits".into()),
            revoked_at: None,
            revoke_reason: None,
            created_at: AT - 1_000,
            updated_at: AT - 1_000,
        }
    }

    struct Ask {
        amount_cents: u64,
        action_type: &'static str,
        counterparties: Vec<String>,
        categories: Vec<String>,
        at: i64,
    }

    fn ask() -> Ask {
        Ask {
            amount_cents: 1_000,
            action_type: "spend",
            counterparties: vec!["vendor_42".into()],
            categories: vec!["api_calls".into()],
            at: AT,
        }
    }

    fn admits(m: &Mandate, ask: &Ask, spent: u64) -> Result<(), MandateRefusal> {
        let spend = MandateSpend {
            amount_cents: ask.amount_cents,
            action_type: ask.action_type,
            counterparties: &ask.counterparties,
            categories: &ask.categories,
            at: ask.at,
        };
        m.admits(&spend, spent)
    }

    fn code(result: Result<(), MandateRefusal>) -> &'static str {
        result.err().map_or("admitted", |refusal| refusal.reason_code().as_str())
    }

    #[test]
    fn admits_a_spend_inside_every_bound() {
        assert_eq!(admits(&mandate(), &ask(), 0), Ok(()));
    }

    #[test]
    fn a_revoked_mandate_admits_nothing() {
        let mut m = mandate();
        m.status = MandateStatus::Revoked;
        assert_eq!(code(admits(&m, &ask(), 0)), "mandate_revoked");
    }

    #[test]
    fn the_window_opens_at_valid_from_and_closes_at_valid_until() {
        let m = mandate();
        let at = |at| Ask { at, ..ask() };
        assert_eq!(code(admits(&m, &at(AT - 101), 0)), "mandate_not_yet_valid");
        assert_eq!(admits(&m, &at(AT - 100), 0), Ok(()));
        assert_eq!(admits(&m, &at(AT + 99), 0), Ok(()));
        assert_eq!(code(admits(&m, &at(AT + 100), 0)), "mandate_expired");
        assert!(!m.expired_at(AT + 99) && m.expired_at(AT + 100));
        let open = Mandate { valid_from: None, valid_until: None, ..mandate() };
        assert_eq!(admits(&open, &at(0), 0), Ok(()));
        assert_eq!(admits(&open, &at(i64::MAX), 0), Ok(()));
    }

    #[test]
    fn only_listed_action_types_unless_none_are_listed() {
        let refund = Ask { action_type: "refund", ..ask() };
        assert_eq!(code(admits(&mandate(), &refund, 0)), "mandate_action_not_allowed");
        let any = Mandate { action_types: vec![], ..mandate() };
        assert_eq!(admits(&any, &refund, 0), Ok(()));
    }

    #[test]
    fn any_identifier_of_the_counterparty_matches_case_insensitively() {
        let m = mandate();
        let to = |ids: &[&str]| Ask {
            counterparties: ids.iter().map(|s| (*s).to_owned()).collect(),
            ..ask()
        };
        assert_eq!(admits(&m, &to(&["VENDOR_42"]), 0), Ok(()));
        let address = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
        assert_eq!(admits(&m, &to(&["agt_other", address]), 0), Ok(()));
        assert_eq!(code(admits(&m, &to(&["vendor_43"]), 0)), "mandate_counterparty_not_allowed");
        assert_eq!(code(admits(&m, &to(&[]), 0)), "mandate_counterparty_not_allowed");
        let any = Mandate { counterparties: vec![], ..mandate() };
        assert_eq!(admits(&any, &to(&[]), 0), Ok(()));
    }

    #[test]
    fn a_listed_category_is_needed_unless_none_are_listed() {
        let m = mandate();
        let of = |cats: &[&str]| Ask {
            categories: cats.iter().map(|s| (*s).to_owned()).collect(),
            ..ask()
        };
        assert_eq!(admits(&m, &of(&[" API_Calls "]), 0), Ok(()));
        assert_eq!(admits(&m, &of(&["gpu", "api_calls"]), 0), Ok(()));
        assert_eq!(code(admits(&m, &of(&["gpu"]), 0)), "mandate_category_not_allowed");
        assert_eq!(code(admits(&m, &of(&[]), 0)), "mandate_category_not_allowed");
        let any = Mandate { categories: vec![], ..mandate() };
        assert_eq!(admits(&any, &of(&[]), 0), Ok(()));
    }

    #[test]
    fn the_per_transaction_cap_is_inclusive() {
        let m = mandate();
        let of = |amount_cents| Ask { amount_cents, ..ask() };
        assert_eq!(admits(&m, &of(2_500), 0), Ok(()));
        let refused = admits(&m, &of(2_501), 0).unwrap_err();
        assert_eq!(refused.reason_code(), ReasonCode::MandatePerTxExceeded);
        assert_eq!(
            refused.message(),
            "A spend of $25.01 exceeds this mandate's per-transaction limit of $25.00."
        );
        let uncapped = Mandate { per_tx_max_cents: None, ..mandate() };
        assert_eq!(admits(&uncapped, &of(10_000), 0), Ok(()));
    }

    #[test]
    fn the_total_is_inclusive_and_counts_what_was_spent() {
        let m = mandate();
        let of = |amount_cents| Ask { amount_cents, ..ask() };
        assert_eq!(admits(&m, &of(1_000), 9_000), Ok(()));
        let refused = admits(&m, &of(1_001), 9_000).unwrap_err();
        assert_eq!(refused.reason_code(), ReasonCode::MandateExhausted);
        assert_eq!(
            refused.to_string(),
            "A spend of $10.01 would exceed this mandate's total of $100.00 ($90.00 already \
             counted)."
        );
        assert_eq!(code(admits(&m, &of(1), 10_000)), "mandate_exhausted");
        // Counted past the total (the owner lowered it): nothing more, and no overflow.
        assert_eq!(code(admits(&m, &of(1), u64::MAX)), "mandate_exhausted");
        assert_eq!(m.remaining_cents(9_000), 1_000);
        assert_eq!(m.remaining_cents(12_000), 0);
    }

    #[test]
    fn the_first_failing_bound_answers() {
        let mut m = mandate();
        m.status = MandateStatus::Revoked;
        let everything_wrong = Ask {
            amount_cents: 1_000_000,
            action_type: "refund",
            counterparties: vec!["nobody".into()],
            categories: vec![],
            at: AT + 1_000,
        };
        assert_eq!(code(admits(&m, &everything_wrong, 0)), "mandate_revoked");
        m.status = MandateStatus::Active;
        assert_eq!(code(admits(&m, &everything_wrong, 0)), "mandate_expired");
        let now = Ask { at: AT, ..everything_wrong };
        assert_eq!(code(admits(&m, &now, 0)), "mandate_action_not_allowed");
        let spend = Ask { action_type: "spend", ..now };
        assert_eq!(code(admits(&m, &spend, 0)), "mandate_counterparty_not_allowed");
        let vendor = Ask { counterparties: vec!["vendor_42".into()], ..spend };
        assert_eq!(code(admits(&m, &vendor, 0)), "mandate_category_not_allowed");
        let api = Ask { categories: vec!["api_calls".into()], ..vendor };
        assert_eq!(code(admits(&m, &api, 0)), "mandate_per_tx_exceeded");
    }

    #[test]
    fn every_refusal_has_a_distinct_code_and_a_message() {
        let refusals = [
            MandateRefusal::Revoked,
            MandateRefusal::NotYetValid { valid_from: AT },
            MandateRefusal::Expired { valid_until: AT },
            MandateRefusal::ActionNotAllowed,
            MandateRefusal::CounterpartyNotAllowed,
            MandateRefusal::CategoryNotAllowed,
            MandateRefusal::PerTxExceeded { per_tx_max_cents: 1, amount_cents: 2 },
            MandateRefusal::Exhausted { max_total_cents: 1, spent_cents: 1, amount_cents: 1 },
        ];
        let codes: std::collections::BTreeSet<_> =
            refusals.iter().map(|r| r.reason_code().as_str()).collect();
        assert_eq!(codes.len(), refusals.len());
        assert!(refusals.iter().all(|r| r.reason_code().as_str().starts_with("mandate_")));
        assert!(refusals.iter().all(|r| r.message().ends_with('.')));
        assert_eq!(
            MandateRefusal::Expired { valid_until: 0 }.message(),
            "This mandate expired at 1970-01-01T00:00:00Z."
        );
    }
}
