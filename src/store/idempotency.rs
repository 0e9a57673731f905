//! Responses kept under clients' `Idempotency-Key`s, so a retried write is answered with what
//! the first attempt answered instead of being done twice.

use serde_json::Value;
use sqlx::{AnyPool, Row};

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

/// The response stored for `key` in `scope` (the caller's credential); `None` if the key is new.
pub async fn lookup(pool: &AnyPool, scope: &str, key: &str) -> Result<Option<StoredResponse>> {
    let row = sqlx::query(
        "SELECT request_hash, status_code, response_body FROM idempotency_keys \
         WHERE scope = $1 AND idempotency_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(StoredResponse {
            request_hash: row.get("request_hash"),
            status: u16::try_from(row.get::<i64, _>("status_code")).unwrap_or(500),
            body: parse_json("response_body", row.get("response_body"))?,
        })
    })
    .transpose()
}

/// Stores `response` under `key`, in the transaction that made the change it describes. A
/// concurrent first use of the same key makes this fail with a unique violation, which rolls
/// the whole change back.
pub async fn save(
    conn: &mut Conn,
    scope: &str,
    key: &str,
    response: &StoredResponse,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, idempotency_key, request_hash, status_code, \
         response_body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope)
    .bind(key)
    .bind(&response.request_hash)
    .bind(i64::from(response.status))
    .bind(response.body.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
