//! The on-chain terms an accepted agreement fixes: price, quantity and fee in token base units,
//! the deadlines, and the salt that makes the agreement key unique.

use alloy::primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};

use super::ids::AgreementId;
use crate::escrow::typed_data::Activation;
use crate::money::{Cents, FeeSchedule, MoneyError, TokenAmount};

/// The shortest close window the escrow accepts, in seconds. Mirrors `UsageEscrow.sol`'s
/// `MIN_CLOSE_WINDOW` (1 hours): a shorter one would leave a seller too little time to claim
/// after the buyer closes, and the contract refuses such terms at activation.
pub const MIN_CLOSE_WINDOW_SECS: u64 = 3_600;
/// The longest close window the escrow accepts, in seconds. Mirrors `UsageEscrow.sol`'s
/// `MAX_CLOSE_WINDOW` (365 days).
pub const MAX_CLOSE_WINDOW_SECS: u64 = 365 * 86_400;

/// A close window the contract would refuse at activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the close window must be {MIN_CLOSE_WINDOW_SECS} to {MAX_CLOSE_WINDOW_SECS} seconds (1 hour \
     to 365 days, the escrow contract's MIN_CLOSE_WINDOW and MAX_CLOSE_WINDOW); got {0}"
)]
pub struct CloseWindowOutOfBounds(pub u64);

/// `seconds` when the escrow accepts it as a close window.
pub fn check_close_window(seconds: u64) -> Result<u64, CloseWindowOutOfBounds> {
    if (MIN_CLOSE_WINDOW_SECS..=MAX_CLOSE_WINDOW_SECS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(CloseWindowOutOfBounds(seconds))
    }
}

/// How the service fills in the terms a proposal leaves open; operator configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermsPolicy {
    /// Seconds from acceptance until the activation must be on-chain (`activateBy`).
    pub activation_window: u64,
    /// Seconds from acceptance until the agreement expires (`expiry`).
    pub expiry: u64,
    /// The close window in seconds.
    pub close_window: u64,
    /// The infra fee taken at activation.
    pub fee: FeeSchedule,
}

/// What both parties agreed to, in the units of the proposal.
#[derive(Debug, Clone, Copy)]
pub struct Agreed<'a> {
    /// The agreement's id (its keccak256 is the on-chain `agreementId`).
    pub id: &'a AgreementId,
    /// The buyer's wallet.
    pub buyer: Address,
    /// The seller's wallet.
    pub seller: Address,
    /// Units bought.
    pub quantity: u64,
    /// Price of one unit in cents.
    pub price_per_unit_cents: u64,
}

/// The terms as stored: what the buyer signs, field for field, in a JSON form that keeps every
/// integer exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The buyer's wallet.
    pub buyer: Address,
    /// The seller's wallet.
    pub seller: Address,
    /// Price of one unit in token base units.
    pub unit_price: TokenAmount,
    /// Units bought.
    pub quantity: u64,
    /// The infra fee in token base units.
    pub infra_fee: TokenAmount,
    /// Unix time before which the activation must be mined.
    pub activate_by: u64,
    /// Unix time at which usage ends.
    pub expiry: u64,
    /// Seconds the close window lasts.
    pub close_window: u64,
    /// Random, so two otherwise equal agreements have different keys.
    pub salt: B256,
    /// keccak256 of the platform's agreement id.
    pub agreement_id: B256,
}

impl Terms {
    /// Fixes the terms of `agreed` at `now` (unix seconds) under `policy`.
    ///
    /// Fails when the deposit or the fee does not fit (no rounding anywhere: cents convert to
    /// base units exactly).
    pub fn fix(
        agreed: Agreed<'_>,
        policy: &TermsPolicy,
        now: u64,
        salt: B256,
    ) -> Result<Terms, MoneyError> {
        let unit_price = Cents(agreed.price_per_unit_cents).to_token_amount();
        let deposit = unit_price
            .base_units()
            .checked_mul(U256::from(agreed.quantity))
            .ok_or(MoneyError::Overflow("the deposit"))?;
        let infra_fee = policy.fee.fee_for(TokenAmount::new(deposit))?;
        Ok(Terms {
            buyer: agreed.buyer,
            seller: agreed.seller,
            unit_price,
            quantity: agreed.quantity,
            infra_fee,
            activate_by: now.saturating_add(policy.activation_window),
            expiry: now.saturating_add(policy.expiry),
            close_window: policy.close_window,
            salt,
            agreement_id: keccak256(agreed.id.as_str()),
        })
    }

