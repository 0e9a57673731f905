//! `GET …/escrow-status`: the escrow as the chain watcher last confirmed it, with the
//! activation and usage fields. Served from the read model (memory, else the store), so polling
//! it costs no RPC call and, once warm, no store read.

use alloy::primitives::B256;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::agreement::ids::AgreementId;
use crate::agreement::settlement::EscrowStatus as Lifecycle;
use crate::agreement::status::{ActivationStatus, AgreementStatus};
use crate::api::AppState;
use crate::api::agreement_access::load_kept_for;
use crate::api::agreement_view::{InfraFee, UsageSummary};
use crate::api::auth::AgentAuth;
use crate::api::error::ApiResult;
use crate::api::extract::ApiPath;
use crate::api::time::rfc3339;
use crate::store::agreements::AgreementRecord;
use crate::store::chain::Cursor;

/// `GET …/escrow-status`.
///
/// Fields in alphabetical order, the order this body has always had on the wire.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscrowStatus {
    /// Why activation failed.
    #[schema(required = true)]
    pub activation_error: Option<String>,
    /// The activation status.
    pub activation_status: ActivationStatus,
    /// The activation transaction.
    #[schema(value_type = Option<String>, required = true, pattern = "^0x[0-9a-f]{64}$")]
    pub activation_tx_hash: Option<B256>,
    /// The agreement.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: AgreementId,
    /// `null` before acceptance.
    #[schema(value_type = Option<String>, required = true, pattern = "^0x[0-9a-f]{64}$")]
    pub agreement_key: Option<B256>,
    /// The chain.
    pub chain_id: u64,
    /// `null` before activation.
    #[schema(required = true)]
    pub escrow: Option<ConfirmedEscrow>,
    /// The escrow contract.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub escrow_contract: String,
    /// RFC 3339; `null` before acceptance.
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// The newest head seen.
    #[schema(required = true)]
    pub head_block_number: Option<u64>,
    /// The fee.
    pub infra_fee: InfraFee,
    /// Whether the newest head is past expiry; `null` when unknown.
    #[schema(required = true)]
    pub past_expiry: Option<bool>,
    /// The agreement status.
    pub status: AgreementStatus,
    /// Usage so far.
    pub usage: UsageSummary,
}

/// The escrow as the chain watcher last confirmed it: amounts paid each way, the close and
/// withdraw times, and where on-chain that state was read.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmedEscrow {
    /// The hash of the block of the escrow's last event.
    #[schema(value_type = String, pattern = "^0x[0-9a-f]{64}$")]
    pub block_hash: B256,
    /// The block of the escrow's last event.
    pub block_number: u64,
    /// Whether the buyer withdrew.
    pub buyer_withdrawn: bool,
    /// Token base units (decimal string).
    #[schema(pattern = "^[0-9]+$")]
    pub claimed_amount: String,
    /// Units paid to the seller.
    pub claimed_units: u64,
    /// RFC 3339; `null` until a close.
    #[schema(required = true)]
    pub closes_at: Option<String>,
    /// Blocks from that event to the newest head seen.
    #[schema(required = true)]
    pub confirmations: Option<u64>,
    /// Token base units (decimal string).
    #[schema(pattern = "^[0-9]+$")]
    pub deposit_amount: String,
    /// Token base units (decimal string).
    #[schema(pattern = "^[0-9]+$")]
    pub remaining_amount: String,
    /// The escrow's lifecycle on-chain.
    #[schema(inline)]
    pub status: Lifecycle,
    /// The transaction of that event; `null` when the store did not keep it.
    #[schema(value_type = Option<String>, required = true, pattern = "^0x[0-9a-f]{64}$")]
    pub tx_hash: Option<B256>,
    /// RFC 3339; `null` while unknown.
    #[schema(required = true)]
    pub withdraw_opens_at: Option<String>,
    /// Token base units (decimal string).
    #[schema(pattern = "^[0-9]+$")]
    pub withdrawn_amount: String,
}

impl ConfirmedEscrow {
    /// The escrow last confirmed for `record`, `None` before activation; `cursor` (the newest
    /// head seen) gives the confirmations.
    pub fn of(record: &AgreementRecord, cursor: Option<&Cursor>) -> Option<Self> {
        let (Some(seen), Some(terms)) = (&record.escrow, &record.terms) else { return None };
        let escrow = &seen.state;
        let deposit = terms.deposit().base_units();
        let claimed = escrow.seller_amount(terms);
        let remaining = deposit.saturating_sub(claimed).saturating_sub(escrow.buyer_amount(terms));
        Some(ConfirmedEscrow {
            block_hash: seen.block_hash,
            block_number: seen.block_number,
            buyer_withdrawn: escrow.buyer_withdrawn,
            claimed_amount: claimed.to_string(),
            claimed_units: escrow.claimed_units,
            closes_at: (escrow.closes_at != 0).then(|| rfc3339(escrow.closes_at as i64)),
            confirmations: cursor.map(|c| c.head_number.saturating_sub(seen.block_number) + 1),
            deposit_amount: deposit.to_string(),
            remaining_amount: remaining.to_string(),
            status: escrow.status,
            tx_hash: seen.tx_hash,
            withdraw_opens_at: escrow.withdraw_opens_at(terms).map(|t| rfc3339(t as i64)),
            withdrawn_amount: escrow.buyer_amount(terms).to_string(),
        })
    }
}

/// `GET /usage-agreements/{id}/escrow-status`. `confirmations` counts from the escrow's last
/// event to the newest head seen, and `past_expiry` compares the expiry with that head's
/// timestamp.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/escrow-status",
    operation_id = "escrow_status",
    tag = "escrow",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The escrow as last confirmed", body = EscrowStatus),
    ),
)]
pub async fn escrow_status(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<EscrowStatus>> {
    let record = load_kept_for(&state, &agent, &id).await?;
    let cursor = state.read_model.cursor(&state.store).await?;
    Ok(Json(EscrowStatus {
        activation_error: record.activation_error.clone(),
        activation_status: record.activation_status,
        activation_tx_hash: record.activation_tx_hash,
        agreement_id: record.id.clone(),
        agreement_key: record.agreement_key,
        chain_id: state.chain.chain_id,
        escrow: ConfirmedEscrow::of(&record, cursor.as_ref()),
        escrow_contract: state.chain.escrow.to_checksum(None),
        expires_at: record.terms.as_ref().map(|t| rfc3339(t.expiry as i64)),
        head_block_number: cursor.as_ref().map(|c| c.head_number),
        infra_fee: InfraFee::from(&*record),
        past_expiry: match (&record.terms, &cursor) {
            (Some(terms), Some(c)) if c.head_timestamp != 0 => {
                Some(c.head_timestamp >= terms.expiry)
            }
            _ => None,
        },
        status: record.status,
        usage: UsageSummary::from(&*record),
    }))
}
