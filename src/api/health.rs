//! `GET /health`: the process answers and the store is reachable, with the chain it follows.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiResult;
use crate::store::chain;

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "ok", "chain_id": 31337, "escrow_contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "last_block": 42}))]
pub struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    pub status: &'static str,
    /// The chain the escrow is on.
    pub chain_id: u64,
    /// The escrow contract, checksummed.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub escrow_contract: String,
    /// The last block the chain watcher processed; `null` before the first.
    #[schema(required = true)]
    pub last_block: Option<u64>,
}

/// `GET /health`: the process answers and the store is reachable.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "service",
    responses(
        (status = 200, description = "The process answers and the store is reachable", body = Health),
        (status = 503, description = "Timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    let cursor = chain::cursor(state.store.reader()).await?;
    Ok(Json(Health {
        status: "ok",
        chain_id: state.chain.chain_id,
        escrow_contract: state.chain.escrow.to_checksum(None),
        last_block: cursor.map(|c| c.block_number),
    }))
}
