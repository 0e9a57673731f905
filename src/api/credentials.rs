//! Execution tokens: `POST /v1/agents/{agent_id}/execution-tokens` (owner) mints a short-lived,
//! single-use token for one agent, one action and one audience; [`verify`], a route layer,
//! checks a presented token against the route it is used on before any handler runs.
//!
//! A token is a write credential only: it stands in for the agent's API key on exactly the
//! route its `action` names ([`WRITES`]) and the resource its `audience` names, once. Reads and
//! every other route need the API key. The first request that presents a token binds it, with
//! that request's `Idempotency-Key`: a retry carrying the same key gets through (and is then
//! answered from the idempotency store), anything else is refused with
//! `execution_token_used`. Binding happens before the handler runs, so a request refused by
//! the handler (a 409, a 422) still spends the token unless it is retried with its key.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::{ExecutionGrant, OwnerAuth, TOKEN_KIND, credential, invalid_credential};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath, IdempotencyKey};
use super::idempotency::Write;
use super::time::rfc3339;
use super::validate::text;
use crate::agreement::ids::{ExecutionTokenId, SecretKey};
use crate::store::agents::{self, Agent};
use crate::store::tokens::{self, ExecutionToken};
use crate::store::{agreements, now};

/// Lifetime of a token when `ttl_seconds` is not given.
pub const DEFAULT_TTL_SECS: u64 = 300;
/// The longest lifetime a token may have.
pub const MAX_TTL_SECS: u64 = 900;

/// The agent writes an execution token can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /usage-agreements`; the audience is the seller agent's id.
    Propose,
    /// `PUT …/accept`.
    Accept,
    /// `PUT …/reject`.
    Reject,
    /// `POST …/activate-escrow`.
    ActivateEscrow,
    /// `POST …/record-usage`.
    RecordUsage,
    /// `POST …/usage-vouchers`.
    SubmitVoucher,
    /// `POST …/sponsored-actions/{action}` (any of the three).
    SponsoredAction,
}

/// Each agent write route (method and route template) and the action a token needs for it:
/// the one table that maps routes to actions. Any route not listed refuses execution tokens.
pub const WRITES: &[(&str, &str, Action)] = &[
    ("POST", "/usage-agreements", Action::Propose),
    ("PUT", "/usage-agreements/{agreement_id}/accept", Action::Accept),
    ("PUT", "/usage-agreements/{agreement_id}/reject", Action::Reject),
    ("POST", "/usage-agreements/{agreement_id}/activate-escrow", Action::ActivateEscrow),
    ("POST", "/usage-agreements/{agreement_id}/record-usage", Action::RecordUsage),
    ("POST", "/usage-agreements/{agreement_id}/usage-vouchers", Action::SubmitVoucher),
    (
        "POST",
        "/usage-agreements/{agreement_id}/sponsored-actions/{action}",
        Action::SponsoredAction,
    ),
];

impl Action {
    const ALL: [Action; 7] = [
        Action::Propose,
        Action::Accept,
        Action::Reject,
        Action::ActivateEscrow,
        Action::RecordUsage,
        Action::SubmitVoucher,
        Action::SponsoredAction,
    ];

    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Propose => "propose",
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::ActivateEscrow => "activate_escrow",
            Action::RecordUsage => "record_usage",
            Action::SubmitVoucher => "submit_voucher",
            Action::SponsoredAction => "sponsored_action",
        }
    }

    /// The action named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.as_str() == name)
    }

    /// The action of the write route `route` (a route template) taken with `method`.
    pub fn of_route(method: &str, route: &str) -> Option<Action> {
        WRITES.iter().find(|(m, r, _)| *m == method && *r == route).map(|(_, _, action)| *action)
    }
}

/// The body of `POST /v1/agents/{agent_id}/execution-tokens`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    /// One of the [`Action`] names.
    pub action: String,
    /// The agreement id it may act on; the seller agent id for `propose`.
    pub audience: String,
    /// Lifetime in seconds, 1 to [`MAX_TTL_SECS`]; default [`DEFAULT_TTL_SECS`].
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// A token as the API shows it (never the token itself, which only minting reveals).
fn token_json(token: &ExecutionToken) -> Value {
    json!({
        "id": token.id,
        "agent_id": token.agent_id,
        "action": token.action,
        "audience": token.audience,
        "expires_at": rfc3339(token.expires_at),
        "created_at": rfc3339(token.created_at),
    })
}

/// 401 with `code`: an execution token that does not fit the request.
fn refused(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(code, message)
}

