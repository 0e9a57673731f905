//! Schemas of the API's responses for the OpenAPI document ([`super::openapi`]).
//!
//! Handlers build their JSON with `serde_json::json!`; each type here mirrors one such body field
//! for field, and `tests/openapi.rs` validates real responses against the document, so a field
//! added to a handler but not here (every schema here forbids unknown properties) fails a test.
//! Fields that are always present but may be `null` are marked `required`.

#![allow(dead_code)] // Only their schemas are used; nothing constructs these types.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The one error shape of every non-2xx answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"error": {"code": "validation_error", "message": "`quantity` must be 1 to 2^63 − 1", "details": {"field": "quantity"}}}))]
pub struct Error {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`Error`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable machine code: `validation_error`, `malformed_json`, `unauthorized`,
    /// `invalid_credential`, `not_found`, `forbidden`, `wrong_party`, `invalid_state`,
    /// `idempotency_key_reused`, `idempotency_conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `method_not_allowed`, `chain_unavailable`, `timeout`, …
    #[schema(example = "validation_error")]
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// Structured context (the offending field, the current status, …); absent when none.
    pub details: Option<Value>,
}

// ---------------------------------------------------------------------------------- agreements

/// `status` of an agreement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgreementStatus {
    /// Proposed by the buyer.
    Proposed,
    /// Accepted by the seller; terms fixed.
    Accepted,
    /// Rejected by the seller.
    Rejected,
    /// Activation queued or in flight.
    Activating,
    /// Escrow funded.
    Active,
    /// Close window running.
    Closing,
    /// Paid out.
    Settled,
    /// Not activated in time.
    Expired,
    /// Cancelled.
    Cancelled,
    /// Activation failed.
    Failed,
}

/// `activation_status` of an agreement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivationStatus {
    /// No signature received.
    NotStarted,
    /// Signatures received, queued.
    Pending,
    /// The relayer picked it.
    Submitting,
    /// Broadcast (`activation_tx_hash` set).
    Submitted,
    /// Confirmed on-chain.
    Confirmed,
    /// Failed (`activation_error` says why).
    Failed,
}

/// `infra_fee.status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InfraFeeStatus {
    /// The terms carry no fee.
    None,
    /// Not yet collected.
    Pending,
    /// Collected at activation.
    Collected,
    /// Activation failed; no fee taken.
    Failed,
}

/// The infra fee of an agreement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InfraFee {
    /// Token base units (decimal string); `null` before acceptance.
    #[schema(required = true)]
    pub amount: Option<String>,
    /// Where collection stands.
    pub status: InfraFeeStatus,
}

/// The on-chain terms, fixed at acceptance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementTerms {
    /// Token base units per unit (decimal string).
    pub unit_price_amount: String,
    /// `quantity × unit price` in token base units (decimal string).
    pub deposit_amount: String,
    /// Token base units (decimal string).
    pub infra_fee_amount: String,
    /// RFC 3339: the activation deadline.
    pub activate_by: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Seconds between a close and the buyer's withdrawal.
    pub close_window_seconds: u64,
}

/// Usage as recorded by the seller and attested by the buyer's best voucher.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageSummary {
    /// Units bought.
    pub quantity: u64,
    /// Units the seller recorded.
    pub recorded_units: u64,
    /// Units of the buyer's best voucher.
    pub voucher_units: u64,
    /// What the best voucher pays, in token base units (decimal string); `null` before
    /// acceptance.
    #[schema(required = true)]
    pub voucher_amount: Option<String>,
}

