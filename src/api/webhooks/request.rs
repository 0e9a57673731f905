//! What the webhook routes accept: endpoint bodies, the deliveries query, and the checks of
//! URLs (the SSRF policy), event types and notes.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::event::EventType;
use super::view::WebhookStatus;
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::validate::prose;
use crate::webhooks::address::{self, UrlError};
use crate::webhooks::events;

/// Most event types one endpoint lists.
const MAX_EVENT_TYPES: usize = 32;

/// The body of `POST /agents/{agent_id}/webhooks`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries go: `http(s)`, a public address unless the operator allows others.
    #[schema(format = "uri")]
    pub url: String,
    /// The event types to receive; empty or absent: all.
    #[serde(default)]
    #[schema(value_type = Vec<EventType>, max_items = 32)]
    pub event_types: Vec<String>,
    /// A note, up to 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// The body of `PATCH /agents/{agent_id}/webhooks/{webhook_id}`: the fields to change.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// A new URL, checked like at creation.
    #[serde(default)]
    #[schema(format = "uri")]
    pub url: Option<String>,
    /// New event types (empty: all).
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventType>>, max_items = 32)]
    pub event_types: Option<Vec<String>>,
    /// A new note (empty: none).
    #[serde(default)]
    pub description: Option<String>,
    /// `active` (also re-enables a disabled endpoint) or `paused`.
    #[serde(default)]
    #[schema(value_type = Option<WebhookStatus>)]
    pub status: Option<String>,
}

/// A write that takes no fields (an empty body or `{}`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `?status=&limit=` of the deliveries list.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryQuery {
    /// Only deliveries in this status.
    pub status: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
}

/// Checks `url` syntactically and resolves it against the SSRF policy.
pub(super) async fn checked_url(state: &AppState, url: &str) -> ApiResult<String> {
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
pub(super) fn checked_event_types(requested: &[String]) -> ApiResult<Vec<String>> {
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

pub(super) fn checked_description(description: Option<String>) -> ApiResult<Option<String>> {
    if let Some(text) = &description {
        prose("description", text, 500)?;
    }
    Ok(description.filter(|d| !d.trim().is_empty()))
}
