//! What kind of account a party's address is, from its code: an externally owned account (no
//! code), an EIP-7702 delegated account (an EOA whose code is the delegation designator
//! `0xef0100 ‖ delegate`), or a contract wallet.
//!
//! The answer decides how signatures are checked (ERC-1271 for an account with code, as USDC
//! does) and how far a party's signatures can be trusted to stay valid: an account with code can
//! revoke what it signed (rotate its owners, re-delegate), so its vouchers and authorizations
//! may stop passing before they are used. Code changes over an agreement's life (a
//! counterfactual wallet is deployed, an EOA delegates or undelegates), so it is read when
//! needed and never cached beyond one request or one relayer pass.

use alloy::primitives::Address;
use alloy::providers::Provider;

use crate::chain::node_error::{self, NodeError};

/// The EIP-7702 delegation designator's prefix: `0xef0100`, then the 20-byte delegate.
pub const DELEGATION_PREFIX: [u8; 3] = [0xef, 0x01, 0x00];

/// An account, by its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// No code: a key, checked by ECDSA.
    Eoa,
    /// An EOA delegated under EIP-7702: calls to it run `delegate`'s code, and contracts that
    /// look at its code (USDC's signature check) treat it as a contract.
    Delegated {
        /// The contract whose code the account runs.
        delegate: Address,
    },
    /// Any other code: a smart contract wallet (Safe, Coinbase Smart Wallet, …).
    Contract,
}

impl AccountKind {
    /// The kind of an account whose code is `code`.
    pub fn of_code(code: &[u8]) -> Self {
        if code.is_empty() {
            return AccountKind::Eoa;
        }
        match code.strip_prefix(&DELEGATION_PREFIX[..]) {
            Some(delegate) if delegate.len() == 20 => {
                AccountKind::Delegated { delegate: Address::from_slice(delegate) }
            }
            _ => AccountKind::Contract,
        }
    }

    /// Whether the account has code (a delegated EOA does).
    pub fn has_code(self) -> bool {
        self != AccountKind::Eoa
    }
}

/// The kind of `account` as of the latest block.
pub async fn account_kind<P: Provider>(
    provider: &P,
    account: Address,
) -> Result<AccountKind, NodeError> {
    let code = provider.get_code_at(account).await.map_err(|e| node_error::classify(&e))?;
    Ok(AccountKind::of_code(&code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_tells_keys_delegations_and_contracts_apart() {
        assert_eq!(AccountKind::of_code(&[]), AccountKind::Eoa);
        let delegate = Address::repeat_byte(0x42);
        let mut designator = DELEGATION_PREFIX.to_vec();
        designator.extend_from_slice(delegate.as_slice());
        assert_eq!(designator.len(), 23);
        assert_eq!(AccountKind::of_code(&designator), AccountKind::Delegated { delegate });
        // A contract whose code merely starts like a designator is a contract.
        designator.push(0);
        assert_eq!(AccountKind::of_code(&designator), AccountKind::Contract);
        assert_eq!(AccountKind::of_code(&designator[..22]), AccountKind::Contract);
        assert_eq!(AccountKind::of_code(&[0x60, 0x80, 0x60, 0x40]), AccountKind::Contract);
        assert!(!AccountKind::Eoa.has_code());
        assert!(AccountKind::Delegated { delegate }.has_code());
        assert!(AccountKind::Contract.has_code());
    }
}
