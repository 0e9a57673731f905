//! `GET …/escrow-status` (the escrow as the chain watcher last confirmed it, with the activation
//! fields) and `GET /health`.

use alloy::primitives::U256;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::agreements::load_for;
use super::error::ApiResult;
use super::extract::{AgentAuth, ApiPath};
use crate::store::chain;

/// `GET /usage-agreements/{id}/escrow-status`. Served from the store, so polling it costs no
/// RPC call; `confirmations` counts from the escrow's block to the newest head seen.
pub async fn escrow_status(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Value>> {
    let record = load_for(&state, &agent, &id).await?;
    let head = chain::cursor(state.store.reader()).await?.map(|c| c.head_number);
    let escrow = match (&record.escrow, &record.terms) {
        (Some(seen), Some(terms)) => {
            let deposit = terms.deposit().base_units();
            let claimed = terms.unit_price.base_units() * U256::from(seen.claimed_units);
            json!({
                "status": seen.status,
                "deposit_amount": deposit.to_string(),
                "claimed_units": seen.claimed_units,
                "claimed_amount": claimed.to_string(),
                "remaining_amount": deposit.saturating_sub(claimed).to_string(),
                "block_number": seen.block_number,
                "block_hash": seen.block_hash,
                "confirmations": head.map(|h| h.saturating_sub(seen.block_number) + 1),
            })
        }
        _ => Value::Null,
    };
    Ok(Json(json!({
        "agreement_id": record.id,
        "agreement_key": record.agreement_key,
        "status": record.status,
        "activation_status": record.activation_status,
        "activation_tx_hash": record.activation_tx_hash,
        "activation_error": record.activation_error,
        "chain_id": state.chain.chain_id,
        "escrow_contract": state.chain.escrow.to_checksum(None),
        "escrow": escrow,
        "infra_fee": {
            "amount": record.terms.as_ref().map(|t| t.infra_fee),
            "status": record.infra_fee_status,
        },
        "head_block_number": head,
    })))
}

/// `GET /health`: the process answers and the store is reachable.
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let cursor = chain::cursor(state.store.reader()).await?;
    Ok(Json(json!({
        "status": "ok",
        "chain_id": state.chain.chain_id,
        "escrow_contract": state.chain.escrow.to_checksum(None),
        "last_block": cursor.map(|c| c.block_number),
    })))
}
