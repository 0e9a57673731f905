//! An agent's webhook deliveries: the list, one delivery with its attempts, and a replay.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::delivery_view::{DeliveryDetail, DeliveryStatus, DeliveryView, WebhookDeliveryList};
use super::owned_agent;
use super::request::{DeliveryQuery, NoFields};
use crate::api::AppState;
use crate::api::auth::OwnerAuth;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiPath, ApiPathPair, ApiQuery, OptionalApiJson};
use crate::api::idempotency::Write;
use crate::api::page;
use crate::store::now;
use crate::store::webhooks::{self as rows};
use crate::webhooks::dispatcher::now_ms;

/// `GET /agents/{agent_id}/webhooks/deliveries?status=&limit=`: the agent's deliveries, newest
/// first.
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/webhooks/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
        ("status" = Option<DeliveryStatus>, Query, description = "Only deliveries in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 50)"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Deliveries, newest first", body = WebhookDeliveryList),
    ),
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<WebhookDeliveryList>> {
    owned_agent(&state, &account, &agent_id).await?;
    let limit = page::limit(query.limit)?;
    if let Some(status) = &query.status
        && status.parse::<DeliveryStatus>().is_err()
    {
        return Err(ApiError::validation(
            "status",
            "`status` must be `pending`, `succeeded` or `failed`",
        ));
    }
    let list = rows::list_deliveries(
        state.store.reader(),
        &agent_id,
        query.status.as_deref(),
        i64::from(limit),
    )
    .await?;
    Ok(Json(WebhookDeliveryList { data: list.iter().map(DeliveryView::from).collect() }))
}

/// `GET /agents/{agent_id}/webhooks/deliveries/{delivery_id}`: one delivery with the exact body
/// it posts and every attempt (status code or error, latency, the response's first KiB).
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/webhooks/deliveries/{delivery_id}",
    operation_id = "get_webhook_delivery",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
        ("delivery_id" = String, Path, description = "The delivery"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The delivery with its attempts", body = DeliveryDetail),
    ),
)]
pub async fn delivery(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, delivery_id): ApiPathPair,
) -> ApiResult<Json<DeliveryDetail>> {
    owned_agent(&state, &account, &agent_id).await?;
    // The attempts first, then the delivery: an attempt is logged in the same transaction that
    // moves its delivery on, so the delivery read second already shows every attempt read (the
    // other order could pair an attempt with the delivery's state from before it).
    let attempts = rows::attempts_of(state.store.reader(), &delivery_id).await?;
    let mut conn = state.store.reader().acquire().await?;
    let found = rows::get_delivery(&mut conn, &agent_id, &delivery_id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    drop(conn);
    Ok(Json(DeliveryDetail::new(&found, &attempts)))
}

/// `POST /agents/{agent_id}/webhooks/deliveries/{delivery_id}/replay`: sends a finished
/// delivery again: the same delivery (same `webhook-id` and body) goes back to `pending` with
/// its schedule restarted, due now; `202`. A pending delivery answers 409 `delivery_pending`;
/// one whose endpoint is disabled or deleted, 409 `webhook_not_active`.
#[utoipa::path(
    post,
    path = "/agents/{agent_id}/webhooks/deliveries/{delivery_id}/replay",
    operation_id = "replay_webhook_delivery",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
        ("delivery_id" = String, Path, description = "The delivery"),
    ),
    request_body = Option<NoFields>,
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "Queued again", body = DeliveryView),
    ),
)]
pub async fn replay(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, delivery_id): ApiPathPair,
    Write(OptionalApiJson(NoFields {}), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    owned_agent(&state, &account, &agent_id).await?;
    let mut tx = state.store.begin().await?;
    let found = rows::get_delivery(&mut tx, &agent_id, &delivery_id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let endpoint = rows::get_endpoint(&mut tx, &agent_id, &found.endpoint_id).await?;
    if !endpoint.is_some_and(|e| e.status == rows::ACTIVE || e.status == rows::PAUSED) {
        return Err(ApiError::new(
            ErrorCode::WebhookNotActive,
            "the delivery's webhook is disabled or deleted; re-enable it first",
        ));
    }
    if !rows::replay(&mut tx, &found.id, now_ms(), now()).await? {
        return Err(ApiError::new(
            ErrorCode::DeliveryPending,
            "the delivery is still pending; it is sent on its schedule",
        ));
    }
    let updated = rows::get_delivery(&mut tx, &agent_id, &found.id)
        .await?
        .ok_or_else(|| ApiError::internal("delivery vanished"))?;
    let response = DeliveryView::from(&updated);
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &response).await?;
    tx.commit().await?;
    tracing::info!(delivery_id = %found.id, "webhook delivery replayed");
    Ok((StatusCode::ACCEPTED, Json(response)))
}
