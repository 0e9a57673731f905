//! Owner and operator views behind the operator console (`GET /console`): every agreement of
//! the account with its timeline, the relayer's keys, the numbers behind the charts, and the
//! console's own settings. Each is an ordinary API route, usable without the console.

pub mod agreements;
pub mod relayer;
pub mod stats;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::OwnerAuth;
use super::error::ApiResult;

/// `GET /v1/console/config`: what the console needs to know about this deployment.
#[utoipa::path(
    get,
    path = "/v1/console/config",
    operation_id = "console_config",
    tag = "console",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The console's settings for this caller", body = ConsoleConfig),
        (status = 401, description = "No valid owner credential", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn config(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
) -> ApiResult<Json<ConsoleConfig>> {
    Ok(Json(ConsoleConfig {
        account_id: account.id.to_string(),
        chain_id: state.chain.chain_id,
        escrow_address: state.chain.escrow.to_string(),
        explorer_url: state.console.explorer().map(str::to_owned),
        operator: state.operator_account.as_ref() == Some(&account.id),
    }))
}

/// The console's settings, as one owner sees them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The caller's account.
    pub account_id: String,
    /// The chain's id.
    pub chain_id: u64,
    /// The escrow contract.
    pub escrow_address: String,
    /// The chain explorer's base URL (append `/tx/<hash>` or `/address/<address>`); `null`
    /// when none is configured.
    #[schema(required = true)]
    pub explorer_url: Option<String>,
    /// Whether the caller is the operator (sees the relayer and go/no-go pages).
    pub operator: bool,
}