/// A usage agreement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "id": "agr_0a1b2c3d4e5f60718293a4b5", "buyer_agent_id": "agt_4f3c2a1b9e8d7c6b5a493827",
    "seller_agent_id": "agt_9e8d7c6b5a4938274f3c2a1b", "service_id": "svc_search", "quantity": 100,
    "unit": "api_calls", "price_per_unit_cents": 10, "total_cents": 1000,
    "payment_method": {"rail": "stablecoin", "provider": "x402"},
    "settlement_model": "bilateral_escrow", "activation_version": "v2",
    "buyer_wallet_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "seller_wallet_address": null, "status": "proposed", "activation_status": "not_started",
    "activation_tx_hash": null, "activation_error": null, "rejection_reason": null,
    "agreement_key": null, "terms": null, "infra_fee": {"amount": null, "status": "none"},
    "screening": null,
    "usage": {"quantity": 100, "recorded_units": 0, "voucher_units": 0, "voucher_amount": null},
    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
}))]
pub struct Agreement {
    /// Its id.
    pub id: String,
    /// The paying agent.
    pub buyer_agent_id: String,
    /// The providing agent.
    pub seller_agent_id: String,
    /// The seller's service.
    pub service_id: String,
    /// Units bought.
    pub quantity: u64,
    /// What a unit is.
    pub unit: String,
    /// Price of a unit in cents.
    pub price_per_unit_cents: u64,
    /// `quantity × price_per_unit_cents`; `null` if that overflows.
    #[schema(required = true)]
    pub total_cents: Option<u64>,
    /// The payment method as proposed.
    pub payment_method: Value,
    /// `bilateral_escrow`.
    pub settlement_model: String,
    /// `v2`.
    pub activation_version: String,
    /// The buyer's wallet, checksummed.
    pub buyer_wallet_address: String,
    /// The seller's wallet; `null` before acceptance.
    #[schema(required = true)]
    pub seller_wallet_address: Option<String>,
    /// The agreement status.
    pub status: AgreementStatus,
    /// The activation status.
    pub activation_status: ActivationStatus,
    /// The activation transaction, once broadcast.
    #[schema(required = true)]
    pub activation_tx_hash: Option<String>,
    /// Why activation failed.
    #[schema(required = true)]
    pub activation_error: Option<String>,
    /// The seller's reason for rejecting.
    #[schema(required = true)]
    pub rejection_reason: Option<String>,
    /// The EIP-712 hash of the terms; `null` before acceptance.
    #[schema(required = true)]
    pub agreement_key: Option<String>,
    /// The on-chain terms; `null` before acceptance.
    #[schema(required = true)]
    pub terms: Option<AgreementTerms>,
    /// The infra fee.
    pub infra_fee: InfraFee,
    /// The last wallet screening report; `null` before activation is requested.
    #[schema(required = true)]
    pub screening: Option<Value>,
    /// Usage so far.
    pub usage: UsageSummary,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A page of an agent's agreements.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementList {
    /// Newest first.
    pub agreements: Vec<Agreement>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------- activation

/// An `eth_signTypedData_v4` document: sign it unchanged with any EIP-712 wallet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "types": {"EIP712Domain": [{"name": "name", "type": "string"}], "UsageVoucher": [{"name": "agreementKey", "type": "bytes32"}, {"name": "cumulativeUnits", "type": "uint256"}]},
    "primaryType": "UsageVoucher",
    "domain": {"name": "UsageEscrow", "version": "2", "chainId": "31337", "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
    "message": {"agreementKey": "0x9c1f…", "cumulativeUnits": "40"}
}))]
pub struct TypedData {
    /// The struct types, `EIP712Domain` included.
    pub types: Value,
    /// The type being signed.
    #[serde(rename = "primaryType")]
    pub primary_type: String,
    /// The EIP-712 domain.
    pub domain: Value,
    /// The values; integers as decimal strings, bytes as `0x` hex.
    pub message: Value,
}

/// The infra fee block of an activation package.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageInfraFee {
    /// Token base units (decimal string).
    pub amount: String,
    /// Where the escrow sends the fee.
    pub recipient: String,
    /// Where collection stands.
    pub status: InfraFeeStatus,
    /// The USDC `Permit` to the escrow for exactly the fee.
    pub permit: TypedData,
}

