//! `POST /v1/agents` and `GET /v1/agents/{id}`: agents and their API keys, under the owner
//! credential of an account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::agreements::{prose, text};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, IdempotencyKey, OwnerAuth};
use super::idempotency::Idempotent;
use super::time::rfc3339;
use crate::store::agents::{self, Agent};
use crate::store::now;

/// The body of `POST /v1/agents`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
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
    })
}

/// Creates an agent for the caller's account and reveals its API key, once.
///
/// A retry with the same `Idempotency-Key` answers with the same agent but without the key:
/// the key is stored only as a hash, so nothing can show it again.
pub async fn create(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    idempotency_key: IdempotencyKey,
    ApiJson(body): ApiJson<CreateAgent>,
) -> ApiResult<Response> {
    body.validate()?;
    let idempotent =
        Idempotent::new(account.id.as_str(), idempotency_key, "POST", "/v1/agents", &body);
    if let Some(replay) = idempotent.replay(&state.store).await? {
        return Ok(replay);
    }
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
    idempotent.save(&mut tx, StatusCode::CREATED, &stored).await?;
    tx.commit().await?;
    tracing::info!(agent_id = %agent.id, account_id = %agent.account_id, "agent created");
    let mut revealed = agent_json(&agent);
    revealed["api_key"] = Value::from(key.reveal());
    Ok((StatusCode::CREATED, Json(revealed)).into_response())
}

/// One agent of the caller's account; agents of other accounts answer 404.
pub async fn get(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
) -> ApiResult<Json<Value>> {
    let agent = agents::get_agent(state.store.reader(), &agent_id)
        .await?
        .filter(|agent| agent.account_id == account.id)
        .ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(Json(agent_json(&agent)))
}
