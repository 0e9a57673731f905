//! Agents and their API keys, under the owner credential of an account: create, list, read,
//! revoke (`DELETE`, irreversible) and rotate the key (`POST …/regenerate-key`, also at seed
//! 004's `/agents/{agent_id}/regenerate-key`). An agent of another account answers 404 on every
//! route. Agents that register themselves, and their claim, are in [`registration`].

pub mod registration;
mod request;
mod view;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

pub use crate::store::agents::AgentStatus;
pub use request::{AgentPage, ClaimAgent, CreateAgent, ListedStatus, NoFields, RegisterAgent};
pub use view::{AgentList, AgentRegistration, AgentView, AgentWithKey};

use super::AppState;
use super::auth::{OwnerAuth, revoked_conflict};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalApiJson};
use super::idempotency::Write;
use super::page;
use crate::agreement::ids::SecretKey;
use crate::store::agents::{self, Account, Agent};
use crate::store::now;

/// Creates an agent for the caller's account and reveals its API key, once.
///
/// A retry with the same `Idempotency-Key` answers with the same agent but without the key:
/// the key is stored only as a hash, so nothing can show it again.
#[utoipa::path(
    post,
    path = "/v1/agents",
    operation_id = "create_agent",
    tag = "agents",
    request_body = CreateAgent,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The agent, with its API key shown this once", body = AgentWithKey),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    Write(ApiJson(body), idempotency): Write<ApiJson<CreateAgent>>,
) -> ApiResult<(StatusCode, Json<AgentWithKey>)> {
    body.validate()?;
    let (agent, key) = agents::new_agent(
        account.id,
        &body.name,
        body.description,
        body.capabilities,
        state.environment,
        now(),
    );
    let mut tx = state.store.begin().await?;
    agents::insert_agent(&mut tx, &agent, &key.hash()).await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &AgentWithKey::new(&agent, None)).await?;
    tx.commit().await?;
    tracing::info!(agent_id = %agent.id, account_id = %agent.account_id, "agent created");
    Ok((StatusCode::CREATED, Json(AgentWithKey::new(&agent, Some(key.reveal().to_owned())))))
}

/// One agent of the caller's account; agents of other accounts answer 404.
#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}",
    operation_id = "get_agent",
    tag = "agents",
    params(
        ("agent_id" = String, Path, description = "The agent"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agent", body = AgentView),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(AgentView::from(&own_agent(&state, &account, &agent_id).await?)))
}

/// The agent `id` if it belongs to `account`; 404 otherwise, so other accounts' ids cannot be
/// probed.
async fn own_agent(state: &AppState, account: &Account, id: &str) -> ApiResult<Agent> {
    agents::get_agent(state.store.reader(), id)
        .await?
        .filter(|agent| agent.account_id == account.id)
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// `GET /v1/agents`: the caller's agents, newest first, `limit` per page with an opaque
/// `next_cursor` (set only while more remain).
#[utoipa::path(
    get,
    path = "/v1/agents",
    operation_id = "list_agents",
    tag = "agents",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("status" = Option<ListedStatus>, Query, description = "Only agents in this status"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of the account's agents, newest first", body = AgentList),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiQuery(page): ApiQuery<AgentPage>,
) -> ApiResult<Json<AgentList>> {
    let limit = page::limit(page.limit)?;
    if let Some(status) = page.status.as_deref()
        && ListedStatus::parse(status).is_none()
    {
        return Err(ApiError::validation("status", "`status` must be `active` or `revoked`"));
    }
    let cursor = page.cursor.as_deref().map(page::decode_cursor).transpose()?;
    // One row more than the page tells whether another page exists.
    let mut found = agents::list_agents(
        state.store.reader(),
        &account.id,
        page.status.as_deref(),
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut found, limit, |a| page::cursor_of(a.created_at, a.id.as_str()));
    Ok(Json(AgentList { data: found.iter().map(AgentView::from).collect(), next_cursor }))
}

/// `DELETE /v1/agents/{id}`: revokes the agent, at once and for good, and refuses its queued
/// work (see [`agents::revoke`]). Revoking a revoked agent answers the agent as it is.
#[utoipa::path(
    delete,
    path = "/v1/agents/{agent_id}",
    operation_id = "revoke_agent",
    tag = "agents",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
    ),
    request_body = Option<NoFields>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The revoked agent", body = AgentView),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(OptionalApiJson(_), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Json<AgentView>> {
    let agent = own_agent(&state, &account, &agent_id).await?;
    let mut tx = state.store.begin().await?;
    let revocation = agents::revoke(&mut tx, &agent.id, now()).await?;
    let revoked = agents::get_agent_in(&mut tx, agent.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("revoked agent vanished"))?;
    let response = AgentView::from(&revoked);
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    state.credentials_seen.forget();
    if revocation.revoked {
        tracing::info!(
            agent_id = %agent.id,
            cancelled = revocation.cancelled.len(),
            refused_jobs = revocation.refused_jobs.len(),
            "agent revoked"
        );
    }
    Ok(Json(response))
}

/// `POST /v1/agents/{id}/regenerate-key`: a new API key, revealed once; the old key stops
/// working when this answers. A revoked agent answers 409 `agent_revoked`.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/regenerate-key",
    operation_id = "regenerate_agent_key",
    tag = "agents",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
    ),
    request_body = Option<NoFields>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agent with its new API key, shown this once", body = AgentWithKey),
    ),
)]
pub async fn regenerate_key(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(OptionalApiJson(_), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Json<AgentWithKey>> {
    let agent = own_agent(&state, &account, &agent_id).await?;
    let key = SecretKey::generate("pk", state.environment);
    let mut tx = state.store.begin().await?;
    if !agents::rotate_key(&mut tx, &agent.id, &key.hash(), &key.hint(), now()).await? {
        return Err(revoked_conflict());
    }
    let rotated = agents::get_agent_in(&mut tx, agent.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("rotated agent vanished"))?;
    idempotency.save(&mut tx, StatusCode::OK, &AgentWithKey::new(&rotated, None)).await?;
    tx.commit().await?;
    state.credentials_seen.forget();
    tracing::info!(agent_id = %agent.id, "agent API key rotated");
    Ok(Json(AgentWithKey::new(&rotated, Some(key.reveal().to_owned()))))
}

/// `POST /agents/{id}/regenerate-key`: seed 004's path of
/// [`POST /v1/agents/{id}/regenerate-key`](regenerate_key), the same operation.
#[utoipa::path(
    post,
    path = "/agents/{agent_id}/regenerate-key",
    operation_id = "regenerate_agent_key_seed_path",
    tag = "agents",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
    ),
    request_body = Option<NoFields>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agent with its new API key, shown this once", body = AgentWithKey),
    ),
)]
pub async fn regenerate_key_at_seed_path(
    state: State<AppState>,
    owner: OwnerAuth,
    agent_id: ApiPath,
    write: Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Json<AgentWithKey>> {
    regenerate_key(state, owner, agent_id, write).await
}
