//! Who is calling: the bearer credential, the agent or owner it authenticates, and the key
//! space ([`Caller`]) that idempotency scopes keys to. Resource modules import these; nothing
//! here imports a resource module.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorCode};
use crate::agreement::ids::{Environment, MandateId, SecretKey};
use crate::store::agents::{self, Account, Agent};
use crate::store::governance::audit::Actor;

/// The key kind of agent API keys: `pk_<environment>_<64 hex>`.
pub const AGENT_KEY_KIND: &str = "pk";

/// The key kind of execution tokens: `xt_<environment>_<64 hex>`.
pub const TOKEN_KIND: &str = "xt";

/// The key space of the authenticated caller, put in the request's extensions by the
/// credential extractors so [`Write`] can scope keys without knowing about credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// What an execution token verified by [`super::credentials::verify`] grants, left in the
/// request's extensions for [`AgentAuth`] and [`TokenMandate`].
#[derive(Debug, Clone)]
pub struct ExecutionGrant {
    /// The agent the token acts as.
    pub agent: Agent,
    /// The mandate it was minted under, active and unexpired when the request was let in.
    pub mandate_id: Option<MandateId>,
}

/// The bearer credential of a request, or 401: `unauthorized` when there is none,
/// `wrong_environment` when its prefix names the other environment than this deployment's
/// (`pk_test_…` on a live deployment, `ok_live_…` on a test one), checked before any lookup.
pub(crate) fn credential(
    headers: &axum::http::HeaderMap,
    environment: Environment,
) -> Result<SecretKey, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing `Authorization` header"))?;
    let key = header
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| SecretKey::from_presented(token.trim()))
        .ok_or_else(|| {
            ApiError::new(ErrorCode::Unauthorized, "expected `Authorization: Bearer <key>`")
        })?;
    if let Some((_, presented)) = key.prefix()
        && presented != environment
    {
        return Err(ApiError::new(
            ErrorCode::WrongEnvironment,
            format!(
                "this is a `{}` credential; this deployment accepts only `{}` credentials",
                presented.as_str(),
                environment.as_str()
            ),
        )
        .with_details(json!({ "environment": environment.as_str() })));
    }
    Ok(key)
}

/// 401 `invalid_credential`: no credential of `kind` matches (unknown, revoked or rotated).
pub(crate) fn invalid_credential(kind: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidCredential, format!("unknown or revoked {kind}"))
}

/// The agent whose API key (or an execution token for this very write) authenticates the
/// request.
#[derive(Debug, Clone)]
pub struct AgentAuth(pub Agent);

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = credential(&parts.headers, state.environment)?;
        let agent = if key.prefix().is_some_and(|(kind, _)| kind == TOKEN_KIND) {
            // Checked in full by the `credentials::verify` route layer, which leaves its agent.
            parts.extensions.get::<ExecutionGrant>().map(|grant| grant.agent.clone()).ok_or_else(
                || {
                    ApiError::new(
                        ErrorCode::ExecutionTokenActionMismatch,
                        "execution tokens act only on the write they were minted for",
                    )
                },
            )?
        } else {
            state
                .credentials_seen
                .agent(state.store.reader(), &key.hash())
                .await?
                .ok_or_else(|| invalid_credential("agent API key"))?
        };
        parts.extensions.insert(Caller(agent.id.to_string()));
        Ok(AgentAuth(agent))
    }
}

/// The mandate the request's execution token was minted under: `Some` only for a request
/// that an execution token minted with `mandate_id` let in (the verify layer checked the
/// mandate was active and unexpired); `None` for an API key or a token without a mandate. A
/// handler that spends takes it beside [`AgentAuth`] and spends within that mandate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMandate(pub Option<MandateId>);

impl<S: Send + Sync> FromRequestParts<S> for TokenMandate {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let grant = parts.extensions.get::<ExecutionGrant>();
        Ok(TokenMandate(grant.and_then(|grant| grant.mandate_id.clone())))
    }
}

/// The account whose owner credential authenticates the request.
#[derive(Debug, Clone)]
pub struct OwnerAuth(pub Account);

impl FromRequestParts<AppState> for OwnerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = credential(&parts.headers, state.environment)?;
        let Some(account) = state.credentials_seen.owner(state.store.reader(), &key.hash()).await?
        else {
            // Owner routes do not exist for agents: a working agent key gets the 404 of an
            // unknown route, so an agent learns nothing of its owner's surface (policies,
            // approvals, audit) from probing it.
            if key.prefix().is_some_and(|(kind, _)| kind == AGENT_KEY_KIND)
                && state.credentials_seen.agent(state.store.reader(), &key.hash()).await?.is_some()
            {
                return Err(ApiError::not_found("route"));
            }
            return Err(invalid_credential("owner credential"));
        };
        parts.extensions.insert(Caller(account.id.to_string()));
        Ok(OwnerAuth(account))
    }
}

/// The operator: an owner whose credential is the one configured with `PACTUM_OWNER_KEY`.
/// Deployment-wide views (the relayer's keys, the go/no-go packet) answer only to it; any other
/// owner, like an agent, gets the 404 of an unknown route.
#[derive(Debug, Clone)]
pub struct OperatorAuth(pub Account);