    /// `quantity × unit_price`: what the buyer escrows.
    pub fn deposit(&self) -> TokenAmount {
        // `fix` checked the product; terms read back from the store were built by it.
        TokenAmount::new(self.unit_price.base_units().saturating_mul(U256::from(self.quantity)))
    }

    /// The terms as the contract's `Activation` struct.
    pub fn activation(&self) -> Activation {
        Activation {
            buyer: self.buyer,
            seller: self.seller,
            unitPrice: self.unit_price.base_units(),
            quantity: U256::from(self.quantity),
            infraFee: self.infra_fee.base_units(),
            activateBy: U256::from(self.activate_by),
            expiry: U256::from(self.expiry),
            closeWindow: U256::from(self.close_window),
            salt: self.salt,
            agreementId: self.agreement_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TermsPolicy {
        TermsPolicy {
            activation_window: 3_600,
            expiry: 86_400,
            close_window: 600,
            fee: FeeSchedule {
                basis_points: 200,
                fixed: TokenAmount::from_base_units(3_000),
                minimum: TokenAmount::from_base_units(100_000),
            },
        }
    }

    #[test]
    fn terms_convert_cents_exactly_and_charge_the_fee_schedule() {
        let id = AgreementId("ua_1".into());
        let agreed = Agreed {
            id: &id,
            buyer: Address::repeat_byte(1),
            seller: Address::repeat_byte(2),
            quantity: 100,
            price_per_unit_cents: 10,
        };
        let terms = Terms::fix(agreed, &policy(), 1_000, B256::repeat_byte(7)).unwrap();
        assert_eq!(terms.unit_price, TokenAmount::from_base_units(100_000));
        assert_eq!(terms.deposit(), TokenAmount::from_base_units(10_000_000));
        // 2% of $10 is $0.20, plus $0.003.
        assert_eq!(terms.infra_fee, TokenAmount::from_base_units(203_000));
        assert_eq!((terms.activate_by, terms.expiry, terms.close_window), (4_600, 87_400, 600));
        assert_eq!(terms.agreement_id, keccak256("ua_1"));

        let activation = terms.activation();
        assert_eq!(activation.quantity, U256::from(100));
        assert_eq!(activation.infraFee, U256::from(203_000));
        let json = serde_json::to_value(&terms).unwrap();
        assert_eq!(json["unit_price"], "100000");
        assert_eq!(serde_json::from_value::<Terms>(json).unwrap(), terms);
    }

    #[test]
    fn the_close_window_bounds_are_the_contracts() {
        assert_eq!(MIN_CLOSE_WINDOW_SECS, 60 * 60);
        assert_eq!(MAX_CLOSE_WINDOW_SECS, 31_536_000);
        for ok in [MIN_CLOSE_WINDOW_SECS, 86_400, MAX_CLOSE_WINDOW_SECS] {
            assert_eq!(check_close_window(ok), Ok(ok));
        }
        for refused in [0, MIN_CLOSE_WINDOW_SECS - 1, MAX_CLOSE_WINDOW_SECS + 1, u64::MAX] {
            assert_eq!(check_close_window(refused), Err(CloseWindowOutOfBounds(refused)));
        }
        let message = CloseWindowOutOfBounds(60).to_string();
        assert!(message.contains("3600 to 31536000 seconds"), "{message}");
    }

    #[test]
    fn small_deposits_pay_the_minimum_fee() {
        let id = AgreementId("ua_2".into());
        let agreed = Agreed {
            id: &id,
            buyer: Address::repeat_byte(1),
            seller: Address::repeat_byte(2),
            quantity: 1,
            price_per_unit_cents: 1,
        };
        let terms = Terms::fix(agreed, &policy(), 0, B256::ZERO).unwrap();
        assert_eq!(terms.infra_fee, TokenAmount::from_base_units(100_000));
    }
}
