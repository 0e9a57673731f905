//! `GET …/escrow-status`: the escrow as the chain watcher last confirmed it, with the activation
//! and usage fields.

use alloy::primitives::U256;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::agreements::load_for;
use super::auth::AgentAuth;
use super::error::ApiResult;
use super::extract::ApiPath;
use super::time::rfc3339;
use crate::store::agreements::AgreementRecord;
use crate::store::chain::{self, Cursor};

/// `GET /usage-agreements/{id}/escrow-status`. Served from the store, so polling it costs no
/// RPC call; `confirmations` counts from the escrow's last event to the newest head seen, and
/// `past_expiry` compares the expiry with that head's timestamp.
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
        (status = 200, description = "The escrow as last confirmed", body = crate::api::schema::EscrowStatus),
    ),
)]
pub async fn escrow_status(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Value>> {
    let record = load_for(&state, &agent, &id).await?;
    let cursor = chain::cursor(state.store.reader()).await?;
    Ok(Json(json!({
        "agreement_id": record.id,
        "agreement_key": record.agreement_key,
        "status": record.status,
        "activation_status": record.activation_status,
        "activation_tx_hash": record.activation_tx_hash,
        "activation_error": record.activation_error,
        "chain_id": state.chain.chain_id,
        "escrow_contract": state.chain.escrow.to_checksum(None),
        "escrow": escrow_json(&record, cursor.as_ref()),
        "usage": usage_json(&record),
        "expires_at": record.terms.as_ref().map(|t| rfc3339(t.expiry as i64)),
        "past_expiry": match (&record.terms, &cursor) {
            (Some(terms), Some(c)) if c.head_timestamp != 0 => Some(c.head_timestamp >= terms.expiry),
            _ => None,
        },
        "infra_fee": {
            "amount": record.terms.as_ref().map(|t| t.infra_fee),
            "status": record.infra_fee_status,
        },
        "head_block_number": cursor.map(|c| c.head_number),
    })))
}

/// The escrow as last confirmed: amounts paid each way, the close and withdraw times, and where
/// on-chain that state was read; `null` before activation.
pub(crate) fn escrow_json(record: &AgreementRecord, cursor: Option<&Cursor>) -> Value {
    let (Some(seen), Some(terms)) = (&record.escrow, &record.terms) else { return Value::Null };
    let escrow = &seen.state;
    let deposit = terms.deposit().base_units();
    let claimed = escrow.seller_amount(terms);
    let remaining = deposit.saturating_sub(claimed).saturating_sub(escrow.buyer_amount(terms));
    json!({
        "status": escrow.status.as_str(),
        "deposit_amount": deposit.to_string(),
        "claimed_units": escrow.claimed_units,
        "claimed_amount": claimed.to_string(),
        "buyer_withdrawn": escrow.buyer_withdrawn,
        "withdrawn_amount": escrow.buyer_amount(terms).to_string(),
        "remaining_amount": remaining.to_string(),
        "closes_at": (escrow.closes_at != 0).then(|| rfc3339(escrow.closes_at as i64)),
        "withdraw_opens_at": escrow.withdraw_opens_at(terms).map(|t| rfc3339(t as i64)),
        "block_number": seen.block_number,
        "block_hash": seen.block_hash,
        "tx_hash": seen.tx_hash,
        "confirmations": cursor.map(|c| c.head_number.saturating_sub(seen.block_number) + 1),
    })
}

/// Usage as the seller recorded it and as the buyer's best voucher attests it.
pub(crate) fn usage_json(record: &AgreementRecord) -> Value {
    let price = record.terms.as_ref().map(|t| t.unit_price.base_units());
    json!({
        "quantity": record.quantity,
        "recorded_units": record.usage_units,
        "voucher_units": record.voucher_units,
        "voucher_amount": price.map(|p| (p * U256::from(record.voucher_units)).to_string()),
    })
}
