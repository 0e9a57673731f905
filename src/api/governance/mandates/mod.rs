//! Mandates under the owner credential: `POST /v1/mandates` grants one agent a standing
//! mandate (a total, a per-transaction cap, a window, the action types, counterparties and
//! categories it covers); `GET` lists and reads them with what each has spent; `PUT` replaces
//! an active mandate's terms; `POST …/revoke` ends it for good. A revoked mandate cannot be
//! changed or revoked again (409 `mandate_not_active`). Every write takes the agent's decision
//! lock, so it is ordered with the spends counted against the mandate, and records an audit
//! row and a `mandate.*` webhook event in its transaction.

mod request;
mod view;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

pub use request::{CreateMandate, RevokeMandate, Terms, UpdateMandate};
pub use view::{MandateList, MandateQuery, MandateView};

use crate::agreement::ids::MandateId;
use crate::api::AppState;
use crate::api::auth::{OwnerAuth, owned_agent};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery, OptionalApiJson};
use crate::api::idempotency::{Idempotency, Write};
use crate::api::page;
use crate::api::validate::text;
use crate::governance::{AgentState, Mandate, MandateStatus};
use crate::store::agents::Account;
use crate::store::governance::audit::{Actor, AuditDecision};
use crate::store::governance::{self as rows, mandates};
use crate::store::{Conn, now};

/// 409 `mandate_not_active`: the mandate is revoked, which is final.
fn not_active(mandate: &Mandate) -> ApiError {
    ApiError::new(ErrorCode::MandateNotActive, "this mandate is revoked; revocation is final")
        .with_details(json!({
            "status": mandate.status,
            "revoked_at": mandate.revoked_at.map(crate::time::rfc3339),
            "revoke_reason": mandate.revoke_reason,
        }))
}

/// 422 on `agent_id`: the agent cannot be granted a mandate (revoked, halted, or none of the
/// caller's: another account's agent reads as unknown).
fn agent_refused(message: &str) -> ApiError {
    ApiError::validation("agent_id", message)
}

