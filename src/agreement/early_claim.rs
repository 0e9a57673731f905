//! When the seller should claim now rather than at the close.
//!
//! The escrow checks a voucher when it is claimed, not when it is signed. A buyer whose wallet
//! has code (a smart wallet, or an EIP-7702 delegated EOA) can make its own past vouchers fail
//! that check: it rotates its owners or re-delegates, so `isValidSignature` refuses them, then
//! withdraws everything after the close window. Vouchers of a key-only buyer cannot be revoked.
//! So for a buyer with code, unclaimed voucher value is at risk, and past a threshold the seller
//! is told to claim it early. Pure: the caller reads the buyer's code.

use alloy::primitives::U256;

use super::settlement::{EscrowState, EscrowStatus};
use super::terms::Terms;
use crate::money::TokenAmount;
use crate::vocab::string_enum;

string_enum!(
    /// Why a settlement option recommends an action.
    RecommendationReason {
        /// The buyer's wallet has code and could revoke the vouchers not yet claimed.
        RevocableBuyerWallet = "revocable_buyer_wallet",
    }
);

/// Voucher value the seller has not claimed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclaimed {
    /// The best voucher's units above the units already claimed.
    pub units: u64,
    /// Those units at the unit price, in token base units.
    pub amount: U256,
}

/// The voucher value the seller could claim now but has not, when it is at least `threshold`
/// (and more than zero): `(voucher units − claimed units) × unit price` while the escrow is
/// active or closing. `None` when there is less, or nothing can be claimed any more.
pub fn at_risk(
    state: &EscrowState,
    terms: &Terms,
    voucher_units: u64,
    threshold: TokenAmount,
) -> Option<Unclaimed> {
    if !matches!(state.status, EscrowStatus::Active | EscrowStatus::Closing) {
        return None;
    }
    let units = voucher_units.checked_sub(state.claimed_units).filter(|units| *units > 0)?;
    let amount = terms.unit_price.base_units().saturating_mul(U256::from(units));
    (amount >= threshold.base_units()).then_some(Unclaimed { units, amount })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreement::settlement::ChainEvent;
    use crate::agreement::settlement::fixtures::{active, terms};

    #[test]
    fn value_at_or_above_the_threshold_is_at_risk() {
        let t = terms();
        assert_eq!(
            at_risk(&active(0), &t, 100, TokenAmount::from_base_units(10_000_000)),
            Some(Unclaimed { units: 100, amount: U256::from(10_000_000) }),
            "exactly the threshold"
        );
        assert_eq!(
            at_risk(&active(0), &t, 99, TokenAmount::from_base_units(10_000_000)),
            None,
            "one unit below"
        );
        // Only what is not claimed yet counts.
        assert_eq!(at_risk(&active(30), &t, 100, TokenAmount::from_base_units(10_000_000)), None);
        let low = TokenAmount::from_base_units(2_000_000);
        assert_eq!(
            at_risk(&active(30), &t, 50, low),
            Some(Unclaimed { units: 20, amount: U256::from(2_000_000) })
        );
    }

    #[test]
    fn nothing_is_at_risk_without_a_claimable_voucher() {
        let t = terms();
        assert_eq!(at_risk(&active(40), &t, 40, TokenAmount::ZERO), None, "all claimed");
        assert_eq!(at_risk(&active(40), &t, 10, TokenAmount::ZERO), None, "an old voucher");
        assert_eq!(at_risk(&EscrowState::NONE, &t, 50, TokenAmount::ZERO), None);
        let closing =
            active(0).apply(&ChainEvent::CloseInitiated { by_buyer: true, closes_at: 5_000 });
        assert!(at_risk(&closing, &t, 50, TokenAmount::ZERO).is_some(), "claimable while closing");
        let settled =
            closing.apply(&ChainEvent::Settled { claimed_units: 0, buyer_amount_is_zero: false });
        assert_eq!(at_risk(&settled, &t, 50, TokenAmount::ZERO), None);
    }
}
