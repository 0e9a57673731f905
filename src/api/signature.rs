//! How a refused signature is answered, for every document a party signs (activation, funding,
//! fee permit, vouchers, sponsored authorizations).

use alloy::primitives::Address;
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use crate::escrow::verify::VerifyError;

/// 422 `invalid_signature` for `document`, naming the wallet that had to sign it; 422
/// `buyer_wallet_unsupported` when the wallet is an EIP-7702 delegated account whose delegate
/// will not vouch for the signature to USDC; 503 when the wallet's ERC-1271 check could not reach
/// the chain.
pub(crate) fn signature_error(document: &str, expected: Address, error: VerifyError) -> ApiError {
    match error {
        VerifyError::Unavailable(e) => ApiError::chain_unavailable(e),
        VerifyError::DelegateRefused { account, delegate } => ApiError::new(
            ErrorCode::BuyerWalletUnsupported,
            format!(
                "the buyer's wallet {account} is an EIP-7702 delegated account whose delegate \
                 {delegate} does not implement ERC-1271 for the `{document}` signature: USDC \
                 checks an account with code only through ERC-1271 and would refuse it. Pay from \
                 an account without the delegation, or delegate to a contract that implements \
                 ERC-1271; nothing was queued"
            ),
        )
        .with_details(json!({
            "document": document,
            "wallet": account.to_checksum(None),
            "delegate": delegate.to_checksum(None),
        })),
        other => ApiError::new(
            ErrorCode::InvalidSignature,
            format!("the `{document}` signature is not from the wallet that must sign it: {other}"),
        )
        .with_details(json!({
            "document": document,
            "expected_signer": expected.to_checksum(None),
        })),
    }
}
