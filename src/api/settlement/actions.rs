//! The relayed settlement actions of an agreement, and its event history.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::view::{SettlementAction, SettlementActionList};
use crate::api::AppState;
use crate::api::agreement_access::load_for;
use crate::api::agreement_view::AgreementEvent;
use crate::api::auth::AgentAuth;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiPath, ApiPathPair};
use crate::api::time::rfc3339;
use crate::store::outbox;
use crate::store::settlement as store;

/// `GET …/events`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementEventList {
    /// Oldest first.
    pub data: Vec<AgreementEvent>,
}

/// `GET …/settlement-actions`: the agreement's sponsored actions, oldest first.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/settlement-actions",
    operation_id = "list_settlement_actions",
    tag = "settlement",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agreement's sponsored actions, oldest first", body = SettlementActionList),
    ),
)]
pub async fn list_actions(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<SettlementActionList>> {
    let record = load_for(&state, &agent, &id).await?;
    let actions = store::actions_of(state.store.reader(), &record.id).await?;
    let data = actions.iter().map(SettlementAction::try_from).collect::<ApiResult<_>>()?;
    Ok(Json(SettlementActionList { data }))
}

/// `GET …/settlement-actions/{action_id}`.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/settlement-actions/{action_id}",
    operation_id = "get_settlement_action",
    tag = "settlement",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
        ("action_id" = String, Path, description = "The settlement action"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The settlement action", body = SettlementAction),
    ),
)]
pub async fn get_action(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPathPair(id, action_id): ApiPathPair,
) -> ApiResult<Json<SettlementAction>> {
    let record = load_for(&state, &agent, &id).await?;
    let action = store::get_action(state.store.reader(), &record.id, &action_id)
        .await?
        .ok_or_else(|| ApiError::not_found("settlement action"))?;
    Ok(Json(SettlementAction::try_from(&action)?))
}

/// `GET …/events`: the agreement's status changes from the outbox, oldest first.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/events",
    operation_id = "agreement_events",
    tag = "agreements",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Status changes, oldest first", body = AgreementEventList),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<AgreementEventList>> {
    let record = load_for(&state, &agent, &id).await?;
    let events = outbox::for_agreement(state.store.reader(), &record.id).await?;
    let data = events
        .iter()
        .map(|e| AgreementEvent {
            agreement_id: e.agreement_id.clone().unwrap_or_else(|| record.id.clone()),
            created_at: rfc3339(e.created_at),
            data: e.data.clone(),
            id: e.id.to_string(),
            event_type: e.event_type,
        })
        .collect();
    Ok(Json(AgreementEventList { data }))
}
