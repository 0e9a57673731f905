//! Reservations: `POST /v1/spend-guard/reservations` evaluates the agent's policy (and its
//! lease and mandate) and holds the amount in one transaction; capture and release resolve the
//! hold, each a conditional update from `reserved`, so exactly one of them wins. Lists and
//! reads show each reservation with its lifecycle events.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{SpendFields, grant_mandate};

mod view;
use crate::agreement::ids::ReservationId;
use crate::api::AppState;
use crate::api::auth::Checker;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery, OptionalApiJson};
use crate::api::idempotency::Write;
use crate::api::page;
use crate::api::spend_gate::{self, Spend};
use crate::governance::{Confidence, Decision};
use crate::store::governance::approvals::ApprovalKind;
use crate::store::governance::audit::AuditKind;
use crate::store::governance::holds::{self, Hold, HoldChange, HoldSource, HoldStatus};
use crate::store::outbox::{self, EventType};
pub use view::{
    CaptureRequest, ReleaseRequest, ReservationCreated, ReservationEventView, ReservationList,
    ReservationQuery, ReservationView,
};

/// Default time a hold lives before the sweeper releases it.
pub const DEFAULT_TTL_SECS: u64 = 900;
/// The longest time a hold may live.
pub const MAX_TTL_SECS: u64 = 86_400;

/// The body of `POST /v1/spend-guard/reservations`.
pub type ReservationRequest = SpendFields;

/// `POST /v1/spend-guard/reservations`: evaluates the spend and, in the same transaction,
/// holds it: 201 `reserved`, 202 `pending_approval` (approving holds it), or 422
/// `policy_blocked` (403 `agent_halted`) with nothing held.
#[utoipa::path(
    post,
    path = "/v1/spend-guard/reservations",
    operation_id = "create_reservation",
    tag = "spend-guard",
    request_body = SpendFields,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Held", body = ReservationCreated),
        (status = 202, description = "Escalated: waits for the owner's approval", body = ReservationCreated),
        (status = 403, description = "`agent_halted`, or naming another agent with an agent key", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such agent of the caller", body = crate::api::error::ErrorBody),
        (status = 422, description = "`policy_blocked`, or a field fails validation", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    checker: Checker,
    grant: Option<axum::Extension<crate::api::auth::ExecutionGrant>>,
    Write(ApiJson(body), idempotency): Write<ApiJson<ReservationRequest>>,
) -> ApiResult<Response> {
    let started = std::time::Instant::now();
    let (agent, actor) = checker.agent(&state, body.agent_id.as_deref()).await?;
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECS);
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::validation(
            "ttl_seconds",
            format!("`ttl_seconds` must be 1 to {MAX_TTL_SECS}"),
        ));
    }
    let mandate_id = grant_mandate(grant.as_ref().map(|g| &g.0), body.mandate_id.as_deref())?;
    let at = crate::store::now();
    let request = body.request(at)?;
    let spend = Spend {
        account_id: agent.account_id.to_string(),
        agent_id: agent.id.to_string(),
        kind: AuditKind::Reservation,
        actor,
        subject_id: None,
        currency: body.currency()?,
        confidence: Confidence::High,
        request,
        expect_policy: None,
        mandate_id: mandate_id.clone(),
        budgets_only: false,
        started,
    };
    let mut tx = state.store.begin().await?;
    let mut gated = spend_gate::decide(&mut tx, &spend).await?;
    if let Some(named) = &body.lease_id
        && gated.lease_id.as_ref() != Some(named)
    {
        drop(tx);
        return Err(ApiError::validation(
            "lease_id",
            "`lease_id` is not the agent's active budget lease",
        ));
    }
    if gated.evaluation.decision == Decision::Block {
        spend_gate::store_check(&mut tx, &spend, &gated).await?;
        tx.commit().await?;
        return Err(gated.refusal());
    }
    let id = ReservationId::generate();
    let escalated = gated.evaluation.decision == Decision::Escalate;
    let mut hold = Hold {
        id: id.clone(),
        account_id: spend.account_id.clone(),
        agent_id: spend.agent_id.clone(),
        source: HoldSource::Api,
        subject_id: None,
        status: if escalated { HoldStatus::PendingApproval } else { HoldStatus::Reserved },
        amount_cents: spend.request.amount_cents,
        captured_cents: None,
        counted_cents: if escalated { 0 } else { spend.request.amount_cents },
        action_type: spend.request.action_type.as_str().to_owned(),
        currency: spend.currency.clone(),
        counterparty: body.counterparty.clone(),
        category: body.category.clone(),
        metadata: body.metadata.clone().map(serde_json::Value::Object),
        mandate_id,
        lease_id: gated.lease_id.clone(),
        approval_id: None,
        check_id: Some(gated.response.check_id.clone()),
        ttl_seconds: Some(ttl),
        expires_at: None,
        counted_at: at,
        created_at: at,
        updated_at: at,
    };
    let (status, event) = if escalated {
        let expires_at = at.saturating_add(i64::try_from(state.approval_ttl).unwrap_or(i64::MAX));
        let approval = spend_gate::open_approval(
            &mut tx,
            &spend,
            &gated,
            ApprovalKind::Reservation,
            id.as_str(),
            expires_at,
        )
        .await?;
        gated.response.approval_id = Some(approval.id.to_string());
        hold.approval_id = Some(approval.id.to_string());
        (StatusCode::ACCEPTED, EventType::ReservationPendingApproval)
    } else {
        hold.expires_at = Some(at.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)));
        (StatusCode::CREATED, EventType::ReservationReserved)
    };
    spend_gate::store_check(&mut tx, &spend, &gated).await?;
    holds::insert(&mut tx, &hold, actor.as_str()).await?;
    outbox::record_for_agent(&mut tx, &hold.agent_id, event, &holds::event_data(&hold), at).await?;
    let events = [HoldChange {
        id: String::new(),
        reservation_id: hold.id.to_string(),
        event: if escalated {
            holds::HoldEvent::PendingApproval
        } else {
            holds::HoldEvent::Reserved
        },
        amount_cents: hold.amount_cents,
        actor: actor.as_str().to_owned(),
        detail: json!({ "source": "api" }),
        created_at: at,
    }];
    let response = ReservationCreated {
        reservation: ReservationView::new(&hold, &events),
        decision: gated.response,
    };
    idempotency.save(&mut tx, status, &response).await?;
    tx.commit().await?;
    Ok((status, Json(response)).into_response())
}

