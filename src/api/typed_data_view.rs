//! An `eth_signTypedData_v4` document as the API hands it out (activation package, vouchers,
//! sponsored authorizations): a typed view over what `escrow::package::typed_data_json` builds.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// An `eth_signTypedData_v4` document: sign it unchanged with any EIP-712 wallet.
///
/// Fields in alphabetical order, the order these documents have always had on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "types": {"EIP712Domain": [{"name": "name", "type": "string"}], "UsageVoucher": [{"name": "agreementKey", "type": "bytes32"}, {"name": "cumulativeUnits", "type": "uint256"}]},
    "primaryType": "UsageVoucher",
    "domain": {"name": "UsageEscrow", "version": "2", "chainId": "31337", "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
    "message": {"agreementKey": "0x9c1f…", "cumulativeUnits": "40"}
}))]
pub struct TypedData {
    /// The EIP-712 domain.
    #[schema(value_type = Object)]
    pub domain: Value,
    /// The values; integers as decimal strings, bytes as `0x` hex.
    #[schema(value_type = Object)]
    pub message: Value,
    /// The type being signed.
    #[serde(rename = "primaryType")]
    pub primary_type: String,
    /// The struct types, `EIP712Domain` included.
    #[schema(value_type = Object)]
    pub types: Value,
}

impl From<Value> for TypedData {
    /// The document built by `typed_data_json` (or the package builder), field by field.
    fn from(mut document: Value) -> Self {
        let mut take = |key: &str| document.get_mut(key).map(Value::take).unwrap_or_default();
        TypedData {
            domain: take("domain"),
            message: take("message"),
            primary_type: take("primaryType").as_str().unwrap_or_default().to_owned(),
            types: take("types"),
        }
    }
}