/// `GET …/activation-package`: what the buyer signs and where to send the signatures.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationPackage {
    /// The agreement.
    pub agreement_id: String,
    /// The EIP-712 hash of the terms.
    pub agreement_key: String,
    /// The `Activation` terms to sign.
    pub activation: TypedData,
    /// The USDC `ReceiveWithAuthorization` for exactly the deposit.
    pub funding: TypedData,
    /// The fee and its permit; absent when the terms carry no fee.
    pub infra_fee: Option<PackageInfraFee>,
    /// The chain.
    pub chain_id: u64,
    /// The escrow contract.
    pub escrow_contract: String,
    /// The token.
    pub token: String,
    /// Token base units (decimal string).
    pub deposit_amount: String,
    /// RFC 3339: activate before this.
    pub activate_by: String,
    /// Where to `POST` the signatures.
    pub submit_to: String,
}

// ------------------------------------------------------------------------------ escrow status

/// The escrow as the chain watcher last confirmed it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmedEscrow {
    /// `none`, `active`, `closing` or `settled`.
    pub status: String,
    /// Token base units (decimal string).
    pub deposit_amount: String,
    /// Units paid to the seller.
    pub claimed_units: u64,
    /// Token base units (decimal string).
    pub claimed_amount: String,
    /// Whether the buyer withdrew.
    pub buyer_withdrawn: bool,
    /// Token base units (decimal string).
    pub withdrawn_amount: String,
    /// Token base units (decimal string).
    pub remaining_amount: String,
    /// RFC 3339; `null` until a close.
    #[schema(required = true)]
    pub closes_at: Option<String>,
    /// RFC 3339; `null` while unknown.
    #[schema(required = true)]
    pub withdraw_opens_at: Option<String>,
    /// The block of the escrow's last event.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: String,
    /// The transaction of that event.
    pub tx_hash: String,
    /// Blocks from that event to the newest head seen.
    #[schema(required = true)]
    pub confirmations: Option<u64>,
}

/// `GET …/escrow-status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscrowStatus {
    /// The agreement.
    pub agreement_id: String,
    /// `null` before acceptance.
    #[schema(required = true)]
    pub agreement_key: Option<String>,
    /// The agreement status.
    pub status: AgreementStatus,
    /// The activation status.
    pub activation_status: ActivationStatus,
    /// The activation transaction.
    #[schema(required = true)]
    pub activation_tx_hash: Option<String>,
    /// Why activation failed.
    #[schema(required = true)]
    pub activation_error: Option<String>,
    /// The chain.
    pub chain_id: u64,
    /// The escrow contract.
    pub escrow_contract: String,
    /// `null` before activation.
    #[schema(required = true)]
    pub escrow: Option<ConfirmedEscrow>,
    /// Usage so far.
    pub usage: UsageSummary,
    /// RFC 3339; `null` before acceptance.
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// Whether the newest head is past expiry; `null` when unknown.
    #[schema(required = true)]
    pub past_expiry: Option<bool>,
    /// The fee.
    pub infra_fee: InfraFee,
    /// The newest head seen.
    #[schema(required = true)]
    pub head_block_number: Option<u64>,
}

// --------------------------------------------------------------------------------------- usage

/// The buyer's best voucher.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BestVoucher {
    /// Its `cumulativeUnits`.
    pub cumulative_units: u64,
    /// The buyer's signature.
    pub signature: String,
}

/// `GET …/usage` and `POST …/usage-vouchers`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// The agreement.
    pub agreement_id: String,
    /// Units bought.
    pub quantity: u64,
    /// Units the seller recorded.
    pub recorded_units: u64,
    /// Units of the buyer's best voucher.
    pub voucher_units: u64,
    /// Token base units (decimal string).
    #[schema(required = true)]
    pub voucher_amount: Option<String>,
    /// The `UsageVoucher` for the recorded usage, when it exceeds the best voucher.
    #[schema(required = true)]
    pub voucher_to_sign: Option<TypedData>,
    /// The best voucher so far.
    #[schema(required = true)]
    pub best_voucher: Option<BestVoucher>,
    /// Where to `POST` a signed voucher.
    pub submit_voucher_to: String,
}

