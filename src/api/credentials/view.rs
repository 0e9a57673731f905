//! The body `POST /v1/agents/{agent_id}/execution-tokens` takes and the token it answers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Action;
use crate::api::time::rfc3339;
use crate::store::tokens::ExecutionToken;

/// The body of `POST /v1/agents/{agent_id}/execution-tokens`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    /// The one write the token allows.
    #[schema(value_type = Action)]
    pub action: String,
    /// The agreement id it may act on; the seller agent id for `propose`; the counterparty
    /// for `reserve`.
    #[schema(min_length = 1, max_length = 64)]
    pub audience: String,
    /// A mandate of this agent (active, not expired) that the token spends under; when that
    /// mandate is revoked or expires, the token is refused.
    #[serde(default)]
    #[schema(pattern = "^mdt_[0-9A-Za-z_]+$")]
    pub mandate_id: Option<String>,
    /// Lifetime in seconds, 1 to 900; default 300.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 900)]
    pub ttl_seconds: Option<u64>,
}

/// An execution token, with its secret shown once at minting (`null` on a replay).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ExecutionToken)]
pub struct ExecutionTokenView {
    /// Its id.
    #[schema(pattern = "^xtok_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The agent it acts as.
    #[schema(pattern = "^agt_[0-9A-Za-z_]+$")]
    pub agent_id: String,
    /// The one write it allows.
    #[schema(value_type = Action)]
    pub action: String,
    /// The agreement (or seller agent, or counterparty) it may act on.
    pub audience: String,
    /// The mandate it spends under.
    #[schema(required = true)]
    pub mandate_id: Option<String>,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339.
    pub created_at: String,
    /// The token; `null` on an idempotent replay.
    #[schema(required = true)]
    pub token: Option<String>,
}

impl ExecutionTokenView {
    /// `token` as the API shows it, with its secret (`None` for the stored copy).
    pub fn new(token: &ExecutionToken, secret: Option<String>) -> Self {
        ExecutionTokenView {
            id: token.id.to_string(),
            agent_id: token.agent_id.to_string(),
            action: token.action.clone(),
            audience: token.audience.clone(),
            mandate_id: token.mandate_id.as_ref().map(ToString::to_string),
            expires_at: rfc3339(token.expires_at),
            created_at: rfc3339(token.created_at),
            token: secret,
        }
    }
}
