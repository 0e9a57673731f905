//! Agents and their API keys, under the owner credential of an account: create, list, read,
//! revoke (`DELETE`, irreversible) and rotate the key (`POST …/regenerate-key`). An agent of
//! another account answers 404 on every route.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::OwnerAuth;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath, OptionalApiJson};
use super::idempotency::Write;
use super::page;
use super::time::rfc3339;
use super::validate::{prose, text};
use crate::agreement::ids::SecretKey;
use crate::store::agents::{self, Account, Agent};
use crate::store::now;

/// The body of `POST /v1/agents`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "search-buyer", "description": "Buys search API calls", "capabilities": ["usage"]}))]
pub struct CreateAgent {
    /// A display name, 1–100 characters.
    pub name: String,
    /// What the agent does, up to 1,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Capability tags, up to 32 of 1–64 characters each.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl CreateAgent {
    fn validate(&self) -> ApiResult<()> {
        text("name", &self.name, 100)?;
        if let Some(description) = &self.description {
            prose("description", description, 1_000)?;
        }
        if self.capabilities.len() > 32 {
            return Err(ApiError::validation("capabilities", "at most 32 `capabilities`"));
        }
        for capability in &self.capabilities {
            text("capabilities", capability, 64)?;
        }
        Ok(())
    }
}

/// An agent as the API shows it (never with its key, which only creation reveals).
pub fn agent_json(agent: &Agent) -> Value {
    json!({
        "id": agent.id,
        "account_id": agent.account_id,
        "name": agent.name,
        "description": agent.description,
        "capabilities": agent.capabilities,
        "status": agent.status,
        "api_key_hint": agent.api_key_hint,
        "created_at": rfc3339(agent.created_at),
        "updated_at": rfc3339(agent.updated_at),
        "revoked_at": agent.revoked_at.map(rfc3339),
    })
}

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
        (status = 201, description = "The agent, with its API key shown this once", body = crate::api::schema::AgentCreated),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    Write(ApiJson(body), idempotency): Write<ApiJson<CreateAgent>>,
) -> ApiResult<Response> {
    body.validate()?;
    let (agent, key) = agents::new_agent(
        account.id,
        &body.name,
        body.description,
        body.capabilities,
        state.environment,
        now(),
    );
    let mut stored = agent_json(&agent);
    stored["api_key"] = Value::Null;
    let mut tx = state.store.begin().await?;
    agents::insert_agent(&mut tx, &agent, &key.hash()).await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &stored).await?;
    tx.commit().await?;
    tracing::info!(agent_id = %agent.id, account_id = %agent.account_id, "agent created");
    let mut revealed = agent_json(&agent);
    revealed["api_key"] = Value::from(key.reveal());
    Ok((StatusCode::CREATED, Json(revealed)).into_response())
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
        (status = 200, description = "The agent", body = crate::api::schema::Agent),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
) -> ApiResult<Json<Value>> {
    Ok(Json(agent_json(&own_agent(&state, &account, &agent_id).await?)))
}

/// The agent `id` if it belongs to `account`; 404 otherwise, so other accounts' ids cannot be
/// probed.
async fn own_agent(state: &AppState, account: &Account, id: &str) -> ApiResult<Agent> {
    agents::get_agent(state.store.reader(), id)
        .await?
        .filter(|agent| agent.account_id == account.id)
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// 409 `agent_revoked`: the agent is revoked, which is final.
pub(crate) fn revoked_conflict() -> ApiError {
    ApiError::new(ErrorCode::AgentRevoked, "this agent is revoked; revocation is final")
        .with_details(json!({ "status": agents::REVOKED }))
}

/// `?limit=&cursor=&status=` of `GET /v1/agents`.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentPage {
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `active` or `revoked`: only agents in that status.
    pub status: Option<String>,
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
        ("status" = Option<String>, Query, description = "`active` or `revoked`"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of the account's agents, newest first", body = crate::api::schema::AgentList),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    page: Result<Query<AgentPage>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(page) =
        page.map_err(|e| ApiError::validation("query", format!("bad query string: {e}")))?;
    let limit = page::limit(page.limit)?;
    if let Some(status) = page.status.as_deref()
        && status != agents::ACTIVE
        && status != agents::REVOKED
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
    Ok(Json(json!({
        "data": found.iter().map(agent_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

/// The (empty) body of `DELETE /v1/agents/{id}` and `POST …/regenerate-key`; a body, if sent,
/// must be an empty object.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

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
        (status = 200, description = "The revoked agent", body = crate::api::schema::Agent),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(OptionalApiJson(_), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Response> {
    let agent = own_agent(&state, &account, &agent_id).await?;
    let mut tx = state.store.begin().await?;
    let revocation = agents::revoke(&mut tx, &agent.id, now()).await?;
    let revoked = agents::get_agent_in(&mut tx, agent.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("revoked agent vanished"))?;
    let response = agent_json(&revoked);
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    if revocation.revoked {
        tracing::info!(
            agent_id = %agent.id,
            cancelled = revocation.cancelled.len(),
            refused_jobs = revocation.refused_jobs.len(),
            "agent revoked"
        );
    }
    Ok(Json(response).into_response())
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
        (status = 200, description = "The agent with its new API key, shown this once", body = crate::api::schema::AgentCreated),
    ),
)]
pub async fn regenerate_key(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(OptionalApiJson(_), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Response> {
    let agent = own_agent(&state, &account, &agent_id).await?;
    let key = SecretKey::generate("pk", state.environment);
    let mut tx = state.store.begin().await?;
    if !agents::rotate_key(&mut tx, &agent.id, &key.hash(), &key.hint(), now()).await? {
        return Err(revoked_conflict());
    }
    let rotated = agents::get_agent_in(&mut tx, agent.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("rotated agent vanished"))?;
    let mut stored = agent_json(&rotated);
    stored["api_key"] = Value::Null;
    idempotency.save(&mut tx, StatusCode::OK, &stored).await?;
    tx.commit().await?;
    tracing::info!(agent_id = %agent.id, "agent API key rotated");
    let mut revealed = agent_json(&rotated);
    revealed["api_key"] = Value::from(key.reveal());
    Ok(Json(revealed).into_response())
}
