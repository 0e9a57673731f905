//! `Idempotency-Key` handling for writes: the first response to a key is stored in the same
//! transaction as the change it reports; a retry with the same request gets that response back
//! (with `Idempotent-Replayed: true`), a reuse with a different request gets 422, and a
//! concurrent duplicate that loses the race gets 409.
//!
//! Only successful responses are stored: a refused request changed nothing, so retrying it
//! simply runs the checks again.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult};
use super::extract::IdempotencyKey;
use crate::store::idempotency::{self, StoredResponse};
use crate::store::{Conn, Store, now};

/// One write's idempotency context.
#[derive(Debug, Clone)]
pub struct Idempotent {
    scope: String,
    key: Option<String>,
    request_hash: String,
}

impl Idempotent {
    /// The context of a request by `scope` (the caller's id) to `method path` with `body`.
    pub fn new(
        scope: &str,
        key: IdempotencyKey,
        method: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Self {
        let mut hasher = Sha256::new();
        for part in [method, path, &serde_json::to_string(body).unwrap_or_default()] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        Self {
            scope: scope.to_owned(),
            key: key.0,
            request_hash: alloy::primitives::hex::encode(hasher.finalize()),
        }
    }

    /// The stored response when this key was used before with the same request; 422 when it
    /// was used with a different one; `None` for a new key or no key.
    pub async fn replay(&self, store: &Store) -> ApiResult<Option<Response>> {
        let Some(key) = &self.key else { return Ok(None) };
        let Some(stored) = idempotency::lookup(store.reader(), &self.scope, key).await? else {
            return Ok(None);
        };
        if stored.request_hash != self.request_hash {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request",
            ));
        }
        let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
        let mut response = (status, Json(stored.body)).into_response();
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(Some(response))
    }

    /// Stores `body` as the answer to this key, inside the caller's transaction. A concurrent
    /// first use of the same key surfaces here as 409, and the caller's transaction (with the
    /// change) is then dropped.
    pub async fn save(&self, conn: &mut Conn, status: StatusCode, body: &Value) -> ApiResult<()> {
        let Some(key) = &self.key else { return Ok(()) };
        let stored = StoredResponse {
            request_hash: self.request_hash.clone(),
            status: status.as_u16(),
            body: body.clone(),
        };
        idempotency::save(conn, &self.scope, key, &stored, now()).await.map_err(|e| {
            if e.is_unique_violation() {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    "a request with this Idempotency-Key is already being processed",
                )
            } else {
                e.into()
            }
        })
    }
}
