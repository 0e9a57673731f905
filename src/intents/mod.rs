//! Intents (seed 004): an agent asks `POST /validate` before it pays from its own wallet, the
//! policy decides and holds the amount, the agent broadcasts the USDC transfer itself and
//! posts the transaction hash, and the chain watcher checks that the mined transaction is that
//! very transfer before the hold is captured.
//!
//! This module is the pure part: the status vocabulary and its transitions, and the verdict on
//! a mined transaction's token transfers ([`verify`]). The store, the API and the watcher call
//! into it; it does no I/O.

use alloy::primitives::{Address, U256};

use crate::vocab::string_enum;

string_enum!(
    /// Where an intent stands.
    IntentStatus {
        /// Allowed by the policy and held; the agent has not posted a transaction yet.
        Validated = "validated",
        /// The agent posted a transaction hash; the watcher has not confirmed a verdict yet
        /// (not mined, mined but not deep enough, or reorganised away).
        Broadcast = "broadcast",
        /// The matching transfer is at the confirmation depth: the hold is captured.
        Confirmed = "confirmed",
        /// The transaction is not the transfer that was validated: the hold is released.
        Mismatched = "mismatched",
        /// The transaction reverted: the hold is released.
        Failed = "failed",
        /// Nothing matching was confirmed in time: the hold expired.
        Expired = "expired",
    }
);

impl IntentStatus {
    /// Whether nothing changes the intent any more (a reorganisation moves only a confirmed
    /// intent back).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            IntentStatus::Confirmed
                | IntentStatus::Mismatched
                | IntentStatus::Failed
                | IntentStatus::Expired
        )
    }
}

string_enum!(
    /// What an intent is for. Only USDC transfers exist so far.
    IntentAction {
        /// A USDC transfer from the agent's registered wallet.
        Transfer = "transfer",
    }
);

string_enum!(
    /// The watcher's verdict on a mined transaction, before and after it is deep enough.
    Verdict {
        /// A USDC `Transfer` from one of the agent's wallets to `to` of exactly the amount.
        Matched = "matched",
        /// The transaction reverted.
        Reverted = "reverted",
        /// The transaction moved no USDC at all.
        NoTransfer = "no_transfer",
        /// USDC moved from a wallet the agent has not registered.
        WrongSender = "wrong_sender",
        /// USDC moved from the agent's wallet, but to another address.
        WrongRecipient = "wrong_recipient",
        /// USDC moved from the agent's wallet to `to`, but another amount.
        WrongAmount = "wrong_amount",
    }
);

impl Verdict {
    /// The status an intent takes once this verdict is at the confirmation depth.
    pub fn final_status(self) -> IntentStatus {
        match self {
            Verdict::Matched => IntentStatus::Confirmed,
            Verdict::Reverted => IntentStatus::Failed,
            _ => IntentStatus::Mismatched,
        }
    }
}

/// One ERC-20 `Transfer` log of the configured token, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTransfer {
    /// Whose tokens moved.
    pub from: Address,
    /// Who received them.
    pub to: Address,
    /// Base units.
    pub value: U256,
}

/// What an intent expects to find in its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected<'a> {
    /// The agent's registered wallets: the transfer must come from one of them.
    pub wallets: &'a [Address],
    /// The recipient validated.
    pub to: Address,
    /// The amount validated, in token base units.
    pub amount: U256,
}

/// The verdict on a mined transaction: `succeeded` is its receipt status, `transfers` the
/// configured token's `Transfer` logs it emitted (logs of any other contract are not passed).
/// A transaction holding several transfers matches when one of them is exactly the expected
/// one; otherwise the verdict names what is wrong with the closest one (a transfer from the
/// agent's wallet before any other, then one to `to`).
pub fn verify(expected: &Expected<'_>, succeeded: bool, transfers: &[TokenTransfer]) -> Verdict {
    if !succeeded {
        return Verdict::Reverted;
    }
    let from_agent = |t: &&TokenTransfer| expected.wallets.contains(&t.from);
    if transfers
        .iter()
        .filter(from_agent)
        .any(|t| t.to == expected.to && t.value == expected.amount)
    {
        return Verdict::Matched;
    }
    if transfers.is_empty() {
        return Verdict::NoTransfer;
    }
    let mut own = transfers.iter().filter(from_agent).peekable();
    if own.peek().is_none() {
        return Verdict::WrongSender;
    }
    if own.any(|t| t.to == expected.to) { Verdict::WrongAmount } else { Verdict::WrongRecipient }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: Address = Address::repeat_byte(0x11);
    const OTHER: Address = Address::repeat_byte(0x22);
    const TO: Address = Address::repeat_byte(0x33);

    fn expected(wallets: &[Address]) -> Expected<'_> {
        Expected { wallets, to: TO, amount: U256::from(1_250_000u64) }
    }

    fn transfer(from: Address, to: Address, value: u64) -> TokenTransfer {
        TokenTransfer { from, to, value: U256::from(value) }
    }

    #[test]
    fn the_exact_transfer_from_a_registered_wallet_matches() {
        let wallets = [OTHER, WALLET];
        let found = [transfer(WALLET, TO, 1_250_000)];
        assert_eq!(verify(&expected(&wallets), true, &found), Verdict::Matched);
        // Among other transfers of the same transaction too.
        let found = [transfer(WALLET, OTHER, 5), transfer(WALLET, TO, 1_250_000)];
        assert_eq!(verify(&expected(&wallets), true, &found), Verdict::Matched);
    }

    #[test]
    fn each_difference_is_named() {
        let wallets = [WALLET];
        let e = expected(&wallets);
        assert_eq!(verify(&e, false, &[transfer(WALLET, TO, 1_250_000)]), Verdict::Reverted);
        assert_eq!(verify(&e, true, &[]), Verdict::NoTransfer);
        assert_eq!(verify(&e, true, &[transfer(OTHER, TO, 1_250_000)]), Verdict::WrongSender);
        assert_eq!(
            verify(&e, true, &[transfer(WALLET, OTHER, 1_250_000)]),
            Verdict::WrongRecipient
        );
        assert_eq!(verify(&e, true, &[transfer(WALLET, TO, 1_250_001)]), Verdict::WrongAmount);
        assert_eq!(verify(&e, true, &[transfer(WALLET, TO, 1_249_999)]), Verdict::WrongAmount);
        // The agent's own transfer is the one diagnosed, whatever else moved.
        let found = [transfer(OTHER, TO, 1_250_000), transfer(WALLET, TO, 1)];
        assert_eq!(verify(&e, true, &found), Verdict::WrongAmount);
    }

    #[test]
    fn verdicts_end_in_their_status() {
        assert_eq!(Verdict::Matched.final_status(), IntentStatus::Confirmed);
        assert_eq!(Verdict::Reverted.final_status(), IntentStatus::Failed);
        for v in [Verdict::NoTransfer, Verdict::WrongSender, Verdict::WrongRecipient] {
            assert_eq!(v.final_status(), IntentStatus::Mismatched);
        }
        assert!(!IntentStatus::Broadcast.is_final() && IntentStatus::Expired.is_final());
    }
}
