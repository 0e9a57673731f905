//! What the delivery routes answer: deliveries, their attempts and the exact body posted.

use serde::Serialize;
use utoipa::ToSchema;

use super::event::{EventType, WebhookEvent};
use crate::store::webhooks::{Attempt, Delivery};
use crate::vocab::string_enum;
use crate::webhooks::dispatcher::rfc3339;

string_enum!(
    /// Where a delivery stands.
    DeliveryStatus {
        /// Still to be made.
        Pending = "pending",
        /// A receiver accepted it with a 2xx.
        Succeeded = "succeeded",
        /// Its schedule ran out, or its endpoint was disabled or deleted.
        Failed = "failed",
    }
);

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryView {
    /// Its id, sent as the `webhook-id` header on every attempt and replay.
    #[schema(pattern = "^msg_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The endpoint.
    #[schema(pattern = "^whk_[0-9A-Za-z_]+$")]
    pub webhook_id: String,
    /// The event delivered (the payload's `id`).
    #[schema(pattern = "^evt_[0-9A-Za-z_]+$")]
    pub event_id: String,
    /// The event type.
    #[schema(value_type = EventType)]
    pub event_type: String,
    /// Where it stands.
    #[schema(value_type = DeliveryStatus)]
    pub status: String,
    /// Attempts so far.
    #[schema(minimum = 0)]
    pub attempt_count: i64,
    /// RFC 3339; `null` when none is scheduled.
    #[schema(required = true)]
    pub next_attempt_at: Option<String>,
    /// The last HTTP status received.
    #[schema(required = true)]
    pub last_status_code: Option<i64>,
    /// The last error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    #[schema(required = true)]
    pub completed_at: Option<String>,
}

impl From<&Delivery> for DeliveryView {
    fn from(delivery: &Delivery) -> Self {
        let millis = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        };
        DeliveryView {
            id: delivery.id.clone(),
            webhook_id: delivery.endpoint_id.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            status: delivery.status.clone(),
            attempt_count: delivery.attempts,
            next_attempt_at: delivery.next_attempt_at_ms.and_then(millis),
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error.clone(),
            created_at: rfc3339(delivery.created_at),
            updated_at: rfc3339(delivery.updated_at),
            completed_at: delivery.completed_at.map(rfc3339),
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub attempt: i64,
    /// The HTTP status received; `null` when none was (a connection error, a timeout).
    #[schema(required = true)]
    pub status_code: Option<i64>,
    /// What went wrong; `null` on success.
    #[schema(required = true)]
    pub error: Option<String>,
    /// How long the request took.
    pub latency_ms: i64,
    /// The response's first KiB.
    #[schema(required = true)]
    pub response_body: Option<String>,
    /// Unix milliseconds.
    pub attempted_at_ms: i64,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        AttemptView {
            attempt: a.number,
            status_code: a.status_code,
            error: a.error.clone(),
            latency_ms: a.latency_ms,
            response_body: a.response_body.clone(),
            attempted_at_ms: a.attempted_at_ms,
        }
    }
}

/// `GET …/deliveries/{delivery_id}`: a delivery with the exact body it posts and every attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryDetail {
    /// Its id, sent as the `webhook-id` header on every attempt and replay.
    #[schema(pattern = "^msg_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The endpoint.
    #[schema(pattern = "^whk_[0-9A-Za-z_]+$")]
    pub webhook_id: String,
    /// The event delivered (the payload's `id`).
    #[schema(pattern = "^evt_[0-9A-Za-z_]+$")]
    pub event_id: String,
    /// The event type.
    #[schema(value_type = EventType)]
    pub event_type: String,
    /// Where it stands.
    #[schema(value_type = DeliveryStatus)]
    pub status: String,
    /// Attempts so far.
    #[schema(minimum = 0)]
    pub attempt_count: i64,
    /// RFC 3339; `null` when none is scheduled.
    #[schema(required = true)]
    pub next_attempt_at: Option<String>,
    /// The last HTTP status received.
    #[schema(required = true)]
    pub last_status_code: Option<i64>,
    /// The last error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    #[schema(required = true)]
    pub completed_at: Option<String>,
    /// The exact JSON body posted.
    #[schema(required = true)]
    pub payload: Option<WebhookEvent>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
}

impl DeliveryDetail {
    /// `delivery` with its stored payload and its `attempts`.
    pub fn new(delivery: &Delivery, attempts: &[Attempt]) -> Self {
        let view = DeliveryView::from(delivery);
        DeliveryDetail {
            id: view.id,
            webhook_id: view.webhook_id,
            event_id: view.event_id,
            event_type: view.event_type,
            status: view.status,
            attempt_count: view.attempt_count,
            next_attempt_at: view.next_attempt_at,
            last_status_code: view.last_status_code,
            last_error: view.last_error,
            created_at: view.created_at,
            updated_at: view.updated_at,
            completed_at: view.completed_at,
            payload: serde_json::from_str(&delivery.payload).ok(),
            attempts: attempts.iter().map(AttemptView::from).collect(),
        }
    }
}

/// Deliveries, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliveryList {
    /// The deliveries.
    pub data: Vec<DeliveryView>,
}
