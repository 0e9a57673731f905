//! What the agent routes accept: the creation body, the list query and the empty body of the
//! revoke and rotate writes.

use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ApiResult};
use crate::api::validate::{prose, text};

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
    /// Checks every field, naming the first bad one.
    pub(super) fn validate(&self) -> ApiResult<()> {
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

/// The (empty) body of `DELETE /v1/agents/{id}` and `POST …/regenerate-key`; a body, if sent,
/// must be an empty object.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}