/// `POST …/record-usage`: [`Usage`] plus the record made.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecorded {
    /// The agreement.
    pub agreement_id: String,
    /// Units bought.
    pub quantity: u64,
    /// Units the seller recorded, in all.
    pub recorded_units: u64,
    /// Units of the buyer's best voucher.
    pub voucher_units: u64,
    /// Token base units (decimal string).
    #[schema(required = true)]
    pub voucher_amount: Option<String>,
    /// The `UsageVoucher` for the recorded usage.
    #[schema(required = true)]
    pub voucher_to_sign: Option<TypedData>,
    /// The best voucher so far.
    #[schema(required = true)]
    pub best_voucher: Option<BestVoucher>,
    /// Where to `POST` a signed voucher.
    pub submit_voucher_to: String,
    /// The record's id.
    pub usage_record_id: String,
    /// Units of this record.
    pub units: u64,
}

// ---------------------------------------------------------------------------------- settlement

/// An unsigned transaction for the party's own wallet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsignedTransaction {
    /// The party's wallet.
    pub from: String,
    /// The escrow contract.
    pub to: String,
    /// Calldata, `0x` hex.
    pub data: String,
    /// Always `0`.
    pub value: String,
    /// The chain.
    pub chain_id: u64,
    /// Gas limit (estimate plus headroom), decimal string.
    pub gas: String,
}

/// `GET …/initiate-close-calldata`, `…/claim-instructions`, `…/withdraw-instructions`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectInstructions {
    /// The party's wallet.
    pub from: String,
    /// The escrow contract.
    pub to: String,
    /// Calldata, `0x` hex.
    pub data: String,
    /// Always `0`.
    pub value: String,
    /// The chain.
    pub chain_id: u64,
    /// Gas limit, decimal string.
    pub gas: String,
    /// The agreement.
    pub agreement_id: String,
    /// `initiate_close`, `seller_claim` or `buyer_withdraw`.
    pub action: String,
    /// `buyer` or `seller`.
    pub party: String,
    /// Units signed for.
    pub units: u64,
    /// Token base units that move (decimal string).
    pub amount: String,
    /// `buyer` or `seller`.
    pub recipient: String,
}

/// The escrow on-chain now, as the options endpoint read it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscrowSummary {
    /// `none`, `active`, `closing` or `settled`.
    pub status: String,
    /// Units paid to the seller.
    pub claimed_units: u64,
    /// Whether the buyer withdrew.
    pub buyer_withdrawn: bool,
    /// RFC 3339; `null` until a close.
    #[schema(required = true)]
    pub closes_at: Option<String>,
    /// RFC 3339; `null` while unknown.
    #[schema(required = true)]
    pub withdraw_opens_at: Option<String>,
    /// Token base units still held (decimal string).
    pub remaining_amount: String,
}

/// Why an action is not possible now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// A stable code.
    pub code: String,
    /// Why.
    pub message: String,
}

/// The direct path of an option.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectPath {
    /// Whether the party can send it now.
    pub available: bool,
    /// The transaction to send; absent when not available.
    pub transaction: Option<UnsignedTransaction>,
    /// The signer's ETH balance in wei (decimal string).
    pub signer_gas_balance: Option<String>,
    /// Estimated gas cost in wei (decimal string).
    pub estimated_cost_wei: Option<String>,
}

/// The sponsored path of an option.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SponsoredPath {
    /// Whether Pactum can relay it now.
    pub available: bool,
    /// The authorization to sign.
    pub typed_data: Option<TypedData>,
    /// The authorization's deadline (unix seconds).
    pub deadline: Option<u64>,
    /// Where to `POST` the signature.
    pub submit_to: Option<String>,
}

/// Both paths.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementPaths {
    /// From the party's wallet.
    pub direct: DirectPath,
    /// Relayed by Pactum.
    pub sponsored: SponsoredPath,
}

