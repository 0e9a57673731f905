//! The relayer's keys as the operator sees them: balance, next nonce, transactions in flight,
//! stuck ones, and jobs held back by the fee cap.

use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::Provider;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::auth::OperatorAuth;
use crate::api::error::ApiResult;
use crate::store::{attempts, console, now};

/// How long one chain read may take before the key is reported without it.
const CHAIN_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /v1/relayer`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayerOverview {
    /// Each configured signer key, in configuration order.
    pub signers: Vec<RelayerSigner>,
    /// Jobs held back now because fees are above the configured cap (signed or not yet).
    pub jobs_waiting_for_fees: u64,
    /// A broadcast transaction with no block after this many seconds counts as stuck.
    pub stuck_after_secs: u64,
}

/// One relayer signer key.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayerSigner {
    /// Its address.
    pub address: String,
    /// Its ETH balance in wei (decimal string); `null` when the chain could not be read.
    #[schema(required = true)]
    pub balance_wei: Option<String>,
    /// Its pending nonce on the chain; `null` when the chain could not be read.
    #[schema(required = true)]
    pub chain_nonce: Option<u64>,
    /// Why the chain could not be read, when it could not.
    #[schema(required = true)]
    pub chain_error: Option<String>,
    /// The nonce the relayer assigns next (from the store); `null` if it never sent.
    #[schema(required = true)]
    pub next_nonce: Option<u64>,
    /// Transactions signed or broadcast and not yet mined (replacements included).
    pub in_flight: u64,
    /// Of those, broadcast longer than `stuck_after_secs` ago with no block yet.
    pub stuck: u64,
    /// Transactions of this key held back now because fees are above the cap.
    pub fee_cap_hits: u64,
}

/// `GET /v1/relayer`: the relayer's keys. Only the operator sees it; anyone else gets 404.
#[utoipa::path(
    get,
    path = "/v1/relayer",
    operation_id = "relayer_overview",
    tag = "console",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The relayer's keys", body = RelayerOverview),
        (status = 404, description = "The caller is not the operator", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn overview(
    State(state): State<AppState>,
    OperatorAuth(_): OperatorAuth,
) -> ApiResult<Json<RelayerOverview>> {
    let stuck_after = state.console.stuck_after_secs;
    let activity =
        console::signer_activity(state.store.reader(), now() - stuck_after as i64).await?;
    let mut signers = Vec::with_capacity(state.relayer_addresses.len());
    for address in &state.relayer_addresses {
        let seen = activity.get(address).cloned().unwrap_or_default();
        let next_nonce = attempts::stored_next_nonce(state.store.reader(), *address).await?;
        let (balance, nonce, error) = match chain_reads(&state, *address).await {
            Ok((balance, nonce)) => (Some(balance), Some(nonce), None),
            Err(error) => (None, None, Some(error)),
        };
        signers.push(RelayerSigner {
            address: address.to_string(),
            balance_wei: balance,
            chain_nonce: nonce,
            chain_error: error,
            next_nonce,
            in_flight: seen.in_flight,
            stuck: seen.stuck,
            fee_cap_hits: seen.waiting_for_fees,
        });
    }
    Ok(Json(RelayerOverview {
        signers,
        jobs_waiting_for_fees: console::jobs_waiting_for_fees(state.store.reader()).await?,
        stuck_after_secs: stuck_after,
    }))
}

/// The key's balance (wei, decimal) and pending nonce, or why they could not be read.
async fn chain_reads(state: &AppState, address: Address) -> Result<(String, u64), String> {
    let provider = &state.chain.provider;
    let reads = async {
        let balance = provider.get_balance(address).await?;
        let nonce = provider.get_transaction_count(address).pending().await?;
        Ok::<_, alloy::transports::TransportError>((balance.to_string(), nonce))
    };
    match tokio::time::timeout(CHAIN_READ_TIMEOUT, reads).await {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(error)) => Err(format!("the chain could not be read: {error}")),
        Err(_) => Err(format!("the chain did not answer in {} s", CHAIN_READ_TIMEOUT.as_secs())),
    }
}
