//! `/agents/{agent_id}/webhooks`: an agent's webhook endpoints and their deliveries, managed
//! with the owner credential of the agent's account (an agent of another account answers 404).
//!
//! The signing secret is shown once, in the answer that creates the endpoint or rotates its
//! secret; a replay of either request under its `Idempotency-Key` answers `"secret": null`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::OwnerAuth;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath, ApiPathPair, OptionalApiJson};
use super::idempotency::Write;
use super::validate::prose;
use crate::store::agents::{self, Account};
use crate::store::now;
use crate::store::webhooks::{self as rows, Delivery, Endpoint};
use crate::webhooks::address::{self, UrlError};
use crate::webhooks::dispatcher::{now_ms, rfc3339};
use crate::webhooks::events;
use crate::webhooks::new_id;
use crate::webhooks::signature::SigningSecret;

/// How long a rotated-out secret keeps signing, in seconds.
pub const ROTATION_GRACE_SECS: i64 = 24 * 3_600;

/// Most event types one endpoint lists.
const MAX_EVENT_TYPES: usize = 32;

/// The body of `POST /agents/{agent_id}/webhooks`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries go: `http(s)`, a public address unless the operator allows others.
    pub url: String,
    /// The event types to receive; empty or absent: all.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// A note, up to 500 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// The body of `PATCH /agents/{agent_id}/webhooks/{webhook_id}`: the fields to change.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// A new URL, checked like at creation.
    #[serde(default)]
    pub url: Option<String>,
    /// New event types (empty: all).
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// A new note (empty: none).
    #[serde(default)]
    pub description: Option<String>,
    /// `active` (also re-enables a disabled endpoint) or `paused`.
    #[serde(default)]
    pub status: Option<String>,
}

/// A write that takes no fields (an empty body or `{}`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `?status=&limit=` of the deliveries list.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryQuery {
    /// `pending`, `succeeded` or `failed`.
    pub status: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
}

/// An endpoint as the API shows it (never with a secret).
pub fn endpoint_json(endpoint: &Endpoint) -> Value {
    json!({
        "id": endpoint.id,
        "agent_id": endpoint.agent_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "status": endpoint.status,
        "status_reason": endpoint.status_reason,
        "created_at": rfc3339(endpoint.created_at),
        "updated_at": rfc3339(endpoint.updated_at),
    })
}

/// A delivery as the API shows it, without its attempts.
pub fn delivery_json(delivery: &Delivery) -> Value {
    let millis = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
    };
    json!({
        "id": delivery.id,
        "webhook_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempt_count": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at_ms.and_then(millis),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": rfc3339(delivery.created_at),
        "updated_at": rfc3339(delivery.updated_at),
        "completed_at": delivery.completed_at.map(rfc3339),
    })
}

/// The agent `agent_id` of the caller's account, or 404.
async fn owned_agent(state: &AppState, account: &Account, agent_id: &str) -> ApiResult<()> {
    agents::get_agent(state.store.reader(), agent_id)
        .await?
        .filter(|agent| agent.account_id == account.id)
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// The endpoint `webhook_id` of the caller's agent `agent_id`, or 404 (for the agent first).
async fn owned_endpoint(
    state: &AppState,
    account: &Account,
    agent_id: &str,
    webhook_id: &str,
) -> ApiResult<Endpoint> {
    owned_agent(state, account, agent_id).await?;
    let mut conn = state.store.reader().acquire().await?;
    rows::get_endpoint(&mut conn, agent_id, webhook_id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// Checks `url` syntactically and resolves it against the SSRF policy.
async fn checked_url(state: &AppState, url: &str) -> ApiResult<String> {
    let parsed =
        address::parse(url.trim()).map_err(|e| ApiError::validation("url", e.to_string()))?;
    match address::vet(&parsed, state.webhooks.allow_private_urls).await {
        Ok(_) => Ok(parsed.to_string()),
        Err(e @ (UrlError::NotPublic(_) | UrlError::Unresolvable)) => Err(ApiError::new(
            ErrorCode::WebhookUrlNotAllowed,
            "webhook URLs must resolve to public addresses",
        )
        .with_details(json!({ "field": "url", "reason": e.to_string() }))),
        Err(e) => Err(ApiError::validation("url", e.to_string())),
    }
}

/// Checks event types: known, at most 32; duplicates are dropped.
fn checked_event_types(requested: &[String]) -> ApiResult<Vec<String>> {
    if requested.len() > MAX_EVENT_TYPES {
        return Err(ApiError::validation("event_types", "at most 32 `event_types`"));
    }
    let mut types: Vec<String> = Vec::new();
    for name in requested {
        if !events::is_known(name) {
            return Err(ApiError::new(
                ErrorCode::UnknownEventType,
                format!("`{name}` is not an event type Pactum sends"),
            )
            .with_details(json!({ "field": "event_types", "event_type": name })));
        }
        if !types.contains(name) {
            types.push(name.clone());
        }
    }
    Ok(types)
}

fn checked_description(description: Option<String>) -> ApiResult<Option<String>> {
    if let Some(text) = &description {
        prose("description", text, 500)?;
    }
    Ok(description.filter(|d| !d.trim().is_empty()))
}

/// `POST /agents/{agent_id}/webhooks`: a new active endpoint; `201` with its `secret`, once.
#[utoipa::path(
    post,
    path = "/agents/{agent_id}/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
    ),
    request_body = CreateWebhook,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The endpoint with its signing secret, shown this once", body = crate::api::schema::Webhook),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<CreateWebhook>>,
) -> ApiResult<Response> {
    owned_agent(&state, &account, &agent_id).await?;
    let event_types = checked_event_types(&body.event_types)?;
    let description = checked_description(body.description)?;
    let url = checked_url(&state, &body.url).await?;
    let at = now();
    let endpoint = Endpoint {
        id: new_id("whk_"),
        agent_id,
        url,
        description,
        event_types,
        status: rows::ACTIVE.to_owned(),
        status_reason: None,
        created_at: at,
        updated_at: at,
    };
    let secret = SigningSecret::generate();
    let mut stored = endpoint_json(&endpoint);
    stored["secret"] = Value::Null;
    let mut tx = state.store.begin().await?;
    rows::insert_endpoint(&mut tx, &endpoint, &secret.reveal()).await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &stored).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %endpoint.id, agent_id = %endpoint.agent_id, "webhook endpoint created");
    let mut revealed = endpoint_json(&endpoint);
    revealed["secret"] = Value::from(secret.reveal());
    Ok((StatusCode::CREATED, Json(revealed)).into_response())
}