/// `GET …/settlement-action-options`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementOptions {
    /// The agreement.
    pub agreement_id: String,
    /// The action asked about.
    pub action: String,
    /// The caller's side.
    pub party: String,
    /// The caller's wallet.
    pub signer: String,
    /// The chain.
    pub chain_id: u64,
    /// RFC 3339: the chain's clock.
    pub chain_time: String,
    /// The escrow now.
    pub escrow: EscrowSummary,
    /// Units of the buyer's best voucher.
    pub voucher_units: u64,
    /// Whether the action is possible now.
    pub possible: bool,
    /// Why not; `null` when possible.
    #[schema(required = true)]
    pub reason: Option<Refusal>,
    /// RFC 3339: when time alone opens it.
    #[schema(required = true)]
    pub available_at: Option<String>,
    /// The same in unix seconds.
    #[schema(required = true)]
    pub available_at_unix: Option<u64>,
    /// Units signed for (when possible).
    pub units: Option<u64>,
    /// Token base units that move (when possible).
    pub amount: Option<String>,
    /// `buyer` or `seller` (when possible).
    pub recipient: Option<String>,
    /// Both paths.
    pub paths: SettlementPaths,
    /// `direct` or `sponsored`; `null` when not possible.
    #[schema(required = true)]
    pub recommended_path: Option<String>,
}

/// A relayed settlement action.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementAction {
    /// Its id.
    pub id: String,
    /// `settlement_action`.
    pub object: String,
    /// The agreement.
    pub agreement_id: String,
    /// `initiate_close`, `seller_claim` or `buyer_withdraw`.
    pub action: String,
    /// `buyer` or `seller`.
    pub party: String,
    /// `sponsored`.
    pub path: String,
    /// The party's wallet.
    pub signer: String,
    /// Units signed for.
    pub units: u64,
    /// Token base units (decimal string).
    pub amount: String,
    /// Unix seconds.
    pub deadline: u64,
    /// `pending`, `submitted`, `confirmed` or `failed`.
    pub status: String,
    /// The transaction, once sent.
    #[schema(required = true)]
    pub tx_hash: Option<String>,
    /// The block it was confirmed in.
    #[schema(required = true)]
    pub block_number: Option<u64>,
    /// Why it failed.
    #[schema(required = true)]
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `GET …/settlement-actions`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementActionList {
    /// Oldest first.
    pub data: Vec<SettlementAction>,
}

/// One status change of an agreement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementEvent {
    /// Its id.
    pub id: String,
    /// `agreement.proposed`, `agreement.accepted`, `activation.queued`, ….
    #[serde(rename = "type")]
    pub event_type: String,
    /// The agreement.
    pub agreement_id: String,
    /// Event data.
    pub data: Value,
    /// RFC 3339.
    pub created_at: String,
}

/// `GET …/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementEventList {
    /// Oldest first.
    pub data: Vec<AgreementEvent>,
}

// The webhook and receipt schemas below name the fields clients rely on and allow others:
// their routes are not yet driven by the response-conformance test.

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::agreement::status as real;

    /// The mirrored enums spell exactly the strings the API returns.
    #[test]
    fn status_enums_match_the_state_machine() {
        let variants = |schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
            let value = serde_json::to_value(schema).unwrap();
            value["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        use utoipa::PartialSchema;
        for s in variants(super::AgreementStatus::schema()) {
            assert_eq!(s.parse::<real::AgreementStatus>().unwrap().as_str(), s);
        }
        for s in variants(super::ActivationStatus::schema()) {
            assert_eq!(s.parse::<real::ActivationStatus>().unwrap().as_str(), s);
        }
        use crate::escrow::package::InfraFeeStatus as Fee;
        let fees = [Fee::None, Fee::Pending, Fee::Collected, Fee::Failed].map(|f| json!(f));
        assert_eq!(
            variants(super::InfraFeeStatus::schema()),
            fees.map(|f| f.as_str().unwrap().to_owned())
        );
        assert_eq!(variants(super::AgreementStatus::schema()).len(), 10);
        assert_eq!(variants(super::ActivationStatus::schema()).len(), 6);
    }
}