/// The reservation `id` as `checker` may see it: an agent its own, an owner its account's;
/// 404 otherwise.
async fn visible(state: &AppState, checker: &Checker, id: &str) -> ApiResult<Hold> {
    let hold = holds::get(state.store.reader(), id).await?;
    hold.filter(|hold| checker.sees(&hold.account_id, &hold.agent_id))
        .ok_or_else(|| ApiError::not_found("reservation"))
}

/// Why a hold in `hold`'s status cannot be captured or released.
fn resolved(hold: &Hold) -> ApiError {
    let details = json!({
        "status": hold.status.as_str(),
        "captured_cents": hold.captured_cents,
    });
    let (code, message) = match hold.status {
        HoldStatus::Expired => {
            (ErrorCode::ReservationExpired, "the reservation expired before it was resolved")
        }
        HoldStatus::Captured => {
            (ErrorCode::ReservationAlreadyCaptured, "the reservation was captured")
        }
        HoldStatus::PendingApproval => {
            (ErrorCode::ReservationPendingApproval, "the reservation waits for its approval")
        }
        HoldStatus::Rejected => {
            (ErrorCode::ReservationReleased, "the reservation's approval was refused")
        }
        _ => (ErrorCode::ReservationReleased, "the reservation was released"),
    };
    ApiError::new(code, message).with_details(details)
}

/// Answers `hold` (as it stands after a change or a replay) with its events.
async fn answer(state: &AppState, hold: &Hold) -> ApiResult<ReservationView> {
    let mut conn = state.store.reader().acquire().await.map_err(crate::store::StoreError::from)?;
    answer_in(&mut conn, hold).await
}

/// [`answer`] inside a transaction.
async fn answer_in(conn: &mut crate::store::Conn, hold: &Hold) -> ApiResult<ReservationView> {
    let events = holds::events_of(conn, hold.id.as_str()).await?;
    Ok(ReservationView::new(hold, &events))
}

