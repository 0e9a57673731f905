//! Schemas of the API's responses for the OpenAPI document ([`super::openapi`]).
//!
//! Handlers build their JSON with `serde_json::json!`; each type here mirrors one such body field
//! for field, and `tests/openapi.rs` validates real responses against the document, so a field
//! added to a handler but not here (every schema here forbids unknown properties) fails a test.
//! Fields that are always present but may be `null` are marked `required`.

#![allow(dead_code)] // Only their schemas are used; nothing constructs these types.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The one error shape of every non-2xx answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"error": {"code": "validation_error", "message": "`quantity` must be 1 to 2^63 − 1", "details": {"field": "quantity"}}}))]
pub struct Error {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`Error`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable machine code: `validation_error`, `malformed_json`, `unauthorized`,
    /// `invalid_credential`, `not_found`, `forbidden`, `wrong_party`, `invalid_state`,
    /// `idempotency_key_reused`, `idempotency_conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `method_not_allowed`, `chain_unavailable`, `timeout`, …
    #[schema(example = "validation_error")]
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// Structured context (the offending field, the current status, …); absent when none.
    pub details: Option<Value>,
}

/// `GET /health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "ok", "chain_id": 31337, "escrow_contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "last_block": 42}))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The chain the escrow is on.
    pub chain_id: u64,
    /// The escrow contract, checksummed.
    pub escrow_contract: String,
    /// The last block the chain watcher processed; `null` before the first.
    #[schema(required = true)]
    pub last_block: Option<u64>,
}

// -------------------------------------------------------------------------------------- agents

/// An agent (`GET /v1/agents/{agent_id}`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "agt_4f3c2a1b9e8d7c6b5a493827", "account_id": "acct_1a2b3c4d5e6f7a8b9c0d1e2f", "name": "search-buyer", "description": "Buys search API calls", "capabilities": ["usage"], "status": "active", "api_key_hint": "pk_test_…9f2c", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "revoked_at": null}))]
pub struct Agent {
    /// Its id.
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// A display name.
    pub name: String,
    /// What the agent does.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Capability tags.
    pub capabilities: Vec<String>,
    /// `active` or `revoked`.
    pub status: String,
    /// The API key's prefix and last characters, for recognising it.
    pub api_key_hint: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339; `null` unless revoked.
    #[schema(required = true)]
    pub revoked_at: Option<String>,
}

/// `POST /v1/agents`: the agent with its API key, shown this once (`null` on an idempotent
/// replay, since only the key's hash is kept).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "agt_4f3c2a1b9e8d7c6b5a493827", "account_id": "acct_1a2b3c4d5e6f7a8b9c0d1e2f", "name": "search-buyer", "description": null, "capabilities": ["usage"], "status": "active", "api_key_hint": "pk_test_…9f2c", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "revoked_at": null, "api_key": "pk_test_5b1d…9f2c"}))]
pub struct AgentCreated {
    /// Its id.
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// A display name.
    pub name: String,
    /// What the agent does.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Capability tags.
    pub capabilities: Vec<String>,
    /// `active`.
    pub status: String,
    /// The API key's prefix and last characters.
    pub api_key_hint: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339; `null` unless revoked.
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    /// The API key; `null` on an idempotent replay.
    #[schema(required = true)]
    pub api_key: Option<String>,
}

/// `GET /v1/agents`: a page of the account's agents, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentList {
    /// The agents.
    pub data: Vec<Agent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An execution token, with its secret shown once at minting (`null` on a replay).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionToken {
    /// Its id.
    pub id: String,
    /// The agent it acts as.
    pub agent_id: String,
    /// The one action it allows.
    pub action: String,
    /// The agreement (or seller agent) it may act on.
    pub audience: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339.
    pub created_at: String,
    /// The token; `null` on an idempotent replay.
    #[schema(required = true)]
    pub token: Option<String>,
}

// The webhook and receipt schemas below name the fields clients rely on and allow others:
// their routes are not yet driven by the response-conformance test.

/// A webhook endpoint (never with its secret, except where noted).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// The agent whose events it receives.
    pub agent_id: String,
    /// Where deliveries go.
    pub url: String,
    /// A note.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Event types received (empty: all).
    pub event_types: Vec<String>,
    /// `active`, `paused` or `disabled`.
    pub status: String,
    /// Why it is disabled.
    #[schema(required = true)]
    pub status_reason: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The signing secret: shown once at creation and rotation (`null` on a replay); absent
    /// elsewhere.
    pub secret: Option<String>,
    /// After a rotation: until when the previous secret also signs (RFC 3339).
    pub previous_secret_expires_at: Option<String>,
}

/// The agent's webhook endpoints.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub data: Vec<Webhook>,
}

/// `DELETE …/webhooks/{webhook_id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeleted {
    /// The endpoint.
    pub id: String,
    /// Always `true`.
    pub deleted: bool,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    /// Its id, sent as the `webhook-id` header on every attempt and replay.
    pub id: String,
    /// The endpoint.
    pub webhook_id: String,
    /// The event delivered (the payload's `id`).
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempt_count: u64,
    /// RFC 3339; `null` when none is scheduled.
    #[schema(required = true)]
    pub next_attempt_at: Option<String>,
    /// The last HTTP status received.
    #[schema(required = true)]
    pub last_status_code: Option<u16>,
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
    /// Every attempt (`GET …/deliveries/{delivery_id}` only).
    pub attempts: Option<Vec<Value>>,
    /// The exact JSON body posted (`GET …/deliveries/{delivery_id}` only).
    pub payload: Option<Value>,
}

/// Deliveries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryList {
    /// The deliveries.
    pub data: Vec<WebhookDelivery>,
}

/// A signed receipt of a settlement event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// Its id.
    pub id: String,
    /// What it records.
    pub kind: String,
    /// The agreement.
    pub agreement_id: String,
    /// Token base units (decimal string).
    pub amount: String,
}

/// A page of receipts (`GET /receipts`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceiptList {
    /// Newest first.
    pub receipts: Vec<Receipt>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /receipts/verify/{receipt_id}`: the receipt checked four ways.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceiptVerification {
    /// The receipt.
    pub receipt_id: String,
    /// Whether every check holds.
    pub valid: bool,
    /// `signature`, `transaction`, `block`, `log`: each `{valid, reason}`.
    pub checks: Value,
    /// The receipt.
    pub receipt: Receipt,
}
