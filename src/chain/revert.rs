//! Revert data made readable: the bytes a node returns for a failed call or estimate, turned into
//! a short, stable reason that is logged, stored with a failed job and shown to API clients.
//!
//! The format of [`decode_revert`]'s answer, which stored reasons depend on:
//! - a custom error of the escrow, the token (MockUSDC, whose errors are also what Pactum knows of
//!   USDC) or the sanctions oracle: `Name(arg=value, …)`, e.g.
//!   `ActivationExpired(activateBy=1700000000)`, or `Name()` when it has no arguments. Integers
//!   are decimal, addresses EIP-55 checksummed, fixed and dynamic bytes `0x` hex, strings quoted,
//!   arrays `[a, b]` and tuples `(a, b)`; an argument without a name shows its value alone.
//!   Solidity enums are `uint8` in the ABI and appear as their number (`InvalidStatus(status=2)`).
//! - `Error(string)` from `require`/`revert("…")`: `Error("the message")`.
//! - `Panic(uint256)` from `assert`, overflow and the like: `Panic(0x11: arithmetic underflow or
//!   overflow)`, or `Panic(0x…)` for a code Solidity does not define.
//! - no data at all (a bare `revert()`, or a call into an account without code that expected a
//!   return value): `empty revert`.
//! - anything else: `unknown revert 0x…` with the data in full.

use std::collections::HashMap;
use std::sync::LazyLock;

use alloy::dyn_abi::{DynSolValue, JsonAbiExt};
use alloy::json_abi;
use alloy::primitives::{Bytes, Selector, hex};
use alloy::sol_types::{ContractError, Revert, SolInterface};
use alloy::transports::TransportError;

use crate::escrow::bindings::{MockSanctionsOracle, MockUSDC, UsageEscrow};

/// The JSON ABI of every custom error Pactum can name, by selector, for the names of arguments.
///
/// Errors declared by more than one contract (`OnlyOwner()`, `InvalidSignature()`) have one
/// selector and one shape, so whichever entry wins describes them alike.
static KNOWN_ERRORS: LazyLock<HashMap<Selector, json_abi::Error>> = LazyLock::new(|| {
    [UsageEscrow::abi::errors(), MockUSDC::abi::errors(), MockSanctionsOracle::abi::errors()]
        .into_iter()
        .flat_map(|errors| errors.into_values().flatten())
        .map(|error| (error.selector(), error))
        .collect()
});

/// A readable reason for `data`, the bytes a reverted call returned (format in the module docs).
pub fn decode_revert(data: &[u8]) -> String {
    if data.is_empty() {
        return "empty revert".to_string();
    }
    // The typed bindings decide what the bytes are: the escrow's errors first, since its calls
    // are most of what Pactum sends, then the contracts it calls into.
    let known = match ContractError::<UsageEscrow::UsageEscrowErrors>::abi_decode(data) {
        Ok(ContractError::Revert(Revert { reason })) => return format!("Error({reason:?})"),
        Ok(ContractError::Panic(panic)) => {
            let code = format!("{:#x}", panic.code);
            return match panic.kind() {
                Some(kind) => format!("Panic({code}: {kind})"),
                None => format!("Panic({code})"),
            };
        }
        Ok(ContractError::CustomError(_)) => true,
        Err(_) => {
            MockUSDC::MockUSDCErrors::abi_decode(data).is_ok()
                || MockSanctionsOracle::MockSanctionsOracleErrors::abi_decode(data).is_ok()
        }
    };
    known.then(|| describe_custom(data)).flatten().unwrap_or_else(|| unknown(data))
}

/// The escrow's custom error in `data`, for code that acts on one error in particular (an
/// `AlreadyActivated` is the outcome an activation wanted, not a failure).
pub fn escrow_error(data: &[u8]) -> Option<UsageEscrow::UsageEscrowErrors> {
    UsageEscrow::UsageEscrowErrors::abi_decode(data).ok()
}

/// The revert data carried by a JSON-RPC error response, if the node reported a revert with data.
///
/// Nodes put it in the error's `data` (geth, reth and anvil as a hex string; some providers nest
/// it in an object); transport failures and other errors carry none.
pub fn revert_data(err: &TransportError) -> Option<Bytes> {
    err.as_error_resp()?.as_revert_data()
}

/// `Name(arg=value, …)` for a custom error whose typed decoding already succeeded.
fn describe_custom(data: &[u8]) -> Option<String> {
    let (selector, body) = data.split_first_chunk::<4>()?;
    let error = KNOWN_ERRORS.get(&Selector::from(*selector))?;
    let values = error.abi_decode_input(body).ok()?;
    let args: Vec<String> = error
        .inputs
        .iter()
        .zip(&values)
        .map(|(param, value)| match param.name.as_str() {
            "" => format_value(value),
            name => format!("{name}={}", format_value(value)),
        })
        .collect();
    Some(format!("{}({})", error.name, args.join(", ")))
}

fn unknown(data: &[u8]) -> String {
    format!("unknown revert {}", hex::encode_prefixed(data))
}

