//! Money: US cents for prices people read, USDC base units for what moves on-chain, and the one
//! place where the two convert.
//!
//! USDC has 6 decimals, so one cent is exactly 10,000 base units. Cents always convert to base
//! units exactly; base units convert back only when they are a whole number of cents, and are
//! refused otherwise, never rounded. Amounts never pass through `f64`. Fee maths is here too,
//! since it is the one place where a fraction of a base unit can arise and must be rounded on
//! purpose.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// USDC base units in one cent (6 decimals, 2 of them cents).
pub const BASE_UNITS_PER_CENT: u64 = 10_000;

/// The denominator of basis points: 10,000 bps is 100%.
pub const BASIS_POINTS_PER_WHOLE: u64 = 10_000;

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The token amount is not a whole number of cents; the caller must not round it.
    #[error("{amount} base units is not a whole number of cents ({remainder} base units over)")]
    Inexact {
        /// The amount that did not convert.
        amount: TokenAmount,
        /// The base units left over above the last whole cent.
        remainder: u64,
    },
    /// The result does not fit its type (`u64` cents or a 256-bit token amount).
    #[error("amount overflows while computing {0}")]
    Overflow(&'static str),
    /// A token amount string that is not a non-empty string of decimal digits within 256 bits.
    #[error("invalid token amount {0:?}: expected a decimal string of base units")]
    InvalidAmount(String),
}

/// The result type of this module.
pub type Result<T, E = MoneyError> = std::result::Result<T, E>;

/// An amount in US cents (USD minor units), as prices and limits are stated.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub u64);

/// An amount of the token in its base units (USDC: 6 decimals, so `1_000_000` is one dollar).
///
/// Serialized as a decimal string (`"10000000"`), since amounts may exceed 2^53 and JSON numbers
/// past that lose precision in most clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TokenAmount(pub U256);

impl Cents {
    /// The exact token amount: `cents × 10,000` base units. Never fails, since `u64::MAX × 10,000`
    /// fits 256 bits with room to spare.
    pub fn to_token_amount(self) -> TokenAmount {
        TokenAmount(U256::from(self.0) * U256::from(BASE_UNITS_PER_CENT))
    }
}

impl From<Cents> for TokenAmount {
    fn from(cents: Cents) -> Self {
        cents.to_token_amount()
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TokenAmount {
    /// No tokens.
    pub const ZERO: Self = Self(U256::ZERO);

    /// Wraps a number of base units.
    pub const fn new(base_units: U256) -> Self {
        Self(base_units)
    }

    /// A small amount of base units, for constants and tests.
    pub fn from_base_units(base_units: u64) -> Self {
        Self(U256::from(base_units))
    }

    /// The number of base units.
    pub const fn base_units(self) -> U256 {
        self.0
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// The exact number of cents, or [`MoneyError::Inexact`] if this is not a whole number of
    /// cents (never rounded), or [`MoneyError::Overflow`] past `u64::MAX` cents.
    pub fn to_cents(self) -> Result<Cents> {
        let (cents, remainder) = self.0.div_rem(U256::from(BASE_UNITS_PER_CENT));
        if !remainder.is_zero() {
            // The remainder is below 10,000, so it always fits.
            return Err(MoneyError::Inexact { amount: self, remainder: remainder.to() });
        }
        u64::try_from(cents).map(Cents).map_err(|_| MoneyError::Overflow("cents"))
    }

    /// `self + other`, or [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Self) -> Result<Self> {
        self.0.checked_add(other.0).map(Self).ok_or(MoneyError::Overflow("a sum"))
    }
}

impl TryFrom<TokenAmount> for Cents {
    type Error = MoneyError;

    fn try_from(amount: TokenAmount) -> Result<Self> {
        amount.to_cents()
    }
}

impl From<U256> for TokenAmount {
    fn from(base_units: U256) -> Self {
        Self(base_units)
    }
}

impl From<TokenAmount> for U256 {
    fn from(amount: TokenAmount) -> Self {
        amount.0
    }
}

impl fmt::Display for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `U256`'s `Display` is decimal.
        write!(f, "{}", self.0)
    }
}

impl FromStr for TokenAmount {
    type Err = MoneyError;

