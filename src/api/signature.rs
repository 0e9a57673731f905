//! How a refused signature is answered, for every document a party signs (activation, funding,
//! fee permit, vouchers, sponsored authorizations).

use alloy::primitives::Address;
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use crate::escrow::verify::VerifyError;

/// 422 `invalid_signature` for `document`, naming the wallet that had to sign it; 503 when the
/// wallet's ERC-1271 check could not reach the chain.
pub(crate) fn signature_error(document: &str, expected: Address, error: VerifyError) -> ApiError {
    match error {
        VerifyError::Unavailable(e) => ApiError::chain_unavailable(e),
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
