//! The proof that an agent controls a wallet: an EIP-712 `WalletOwnership` message signed by the
//! wallet, naming the agent and when it was signed.
//!
//! ```text
//! domain  { name: "Pactum", version: "1", chainId }
//! WalletOwnership { address wallet; string agentId; uint256 issuedAt }
//! ```
//!
//! The domain has no `verifyingContract`: the statement is made to Pactum, not to a contract.
//! `agentId` binds the proof to one agent (it cannot register the wallet for another), `chainId`
//! to one chain, and `issuedAt` (unix seconds) must be within [`MAX_SKEW_SECS`] of the server's
//! clock, so an old signature that leaked cannot be used long after. Building the document and
//! its digest is pure; the signature is checked by [`crate::escrow::verify::verify_signature`]
//! (ECDSA, then ERC-1271 for a smart wallet).

use alloy::primitives::{Address, B256, U256};
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};
use serde_json::Value;

/// The domain's name.
pub const DOMAIN_NAME: &str = "Pactum";
/// The domain's version.
pub const DOMAIN_VERSION: &str = "1";
/// How far `issuedAt` may be from the server's clock, either way, in seconds.
pub const MAX_SKEW_SECS: i64 = 600;

sol! {
    /// A wallet's statement that it belongs to the agent `agentId`, signed at `issuedAt`.
    #[derive(Debug, PartialEq, Eq)]
    struct WalletOwnership {
        address wallet;
        string agentId;
        uint256 issuedAt;
    }
}

/// Why a proof is refused before its signature is even checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    /// `issuedAt` is too far in the past or the future.
    #[error("`issued_at` must be within {MAX_SKEW_SECS} s of the server's clock ({now})")]
    Stale {
        /// The server's clock, unix seconds.
        now: i64,
    },
}

/// The proof domain on `chain_id`.
pub fn domain(chain_id: u64) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
    }
}

/// The message `wallet` signs to prove it belongs to `agent_id`.
pub fn message(wallet: Address, agent_id: &str, issued_at: i64) -> WalletOwnership {
    WalletOwnership {
        wallet,
        agentId: agent_id.to_owned(),
        issuedAt: U256::from(issued_at.max(0) as u64),
    }
}

/// The EIP-712 digest the wallet signs.
pub fn digest(chain_id: u64, wallet: Address, agent_id: &str, issued_at: i64) -> B256 {
    message(wallet, agent_id, issued_at).eip712_signing_hash(&domain(chain_id))
}

/// The `eth_signTypedData_v4` document of the message, as a wallet library signs it.
pub fn document(chain_id: u64, wallet: Address, agent_id: &str, issued_at: i64) -> Value {
    crate::escrow::package::typed_data_json(
        &message(wallet, agent_id, issued_at),
        &domain(chain_id),
    )
}

/// Refuses an `issued_at` more than [`MAX_SKEW_SECS`] away from `now`.
pub fn check_fresh(issued_at: i64, now: i64) -> Result<(), OwnershipError> {
    if issued_at.abs_diff(now) > MAX_SKEW_SECS as u64 {
        return Err(OwnershipError::Stale { now });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::escrow::verify::recover;

    #[test]
    fn the_document_hashes_to_the_digest_a_wallet_signs() {
        let signer = PrivateKeySigner::random();
        let (wallet, agent) = (signer.address(), "agt_0001");
        let doc = document(31_337, wallet, agent, 1_700_000_000);
        assert_eq!(doc["primaryType"], "WalletOwnership");
        assert_eq!(doc["domain"]["name"], "Pactum");
        assert!(doc["domain"].get("verifyingContract").is_none());
        let digest = digest(31_337, wallet, agent, 1_700_000_000);
        assert_eq!(crate::escrow::package::digest_of(&doc).unwrap(), digest);
        let signature = signer.sign_hash_sync(&digest).unwrap().as_bytes();
        assert_eq!(recover(digest, &signature), Ok(wallet));
    }

    #[test]
    fn the_proof_is_bound_to_agent_chain_wallet_and_time() {
        let wallet = Address::repeat_byte(7);
        let base = digest(31_337, wallet, "agt_a", 100);
        assert_ne!(base, digest(31_337, wallet, "agt_b", 100));
        assert_ne!(base, digest(84_532, wallet, "agt_a", 100));
        assert_ne!(base, digest(31_337, Address::repeat_byte(8), "agt_a", 100));
        assert_ne!(base, digest(31_337, wallet, "agt_a", 101));
    }

    #[test]
    fn issued_at_must_be_recent() {
        assert!(check_fresh(1_000, 1_000).is_ok());
        assert!(check_fresh(1_000 - MAX_SKEW_SECS, 1_000).is_ok());
        assert!(check_fresh(1_000 + MAX_SKEW_SECS, 1_000).is_ok());
        assert_eq!(
            check_fresh(999 - MAX_SKEW_SECS, 1_000),
            Err(OwnershipError::Stale { now: 1_000 })
        );
        assert!(check_fresh(1_001 + MAX_SKEW_SECS, 1_000).is_err());
    }
}