/// `GET /agents/{agent_id}/webhooks`: the agent's endpoints, oldest first.
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agent's endpoints", body = crate::api::schema::WebhookList),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
) -> ApiResult<Json<Value>> {
    owned_agent(&state, &account, &agent_id).await?;
    let endpoints = rows::list_endpoints(state.store.reader(), &agent_id).await?;
    Ok(Json(json!({ "data": endpoints.iter().map(endpoint_json).collect::<Vec<_>>() })))
}

/// `GET /agents/{agent_id}/webhooks/{webhook_id}`.
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/webhooks/{webhook_id}",
    operation_id = "get_webhook",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
        ("webhook_id" = String, Path, description = "The webhook endpoint"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The endpoint", body = crate::api::schema::Webhook),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, webhook_id): ApiPathPair,
) -> ApiResult<Json<Value>> {
    Ok(Json(endpoint_json(&owned_endpoint(&state, &account, &agent_id, &webhook_id).await?)))
}

/// `PATCH /agents/{agent_id}/webhooks/{webhook_id}`: change the URL, event types, note, or
/// pause (`status: paused`) and resume (`status: active`). Deliveries of a paused endpoint
/// wait and go out on resume.
#[utoipa::path(
    patch,
    path = "/agents/{agent_id}/webhooks/{webhook_id}",
    operation_id = "update_webhook",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
        ("webhook_id" = String, Path, description = "The webhook endpoint"),
    ),
    request_body = UpdateWebhook,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The endpoint as changed", body = crate::api::schema::Webhook),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, webhook_id): ApiPathPair,
    Write(ApiJson(body), idempotency): Write<ApiJson<UpdateWebhook>>,
) -> ApiResult<Response> {
    let mut endpoint = owned_endpoint(&state, &account, &agent_id, &webhook_id).await?;
    if let Some(types) = &body.event_types {
        endpoint.event_types = checked_event_types(types)?;
    }
    if let Some(description) = body.description {
        endpoint.description = checked_description(Some(description))?;
    }
    if let Some(status) = &body.status {
        if status != rows::ACTIVE && status != rows::PAUSED {
            return Err(ApiError::validation("status", "`status` must be `active` or `paused`"));
        }
        endpoint.status = status.clone();
        endpoint.status_reason = None;
    }
    if let Some(url) = &body.url {
        endpoint.url = checked_url(&state, url).await?;
    }
    endpoint.updated_at = now();
    let response = endpoint_json(&endpoint);
    let mut tx = state.store.begin().await?;
    // Deleted concurrently: answer as for any unknown endpoint.
    if rows::get_endpoint(&mut tx, &agent_id, &webhook_id).await?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    rows::update_endpoint(&mut tx, &endpoint).await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %endpoint.id, status = %endpoint.status, "webhook endpoint updated");
    Ok(Json(response).into_response())
}