/// The mandate `id` of `account`; 404 otherwise.
async fn owned_mandate(state: &AppState, account: &Account, id: &str) -> ApiResult<Mandate> {
    mandates::get(state.store.reader(), account.id.as_str(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("mandate"))
}

/// `mandate` as answered, with what it has spent, read in the write's transaction.
async fn view_in(conn: &mut Conn, mandate: &Mandate) -> ApiResult<MandateView> {
    let spent = mandates::spent(conn, mandate.id.as_str()).await?;
    Ok(MandateView::new(mandate, spent))
}

/// Stores `mandate`'s change with its audit row and event, the answer under the idempotency
/// key, and commits.
async fn record(
    mut tx: crate::store::Tx,
    mandate: &Mandate,
    decision: AuditDecision,
    status: StatusCode,
    idempotency: &Idempotency,
) -> ApiResult<MandateView> {
    rows::mandate_changed(&mut tx, mandate, decision, Actor::Owner, mandate.updated_at).await?;
    let view = view_in(&mut tx, mandate).await?;
    idempotency.save(&mut tx, status, &view).await?;
    tx.commit().await?;
    tracing::info!(mandate_id = %mandate.id, agent_id = %mandate.agent_id,
        decision = %decision, "mandate written");
    Ok(view)
}

/// `POST /v1/mandates`: grants an agent a mandate.
#[utoipa::path(
    post,
    path = "/v1/mandates",
    operation_id = "create_mandate",
    tag = "governance",
    request_body = CreateMandate,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The mandate, in force", body = MandateView),
        (status = 422, description = "`validation_error` naming the field (`details.field`)", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    Write(ApiJson(body), idempotency): Write<ApiJson<CreateMandate>>,
) -> ApiResult<(StatusCode, Json<MandateView>)> {
    text("agent_id", &body.agent_id, 64)?;
    let at = now();
    let terms = body.terms(at)?;
    let agent = owned_agent(&state, &account, &body.agent_id).await.map_err(|error| {
        if error.code == ErrorCode::NotFound {
            agent_refused("`agent_id` must name an agent of this account")
        } else {
            error
        }
    })?;
    let mandate = Mandate {
        id: MandateId::generate(),
        account_id: account.id.to_string(),
        agent_id: agent.id.to_string(),
        status: MandateStatus::Active,
        max_total_cents: terms.max_total_cents,
        per_tx_max_cents: terms.per_tx_max_cents,
        valid_from: terms.valid_from,
        valid_until: terms.valid_until,
        action_types: terms.action_types,
        counterparties: terms.counterparties,
        categories: terms.categories,
        purpose: terms.purpose,
        revoked_at: None,
        revoke_reason: None,
        created_at: at,
        updated_at: at,
    };
    let mut tx = state.store.begin().await?;
    // Under the agent's decision lock, so a halt or revocation cannot slip in between.
    match rows::lock_agent(&mut tx, agent.id.as_str()).await? {
        Some(AgentState::Active) => {}
        Some(AgentState::Halted) => {
            return Err(agent_refused("the agent is halted; resume it before granting a mandate"));
        }
        _ => return Err(agent_refused("the agent is revoked")),
    }
    mandates::insert(&mut tx, &mandate).await?;
    let view =
        record(tx, &mandate, AuditDecision::Created, StatusCode::CREATED, &idempotency).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/mandates?agent_id=&status=&limit=&cursor=`: the account's mandates, newest first.
#[utoipa::path(
    get,
    path = "/v1/mandates",
    operation_id = "list_mandates",
    tag = "governance",
    params(
        ("agent_id" = Option<String>, Query, description = "Only this agent's"),
        ("status" = Option<MandateStatus>, Query, description = "Only mandates in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "A page of mandates", body = MandateList)),
)]
pub async fn list(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiQuery(query): ApiQuery<MandateQuery>,
) -> ApiResult<Json<MandateList>> {
    if let Some(agent_id) = &query.agent_id {
        owned_agent(&state, &account, agent_id).await?;
    }
    let limit = page::limit(query.limit)?;
    let status =
        page::status_filter(query.status.as_deref(), MandateStatus::ALL, MandateStatus::as_str)?;
    let cursor = query.cursor.as_deref().map(page::decode_cursor).transpose()?;
    let mut found = mandates::list(
        state.store.reader(),
        account.id.as_str(),
        query.agent_id.as_deref(),
        status,
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut found, limit, |m| page::cursor_of(m.created_at, m.id.as_str()));
    let ids: Vec<&str> = found.iter().map(|m| m.id.as_str()).collect();
    let spent = mandates::spent_of(state.store.reader(), &ids).await?;
    let data = found
        .iter()
        .map(|m| MandateView::new(m, spent.get(m.id.as_str()).copied().unwrap_or(0)))
        .collect();
    Ok(Json(MandateList { data, next_cursor }))
}

/// `GET /v1/mandates/{mandate_id}`: one mandate of the account, with what it has spent.
#[utoipa::path(
    get,
    path = "/v1/mandates/{mandate_id}",
    operation_id = "get_mandate",
    tag = "governance",
    params(("mandate_id" = String, Path, description = "A mandate of the caller's account")),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The mandate", body = MandateView)),
)]
pub async fn get(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<MandateView>> {
    let mandate = owned_mandate(&state, &account, &id).await?;
    let spent = mandates::spent_of(state.store.reader(), &[mandate.id.as_str()]).await?;
    Ok(Json(MandateView::new(&mandate, spent.get(mandate.id.as_str()).copied().unwrap_or(0))))
}

/// `PUT /v1/mandates/{mandate_id}`: replaces an active mandate's terms (the agent stays). A
/// total lowered below what is already spent leaves nothing to spend; it takes nothing back.
#[utoipa::path(
    put,
    path = "/v1/mandates/{mandate_id}",
    operation_id = "update_mandate",
    tag = "governance",
    params(("mandate_id" = String, Path, description = "A mandate of the caller's account")),
    request_body = UpdateMandate,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The mandate with its new terms", body = MandateView),
        (status = 409, description = "`mandate_not_active`: it is revoked", body = crate::api::error::ErrorBody),
        (status = 422, description = "`validation_error` naming the field (`details.field`)", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<UpdateMandate>>,
) -> ApiResult<Json<MandateView>> {
    let current = owned_mandate(&state, &account, &id).await?;
    if current.status != MandateStatus::Active {
        return Err(not_active(&current));
    }
    let at = now();
    let terms = body.terms(at)?;
    let changed = Mandate {
        max_total_cents: terms.max_total_cents,
        per_tx_max_cents: terms.per_tx_max_cents,
        valid_from: terms.valid_from,
        valid_until: terms.valid_until,
        action_types: terms.action_types,
        counterparties: terms.counterparties,
        categories: terms.categories,
        purpose: terms.purpose,
        updated_at: at,
        ..current.clone()
    };
    let mut tx = state.store.begin().await?;
    rows::lock_agent(&mut tx, &current.agent_id).await?;
    let Some(stored) = mandates::update(&mut tx, &changed).await? else {
        drop(tx);
        return Err(now_not_active(&state, &account, &current).await);
    };
    let view = record(tx, &stored, AuditDecision::Updated, StatusCode::OK, &idempotency).await?;
    Ok(Json(view))
}

/// `POST /v1/mandates/{mandate_id}/revoke` (`{"reason"}` optional): ends the mandate for good;
/// every execution token minted under it is refused from then on.
#[utoipa::path(
    post,
    path = "/v1/mandates/{mandate_id}/revoke",
    operation_id = "revoke_mandate",
    tag = "governance",
    params(("mandate_id" = String, Path, description = "A mandate of the caller's account")),
    request_body = Option<RevokeMandate>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The revoked mandate", body = MandateView),
        (status = 409, description = "`mandate_not_active`: it was revoked already", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(id): ApiPath,
    Write(OptionalApiJson(body), idempotency): Write<OptionalApiJson<RevokeMandate>>,
) -> ApiResult<Json<MandateView>> {
    let current = owned_mandate(&state, &account, &id).await?;
    if current.status != MandateStatus::Active {
        return Err(not_active(&current));
    }
    let reason = body.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if let Some(reason) = &reason {
        crate::api::validate::prose("reason", reason, 1_000)?;
    }
    let at = now();
    let mut tx = state.store.begin().await?;
    rows::lock_agent(&mut tx, &current.agent_id).await?;
    let revoked =
        mandates::revoke(&mut tx, account.id.as_str(), &id, reason.as_deref(), at).await?;
    let Some(revoked) = revoked else {
        drop(tx);
        return Err(now_not_active(&state, &account, &current).await);
    };
    let view = record(tx, &revoked, AuditDecision::Revoked, StatusCode::OK, &idempotency).await?;
    Ok(Json(view))
}

/// The answer for a write that found the mandate no longer active (revoked meanwhile).
async fn now_not_active(state: &AppState, account: &Account, mandate: &Mandate) -> ApiError {
    match mandates::get(state.store.reader(), account.id.as_str(), mandate.id.as_str()).await {
        Ok(Some(now)) => not_active(&now),
        Ok(None) => ApiError::not_found("mandate"),
        Err(error) => error.into(),
    }
}
