//! `GET /health`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiResult;
use crate::store::chain;

/// `GET /health`: the process answers and the store is reachable.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "service",
    responses(
        (status = 200, description = "The process answers and the store is reachable", body = crate::api::schema::Health),
        (status = 503, description = "Timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let cursor = chain::cursor(state.store.reader()).await?;
    Ok(Json(json!({
        "status": "ok",
        "chain_id": state.chain.chain_id,
        "escrow_contract": state.chain.escrow.to_checksum(None),
        "last_block": cursor.map(|c| c.block_number),
    })))
}
