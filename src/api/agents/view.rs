//! What the agent routes answer: an agent (never with its key) and, at creation and rotation,
//! the agent with its key revealed once.

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::time::rfc3339;
use crate::store::agents::{Agent, AgentStatus};

/// An agent as the API shows it (`GET /v1/agents/{agent_id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "agt_4f3c2a1b9e8d7c6b5a493827", "account_id": "acct_1a2b3c4d5e6f7a8b9c0d1e2f", "name": "search-buyer", "description": "Buys search API calls", "capabilities": ["usage"], "status": "active", "api_key_hint": "pk_test_…9f2c", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "revoked_at": null, "halted": false, "halt_reason": null, "halted_at": null}))]
#[schema(as = Agent)]
pub struct AgentView {
    /// Its id.
    #[schema(pattern = "^agt_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The account it belongs to.
    #[schema(pattern = "^acct_[0-9A-Za-z_]+$")]
    pub account_id: String,
    /// A display name.
    pub name: String,
    /// What the agent does.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Capability tags.
    pub capabilities: Vec<String>,
    /// Whether it may act.
    pub status: AgentStatus,
    /// The API key's prefix and last characters, for recognising it.
    pub api_key_hint: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339; `null` unless revoked.
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    /// Whether its owner halted its spending (`POST /agents/{agent_id}/circuit-break`).
    pub halted: bool,
    /// The owner's reason for the halt; `null` unless halted.
    #[schema(required = true)]
    pub halt_reason: Option<String>,
    /// RFC 3339; `null` unless halted.
    #[schema(required = true)]
    pub halted_at: Option<String>,
}

impl From<&Agent> for AgentView {
    fn from(agent: &Agent) -> Self {
        AgentView {
            id: agent.id.to_string(),
            account_id: agent.account_id.to_string(),
            name: agent.name.clone(),
            description: agent.description.clone(),
            capabilities: agent.capabilities.clone(),
            status: agent.status,
            api_key_hint: agent.api_key_hint.clone(),
            created_at: rfc3339(agent.created_at),
            updated_at: rfc3339(agent.updated_at),
            revoked_at: agent.revoked_at.map(rfc3339),
            halted: agent.halted,
            halt_reason: agent.halt_reason.clone(),
            halted_at: agent.halted_at.map(rfc3339),
        }
    }
}

/// `POST /v1/agents` and `POST …/regenerate-key`: the agent with its API key, shown this once
/// (`null` on an idempotent replay, since only the key's hash is kept).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "agt_4f3c2a1b9e8d7c6b5a493827", "account_id": "acct_1a2b3c4d5e6f7a8b9c0d1e2f", "name": "search-buyer", "description": null, "capabilities": ["usage"], "status": "active", "api_key_hint": "pk_test_…9f2c", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "revoked_at": null, "api_key": "pk_test_5b1d…9f2c"}))]
#[schema(as = AgentCreated)]
pub struct AgentWithKey {
    /// Its id.
    #[schema(pattern = "^agt_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The account it belongs to.
    #[schema(pattern = "^acct_[0-9A-Za-z_]+$")]
    pub account_id: String,
    /// A display name.
    pub name: String,
    /// What the agent does.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Capability tags.
    pub capabilities: Vec<String>,
    /// Whether it may act.
    pub status: AgentStatus,
    /// The API key's prefix and last characters.
    pub api_key_hint: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339; `null` unless revoked.
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    /// The API key; `null` on an idempotent replay.
    #[schema(required = true)]
    pub api_key: Option<String>,
}

impl AgentWithKey {
    /// `agent` with `api_key` (`None` for the copy the idempotency store keeps).
    pub fn new(agent: &Agent, api_key: Option<String>) -> Self {
        let view = AgentView::from(agent);
        AgentWithKey {
            id: view.id,
            account_id: view.account_id,
            name: view.name,
            description: view.description,
            capabilities: view.capabilities,
            status: view.status,
            api_key_hint: view.api_key_hint,
            created_at: view.created_at,
            updated_at: view.updated_at,
            revoked_at: view.revoked_at,
            api_key,
        }
    }
}

/// `GET /v1/agents`: a page of the account's agents, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentList {
    /// The agents.
    pub data: Vec<AgentView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `POST /agents/register`: the unclaimed agent, with its API key and its one-time claim code,
/// each shown this once (only their hashes are kept).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent_id": "agt_4f3c2a1b9e8d7c6b5a493827", "name": "search-buyer", "description": null, "capabilities": [], "status": "unclaimed", "api_key": "pk_test_5b1d…9f2c", "api_key_hint": "pk_test_…9f2c", "claim_code": "claim_test_9b1f…03ad", "claim_url": null, "claim_expires_at": "2026-01-02T00:00:00Z", "created_at": "2026-01-01T00:00:00Z"}))]
pub struct AgentRegistration {
    /// The agent's id.
    #[schema(pattern = "^agt_[0-9A-Za-z_]+$")]
    pub agent_id: String,
    /// A display name.
    pub name: String,
    /// What the agent does.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Capability tags.
    pub capabilities: Vec<String>,
    /// `unclaimed` until an owner claims it.
    pub status: AgentStatus,
    /// The agent's API key (`pk_test_…`): it authenticates at once, but spends nothing until
    /// the agent is claimed.
    pub api_key: String,
    /// The API key's prefix and last characters.
    pub api_key_hint: String,
    /// The one-time code an owner claims the agent with (`POST /agents/claim`).
    pub claim_code: String,
    /// The operator's claim page for this code; `null` when none is configured.
    #[schema(required = true, format = "uri")]
    pub claim_url: Option<String>,
    /// RFC 3339: after this the code can no longer be claimed.
    pub claim_expires_at: String,
    /// RFC 3339.
    pub created_at: String,
}
