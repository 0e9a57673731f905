//! Execution tokens: `POST /v1/agents/{agent_id}/execution-tokens` (owner) mints a short-lived,
//! single-use token for one agent, one action and one audience, optionally under one of the
//! agent's mandates; [`verify`], a route layer, checks a presented token against the route it
//! is used on before any handler runs.
//!
//! A token is a write credential only: it stands in for the agent's API key on exactly the
//! route its `action` names ([`WRITES`]) and the resource its `audience` names, once. Reads and
//! every other route need the API key. The first request that presents a token binds it, with
//! that request's `Idempotency-Key`: a retry carrying the same key gets through (and is then
//! answered from the idempotency store), anything else is refused with
//! `execution_token_used`. Binding happens before the handler runs, so a request refused by
//! the handler (a 409, a 422) still spends the token unless it is retried with its key.
//!
//! A token minted under a mandate is refused (401 `mandate_revoked` / `mandate_expired`, before
//! it is bound) once its mandate is revoked or past its `valid_until`; otherwise the mandate's
//! id travels with the [`ExecutionGrant`], for the handler to spend within it
//! ([`super::auth::TokenMandate`]).

mod action;
mod view;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use action::{Action, WRITES};
pub use view::{ExecutionTokenView, MintToken};

use super::AppState;
use super::auth::{
    ExecutionGrant, OwnerAuth, TOKEN_KIND, credential, invalid_credential, revoked_conflict,
};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath, IdempotencyKey};
use super::idempotency::Write;
use super::validate::text;
use crate::agreement::ids::{ExecutionTokenId, MandateId, SecretKey};
use crate::governance::{Mandate, MandateStatus};
use crate::store::agents::{self, Agent};
use crate::store::governance::mandates;
use crate::store::tokens::{self, ExecutionToken};
use crate::store::{agreements, now};

/// Lifetime of a token when `ttl_seconds` is not given.
pub const DEFAULT_TTL_SECS: u64 = 300;
/// The longest lifetime a token may have.
pub const MAX_TTL_SECS: u64 = 900;

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
        (status = 201, description = "The token, shown this once", body = ExecutionTokenView),
    ),
)]
pub async fn mint(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<MintToken>>,
) -> ApiResult<(StatusCode, Json<ExecutionTokenView>)> {
    let agent = agents::get_agent(state.store.reader(), &agent_id)
        .await?
        .filter(|agent| agent.account_id == account.id)
        .ok_or_else(|| ApiError::not_found("agent"))?;
    if agent.status != agents::ACTIVE {
        return Err(revoked_conflict());
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
    let mandate = match &body.mandate_id {
        Some(id) => Some(mandate_for(&state, &agent, id, at).await?),
        None => None,
    };
    if let Some(mandate) = &mandate
        && action == Action::Reserve
        && !mandate.counterparties.is_empty()
        && !mandate.covers_counterparty(&body.audience)
    {
        return Err(ApiError::validation(
            "audience",
            "`audience` is not a counterparty the mandate covers",
        ));
    }
    let secret = SecretKey::generate(TOKEN_KIND, state.environment);
    let token = ExecutionToken {
        id: ExecutionTokenId::generate(),
        account_id: account.id,
        agent_id: agent.id,
        action: action.as_str().to_owned(),
        audience: body.audience.clone(),
        mandate_id: mandate.map(|m| m.id),
        expires_at: at + ttl as i64,
        used_at: None,
        used_idempotency_key: None,
        created_at: at,
    };
    let mut tx = state.store.begin().await?;
    tokens::insert(&mut tx, &token, &secret.hash()).await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &ExecutionTokenView::new(&token, None)).await?;
    tx.commit().await?;
    tracing::info!(token_id = %token.id, agent_id = %token.agent_id, action = %token.action,
        "execution token minted");
    let revealed = ExecutionTokenView::new(&token, Some(secret.reveal().to_owned()));
    Ok((StatusCode::CREATED, Json(revealed)))
}

/// The audience must be something the agent can act on: for `propose`, another active agent;
/// for `reserve`, any counterparty identifier (the reservation's `counterparty`); otherwise an
/// agreement it is party to.
async fn check_audience(
    state: &AppState,
    agent: &Agent,
    action: Action,
    audience: &str,
) -> ApiResult<()> {
    let (fits, what) = match action {
        Action::Propose => (
            agents::get_agent(state.store.reader(), audience)
                .await?
                .is_some_and(|seller| seller.status == agents::ACTIVE && seller.id != agent.id),
            "`audience` must name another active agent (the seller) for `propose`",
        ),
        Action::Reserve | Action::Payment => (true, ""),
        _ => (
            agreements::get(state.store.reader(), audience)
                .await?
                .is_some_and(|record| record.is_party(&agent.id)),
            "`audience` must name an agreement this agent is party to",
        ),
    };
    if fits { Ok(()) } else { Err(ApiError::validation("audience", what)) }
}

