//! An agent's policy under its owner: read the version in force or any earlier one, and write
//! a new version (`PUT`, or `POST` as the same create-or-update).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::auth::{OwnerAuth, owned_agent};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, ApiPath, ApiPathPair};
use crate::api::idempotency::Write;
use crate::governance::{Policy, PolicyError};
use crate::store::governance::audit::{self, Actor, AuditDecision, AuditEntry, AuditKind};
use crate::store::governance::{self as rows, policies};
use crate::store::now;
use crate::store::outbox::{self, EventType};

/// A policy document as the owner writes it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"rules": [{"id": "r1", "type": "per_tx_limit", "max_cents": 50000, "description": "No single spend over $500"}, {"id": "r2", "type": "escalation_threshold", "above_cents": 20000, "action_types": ["refund"], "description": "Escalate refunds over $200"}], "duplicate_window_seconds": 300}))]
pub struct PolicyInput {
    /// The rules, each `{id, type, description?, …parameters}` (docs/governance.md lists every
    /// type).
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<Value>,
    /// Seconds within which an identical request is blocked as a duplicate (0 or absent: off).
    #[serde(default)]
    pub duplicate_window_seconds: Option<u64>,
    /// The price list spend-guard estimates read: `{"tokens": {model:
    /// {input_per_million_cents, output_per_million_cents}}, "tools": {tool: cents per call}}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub prices: Option<Value>,
}

/// One version of an agent's policy.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    /// `pol_…`, the same for every version.
    pub id: String,
    /// The agent it governs.
    pub agent_id: String,
    /// This version's number (1, 2, …).
    pub version: u64,
    /// The rules, as validated.
    #[schema(value_type = Vec<Object>)]
    pub rules: Value,
    /// The duplicate guard's window in seconds (0: off).
    pub duplicate_window_seconds: u64,
    /// The price list (`tokens`, `tools`).
    #[schema(value_type = Object)]
    pub prices: Value,
    /// When this version was written (UTC, RFC 3339).
    pub updated_at: String,
}

impl From<&policies::PolicyVersion> for PolicyView {
    fn from(stored: &policies::PolicyVersion) -> Self {
        PolicyView {
            id: stored.policy_id.to_string(),
            agent_id: stored.agent_id.clone(),
            version: stored.version,
            rules: stored.document.get("rules").cloned().unwrap_or_else(|| json!([])),
            duplicate_window_seconds: stored
                .document
                .get("duplicate_window_seconds")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            prices: stored
                .document
                .get("prices")
                .cloned()
                .unwrap_or_else(|| json!({"tokens": {}, "tools": {}})),
            updated_at: crate::time::rfc3339(stored.created_at),
        }
    }
}

/// 422 `invalid_policy` naming the rule and field at fault.
fn invalid_policy(error: PolicyError) -> ApiError {
    ApiError::new(ErrorCode::InvalidPolicy, error.message.clone()).with_details(json!({
        "rule_id": error.rule_id,
        "index": error.index,
        "field": error.field,
    }))
}

fn no_policy() -> ApiError {
    ApiError::new(ErrorCode::PolicyNotFound, "this agent has no policy yet")
}

/// `GET /agents/{agent_id}/policies`: the version in force.
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/policies",
    operation_id = "get_policy",
    tag = "governance",
    params(("agent_id" = String, Path, description = "An agent of the caller's account")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The policy in force", body = PolicyView),
        (status = 404, description = "No such agent, or `policy_not_found`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
) -> ApiResult<Json<PolicyView>> {
    owned_agent(&state, &account, &agent_id).await?;
    let stored = policies::current_read(state.store.reader(), &agent_id).await?;
    stored.as_ref().map(|p| Json(PolicyView::from(p))).ok_or_else(no_policy)
}

/// `GET /agents/{agent_id}/policies/versions/{version}`: an earlier (or the current) version.
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/policies/versions/{version}",
    operation_id = "get_policy_version",
    tag = "governance",
    params(
        ("agent_id" = String, Path, description = "An agent of the caller's account"),
        ("version" = u64, Path, description = "The version number"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "That version", body = PolicyView),
        (status = 404, description = "No such agent or version", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn version(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, version): ApiPathPair,
) -> ApiResult<Json<PolicyView>> {
    owned_agent(&state, &account, &agent_id).await?;
    let number: u64 = version.parse().map_err(|_| ApiError::not_found("policy version"))?;
    let stored = policies::version(state.store.reader(), &agent_id, number).await?;
    stored
        .as_ref()
        .map(|p| Json(PolicyView::from(p)))
        .ok_or_else(|| ApiError::not_found("policy version"))
}

/// `PUT /agents/{agent_id}/policies` (and `POST`, the same): validates the document and writes
/// it as the next version, in force at once. `201` for the first version, `200` after.
#[utoipa::path(
    put,
    path = "/agents/{agent_id}/policies",
    operation_id = "put_policy",
    tag = "governance",
    params(("agent_id" = String, Path, description = "An agent of the caller's account")),
    request_body = PolicyInput,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new version", body = PolicyView),
        (status = 201, description = "The first version", body = PolicyView),
        (status = 422, description = "`invalid_policy`, naming the rule", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn put(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<Value>>,
) -> ApiResult<(StatusCode, Json<PolicyView>)> {
    let agent = owned_agent(&state, &account, &agent_id).await?;
    let policy = Policy::parse(&body).map_err(invalid_policy)?;
    let document = serde_json::to_value(&policy).map_err(ApiError::internal)?;
    let at = now();
    let mut tx = state.store.begin().await?;
    rows::lock_agent(&mut tx, agent.id.as_str()).await?;
    let stored = policies::write_next(&mut tx, agent.id.as_str(), &document, at).await?;
    let mut entry = AuditEntry::new(
        account.id.as_str(),
        Some(agent.id.as_str()),
        AuditKind::Policy,
        AuditDecision::Updated,
        Actor::Owner,
        at,
    );
    entry.subject_id = Some(stored.policy_id.to_string());
    entry.policy_version = Some(stored.version);
    entry.detail = json!({ "rules": policy.rules.len() });
    audit::append(&mut tx, &entry).await?;
    let data = json!({ "policy_id": stored.policy_id, "version": stored.version });
    outbox::record_for_agent(&mut tx, agent.id.as_str(), EventType::PolicyUpdated, &data, at)
        .await?;
    let status = if stored.version == 1 { StatusCode::CREATED } else { StatusCode::OK };
    let view = PolicyView::from(&stored);
    idempotency.save(&mut tx, status, &view).await?;
    tx.commit().await?;
    tracing::info!(agent_id = %agent.id, version = stored.version, "policy written");
    Ok((status, Json(view)))
}

/// `POST /agents/{agent_id}/policies`: the same create-or-update as `PUT`.
#[utoipa::path(
    post,
    path = "/agents/{agent_id}/policies",
    operation_id = "post_policy",
    tag = "governance",
    params(("agent_id" = String, Path, description = "An agent of the caller's account")),
    request_body = PolicyInput,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new version", body = PolicyView),
        (status = 201, description = "The first version", body = PolicyView),
        (status = 422, description = "`invalid_policy`, naming the rule", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn post(
    state: State<AppState>,
    owner: OwnerAuth,
    path: ApiPath,
    write: Write<ApiJson<Value>>,
) -> ApiResult<(StatusCode, Json<PolicyView>)> {
    put(state, owner, path, write).await
}
