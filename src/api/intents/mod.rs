//! Intents (seed 004): `POST /validate` decides a transfer the agent will pay from its own
//! wallet and, when the policy allows it, holds the amount on the agent's budgets in the same
//! transaction (the spend gate, [`crate::api::spend_gate`]); the agent broadcasts the transfer
//! itself and posts its hash to `POST /intents/{intentId}/events`; the chain watcher checks the
//! mined transaction and resolves the intent; `GET /intents/{intentId}/status` reads it.
//!
//! An escalated decision is refused like a block (nothing is held, no approval is opened): an
//! intent cannot wait for an owner, since the agent holds the key that pays. The seed's
//! deprecated `POST /validate/raw` is not built.

mod view;

use alloy::primitives::B256;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::agreement::ids::{IntentId, ReservationId};
use crate::api::AppState;
use crate::api::auth::{AgentAuth, Checker};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::idempotency::Write;
use crate::api::spend_gate::{self, Gated, Spend};
use crate::api::spend_guard::SpendFields;
use crate::api::spend_guard::reservations::{DEFAULT_TTL_SECS, MAX_TTL_SECS};
use crate::api::validate;
use crate::governance::{ActionType, Confidence, Decision};
use crate::intents::{IntentAction, IntentStatus};
use crate::store::governance::audit::{Actor, AuditKind};
use crate::store::governance::holds::{Hold, HoldSource, HoldStatus};
use crate::store::governance::intent_holds;
use crate::store::intents::{self, Intent};
use crate::store::{now, wallets};
pub use view::{IntentEvent, IntentView, ValidateRefused, ValidateRequest, Validated};

/// What a `POST /validate` body asks, checked: the action, the recipient, the engine's
/// request and the TTL.
struct Asked {
    to: alloy::primitives::Address,
    ttl: u64,
    spend: SpendFields,
}

/// Checks the body of `POST /validate` against this deployment; 422 naming the field at fault
/// (`wrong_chain_id` for another chain).
fn asked(state: &AppState, body: &ValidateRequest) -> ApiResult<Asked> {
    if IntentAction::parse(&body.action).is_none() {
        return Err(ApiError::validation("action", "`action` must be `transfer`"));
    }
    let to = validate::wallet("to", &body.to)?;
    if let Some(token) = &body.token {
        let token = validate::wallet("token", token)?;
        if token != state.chain.token {
            return Err(ApiError::validation(
                "token",
                format!("`token` must be this deployment's USDC, {}", state.chain.token),
            )
            .with_details(json!({ "field": "token", "token": state.chain.token })));
        }
    }
    if let Some(chain_id) = body.chain_id
        && chain_id != state.chain.chain_id
    {
        return Err(ApiError::new(
            ErrorCode::WrongChainId,
            format!("this deployment runs on chain {}", state.chain.chain_id),
        )
        .with_details(json!({ "field": "chain_id", "chain_id": state.chain.chain_id })));
    }
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECS);
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::validation(
            "ttl_seconds",
            format!("`ttl_seconds` must be 1 to {MAX_TTL_SECS}"),
        ));
    }
    let spend = SpendFields {
        agent_id: None,
        amount_cents: body.amount_cents,
        action_type: ActionType::Spend,
        counterparty: Some(to.to_checksum(None)),
        category: None,
        currency: Some("USDC".into()),
        mandate_id: None,
        metadata: body.metadata.clone(),
        ttl_seconds: Some(ttl),
        lease_id: None,
    };
    Ok(Asked { to, ttl, spend })
}

/// The refusal of a blocked or escalated decision: the seed's fields beside the error.
fn refused(gated: &Gated) -> Response {
    let e = &gated.evaluation;
    let escalated = e.decision == Decision::Escalate;
    let mut error = gated.refusal();
    if escalated {
        error.message = format!(
            "{} Intents are not held for approval: ask the owner to change the policy, or spend \
             through a reservation, which can wait for approval.",
            error.message
        );
        if let Some(details) = error.details.as_mut() {
            details["escalated"] = json!(true);
        }
    }
    let body = ValidateRefused {
        allowed: Some(false),
        intent_id: None,
        block_reason: e.reason_code,
        block_detail: e.message.clone(),
        decline_message: e.decline_message.clone(),
        check_id: Some(gated.response.check_id.clone()),
        error: error.body().error,
    };
    (error.status(), Json(body)).into_response()
}