    /// Parses decimal digits only: no sign, no `0x`, no separators, no fraction.
    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::InvalidAmount(s.to_owned()));
        }
        U256::from_str_radix(s, 10).map(Self).map_err(|_| MoneyError::InvalidAmount(s.to_owned()))
    }
}

impl Serialize for TokenAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TokenAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Strings only: a JSON number may already have lost precision in the client.
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The service's infra fee: a percentage of the deposit plus a fixed part, never below a minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// The percentage part, in basis points of the deposit (200 is 2%).
    pub basis_points: u32,
    /// Added to the percentage part.
    pub fixed: TokenAmount,
    /// The least fee charged, whatever the deposit.
    pub minimum: TokenAmount,
}

impl FeeSchedule {
    /// The fee for escrowing `deposit`: `max(minimum, ⌈deposit × bps / 10,000⌉ + fixed)`.
    ///
    /// The percentage part is rounded **up** to a whole base unit. The fee is a charge at a
    /// published rate, so, as protocols do for fees, the remainder goes the service's way: the
    /// fee is never below the stated rate, and splitting a deposit into many small agreements
    /// cannot shave the fraction off each. The cost to the buyer is under one base unit
    /// (10⁻⁶ USDC) per agreement, and the exact fee is part of the terms the buyer signs
    /// (`infraFee`), so it is never a surprise. Fails with [`MoneyError::Overflow`] when an
    /// intermediate value does not fit 256 bits.
    pub fn fee_for(&self, deposit: TokenAmount) -> Result<TokenAmount> {
        let scaled = deposit
            .0
            .checked_mul(U256::from(self.basis_points))
            .ok_or(MoneyError::Overflow("the fee's percentage part"))?;
        let (whole, remainder) = scaled.div_rem(U256::from(BASIS_POINTS_PER_WHOLE));
        // `whole ≤ U256::MAX / 10,000`, so adding one cannot overflow.
        let percentage = if remainder.is_zero() { whole } else { whole + U256::from(1) };
        let fee = TokenAmount(percentage).checked_add(self.fixed)?;
        Ok(fee.max(self.minimum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issue's example: 2% + $0.003, at least $0.10.
    fn schedule() -> FeeSchedule {
        FeeSchedule {
            basis_points: 200,
            fixed: TokenAmount::from_base_units(3_000),
            minimum: Cents(10).to_token_amount(),
        }
    }

    #[test]
    fn cents_convert_to_base_units_exactly() {
        assert_eq!(Cents(0).to_token_amount(), TokenAmount::ZERO);
        assert_eq!(Cents(1).to_token_amount(), TokenAmount::from_base_units(10_000));
        assert_eq!(Cents(1_000).to_token_amount(), TokenAmount::from_base_units(10_000_000));
        assert_eq!(
            TokenAmount::from(Cents(u64::MAX)).0,
            U256::from(u64::MAX) * U256::from(10_000u64)
        );
    }

    #[test]
    fn whole_cents_convert_back_and_anything_else_is_refused() {
        assert_eq!(TokenAmount::from_base_units(10_000_000).to_cents(), Ok(Cents(1_000)));
        assert_eq!(Cents::try_from(Cents(u64::MAX).to_token_amount()), Ok(Cents(u64::MAX)));
        for (units, remainder) in [(1, 1), (9_999, 9_999), (10_001, 1), (3_000, 3_000)] {
            let amount = TokenAmount::from_base_units(units);
            assert_eq!(amount.to_cents(), Err(MoneyError::Inexact { amount, remainder }));
        }
        let too_many =
            TokenAmount(U256::from(u64::MAX) * U256::from(10_000u64) + U256::from(10_000));
        assert_eq!(too_many.to_cents(), Err(MoneyError::Overflow("cents")));
    }

    #[test]
    fn the_fee_is_the_percentage_plus_the_fixed_part() {
        // $10: 2% is 200,000, plus 3,000.
        let fee = schedule().fee_for(Cents(1_000).to_token_amount()).unwrap();
        assert_eq!(fee, TokenAmount::from_base_units(203_000));
        // $1,000,000: 20,000 USDC and a bit.
        let fee = schedule().fee_for(TokenAmount::from_base_units(1_000_000_000_000)).unwrap();
        assert_eq!(fee, TokenAmount::from_base_units(20_000_003_000));
    }

    #[test]
    fn the_fee_is_never_below_the_minimum() {
        let minimum = TokenAmount::from_base_units(100_000);
        assert_eq!(schedule().fee_for(TokenAmount::ZERO).unwrap(), minimum);
        // $1: 20,000 + 3,000 is below $0.10.
        assert_eq!(schedule().fee_for(TokenAmount::from_base_units(1_000_000)).unwrap(), minimum);
        // 2% of 4,850,000 is 97,000, plus 3,000: exactly the minimum.
        assert_eq!(schedule().fee_for(TokenAmount::from_base_units(4_850_000)).unwrap(), minimum);
        // One more base unit goes past it, rounded up.
        assert_eq!(
            schedule().fee_for(TokenAmount::from_base_units(4_850_001)).unwrap(),
            TokenAmount::from_base_units(100_001)
        );
    }

    #[test]
    fn the_percentage_part_rounds_up() {
        let no_floor =
            FeeSchedule { minimum: TokenAmount::ZERO, fixed: TokenAmount::ZERO, ..schedule() };
        let fee = |units| no_floor.fee_for(TokenAmount::from_base_units(units)).unwrap().0;
        // 2% of 50 is exactly 1: no rounding.
        assert_eq!(fee(50), U256::from(1));
        // 2% of 1 is 0.02 base units: charged as 1, not 0.
        assert_eq!(fee(1), U256::from(1));
        // 2% of 51 is 1.02, and of 99 is 1.98: both 2.
        assert_eq!(fee(51), U256::from(2));
        assert_eq!(fee(99), U256::from(2));
        // 2% of 12,345,671 is 246,913.42: 246,914.
        assert_eq!(fee(12_345_671), U256::from(246_914));
        assert_eq!(fee(0), U256::ZERO);
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let huge = TokenAmount(U256::MAX);
        assert_eq!(
            schedule().fee_for(huge),
            Err(MoneyError::Overflow("the fee's percentage part"))
        );
        // 0 bps never multiplies past 256 bits, but the fixed part can still overflow the sum.
        let fixed_only = FeeSchedule { basis_points: 0, fixed: huge, minimum: TokenAmount::ZERO };
        assert_eq!(fixed_only.fee_for(huge), Ok(huge));
        let near_max = TokenAmount(U256::MAX / U256::from(10_000u64));
        let plus_fixed =
            FeeSchedule { basis_points: 10_000, fixed: huge, minimum: TokenAmount::ZERO };
        assert_eq!(plus_fixed.fee_for(near_max), Err(MoneyError::Overflow("a sum")));
    }

    #[test]
    fn token_amounts_serialize_as_decimal_strings() {
        let amount = TokenAmount::from_base_units(10_000_000);
        assert_eq!(serde_json::to_string(&amount).unwrap(), r#""10000000""#);
        let back: TokenAmount = serde_json::from_str(r#""10000000""#).unwrap();
        assert_eq!(back, amount);
        // Past 2^53, and the largest amount there is, survive the round trip.
        for amount in [TokenAmount(U256::from(1u64 << 60) + U256::from(1)), TokenAmount(U256::MAX)]
        {
            let json = serde_json::to_string(&amount).unwrap();
            assert_eq!(serde_json::from_str::<TokenAmount>(&json).unwrap(), amount);
        }
        assert_eq!(serde_json::to_string(&Cents(150)).unwrap(), "150");
    }

    #[test]
    fn malformed_token_amounts_are_refused() {
        for bad in [
            "10000000", // a JSON number, not a string
            r#""""#,
            r#""-1""#,
            r#""+1""#,
            r#""0x10""#,
            r#""1.5""#,
            r#""1e6""#,
            r#"" 1""#,
            r#""1_000""#,
        ] {
            assert!(serde_json::from_str::<TokenAmount>(bad).is_err(), "{bad} was accepted");
        }
        let past_max = format!(r#""{}0""#, U256::MAX);
        assert!(serde_json::from_str::<TokenAmount>(&past_max).is_err());
    }

    #[test]
    fn a_fee_schedule_reads_from_json() {
        let json = r#"{"basis_points": 200, "fixed": "3000", "minimum": "100000"}"#;
        assert_eq!(serde_json::from_str::<FeeSchedule>(json).unwrap(), schedule());
    }
}
