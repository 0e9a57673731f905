//! `/agents/{agent_id}/webhooks`: an agent's webhook endpoints and their deliveries, managed
//! with the owner credential of the agent's account (an agent of another account answers 404).
//!
//! The signing secret is shown once, in the answer that creates the endpoint or rotates its
//! secret; a replay of either request under its `Idempotency-Key` answers `"secret": null`.

mod deliveries;
mod delivery_view;
mod event;
mod request;
mod view;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

pub use deliveries::{__path_delivery, __path_list_deliveries, __path_replay};
pub use deliveries::{delivery, list_deliveries, replay};
pub use delivery_view::{
    AttemptView, DeliveryDetail, DeliveryStatus, DeliveryView, WebhookDeliveryList,
};
pub use event::{EventData, EventType, WebhookEvent};
pub use request::{CreateWebhook, DeliveryQuery, NoFields, UpdateWebhook};
pub use view::{WebhookDeleted, WebhookList, WebhookStatus, WebhookView, WebhookWithSecret};

use super::AppState;
use super::auth::OwnerAuth;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiPathPair, OptionalApiJson};
use super::idempotency::Write;
use crate::store::agents::Account;
use crate::store::now;
use crate::store::webhooks::{self as rows, Endpoint};
use crate::webhooks::new_id;
use crate::webhooks::signature::SigningSecret;
use request::{checked_description, checked_event_types, checked_url};

/// How long a rotated-out secret keeps signing, in seconds.
pub const ROTATION_GRACE_SECS: i64 = 24 * 3_600;

/// The agent `agent_id` of the caller's account, or 404.
pub(super) async fn owned_agent(
    state: &AppState,
    account: &Account,
    agent_id: &str,
) -> ApiResult<()> {
    super::auth::owned_agent(state, account, agent_id).await.map(|_| ())
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
        (status = 201, description = "The endpoint with its signing secret, shown this once", body = WebhookWithSecret),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<CreateWebhook>>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecret>)> {
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
    let stored = WebhookWithSecret::new(&endpoint, None, None);
    let mut tx = state.store.begin().await?;
    rows::insert_endpoint(&mut tx, &endpoint, &secret.reveal()).await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &stored).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %endpoint.id, agent_id = %endpoint.agent_id, "webhook endpoint created");
    let revealed = WebhookWithSecret { secret: Some(secret.reveal().to_string()), ..stored };
    Ok((StatusCode::CREATED, Json(revealed)))
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
        (status = 200, description = "The agent's endpoints", body = WebhookList),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
) -> ApiResult<Json<WebhookList>> {
    owned_agent(&state, &account, &agent_id).await?;
    let endpoints = rows::list_endpoints(state.store.reader(), &agent_id).await?;
    Ok(Json(WebhookList { data: endpoints.iter().map(WebhookView::from).collect() }))
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
        (status = 200, description = "The endpoint", body = WebhookView),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, webhook_id): ApiPathPair,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(WebhookView::from(&owned_endpoint(&state, &account, &agent_id, &webhook_id).await?)))
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
        (status = 200, description = "The endpoint as changed", body = WebhookView),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, webhook_id): ApiPathPair,
    Write(ApiJson(body), idempotency): Write<ApiJson<UpdateWebhook>>,
) -> ApiResult<Json<WebhookView>> {
    let mut endpoint = owned_endpoint(&state, &account, &agent_id, &webhook_id).await?;
    if let Some(types) = &body.event_types {
        endpoint.event_types = checked_event_types(types)?;
    }
    if let Some(description) = body.description {
        endpoint.description = checked_description(Some(description))?;
    }
    if let Some(status) = &body.status {
        if !matches!(status.parse(), Ok(WebhookStatus::Active | WebhookStatus::Paused)) {
            return Err(ApiError::validation("status", "`status` must be `active` or `paused`"));
        }
        endpoint.status = status.clone();
        endpoint.status_reason = None;
    }
    if let Some(url) = &body.url {
        endpoint.url = checked_url(&state, url).await?;
    }
    endpoint.updated_at = now();
    let response = WebhookView::from(&endpoint);
    let mut tx = state.store.begin().await?;
    // Deleted concurrently: answer as for any unknown endpoint.
    if rows::get_endpoint(&mut tx, &agent_id, &webhook_id).await?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    rows::update_endpoint(&mut tx, &endpoint).await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %endpoint.id, status = %endpoint.status, "webhook endpoint updated");
    Ok(Json(response))
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
        (status = 200, description = "The endpoint with its new secret, shown this once", body = WebhookWithSecret),
    ),
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, webhook_id): ApiPathPair,
    Write(OptionalApiJson(NoFields {}), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Json<WebhookWithSecret>> {
    let endpoint = owned_endpoint(&state, &account, &agent_id, &webhook_id).await?;
    let secret = SigningSecret::generate();
    let at = now();
    let grace_until = at + ROTATION_GRACE_SECS;
    let stored = WebhookWithSecret::new(&endpoint, Some(grace_until), None);
    let mut tx = state.store.begin().await?;
    rows::rotate_secret(&mut tx, &endpoint.id, &secret.reveal(), grace_until, at).await?;
    idempotency.save(&mut tx, StatusCode::OK, &stored).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %endpoint.id, "webhook signing secret rotated");
    Ok(Json(WebhookWithSecret { secret: Some(secret.reveal().to_string()), ..stored }))
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
        (status = 200, description = "Deleted", body = WebhookDeleted),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, webhook_id): ApiPathPair,
    Write(OptionalApiJson(NoFields {}), idempotency): Write<OptionalApiJson<NoFields>>,
) -> ApiResult<Json<WebhookDeleted>> {
    let endpoint = owned_endpoint(&state, &account, &agent_id, &webhook_id).await?;
    let response = WebhookDeleted { id: endpoint.id.clone(), deleted: true };
    let mut tx = state.store.begin().await?;
    rows::retire_endpoint(&mut tx, &endpoint.id, rows::DELETED, "the webhook was deleted", now())
        .await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    tracing::info!(webhook_id = %endpoint.id, "webhook endpoint deleted");
    Ok(Json(response))
}
