//! `GET /v1/reconciliation` (owner credential): the agreements of the caller's account, as the
//! store has them, against the chain at the block the watcher can have confirmed last. The same
//! report as `pactum reconcile`, without the deployment-wide checks (docs/reconcile.md).

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::auth::OwnerAuth;
use super::error::{ApiError, ApiResult};
use crate::reconcile::{self, Options, ReadSettings, ReconcileError, Report};

/// `GET /v1/reconciliation`: the account's agreements against the chain.
#[utoipa::path(
    get,
    path = "/v1/reconciliation",
    operation_id = "reconciliation",
    tag = "reconciliation",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The report; `clean` is false when anything differs", body = Report),
        (status = 503, description = "`chain_unavailable`: the chain could not be read", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn reconciliation(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
) -> ApiResult<Json<Report>> {
    let options = Options {
        account: Some(account.id.to_string()),
        at_block: None,
        confirmations: state.confirmations,
        from_block: 0,
        read: ReadSettings::default(),
    };
    match reconcile::run(&state.store, &state.chain, &options).await {
        Ok(report) => Ok(Json(report)),
        Err(ReconcileError::Store(error)) => Err(error.into()),
        Err(error) => Err(ApiError::chain_unavailable(error)),
    }
}