/// Mints an execution token for one of the caller's active agents and reveals it, once.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/execution-tokens",
    operation_id = "mint_execution_token",
    tag = "agents",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
    ),
    request_body = MintToken,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The token, shown this once", body = crate::api::schema::ExecutionToken),
    ),
)]
pub async fn mint(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<MintToken>>,
) -> ApiResult<Response> {
    let agent = agents::get_agent(state.store.reader(), &agent_id)
        .await?
        .filter(|agent| agent.account_id == account.id)
        .ok_or_else(|| ApiError::not_found("agent"))?;
    if agent.status != agents::ACTIVE {
        return Err(super::agents::revoked_conflict());
    }
    let action = Action::parse(&body.action).ok_or_else(|| {
        let names: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        ApiError::validation("action", format!("`action` must be one of {}", names.join(", ")))
    })?;
    text("audience", &body.audience, 64)?;
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECS);
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::validation(
            "ttl_seconds",
            format!("`ttl_seconds` must be 1 to {MAX_TTL_SECS}"),
        ));
    }
    check_audience(&state, &agent, action, &body.audience).await?;
    let at = now();
    let secret = SecretKey::generate(TOKEN_KIND, state.environment);
    let token = ExecutionToken {
        id: ExecutionTokenId::generate(),
        account_id: account.id,
        agent_id: agent.id,
        action: action.as_str().to_owned(),
        audience: body.audience.clone(),
        expires_at: at + ttl as i64,
        used_at: None,
        used_idempotency_key: None,
        created_at: at,
    };
    let mut stored = token_json(&token);
    stored["token"] = Value::Null;
    let mut tx = state.store.begin().await?;
    tokens::insert(&mut tx, &token, &secret.hash()).await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &stored).await?;
    tx.commit().await?;
    tracing::info!(token_id = %token.id, agent_id = %token.agent_id, action = %token.action,
        "execution token minted");
    let mut revealed = token_json(&token);
    revealed["token"] = Value::from(secret.reveal());
    Ok((StatusCode::CREATED, Json(revealed)).into_response())
}

/// The audience must be something the agent can act on: for `propose`, another active agent;
/// otherwise an agreement it is party to.
async fn check_audience(
    state: &AppState,
    agent: &Agent,
    action: Action,
    audience: &str,
) -> ApiResult<()> {
    let fits = if action == Action::Propose {
        agents::get_agent(state.store.reader(), audience)
            .await?
            .is_some_and(|seller| seller.status == agents::ACTIVE && seller.id != agent.id)
    } else {
        agreements::get(state.store.reader(), audience)
            .await?
            .is_some_and(|record| record.is_party(&agent.id))
    };
    if fits {
        return Ok(());
    }
    let what = if action == Action::Propose {
        "`audience` must name another active agent (the seller) for `propose`"
    } else {
        "`audience` must name an agreement this agent is party to"
    };
    Err(ApiError::validation("audience", what))
}

/// Whether the request's bearer is an execution token (by its prefix).
fn bears_token(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(_, token)| token.trim().starts_with("xt_"))
}

/// Route layer: a request bearing an execution token goes on only if the token is known, its
/// agent active, it has not expired, the route is the one its action names, the resource is
/// its audience and it was not used by another request; the agent is then left in the
/// request's extensions as an [`ExecutionGrant`]. Requests with other credentials pass
/// untouched (their extractors check them).
pub async fn verify(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !bears_token(req.headers()) {
        return next.run(req).await;
    }
    match grant(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(error) => error.into_response(),
    }
}

async fn grant(state: &AppState, req: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let secret = credential(&parts.headers, state.environment)?;
    let token = tokens::by_hash(state.store.reader(), &secret.hash())
        .await?
        .ok_or_else(|| invalid_credential("execution token"))?;
    let agent = agents::get_agent(state.store.reader(), token.agent_id.as_str())
        .await?
        .filter(|agent| agent.status == agents::ACTIVE)
        .ok_or_else(|| invalid_credential("execution token"))?;
    if now() >= token.expires_at {
        return Err(refused(ErrorCode::ExecutionTokenExpired, "this execution token has expired"));
    }
    let route = parts.extensions.get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let action = route.as_deref().and_then(|route| Action::of_route(parts.method.as_str(), route));
    if action.map(Action::as_str) != Some(token.action.as_str()) {
        return Err(refused(
            ErrorCode::ExecutionTokenActionMismatch,
            "this execution token was minted for another action; reads and other routes need \
             the agent's API key",
        ));
    }
    let (audience, body) = if action == Some(Action::Propose) {
        // The seller is named in the body: read it (within the body limit) and put it back.
        let bytes = axum::body::to_bytes(body, state.max_body_bytes).await.map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than this server accepts",
            )
        })?;
        let seller = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|body| body.get("seller_agent_id")?.as_str().map(str::to_owned));
        (seller, Body::from(bytes))
    } else {
        let params = RawPathParams::from_request_parts(&mut parts, state).await.ok();
        let agreement = params.and_then(|params| {
            params.iter().find(|(name, _)| *name == "agreement_id").map(|(_, v)| v.to_owned())
        });
        (agreement, body)
    };
    if audience.as_deref() != Some(token.audience.as_str()) {
        return Err(refused(
            ErrorCode::ExecutionTokenAudienceMismatch,
            "this execution token was minted for another resource",
        ));
    }
    let IdempotencyKey(key) = IdempotencyKey::from_request_parts(&mut parts, state).await?;
    let mut tx = state.store.begin().await?;
    let bound = tokens::bind_use(&mut tx, &token.id, key.as_deref(), now()).await?;
    tx.commit().await?;
    if !bound {
        return Err(refused(
            ErrorCode::ExecutionTokenUsed,
            "this execution token was already used; only a retry with the same \
             Idempotency-Key may present it again",
        ));
    }
    tracing::debug!(token_id = %token.id, agent_id = %agent.id, "execution token accepted");
    parts.extensions.insert(ExecutionGrant(agent));
    Ok(Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_route_and_round_trips() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            assert_eq!(WRITES.iter().filter(|(_, _, a)| *a == action).count(), 1, "{action:?}");
        }
        assert_eq!(
            Action::of_route("PUT", "/usage-agreements/{agreement_id}/accept"),
            Some(Action::Accept)
        );
        assert_eq!(Action::of_route("GET", "/usage-agreements/{agreement_id}"), None);
        assert_eq!(Action::of_route("POST", "/usage-agreements/{agreement_id}/accept"), None);
    }
}
