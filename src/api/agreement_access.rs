//! Loading an agreement for one of its parties: every agreement-side resource starts here.

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::store::agents::Agent;
use crate::store::agreements::{self, AgreementRecord};

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
