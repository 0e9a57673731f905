//! The agreement as the API shows it, shared by every resource that answers with one (the
//! agreement routes, activation) or with its usage (escrow status, usage). Built from the store
//! record; the OpenAPI schema is generated from these same types.
//!
//! Fields are declared in alphabetical order: the order these bodies have always had on the
//! wire.

use alloy::primitives::{B256, U256};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::time::rfc3339;
use crate::agreement::ids::{AgentId, AgreementId};
use crate::agreement::status::InfraFeeStatus;
use crate::agreement::status::{ActivationStatus, AgreementStatus};
use crate::money::TokenAmount;
use crate::store::agreements::AgreementRecord;

/// A usage agreement.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "id": "ua_0a1b2c3d4e5f60718293a4b5c6d7", "buyer_agent_id": "agt_4f3c2a1b9e8d7c6b5a4938271605",
    "seller_agent_id": "agt_9e8d7c6b5a4938274f3c2a1b0a1b", "service_id": "svc_search", "quantity": 100,
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
    /// Why activation failed.
    #[schema(required = true)]
    pub activation_error: Option<String>,
    /// The activation status.
    pub activation_status: ActivationStatus,
    /// The activation transaction, once broadcast.
    #[schema(value_type = Option<String>, required = true, pattern = "^0x[0-9a-f]{64}$")]
    pub activation_tx_hash: Option<B256>,
    /// `v2`.
    pub activation_version: String,
    /// The EIP-712 hash of the terms; `null` before acceptance.
    #[schema(value_type = Option<String>, required = true, pattern = "^0x[0-9a-f]{64}$")]
    pub agreement_key: Option<B256>,
    /// `activate-escrow` only, when the buyer's policy escalated: the approval the activation
    /// waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The paying agent.
    #[schema(value_type = String, pattern = "^agt_[0-9a-f]{28}$")]
    pub buyer_agent_id: AgentId,
    /// The buyer's wallet, checksummed.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub buyer_wallet_address: String,
    /// `activate-escrow` only: the buyer policy's decision (`GET /v1/checks/{check_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Its id.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub id: AgreementId,
    /// The infra fee.
    pub infra_fee: InfraFee,
    /// The payment method as proposed.
    #[schema(value_type = Object)]
    pub payment_method: Value,
    /// Price of a unit in cents.
    pub price_per_unit_cents: u64,
    /// Units bought.
    pub quantity: u64,
    /// The seller's reason for rejecting.
    #[schema(required = true)]
    pub rejection_reason: Option<String>,
    /// The last wallet screening report; `null` before activation is requested.
    #[schema(value_type = Option<Object>, required = true)]
    pub screening: Option<Value>,
    /// The providing agent.
    #[schema(value_type = String, pattern = "^agt_[0-9a-f]{28}$")]
    pub seller_agent_id: AgentId,
    /// The seller's wallet; `null` before acceptance.
    #[schema(required = true, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub seller_wallet_address: Option<String>,
    /// The seller's service.
    pub service_id: String,
    /// `bilateral_escrow`.
    pub settlement_model: String,
    /// The agreement status.
    pub status: AgreementStatus,
    /// The on-chain terms; `null` before acceptance.
    #[schema(required = true)]
    pub terms: Option<AgreementTerms>,
    /// `quantity × price_per_unit_cents`; `null` if that overflows.
    #[schema(required = true)]
    pub total_cents: Option<u64>,
    /// What a unit is.
    pub unit: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Usage so far.
    pub usage: UsageSummary,
}

