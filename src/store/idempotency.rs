//! Responses kept under clients' `Idempotency-Key`s, so a retried write is answered with what
//! the first attempt answered instead of being done twice.
//!
//! A key is *taken* before the write runs (a row in state `in_flight` holding a lease) and
//! *completed* in the write's own transaction with the response it answered, so the stored
//! response and the change it reports commit together or not at all.

use serde_json::Value;
use sqlx::Row;

use super::{Conn, Result, parse_json};

/// A response stored under an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// SHA-256 of the request (method, path and body) the key was first used with.
    pub request_hash: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The JSON body answered.
    pub body: Value,
}

/// What holds a key when a request tries to take it.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// The key was free (or its earlier use had expired): this request holds it now.
    Ours,
    /// A request with this key is still being processed.
    InFlight {
        /// SHA-256 of that request.
        request_hash: String,
    },
    /// The key already answered.
    Completed(StoredResponse),
}

/// Takes `key` in `scope` for a request hashing to `request_hash`, under `lease_token` until
/// `locked_until`. A completed use older than `expired_before`, or an in-flight one whose lease
/// ran out before `now` (its process died), is cleared first.
#[allow(clippy::too_many_arguments)]
pub async fn take(
    conn: &mut Conn,
    scope: &str,
    key: &str,
    request_hash: &str,
    lease_token: &str,
    now: i64,
    locked_until: i64,
    expired_before: i64,
) -> Result<Taken> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2 \
         AND (created_at < $3 OR (state = 'in_flight' AND locked_until < $4))",
    )
    .bind(scope)
    .bind(key)
    .bind(expired_before)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // The same statement on both engines: a conflicting row leaves nothing inserted.
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, idempotency_key, request_hash, status_code, \
         response_body, created_at, state, lease_token, locked_until) \
         VALUES ($1, $2, $3, 0, '', $4, 'in_flight', $5, $6) \
         ON CONFLICT (scope, idempotency_key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(now)
    .bind(lease_token)
    .bind(locked_until)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Taken::Ours);
    }
    let row = sqlx::query(
        "SELECT request_hash, status_code, response_body, state FROM idempotency_keys \
         WHERE scope = $1 AND idempotency_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    let request_hash: String = row.get("request_hash");
    if row.get::<&str, _>("state") == "in_flight" {
        return Ok(Taken::InFlight { request_hash });
    }
    Ok(Taken::Completed(StoredResponse {
        request_hash,
        status: u16::try_from(row.get::<i64, _>("status_code")).unwrap_or(500),
        body: parse_json("response_body", row.get("response_body"))?,
    }))
}

/// Stores `response` under the key this request holds, in the transaction that made the change
/// it describes. Returns `false` when the lease is no longer this request's (it ran out and
/// another request took the key), in which case the caller must not commit.
pub async fn complete(
    conn: &mut Conn,
    scope: &str,
    key: &str,
    lease_token: &str,
    response: &StoredResponse,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE idempotency_keys SET state = 'completed', status_code = $1, response_body = $2, \
         lease_token = NULL, locked_until = NULL \
         WHERE scope = $3 AND idempotency_key = $4 AND lease_token = $5 AND state = 'in_flight'",
    )
    .bind(i64::from(response.status))
    .bind(response.body.to_string())
    .bind(scope)
    .bind(key)
    .bind(lease_token)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Gives up a key this request took but did not complete (it was refused, or failed), so that
/// nothing is remembered for it.
pub async fn release(conn: &mut Conn, scope: &str, key: &str, lease_token: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2 \
         AND lease_token = $3 AND state = 'in_flight'",
    )
    .bind(scope)
    .bind(key)
    .bind(lease_token)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes responses stored before `expired_before`; returns how many.
pub async fn purge_expired(conn: &mut Conn, expired_before: i64) -> Result<u64> {
    let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(expired_before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(deleted)
}
