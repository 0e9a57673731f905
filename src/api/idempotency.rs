//! `Idempotency-Key` handling for every write, as one extractor: [`Write`] wraps a write's body
//! extractor, takes the key before the handler runs and hands the handler an [`Idempotency`]
//! that stores the response in the same transaction as the change it reports.
//!
//! - same key, same request (method, path, body), response stored → that response, replayed
//!   with `Idempotent-Replayed: true`, and the handler does not run;
//! - same key, different request → 422 `idempotency_key_reused`;
//! - same key while the first request is still running → 409 `idempotency_key_in_flight`;
//! - a refused or failed request releases the key: nothing is remembered for it, so a retry
//!   simply runs the checks again.
//!
//! Keys live in the caller's own key space (an agent's, or an account owner's) and expire after
//! `PACTUM_IDEMPOTENCY_TTL_SECS` (24 h by default).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, IdempotencyKey, OptionalApiJson};
use crate::store::idempotency::{self, StoredResponse, Taken};
use crate::store::{Conn, Store, now};

/// How long past the request timeout a taken key is still held. A request cannot run longer
/// than the timeout (its future is dropped, which releases the key), so a key held past both
/// belongs to a process that died mid-request (SIGKILL, a crash) and may be taken again: a
/// client retrying after a crash waits at most this long, not a fixed two minutes. Taking a key
/// from a request that somehow still runs is safe too: its response is stored only if it still
/// holds the key, in the transaction of its change ([`Idempotency::save`]).
const LEASE_MARGIN_SECS: i64 = 5;

/// How often expired responses are swept from the store, in seconds.
const SWEEP_EVERY_SECS: i64 = 600;

/// The sweep period of the last sweep (`now / SWEEP_EVERY_SECS`).
static LAST_SWEEP: AtomicI64 = AtomicI64::new(0);

/// A write body whose content identifies the request for idempotency.
pub trait Fingerprint {
    /// A stable serialization of the body.
    fn fingerprint(&self) -> String;
}

impl<T: Serialize> Fingerprint for ApiJson<T> {
    fn fingerprint(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }
}

impl<T: Serialize> Fingerprint for OptionalApiJson<T> {
    fn fingerprint(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }
}

/// A write request: its body (extracted by `B`) and its idempotency context. A retry of a
/// stored request is answered from the store before the handler runs.
#[derive(Debug)]
pub struct Write<B>(pub B, pub Idempotency);

impl<B> FromRequest<AppState> for Write<B>
where
    B: FromRequest<AppState, Rejection = ApiError> + Fingerprint + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let key = IdempotencyKey::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let caller = parts.extensions.get::<Caller>().cloned();
        let method = parts.method.clone();
        let uri = parts.uri.clone();
        let body = B::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        if key.0.is_none() {
            return Ok(Write(body, Idempotency { held: None }));
        }
        let Some(caller) = caller else {
            return Err(ApiError::internal("a write route without a credential").into_response());
        };
        let fingerprint = body.fingerprint();
        let idempotency =
            Idempotency::open(state, caller, key.0, method.as_str(), &uri, &fingerprint).await?;
        Ok(Write(body, idempotency))
    }
}

impl Idempotency {
    /// Takes `key` (when there is one) in `caller`'s key space for the request `method uri`
    /// with a body that serializes to `fingerprint`; a stored or in-flight request under the
    /// key is answered instead, as the `Err` response. The path and the query string both
    /// identify the request.
    pub async fn open(
        state: &AppState,
        caller: Caller,
        key: Option<String>,
        method: &str,
        uri: &axum::http::Uri,
        fingerprint: &str,
    ) -> Result<Idempotency, Response> {
        let Some(key) = key else { return Ok(Idempotency { held: None }) };
        let target = uri.path_and_query().map_or_else(|| uri.path(), |pq| pq.as_str());
        let request_hash = request_hash(method, target, fingerprint);
        let held = Held::take(state, caller.0, key, request_hash).await?;
        Ok(Idempotency { held: Some(held) })
    }
}

fn request_hash(method: &str, path: &str, body: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [method, path, body] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    alloy::primitives::hex::encode(hasher.finalize())
}