/// `POST /agents/{agent_id}/webhooks/{webhook_id}/rotate-secret`: a new signing secret, shown
/// once; the old one keeps signing (alongside) for 24 hours.
#[utoipa::path(
    post,
    path = "/agents/{agent_id}/webhooks/{webhook_id}/rotate-secret",
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
        ("webhook_id" = String, Path, description = "The webhook endpoint"),
    ),
    request_body = Option<NoFields>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The endpoint with its new secret, shown this once", body = crate::api::schema::Webhook),
    ),
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, webhook_id): ApiPathPair,
    Write(OptionalApiJson(NoFields {}), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Response> {
    let endpoint = owned_endpoint(&state, &account, &agent_id, &webhook_id).await?;
    let secret = SigningSecret::generate();
    let at = now();
    let grace_until = at + ROTATION_GRACE_SECS;
    let mut stored = endpoint_json(&endpoint);
    stored["previous_secret_expires_at"] = json!(rfc3339(grace_until));
    stored["secret"] = Value::Null;
    let mut tx = state.store.begin().await?;
    rows::rotate_secret(&mut tx, &endpoint.id, &secret.reveal(), grace_until, at).await?;
    idempotency.save(&mut tx, StatusCode::OK, &stored).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %endpoint.id, "webhook signing secret rotated");
    let mut revealed = stored;
    revealed["secret"] = Value::from(secret.reveal());
    Ok(Json(revealed).into_response())
}

/// `DELETE /agents/{agent_id}/webhooks/{webhook_id}`: the endpoint stops receiving; its pending
/// deliveries fail. Its delivery history stays listed.
#[utoipa::path(
    delete,
    path = "/agents/{agent_id}/webhooks/{webhook_id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
        ("webhook_id" = String, Path, description = "The webhook endpoint"),
    ),
    request_body = Option<NoFields>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Deleted", body = crate::api::schema::WebhookDeleted),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, webhook_id): ApiPathPair,
    Write(OptionalApiJson(NoFields {}), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Response> {
    let endpoint = owned_endpoint(&state, &account, &agent_id, &webhook_id).await?;
    let response = json!({ "id": endpoint.id, "deleted": true });
    let mut tx = state.store.begin().await?;
    rows::retire_endpoint(&mut tx, &endpoint.id, rows::DELETED, "the webhook was deleted", now())
        .await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %endpoint.id, "webhook endpoint deleted");
    Ok(Json(response).into_response())
}

/// `GET /agents/{agent_id}/webhooks/deliveries?status=&limit=`: the agent's deliveries, newest
/// first.
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/webhooks/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(
        ("agent_id" = String, Path, description = "The agent (of the caller's account)"),
        ("status" = Option<String>, Query, description = "`pending`, `succeeded` or `failed`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 50)"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Deliveries, newest first", body = crate::api::schema::WebhookDeliveryList),
    ),
)]
pub async fn deliveries(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    owned_agent(&state, &account, &agent_id).await?;
    let Query(query) =
        query.map_err(|e| ApiError::validation("query", format!("bad query string: {e}")))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "`limit` must be 1 to 100"));
    }
    if let Some(status) = &query.status
        && ![rows::PENDING, rows::SUCCEEDED, rows::FAILED].contains(&status.as_str())
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
    Ok(Json(json!({ "data": list.iter().map(delivery_json).collect::<Vec<_>>() })))
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
        (status = 200, description = "The delivery with its attempts", body = crate::api::schema::WebhookDelivery),
    ),
)]
pub async fn delivery(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, delivery_id): ApiPathPair,
) -> ApiResult<Json<Value>> {
    owned_agent(&state, &account, &agent_id).await?;
    let mut conn = state.store.reader().acquire().await?;
    let found = rows::get_delivery(&mut conn, &agent_id, &delivery_id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    drop(conn);
    let attempts = rows::attempts_of(state.store.reader(), &found.id).await?;
    let mut body = delivery_json(&found);
    body["payload"] = serde_json::from_str(&found.payload).unwrap_or(Value::Null);
    body["attempts"] = attempts
        .iter()
        .map(|a| {
            json!({
                "attempt": a.number,
                "status_code": a.status_code,
                "error": a.error,
                "latency_ms": a.latency_ms,
                "response_body": a.response_body,
                "attempted_at_ms": a.attempted_at_ms,
            })
        })
        .collect();
    Ok(Json(body))
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
        (status = 202, description = "Queued again", body = crate::api::schema::WebhookDelivery),
    ),
)]
pub async fn replay(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, delivery_id): ApiPathPair,
    Write(OptionalApiJson(NoFields {}), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Response> {
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
    let response = delivery_json(&updated);
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &response).await?;
    tx.commit().await?;
    tracing::info!(delivery_id = %found.id, "webhook delivery replayed");
    Ok((StatusCode::ACCEPTED, Json(response)).into_response())
}