/// `POST /validate`: decides a USDC transfer from the agent's registered wallet to `to` and,
/// when the policy allows it, holds its amount and opens an intent that waits `ttl_seconds`
/// for the transaction's hash. 422 `policy_blocked` (an escalation too) or 403 `agent_halted`
/// with `allowed: false` and nothing held.
#[utoipa::path(
    post,
    path = "/validate",
    operation_id = "validate_intent",
    tag = "intents",
    request_body = ValidateRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Allowed: the intent and its hold", body = Validated),
        (status = 403, description = "`agent_halted` (with `allowed: false`)", body = ValidateRefused),
        (status = 422, description = "`policy_blocked` (with `allowed: false`), `wrong_chain_id`, `no_registered_wallet`, or a field fails validation", body = ValidateRefused),
    ),
)]
pub async fn validate(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Write(ApiJson(body), idempotency): Write<ApiJson<ValidateRequest>>,
) -> ApiResult<Response> {
    let started = std::time::Instant::now();
    let asked = asked(&state, &body)?;
    let at = now();
    let request = asked.spend.request(at)?;
    let spend = Spend {
        account_id: agent.account_id.to_string(),
        agent_id: agent.id.to_string(),
        kind: AuditKind::Intent,
        actor: Actor::Agent,
        subject_id: None,
        currency: "USDC".into(),
        confidence: Confidence::High,
        request,
        expect_policy: None,
        mandate_id: None,
        budgets_only: false,
        started,
    };
    let mut tx = state.store.begin().await?;
    if wallets::addresses_of_agent(&mut tx, agent.id.as_str()).await?.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NoRegisteredWallet,
            "the agent has no registered wallet to pay from: set one with `POST /activate`",
        ));
    }
    let gated = spend_gate::decide(&mut tx, &spend).await?;
    if gated.evaluation.decision != Decision::Allow {
        spend_gate::store_check(&mut tx, &spend, &gated).await?;
        tx.commit().await?;
        return Ok(refused(&gated));
    }
    let (id, hold_id) = (IntentId::generate(), ReservationId::generate());
    let amount_cents = spend.request.amount_cents;
    let metadata = body.metadata.clone().map(serde_json::Value::Object);
    let hold = Hold {
        id: hold_id.clone(),
        account_id: spend.account_id.clone(),
        agent_id: spend.agent_id.clone(),
        source: HoldSource::Intent,
        subject_id: Some(id.to_string()),
        status: HoldStatus::Reserved,
        amount_cents,
        captured_cents: None,
        counted_cents: amount_cents,
        action_type: spend.request.action_type.as_str().to_owned(),
        currency: spend.currency.clone(),
        counterparty: Some(asked.to.to_checksum(None)),
        category: None,
        metadata: metadata.clone(),
        mandate_id: None,
        lease_id: gated.lease_id.clone(),
        approval_id: None,
        check_id: Some(gated.response.check_id.clone()),
        ttl_seconds: Some(asked.ttl),
        // The intent's expiry ends it (`intent_holds`), not the reservation sweeper.
        expires_at: None,
        counted_at: at,
        created_at: at,
        updated_at: at,
    };
    let intent = Intent {
        id: id.to_string(),
        account_id: spend.account_id.clone(),
        agent_id: spend.agent_id.clone(),
        status: IntentStatus::Validated,
        action: IntentAction::Transfer,
        to: asked.to,
        token: state.chain.token,
        chain_id: state.chain.chain_id,
        amount_cents,
        metadata,
        reservation_id: hold_id.to_string(),
        check_id: gated.response.check_id.clone(),
        ttl_seconds: asked.ttl,
        tx_hash: None,
        mined: None,
        looked_up: false,
        expires_at: at.saturating_add(i64::try_from(asked.ttl).unwrap_or(i64::MAX)),
        broadcast_at: None,
        resolved_at: None,
        created_at: at,
        updated_at: at,
    };
    spend_gate::store_check(&mut tx, &spend, &gated).await?;
    intent_holds::hold(&mut tx, &hold, Actor::Agent.as_str()).await?;
    intents::insert(&mut tx, &intent).await?;
    intents::announce_validated(&mut tx, &intent, at).await?;
    let response = Validated {
        allowed: true,
        intent_id: intent.id.clone(),
        block_reason: None,
        block_detail: None,
        decline_message: None,
        status: intent.status,
        reservation_id: intent.reservation_id.clone(),
        check_id: intent.check_id.clone(),
        policy_version: gated.policy_version,
        expires_at: crate::time::rfc3339(intent.expires_at),
    };
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    Ok((StatusCode::OK, Json(response)).into_response())
}

/// The intent `id` as `checker` may see it: an agent its own, an owner its account's; 404
/// otherwise.
async fn visible(state: &AppState, checker: &Checker, id: &str) -> ApiResult<Intent> {
    let intent = intents::get(state.store.reader(), id).await?;
    intent
        .filter(|intent| checker.sees(&intent.account_id, &intent.agent_id))
        .ok_or_else(|| ApiError::not_found("intent"))
}