/// A write's idempotency context: whether it carries a key, and the means to store its
/// response.
#[derive(Debug)]
pub struct Idempotency {
    held: Option<Held>,
}

impl Idempotency {
    /// Refuses the request when it carries no `Idempotency-Key`, for writes that would count
    /// twice if retried without one; `why` says so to the client.
    pub fn require(&self, why: &str) -> ApiResult<()> {
        if self.held.is_some() {
            return Ok(());
        }
        Err(ApiError::new(ErrorCode::IdempotencyKeyRequired, why)
            .with_details(json!({ "header": "Idempotency-Key" })))
    }

    /// Stores `body` as the answer to this request's key, inside the caller's transaction (a
    /// no-op without a key). Fails with 409 when the key's lease ran out and another request
    /// took it; the caller's transaction (with the change) must then be dropped.
    pub async fn save(
        &self,
        conn: &mut Conn,
        status: StatusCode,
        body: &impl Serialize,
    ) -> ApiResult<()> {
        let Some(held) = &self.held else { return Ok(()) };
        let stored = StoredResponse {
            request_hash: held.request_hash.clone(),
            status: status.as_u16(),
            body: serde_json::to_value(body).map_err(ApiError::internal)?,
        };
        if !idempotency::complete(conn, &held.scope, &held.key, &held.token, &stored).await? {
            return Err(in_flight());
        }
        held.completed.store(true, Ordering::Release);
        Ok(())
    }
}

/// A key this request took; released when dropped without being completed.
#[derive(Debug)]
struct Held {
    store: Store,
    scope: String,
    key: String,
    request_hash: String,
    token: String,
    completed: AtomicBool,
}

impl Held {
    /// Takes `key`, or answers the request from what the key already holds.
    async fn take(
        state: &AppState,
        scope: String,
        key: String,
        request_hash: String,
    ) -> Result<Held, Response> {
        let token = alloy::primitives::hex::encode(rand::random::<[u8; 16]>());
        let at = now();
        let timeout = i64::try_from(state.request_timeout.as_secs()).unwrap_or(i64::MAX);
        let lease = timeout.saturating_add(LEASE_MARGIN_SECS);
        let expired_before = at - i64::try_from(state.idempotency_ttl).unwrap_or(i64::MAX);
        let taken = async {
            let mut tx = state.store.begin().await?;
            let taken = idempotency::take(
                &mut tx,
                &scope,
                &key,
                &request_hash,
                &token,
                at,
                at.saturating_add(lease),
                expired_before,
            )
            .await?;
            // Expired responses of other keys are swept now and then, on a write that is
            // already holding the write transaction.
            if LAST_SWEEP.swap(at / SWEEP_EVERY_SECS, Ordering::Relaxed) != at / SWEEP_EVERY_SECS {
                idempotency::purge_expired(&mut tx, expired_before).await?;
            }
            tx.commit().await?;
            Ok::<_, crate::store::StoreError>(taken)
        }
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
        match taken {
            Taken::Ours => Ok(Held {
                store: state.store.clone(),
                scope,
                key,
                request_hash,
                token,
                completed: AtomicBool::new(false),
            }),
            Taken::InFlight { request_hash: theirs } if theirs == request_hash => {
                Err(in_flight().into_response())
            }
            Taken::Completed(stored) if stored.request_hash == request_hash => {
                let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
                let mut response = (status, Json(stored.body)).into_response();
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                Err(response)
            }
            Taken::InFlight { .. } | Taken::Completed(_) => Err(reused().into_response()),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.completed.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (store, scope, key, token) =
            (self.store.clone(), self.scope.clone(), self.key.clone(), self.token.clone());
        runtime.spawn(async move {
            let released = async {
                let mut tx = store.begin().await?;
                idempotency::release(&mut tx, &scope, &key, &token).await?;
                tx.commit().await?;
                Ok::<_, crate::store::StoreError>(())
            }
            .await;
            if let Err(error) = released {
                // The lease runs out by itself; until then a retry is told the key is in flight.
                tracing::warn!(%error, "could not release an idempotency key");
            }
        });
    }
}

fn in_flight() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyInFlight,
        "a request with this Idempotency-Key is still being processed; retry later",
    )
}

fn reused() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was already used with a different request",
    )
}
