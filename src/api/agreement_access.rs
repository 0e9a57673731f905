//! Loading an agreement for one of its parties: every agreement-side resource starts here.

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::store::agents::Agent;
use crate::store::agreements::{self, AgreementRecord};

/// [`load_for`] from the read model: as new as the store for everything this instance wrote, and
/// at most a second behind another instance's writes ([`super::read_model`]). For routes that
/// only read (escrow status); a route that decides a write on what it reads uses [`load_for`].
pub(crate) async fn load_kept_for(
    state: &AppState,
    agent: &Agent,
    id: &str,
) -> ApiResult<std::sync::Arc<AgreementRecord>> {
    state
        .read_model
        .agreement(&state.store, id)
        .await?
        .filter(|record| record.is_party(&agent.id))
        .ok_or_else(|| ApiError::not_found("agreement"))
}

/// The agreement `id` if `agent` is party to it; 404 otherwise (never revealing that an
/// agreement of someone else exists).
pub(crate) async fn load_for(
    state: &AppState,
    agent: &Agent,
    id: &str,
) -> ApiResult<AgreementRecord> {
    agreements::get(state.store.reader(), id)
        .await?
        .filter(|record| record.is_party(&agent.id))
        .ok_or_else(|| ApiError::not_found("agreement"))
}
