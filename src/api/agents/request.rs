//! What the agent routes accept: the creation and self-registration bodies, the claim, the list
//! query and the empty body of the revoke and rotate writes.

use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ApiResult};
use crate::api::validate::{prose, text};
use crate::vocab::string_enum;

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

/// The body of `POST /agents/register`, all of it optional: an agent naming itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "search-buyer", "description": "Buys search API calls", "capabilities": ["usage"]}))]
pub struct RegisterAgent {
    /// A display name, 1–100 characters (default `self-registered agent`).
    #[serde(default)]
    pub name: Option<String>,
    /// What the agent does, up to 1,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Capability tags, up to 32 of 1–64 characters each.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// The name of a self-registered agent that gave none.
const DEFAULT_REGISTERED_NAME: &str = "self-registered agent";

impl RegisterAgent {
    /// The agent it describes, checked as [`CreateAgent`] is, naming the first bad field.
    pub(super) fn validated(self) -> ApiResult<CreateAgent> {
        let agent = CreateAgent {
            name: self.name.unwrap_or_else(|| DEFAULT_REGISTERED_NAME.to_owned()),
            description: self.description,
            capabilities: self.capabilities,
        };
        agent.validate()?;
        Ok(agent)
    }
}

/// The body of `POST /agents/claim`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"claim_code": "claim_test_9b1f…"}))]
pub struct ClaimAgent {
    /// The claim code the agent's registration answered with.
    #[schema(min_length = 1, max_length = 200)]
    pub claim_code: String,
}

impl ClaimAgent {
    /// Checks the code's form (not whether it exists).
    pub(super) fn validate(&self) -> ApiResult<()> {
        let code = self.claim_code.trim();
        if code.is_empty() || code.len() > 200 {
            return Err(ApiError::validation(
                "claim_code",
                "`claim_code` must be 1–200 characters",
            ));
        }
        Ok(())
    }
}

string_enum!(
    /// The statuses `GET /v1/agents` filters on: an account's agents are active or revoked
    /// (an unclaimed agent belongs to no account until its owner claims it).
    ListedStatus {
        /// Working agents.
        Active = "active",
        /// Revoked agents.
        Revoked = "revoked",
    }
);
