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

/// The runtime code of a contract that is never deployed: it is put at [`CODE_READER`] by a
/// state override for one `eth_call` and answers, for each 32-byte word of its calldata (an
/// address), that address's `EXTCODESIZE`, word for word. So the code of a whole batch's
/// parties is one call instead of one `eth_getCode` each.
///
/// ```text
/// 00 PUSH1 0      ; offset i = 0
/// 02 JUMPDEST     ; loop:
/// 03 DUP1 CALLDATASIZE GT PUSH1 0x0f JUMPI    ; i < calldatasize → body
/// 09 CALLDATASIZE PUSH1 0 RETURN              ; return memory[0, calldatasize)
/// 0d 00 00        ; (padding)
/// 0f JUMPDEST     ; body:
/// 10 DUP1 CALLDATALOAD EXTCODESIZE DUP2 MSTORE ; memory[i] = extcodesize(calldata[i])
/// 15 PUSH1 32 ADD PUSH1 0x02 JUMP             ; i += 32; loop
/// ```
pub const CODE_SIZES: [u8; 27] = [
    0x60, 0x00, 0x5b, 0x80, 0x36, 0x11, 0x60, 0x0f, 0x57, 0x36, 0x60, 0x00, 0xf3, 0x00, 0x00, 0x5b,
    0x80, 0x35, 0x3b, 0x81, 0x52, 0x60, 0x20, 0x01, 0x60, 0x02, 0x56,
];

/// Where [`CODE_SIZES`] is put for the call: an address nobody holds a key or code for.
pub const CODE_READER: Address = Address::new([
    0xc0, 0xde, 0x51, 0x2e, 0x5c, 0x0d, 0xe5, 0x12, 0xe5, 0xc0, 0xde, 0x51, 0x2e, 0x5c, 0x0d, 0xe5,
    0x12, 0xe5, 0x00, 0x01,
]);

/// Whether each of `accounts` has code (a delegated EOA does), as of the latest block, in one
/// `eth_call` with a state override ([`CODE_SIZES`]). `None` when the node refuses the call or
/// answers anything else than one word per account (a node without state overrides): the
/// caller then reads each account's code ([`account_kind`]).
pub async fn have_code<P: Provider>(provider: &P, accounts: &[Address]) -> Option<Vec<bool>> {
    use alloy::rpc::types::TransactionRequest;
    use alloy::rpc::types::state::{AccountOverride, StateOverride};
    if accounts.is_empty() {
        return Some(Vec::new());
    }
    let input: Vec<u8> = accounts.iter().flat_map(|a| a.into_word().0).collect();
    let call = TransactionRequest::default().to(CODE_READER).input(input.into());
    let reader =
        AccountOverride { code: Some(CODE_SIZES.to_vec().into()), ..AccountOverride::default() };
    let overrides: StateOverride = [(CODE_READER, reader)].into_iter().collect();
    let answer = match provider.call(call).overrides(overrides).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::debug!(%error, "code of many accounts in one call refused; reading each");
            return None;
        }
    };
    (answer.len() == 32 * accounts.len())
        .then(|| answer.chunks(32).map(|word| word.iter().any(|b| *b != 0)).collect())
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
