//! The body of `POST …/activate-escrow`.

use alloy::primitives::{B256, Bytes};
use serde::{Deserialize, Serialize};

use crate::api::document_number::DocumentNumber;

/// The body of `POST …/activate-escrow`: the buyer's signatures over the package.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"activation_signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b", "funding_signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b", "infra_fee_permit_signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b", "agreement_key": "0x9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f", "chain_id": 31337}))]
pub struct ActivateEscrow {
    /// The buyer's signature of the `activation` document (65-byte ECDSA, or whatever the
    /// buyer's ERC-1271 wallet accepts).
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub activation_signature: Bytes,
    /// The buyer's signature of the `funding` (`ReceiveWithAuthorization`) document.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub funding_signature: Bytes,
    /// The buyer's signature of `infra_fee.permit`; required when the package has a fee.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub infra_fee_permit_signature: Option<Bytes>,
    /// The package's `agreement_key`, echoed back: a mismatch means the buyer signed another
    /// package (optional, recommended).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub agreement_key: Option<B256>,
    /// The chain the buyer's wallet signed for, echoed back (optional, recommended): a number or
    /// the decimal string of the signed `domain.chainId`.
    #[serde(default)]
    pub chain_id: Option<DocumentNumber>,
}
