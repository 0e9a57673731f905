//! The per-agent circuit breaker: `POST /agents/{agent_id}/circuit-break {"halted", "reason"}`.
//! Explicit, not a toggle: the body says the state wanted, and asking for the state the agent
//! is already in changes nothing and records nothing. While halted, every spending entry point
//! answers 403 `agent_halted` and checks answer `block`; settlement and reads go on. Halting
//! also revokes the agent's mandates (reason `agent_halted`); resuming does not restore them.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::AppState;
use crate::api::agents::AgentView;
use crate::api::auth::{OwnerAuth, owned_agent, revoked_conflict};
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::idempotency::Write;
use crate::store::agents::{self, AgentStatus};
use crate::store::governance as rows;
use crate::store::governance::audit::{self, Actor, AuditDecision, AuditEntry, AuditKind};
use crate::store::now;
use crate::store::outbox::{self, EventType};

/// The revoke reason of the mandates a halt revokes.
const AGENT_HALTED: &str = "agent_halted";

/// The body of `POST /agents/{agent_id}/circuit-break`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"halted": true, "reason": "spending looks wrong; investigating"}))]
pub struct CircuitBreak {
    /// `true` halts the agent's spending, `false` resumes it.
    pub halted: bool,
    /// Why (kept with the halt and in the audit log; at most 1,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /agents/{agent_id}/circuit-break`: halts or resumes the agent; answers the agent.
#[utoipa::path(
    post,
    path = "/agents/{agent_id}/circuit-break",
    operation_id = "circuit_break",
    tag = "governance",
    params(("agent_id" = String, Path, description = "An agent of the caller's account")),
    request_body = CircuitBreak,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agent, halted or not as asked", body = AgentView),
        (status = 409, description = "`agent_revoked`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn circuit_break(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<CircuitBreak>>,
) -> ApiResult<Json<AgentView>> {
    let agent = owned_agent(&state, &account, &agent_id).await?;
    if agent.status == AgentStatus::Revoked {
        return Err(revoked_conflict());
    }
    let reason = body.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 1_000) {
        return Err(ApiError::validation("reason", "`reason` must be at most 1,000 characters"));
    }
    let at = now();
    let mut tx = state.store.begin().await?;
    if agents::set_halted(&mut tx, &agent.id, body.halted, reason.as_deref(), at).await? {
        let (decision, event) = if body.halted {
            (AuditDecision::Halted, EventType::AgentHalted)
        } else {
            (AuditDecision::Resumed, EventType::AgentResumed)
        };
        let mut entry = AuditEntry::new(
            account.id.as_str(),
            Some(agent.id.as_str()),
            AuditKind::Halt,
            decision,
            Actor::Owner,
            at,
        );
        entry.subject_id = Some(agent.id.to_string());
        entry.detail = json!({ "reason": reason });
        audit::append(&mut tx, &entry).await?;
        let data = json!({ "halted": body.halted, "reason": reason });
        outbox::record_for_agent(&mut tx, agent.id.as_str(), event, &data, at).await?;
        if body.halted {
            // A halted agent holds nothing: its holds and leases are given back at once.
            crate::store::governance::guard::stop_agent(
                &mut tx,
                agent.id.as_str(),
                AGENT_HALTED,
                Actor::Owner,
                at,
            )
            .await?;
            // A halt revokes the agent's mandates for good; resuming grants none back.
            rows::revoke_mandates_of_agent(
                &mut tx,
                agent.id.as_str(),
                AGENT_HALTED,
                Actor::Owner,
                at,
            )
            .await?;
        }
        tracing::info!(agent_id = %agent.id, halted = body.halted, "agent circuit breaker set");
    }
    let current = agents::get_agent_in(&mut tx, agent.id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let view = AgentView::from(&current);
    idempotency.save(&mut tx, axum::http::StatusCode::OK, &view).await?;
    tx.commit().await?;
    state.credentials_seen.forget();
    Ok(Json(view))
}