/// One argument in the documented format.
fn format_value(value: &DynSolValue) -> String {
    let list =
        |items: &[DynSolValue]| items.iter().map(format_value).collect::<Vec<_>>().join(", ");
    match value {
        DynSolValue::Bool(b) => b.to_string(),
        DynSolValue::Int(i, _) => i.to_string(),
        DynSolValue::Uint(u, _) => u.to_string(),
        DynSolValue::FixedBytes(word, size) => hex::encode_prefixed(&word[..*size]),
        DynSolValue::Address(address) => address.to_checksum(None),
        DynSolValue::Function(function) => hex::encode_prefixed(function.as_slice()),
        DynSolValue::Bytes(bytes) => hex::encode_prefixed(bytes),
        DynSolValue::String(s) => format!("{s:?}"),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => format!("[{}]", list(items)),
        DynSolValue::Tuple(items) => format!("({})", list(items)),
        DynSolValue::CustomStruct { tuple, .. } => format!("({})", list(tuple)),
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256, address};
    use alloy::sol_types::{Panic, SolError};

    use super::*;

    #[test]
    fn escrow_errors_show_their_arguments_by_name() {
        let data = UsageEscrow::ActivationExpired { activateBy: U256::from(1_700_000_000u64) }
            .abi_encode();
        assert_eq!(decode_revert(&data), "ActivationExpired(activateBy=1700000000)");

        let data = UsageEscrow::DepositMismatch {
            expected: U256::from(10_000_000u64),
            received: U256::from(9_900_000u64),
        }
        .abi_encode();
        assert_eq!(decode_revert(&data), "DepositMismatch(expected=10000000, received=9900000)");

        let key = B256::repeat_byte(0xab);
        let data = UsageEscrow::AlreadyActivated { agreementKey: key }.abi_encode();
        assert_eq!(decode_revert(&data), format!("AlreadyActivated(agreementKey={key})"));
    }

    #[test]
    fn errors_without_arguments_are_the_name_and_empty_parentheses() {
        let data = UsageEscrow::InvalidSignature {}.abi_encode();
        assert_eq!(decode_revert(&data), "InvalidSignature()");
        let data = MockSanctionsOracle::OracleDown {}.abi_encode();
        assert_eq!(decode_revert(&data), "OracleDown()");
    }

    #[test]
    fn addresses_are_checksummed() {
        let account = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
        let data = UsageEscrow::SanctionedAddress { account }.abi_encode();
        assert_eq!(
            decode_revert(&data),
            "SanctionedAddress(account=0x70997970C51812dc3A010C7d01b50e0d17dc79C8)"
        );
    }

    #[test]
    fn token_errors_are_named_too() {
        let data = MockUSDC::InsufficientBalance {
            account: Address::ZERO,
            balance: U256::from(5),
            needed: U256::from(7),
        }
        .abi_encode();
        assert_eq!(
            decode_revert(&data),
            "InsufficientBalance(account=0x0000000000000000000000000000000000000000, balance=5, \
             needed=7)"
        );
        assert_eq!(
            decode_revert(&MockUSDC::CallerMustBePayee {}.abi_encode()),
            "CallerMustBePayee()"
        );
    }

    #[test]
    fn enums_appear_as_their_number() {
        let data = UsageEscrow::InvalidStatus { status: 2 }.abi_encode();
        assert_eq!(decode_revert(&data), "InvalidStatus(status=2)");
    }

    #[test]
    fn require_messages_and_panics() {
        let data = Revert::from("not enough").abi_encode();
        assert_eq!(decode_revert(&data), r#"Error("not enough")"#);
        let data = Panic::from(0x11).abi_encode();
        assert_eq!(decode_revert(&data), "Panic(0x11: arithmetic underflow or overflow)");
        let data = Panic::from(0x99).abi_encode();
        assert_eq!(decode_revert(&data), "Panic(0x99)");
    }

    #[test]
    fn unknown_and_malformed_data_fall_back_to_hex() {
        assert_eq!(decode_revert(&[]), "empty revert");
        assert_eq!(decode_revert(&[0xde, 0xad, 0xbe, 0xef]), "unknown revert 0xdeadbeef");
        // A known selector with a truncated argument is not that error.
        let mut data = UsageEscrow::ActivationExpired { activateBy: U256::from(1) }.abi_encode();
        data.truncate(20);
        assert_eq!(decode_revert(&data), format!("unknown revert {}", hex::encode_prefixed(&data)));
        assert_eq!(decode_revert(&[0x01, 0x02]), "unknown revert 0x0102");
    }

    #[test]
    fn escrow_error_gives_the_typed_error() {
        let key = B256::repeat_byte(1);
        let data = UsageEscrow::AlreadyActivated { agreementKey: key }.abi_encode();
        assert_eq!(
            escrow_error(&data),
            Some(UsageEscrow::UsageEscrowErrors::AlreadyActivated(UsageEscrow::AlreadyActivated {
                agreementKey: key
            }))
        );
        assert_eq!(escrow_error(&MockSanctionsOracle::OracleDown {}.abi_encode()), None);
    }

    #[test]
    fn revert_data_comes_from_the_error_response() {
        let payload = r#"{"code":3,"message":"execution reverted: custom error 0x3e2b6a3f","data":"0x3e2b6a3f"}"#;
        let err = TransportError::ErrorResp(serde_json::from_str(payload).unwrap());
        assert_eq!(revert_data(&err), Some(Bytes::from(vec![0x3e, 0x2b, 0x6a, 0x3f])));

        let payload = r#"{"code":-32000,"message":"nonce too low"}"#;
        let err = TransportError::ErrorResp(serde_json::from_str(payload).unwrap());
        assert_eq!(revert_data(&err), None);
    }
}