impl From<&AgreementRecord> for Agreement {
    fn from(record: &AgreementRecord) -> Self {
        Agreement {
            activation_error: record.activation_error.clone(),
            activation_status: record.activation_status,
            activation_tx_hash: record.activation_tx_hash,
            activation_version: record.activation_version.clone(),
            agreement_key: record.agreement_key,
            buyer_agent_id: record.buyer_agent_id.clone(),
            buyer_wallet_address: record.buyer_wallet.to_checksum(None),
            created_at: rfc3339(record.created_at),
            id: record.id.clone(),
            infra_fee: InfraFee::from(record),
            payment_method: record.payment_method.clone(),
            price_per_unit_cents: record.price_per_unit_cents,
            quantity: record.quantity,
            rejection_reason: record.rejection_reason.clone(),
            screening: record.screening.clone(),
            seller_agent_id: record.seller_agent_id.clone(),
            seller_wallet_address: record.seller_wallet.map(|a| a.to_checksum(None)),
            service_id: record.service_id.clone(),
            settlement_model: record.settlement_model.clone(),
            status: record.status,
            terms: record.terms.as_ref().map(|terms| AgreementTerms {
                activate_by: rfc3339(terms.activate_by as i64),
                close_window_seconds: terms.close_window,
                deposit_amount: terms.deposit(),
                expires_at: rfc3339(terms.expiry as i64),
                infra_fee_amount: terms.infra_fee,
                unit_price_amount: terms.unit_price,
            }),
            total_cents: record.price_per_unit_cents.checked_mul(record.quantity),
            unit: record.unit.clone(),
            updated_at: rfc3339(record.updated_at),
            usage: UsageSummary::from(record),
            check_id: None,
            approval_id: None,
        }
    }
}

/// The on-chain terms, fixed at acceptance.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementTerms {
    /// RFC 3339: the activation deadline.
    pub activate_by: String,
    /// Seconds between a close and the buyer's withdrawal.
    pub close_window_seconds: u64,
    /// `quantity × unit price` in token base units (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub deposit_amount: TokenAmount,
    /// RFC 3339.
    pub expires_at: String,
    /// Token base units (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub infra_fee_amount: TokenAmount,
    /// Token base units per unit (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub unit_price_amount: TokenAmount,
}

/// The infra fee of an agreement.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InfraFee {
    /// Token base units (decimal string); `null` before acceptance.
    #[schema(value_type = Option<String>, required = true, pattern = "^[0-9]+$")]
    pub amount: Option<TokenAmount>,
    /// Where collection stands.
    pub status: InfraFeeStatus,
}

impl From<&AgreementRecord> for InfraFee {
    fn from(record: &AgreementRecord) -> Self {
        InfraFee {
            amount: record.terms.as_ref().map(|t| t.infra_fee),
            status: record.infra_fee_status,
        }
    }
}

/// Usage as recorded by the seller and attested by the buyer's best voucher.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageSummary {
    /// Units bought.
    pub quantity: u64,
    /// Units the seller recorded.
    pub recorded_units: u64,
    /// What the best voucher pays, in token base units (decimal string); `null` before
    /// acceptance.
    #[schema(required = true, pattern = "^[0-9]+$")]
    pub voucher_amount: Option<String>,
    /// Units of the buyer's best voucher.
    pub voucher_units: u64,
}

impl From<&AgreementRecord> for UsageSummary {
    fn from(record: &AgreementRecord) -> Self {
        let price = record.terms.as_ref().map(|t| t.unit_price.base_units());
        UsageSummary {
            quantity: record.quantity,
            recorded_units: record.usage_units,
            voucher_amount: price.map(|p| (p * U256::from(record.voucher_units)).to_string()),
            voucher_units: record.voucher_units,
        }
    }
}

/// One status change of an agreement.
///
/// Fields in alphabetical order, the order this body has always had on the wire.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementEvent {
    /// The agreement.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: AgreementId,
    /// RFC 3339.
    pub created_at: String,
    /// Event data.
    #[schema(value_type = Object)]
    pub data: Value,
    /// Its id.
    #[schema(pattern = "^evt_[0-9a-f]{28}$")]
    pub id: String,
    /// `agreement.proposed`, `agreement.accepted`, `activation.queued`, ….
    #[serde(rename = "type")]
    pub event_type: crate::store::outbox::EventType,
}