/// Parses a transaction hash: `0x` and 64 hex digits.
fn tx_hash(value: &str) -> ApiResult<B256> {
    let hex = value.strip_prefix("0x").filter(|h| h.len() == 64);
    hex.and_then(|_| value.parse().ok())
        .ok_or_else(|| ApiError::validation("tx_hash", "`tx_hash` must be `0x` and 64 hex digits"))
}

/// 409 `intent_already_broadcast`: the intent has another hash, or is resolved.
fn already(intent: &Intent) -> ApiError {
    ApiError::new(
        ErrorCode::IntentAlreadyBroadcast,
        "this intent has a transaction already; validate again for another transfer",
    )
    .with_details(json!({ "status": intent.status, "tx_hash": intent.tx_hash }))
}

/// `POST /intents/{intentId}/events`: the agent posts the hash of the transaction it
/// broadcast; the intent moves to `broadcast` and waits `ttl_seconds` more for it to be mined,
/// and the watcher checks it. Posting the same hash again answers the intent as it stands.
#[utoipa::path(
    post,
    path = "/intents/{intentId}/events",
    operation_id = "post_intent_event",
    tag = "intents",
    params(("intentId" = String, Path, description = "`int_…`")),
    request_body = IntentEvent,
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "The hash is kept; the watcher verifies the transaction", body = IntentView),
        (status = 404, description = "No such intent of the agent", body = crate::api::error::ErrorBody),
        (status = 409, description = "`tx_hash_already_used` by another intent, or `intent_already_broadcast` with another hash", body = crate::api::error::ErrorBody),
        (status = 410, description = "`intent_expired`: validate again", body = crate::api::error::ErrorBody),
        (status = 422, description = "`tx_hash` is not a transaction hash", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn post_event(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<IntentEvent>>,
) -> ApiResult<Response> {
    let intent = visible(&state, &Checker::Agent(agent), &id).await?;
    let hash = tx_hash(&body.tx_hash)?;
    let at = now();
    let mut tx = state.store.begin().await?;
    let current = intents::get_in(&mut tx, &intent.id).await?.unwrap_or(intent);
    match (current.tx_hash, current.status) {
        (Some(posted), _) if posted == hash => {
            return Ok((StatusCode::ACCEPTED, Json(IntentView::from(&current))).into_response());
        }
        (Some(_), _) => return Err(already(&current)),
        (None, IntentStatus::Validated) if current.expires_at > at => {}
        (None, IntentStatus::Validated | IntentStatus::Expired) => {
            // Expired now if the sweeper has not come by yet, so a late hash meets the same 410.
            intents::expire(&mut tx, &current.id, at).await?;
            tx.commit().await?;
            return Err(ApiError::new(
                ErrorCode::IntentExpired,
                "the intent expired before a transaction was posted; validate again",
            )
            .with_details(json!({ "status": IntentStatus::Expired })));
        }
        (None, _) => return Err(already(&current)),
    }
    if intents::holding_hash(&mut tx, hash).await?.is_some() {
        return Err(hash_used());
    }
    let ttl = i64::try_from(current.ttl_seconds).unwrap_or(i64::MAX);
    let expires_at = current.expires_at.max(at.saturating_add(ttl));
    let changed = match intents::broadcast(&mut tx, &current.id, hash, expires_at, at).await {
        Ok(Some(changed)) => changed,
        Ok(None) => return Err(crate::store::StoreError::Conflict.into()),
        Err(error) if error.is_unique_violation() => return Err(hash_used()),
        Err(error) => return Err(error.into()),
    };
    let view = IntentView::from(&changed);
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &view).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// 409 `tx_hash_already_used`: another intent posted this hash (which intent is not said: it
/// may be another account's).
fn hash_used() -> ApiError {
    ApiError::new(
        ErrorCode::TxHashAlreadyUsed,
        "this transaction hash was posted for another intent; a transaction pays one intent",
    )
    .with_details(json!({ "field": "tx_hash" }))
}

/// `GET /intents/{intentId}/status`: the intent as it stands (an agent its own, the owner any
/// of its account's).
#[utoipa::path(
    get,
    path = "/intents/{intentId}/status",
    operation_id = "get_intent_status",
    tag = "intents",
    params(("intentId" = String, Path, description = "`int_…`")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The intent", body = IntentView),
        (status = 404, description = "No such intent of the caller", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn status(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<IntentView>> {
    Ok(Json(IntentView::from(&visible(&state, &checker, &id).await?)))
}