impl FromRequestParts<AppState> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let OwnerAuth(account) = OwnerAuth::from_request_parts(parts, state).await?;
        if state.operator_account.as_ref() != Some(&account.id) {
            return Err(ApiError::not_found("route"));
        }
        Ok(OperatorAuth(account))
    }
}

/// The agent `agent_id` of `account`, whatever its status; 404 for an agent of another account
/// (or none), so ids of other accounts cannot be probed.
pub(crate) async fn owned_agent(
    state: &AppState,
    account: &Account,
    agent_id: &str,
) -> Result<Agent, ApiError> {
    agents::get_agent(state.store.reader(), agent_id)
        .await?
        .filter(|agent| agent.account_id == account.id)
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// 409 `agent_revoked`: the agent is revoked, which is final. Shared by the agent and
/// execution-token routes, so it lives here rather than in either.
pub(crate) fn revoked_conflict() -> ApiError {
    ApiError::new(ErrorCode::AgentRevoked, "this agent is revoked; revocation is final")
        .with_details(json!({ "status": agents::REVOKED }))
}

/// The caller of a route agents call as themselves and owners for any agent of their account
/// (`/v1/checks`, the spend guard): an agent (by its API key, or an execution token for this
/// very write) or an account owner.
#[derive(Debug, Clone)]
pub enum Checker {
    /// An agent, checking as itself.
    Agent(Agent),
    /// An owner, naming any agent of its account.
    Owner(Account),
}

impl axum::extract::FromRequestParts<AppState> for Checker {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let key = credential(&parts.headers, state.environment)?;
        let (reader, seen) = (state.store.reader(), &state.credentials_seen);
        let checker = if key.prefix().is_some_and(|(kind, _)| kind == TOKEN_KIND) {
            let grant = parts.extensions.get::<ExecutionGrant>().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ExecutionTokenActionMismatch,
                    "execution tokens act only on the write they were minted for",
                )
            })?;
            Checker::Agent(grant.agent.clone())
        } else if let Some(agent) = seen.agent(reader, &key.hash()).await? {
            Checker::Agent(agent)
        } else {
            let account = seen
                .owner(reader, &key.hash())
                .await?
                .ok_or_else(|| invalid_credential("agent API key or owner credential"))?;
            Checker::Owner(account)
        };
        let scope = match &checker {
            Checker::Agent(agent) => agent.id.to_string(),
            Checker::Owner(account) => account.id.to_string(),
        };
        parts.extensions.insert(Caller(scope));
        Ok(checker)
    }
}

impl Checker {
    /// The agent a check is for and who asked: the agent key's own agent (naming another is
    /// 403), or the agent the owner names (404 unless of its account).
    pub(crate) async fn agent(
        &self,
        state: &AppState,
        named: Option<&str>,
    ) -> ApiResult<(Agent, Actor)> {
        match self {
            Checker::Agent(agent) => {
                if named.is_some_and(|named| named != agent.id.as_str()) {
                    return Err(ApiError::forbidden("an agent key checks only as its own agent"));
                }
                Ok((agent.clone(), Actor::Agent))
            }
            Checker::Owner(account) => {
                let named = named.ok_or_else(|| {
                    ApiError::validation(
                        "agent_id",
                        "`agent_id` is required with the owner credential",
                    )
                })?;
                Ok((owned_agent(state, account, named).await?, Actor::Owner))
            }
        }
    }

    /// Whether the caller may see a resource of `account_id` belonging to agent `agent_id`: an
    /// agent key its own agent's, the owner its account's.
    pub(crate) fn sees(&self, account_id: &str, agent_id: &str) -> bool {
        match self {
            Checker::Agent(agent) => agent_id == agent.id.as_str(),
            Checker::Owner(account) => account_id == account.id.as_str(),
        }
    }

    /// Who acts: the agent itself or the owner.
    pub(crate) fn actor(&self) -> Actor {
        match self {
            Checker::Agent(_) => Actor::Agent,
            Checker::Owner(_) => Actor::Owner,
        }
    }

    /// What a listing by the caller covers: its account, and the one agent it is limited to:
    /// an agent key only itself (naming another is 404), the owner the agent it names (404
    /// unless of its account) or every agent.
    pub(crate) async fn listing(
        &self,
        state: &AppState,
        named: Option<&str>,
    ) -> ApiResult<(String, Option<String>)> {
        match self {
            Checker::Agent(agent) => {
                if named.is_some_and(|named| named != agent.id.as_str()) {
                    return Err(ApiError::not_found("agent"));
                }
                Ok((agent.account_id.to_string(), Some(agent.id.to_string())))
            }
            Checker::Owner(account) => {
                if let Some(named) = named {
                    owned_agent(state, account, named).await?;
                }
                Ok((account.id.to_string(), named.map(str::to_owned)))
            }
        }
    }

    /// The caller's idempotency key space.
    pub(crate) fn scope(&self) -> Caller {
        match self {
            Checker::Agent(agent) => Caller(agent.id.to_string()),
            Checker::Owner(account) => Caller(account.id.to_string()),
        }
    }
}