/// Expires `hold` now if its time ran out while nobody swept it: a late capture meets the
/// same 410 the sweeper would have left. Returns the hold as it stands.
async fn expire_if_due(tx: &mut crate::store::Conn, hold: Hold, at: i64) -> ApiResult<Hold> {
    if hold.status != HoldStatus::Reserved || hold.expires_at.is_none_or(|e| e > at) {
        return Ok(hold);
    }
    Ok(match holds::end(tx, hold.id.as_str(), HoldStatus::Expired, "ttl", "system", at).await? {
        Some(expired) => {
            let data = holds::event_data(&expired);
            outbox::record_for_agent(
                tx,
                &expired.agent_id,
                EventType::ReservationExpired,
                &data,
                at,
            )
            .await?;
            expired
        }
        None => holds::get_in(tx, hold.id.as_str()).await?.unwrap_or(hold),
    })
}

/// `POST /v1/spend-guard/reservations/{reservation_id}/capture`: spends `amount_cents` (default
/// all) of a held reservation; the rest is released. Capturing again with the same amount
/// answers the capture again; after a release 409, after expiry 410.
#[utoipa::path(
    post,
    path = "/v1/spend-guard/reservations/{reservation_id}/capture",
    operation_id = "capture_reservation",
    tag = "spend-guard",
    params(("reservation_id" = String, Path, description = "`rsv_…`")),
    request_body = CaptureRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Captured", body = ReservationView),
        (status = 404, description = "No such reservation of the caller", body = crate::api::error::ErrorBody),
        (status = 409, description = "Released, captured for another amount, or waiting for approval", body = crate::api::error::ErrorBody),
        (status = 410, description = "`reservation_expired`", body = crate::api::error::ErrorBody),
        (status = 422, description = "`amount_cents` is more than is held", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn capture(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(id): ApiPath,
    Write(OptionalApiJson(body), idempotency): Write<OptionalApiJson<CaptureRequest>>,
) -> ApiResult<Json<ReservationView>> {
    let hold = visible(&state, &checker, &id).await?;
    let amount = body.amount_cents.unwrap_or(hold.amount_cents);
    if amount == 0 {
        return Err(ApiError::validation(
            "amount_cents",
            "`amount_cents` must be at least 1; release the reservation to spend nothing",
        ));
    }
    if amount > hold.amount_cents {
        return Err(ApiError::validation(
            "amount_cents",
            format!("`amount_cents` may be at most the {} cents held", hold.amount_cents),
        ));
    }
    resolve(&state, &checker, &hold, Resolution::Capture(amount), &idempotency).await
}

/// What a call does to a hold.
enum Resolution {
    /// Spend this much of it.
    Capture(u64),
    /// Give it back, for this reason.
    Release(String),
}

/// Captures or releases `hold` in one transaction: a hold whose time ran out is expired first
/// (410); the same resolution again is answered again; any other is refused (409).
async fn resolve(
    state: &AppState,
    checker: &Checker,
    hold: &Hold,
    resolution: Resolution,
    idempotency: &crate::api::idempotency::Idempotency,
) -> ApiResult<Json<ReservationView>> {
    if hold.source != HoldSource::Api {
        return Err(not_manual(hold));
    }
    let (at, actor, id) = (crate::store::now(), checker.actor(), hold.id.as_str());
    let mut tx = state.store.begin().await?;
    let current =
        holds::get_in(&mut tx, id).await?.ok_or_else(|| ApiError::not_found("reservation"))?;
    let current = expire_if_due(&mut tx, current, at).await?;
    let (changed, event) = match (&resolution, current.status) {
        (Resolution::Capture(amount), HoldStatus::Reserved) => (
            holds::capture(&mut tx, id, *amount, actor.as_str(), at).await?,
            EventType::ReservationCaptured,
        ),
        (Resolution::Release(reason), HoldStatus::Reserved | HoldStatus::PendingApproval) => (
            holds::end(&mut tx, id, HoldStatus::Released, reason, actor.as_str(), at).await?,
            EventType::ReservationReleased,
        ),
        _ => (None, EventType::ReservationReleased),
    };
    let Some(changed) = changed else {
        // Resolved already: the same resolution is answered again, anything else refused.
        let now = holds::get_in(&mut tx, id).await?.unwrap_or(current);
        let same = match resolution {
            Resolution::Capture(amount) => {
                now.status == HoldStatus::Captured && now.captured_cents == Some(amount)
            }
            Resolution::Release(_) => now.status == HoldStatus::Released,
        };
        // Committed either way: a hold expired just now stays expired.
        let view = answer_in(&mut tx, &now).await?;
        tx.commit().await?;
        return if same { Ok(Json(view)) } else { Err(resolved(&now)) };
    };
    if let Some(approval_id) =
        changed.approval_id.as_deref().filter(|_| event == EventType::ReservationReleased)
    {
        // A released hold no longer waits: its approval ends with it.
        crate::store::governance::end_approval(&mut tx, approval_id, "reservation_released", at)
            .await?;
    }
    let data = holds::event_data(&changed);
    outbox::record_for_agent(&mut tx, &changed.agent_id, event, &data, at).await?;
    let view = answer_in(&mut tx, &changed).await?;
    idempotency.save(&mut tx, StatusCode::OK, &view).await?;
    tx.commit().await?;
    Ok(Json(view))
}

fn not_manual(hold: &Hold) -> ApiError {
    ApiError::new(
        ErrorCode::ReservationNotManual,
        format!(
            "this hold follows its {}; it is captured and released with it",
            hold.source.as_str()
        ),
    )
    .with_details(json!({ "source": hold.source.as_str(), "subject_id": hold.subject_id }))
}

/// `POST /v1/spend-guard/reservations/{reservation_id}/release`: gives a held (or still
/// waiting) reservation back. Releasing again answers the release again; after a capture 409,
/// after expiry 410.
#[utoipa::path(
    post,
    path = "/v1/spend-guard/reservations/{reservation_id}/release",
    operation_id = "release_reservation",
    tag = "spend-guard",
    params(("reservation_id" = String, Path, description = "`rsv_…`")),
    request_body = ReleaseRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Released", body = ReservationView),
        (status = 404, description = "No such reservation of the caller", body = crate::api::error::ErrorBody),
        (status = 409, description = "`reservation_already_captured`", body = crate::api::error::ErrorBody),
        (status = 410, description = "`reservation_expired`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn release(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(id): ApiPath,
    Write(OptionalApiJson(body), idempotency): Write<OptionalApiJson<ReleaseRequest>>,
) -> ApiResult<Json<ReservationView>> {
    let hold = visible(&state, &checker, &id).await?;
    let reason = body.reason.unwrap_or_else(|| "released".to_owned());
    if reason.chars().count() > 1_000 {
        return Err(ApiError::validation("reason", "`reason` is at most 1,000 characters"));
    }
    resolve(&state, &checker, &hold, Resolution::Release(reason), &idempotency).await
}

/// `GET /v1/spend-guard/reservations/{reservation_id}`: one reservation with its events.
#[utoipa::path(
    get,
    path = "/v1/spend-guard/reservations/{reservation_id}",
    operation_id = "get_reservation",
    tag = "spend-guard",
    params(("reservation_id" = String, Path, description = "`rsv_…`")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The reservation", body = ReservationView),
        (status = 404, description = "No such reservation of the caller", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<ReservationView>> {
    let hold = visible(&state, &checker, &id).await?;
    Ok(Json(answer(&state, &hold).await?))
}

/// `GET /v1/spend-guard/reservations?status=&agent_id=&limit=&cursor=`: reservations newest
/// first, each with its events: an agent's own, or any of the owner's account.
#[utoipa::path(
    get,
    path = "/v1/spend-guard/reservations",
    operation_id = "list_reservations",
    tag = "spend-guard",
    params(
        ("status" = Option<HoldStatus>, Query, description = "Only reservations in this status"),
        ("agent_id" = Option<String>, Query, description = "Only this agent's"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of reservations", body = ReservationList),
        (status = 404, description = "`agent_id` is not an agent of the caller", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    checker: Checker,
    ApiQuery(query): ApiQuery<ReservationQuery>,
) -> ApiResult<Json<ReservationList>> {
    let limit = page::limit(query.limit)?;
    let status = page::status_filter(query.status.as_deref(), HoldStatus::ALL, HoldStatus::as_str)?;
    let (account, agent_id) = checker.listing(&state, query.agent_id.as_deref()).await?;
    let cursor = query.cursor.as_deref().map(page::decode_cursor).transpose()?;
    let mut found = holds::list(
        state.store.reader(),
        &account,
        agent_id.as_deref(),
        status,
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut found, limit, |h| page::cursor_of(h.created_at, h.id.as_str()));
    let mut data = Vec::with_capacity(found.len());
    for hold in &found {
        data.push(answer(&state, hold).await?);
    }
    Ok(Json(ReservationList { data, next_cursor }))
}
