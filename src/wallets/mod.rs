//! Agents' own wallets, as Pactum knows them: an address an agent registered (Pactum never holds
//! its key), whether the agent proved control of it ([`ownership`]), which one is the agent's
//! primary wallet, and the per-block cache of balances read from the chain ([`balances`]).
//!
//! Pure types and rules; the store ([`crate::store::wallets`]), the chain
//! ([`crate::chain::faucet`]) and the API ([`crate::api::wallets`]) do the I/O.

pub mod balances;
pub mod ownership;

use alloy::primitives::Address;

use crate::agreement::ids::{AccountId, AgentId, Environment, WalletId};
use crate::vocab::string_enum;

string_enum!(
    /// How a wallet proved that its agent controls it.
    OwnershipProof {
        /// No proof was given: the address is the agent's word.
        None = "none",
        /// A `WalletOwnership` signature that recovers the address (an externally owned account).
        Ecdsa = "ecdsa",
        /// The wallet's contract accepted the signature through ERC-1271 (a smart wallet).
        Erc1271 = "erc1271",
    }
);

impl OwnershipProof {
    /// Whether control of the wallet was proven.
    pub fn proven(self) -> bool {
        self != OwnershipProof::None
    }
}

/// A registered wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    /// Its id (`wal_…`).
    pub id: WalletId,
    /// The account of its agent.
    pub account_id: AccountId,
    /// The agent whose wallet it is.
    pub agent_id: AgentId,
    /// The wallet's address.
    pub address: Address,
    /// A display label.
    pub label: Option<String>,
    /// Whether it is the agent's primary wallet (at most one per agent).
    pub primary: bool,
    /// How control was proven, if it was.
    pub ownership_proof: OwnershipProof,
    /// The proof's `issuedAt` (unix seconds); `None` without a proof.
    pub ownership_issued_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: when it last changed (made primary or not).
    pub updated_at: i64,
}

/// Chain ids demo funding may run on: anvil and Hardhat (31337), other local dev nodes (1337)
/// and Base Sepolia (84532).
pub const TEST_CHAIN_IDS: [u64; 3] = [31_337, 1_337, 84_532];

/// Whether `POST /v1/wallets/{id}/fund` may mint demo USDC: only a test deployment (`pk_test_`
/// and `ok_test_` keys) on a dev or test chain. Both must hold, so neither a live deployment
/// pointed at a test chain nor a test deployment on a chain with real money ever mints.
pub fn funding_allowed(environment: Environment, chain_id: u64) -> bool {
    environment == Environment::Test && TEST_CHAIN_IDS.contains(&chain_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn funding_needs_a_test_deployment_on_a_test_chain() {
        assert!(funding_allowed(Environment::Test, 31_337));
        assert!(funding_allowed(Environment::Test, 84_532));
        assert!(!funding_allowed(Environment::Live, 31_337));
        assert!(!funding_allowed(Environment::Test, 8_453));
        assert!(!funding_allowed(Environment::Live, 8_453));
    }

    #[test]
    fn only_a_signature_proves_ownership() {
        assert!(!OwnershipProof::None.proven());
        assert!(OwnershipProof::Ecdsa.proven() && OwnershipProof::Erc1271.proven());
        assert_eq!(OwnershipProof::parse("erc1271"), Some(OwnershipProof::Erc1271));
    }
}