/// The mandate `id` a token for `agent` is minted under: 404 when the account has no such
/// mandate; 422 on `mandate_id` when it is another agent's, revoked, or expired at `at`.
async fn mandate_for(state: &AppState, agent: &Agent, id: &str, at: i64) -> ApiResult<Mandate> {
    let mandate = mandates::get(state.store.reader(), agent.account_id.as_str(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("mandate"))?;
    let refusal = if mandate.agent_id != agent.id.as_str() {
        "`mandate_id` names a mandate of another agent"
    } else if mandate.status == MandateStatus::Revoked {
        "`mandate_id` names a revoked mandate"
    } else if mandate.expired_at(at) {
        "`mandate_id` names an expired mandate"
    } else {
        return Ok(mandate);
    };
    Err(ApiError::validation("mandate_id", refusal))
}

/// 401 `mandate_revoked` or `mandate_expired` when the mandate `id` a presented token was
/// minted under no longer lets it spend at `at`.
async fn mandate_in_force(
    state: &AppState,
    token: &ExecutionToken,
    id: &MandateId,
    at: i64,
) -> ApiResult<()> {
    let mandate =
        mandates::get(state.store.reader(), token.account_id.as_str(), id.as_str()).await?;
    match mandate {
        Some(mandate) if mandate.status == MandateStatus::Active => {
            if mandate.expired_at(at) {
                return Err(refused(
                    ErrorCode::MandateExpired,
                    "the mandate this execution token was minted under has expired",
                ));
            }
            Ok(())
        }
        _ => Err(refused(
            ErrorCode::MandateRevoked,
            "the mandate this execution token was minted under was revoked",
        )),
    }
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
/// agent active, it has not expired, its mandate (if any) is active and unexpired, the route
/// is the one its action names, the resource is its audience and it was not used by another
/// request; the agent and the mandate are then left in the request's extensions as an
/// [`ExecutionGrant`]. Requests with other credentials pass
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
    let at = now();
    if at >= token.expires_at {
        return Err(refused(ErrorCode::ExecutionTokenExpired, "this execution token has expired"));
    }
    if let Some(mandate_id) = &token.mandate_id {
        mandate_in_force(state, &token, mandate_id, at).await?;
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
    let (audience, body) = if let Some(field) = action.and_then(Action::body_audience) {
        // The seller (or counterparty) is named in the body: read it (within the body limit)
        // and put it back.
        let bytes = axum::body::to_bytes(body, state.max_body_bytes).await.map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than this server accepts",
            )
        })?;
        let named = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|body| body.get(field)?.as_str().map(str::to_owned));
        (named, Body::from(bytes))
    } else {
        let params = RawPathParams::from_request_parts(&mut parts, state).await.ok();
        let agreement = params.and_then(|params| {
            params.iter().find(|(name, _)| *name == "agreement_id").map(|(_, v)| v.to_owned())
        });
        (agreement, body)
    };
    // A counterparty is matched the way a mandate matches it: case-insensitively.
    let fits = match (&audience, action) {
        (Some(named), Some(Action::Reserve)) => named.eq_ignore_ascii_case(&token.audience),
        (named, _) => named.as_deref() == Some(token.audience.as_str()),
    };
    if !fits {
        return Err(refused(
            ErrorCode::ExecutionTokenAudienceMismatch,
            "this execution token was minted for another resource",
        ));
    }
    let IdempotencyKey(key) = IdempotencyKey::from_request_parts(&mut parts, state).await?;
    let mut tx = state.store.begin().await?;
    let bound = tokens::bind_use(&mut tx, &token.id, key.as_deref(), at).await?;
    tx.commit().await?;
    if !bound {
        return Err(refused(
            ErrorCode::ExecutionTokenUsed,
            "this execution token was already used; only a retry with the same \
             Idempotency-Key may present it again",
        ));
    }
    tracing::debug!(token_id = %token.id, agent_id = %agent.id, "execution token accepted");
    parts.extensions.insert(ExecutionGrant { agent, mandate_id: token.mandate_id });
    Ok(Request::from_parts(parts, body))
}
