//! Claims and attempts: a due delivery is leased (`locked_until_ms`, `lock_token`) to one
//! sender, and each attempt's outcome is logged under the lease's token.

use sqlx::{AnyPool, Row};

use super::Delivery;
use super::deliveries::{DELIVERY_COLUMNS, delivery_from_row};
use super::{ACTIVE, PENDING, SUCCEEDED};
use crate::store::{Conn, Result, skip_locked};

/// One attempt of a delivery, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt of the delivery, counting across replays.
    pub number: i64,
    /// The HTTP status answered.
    pub status_code: Option<i64>,
    /// Why there was no (complete) answer.
    pub error: Option<String>,
    /// How long it took, milliseconds.
    pub latency_ms: i64,
    /// The first KiB of the response body.
    pub response_body: Option<String>,
    /// When it was made, unix milliseconds.
    pub attempted_at_ms: i64,
}

/// Claims up to `limit` due deliveries of active endpoints (pending, due by `now_ms`, not
/// claimed or with a lapsed claim) until `until_ms` under `token`, oldest due first. One
/// conditional update, so of two instances racing for a row exactly one wins; on Postgres the
/// choice passes over rows another instance's open claim holds ([`skip_locked`]), so a claim
/// never answers "nothing due" while some are.
pub async fn claim_due(
    conn: &mut Conn,
    now_ms: i64,
    until_ms: i64,
    token: &str,
    limit: i64,
) -> Result<Vec<Delivery>> {
    // A materialised CTE so the choice runs once (as the relayer queue's `claim_more`).
    let skip = skip_locked(conn);
    let sql = format!(
        "WITH picked AS MATERIALIZED (SELECT id FROM webhook_deliveries \
                      WHERE status = $3 AND next_attempt_at_ms <= $4 \
                      AND (locked_until_ms IS NULL OR locked_until_ms <= $4) \
                      AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE status = $5) \
                      ORDER BY next_attempt_at_ms, id LIMIT $6{skip}) \
         UPDATE webhook_deliveries SET locked_until_ms = $1, lock_token = $2 \
         WHERE id IN (SELECT id FROM picked) AND status = $3 \
         AND (locked_until_ms IS NULL OR locked_until_ms <= $4) \
         RETURNING {DELIVERY_COLUMNS}"
    );
    let rows = sqlx::query(&sql)
        .bind(until_ms)
        .bind(token)
        .bind(PENDING)
        .bind(now_ms)
        .bind(ACTIVE)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut claimed: Vec<Delivery> = rows.iter().map(delivery_from_row).collect();
    claimed.sort_by(|a, b| (a.next_attempt_at_ms, &a.id).cmp(&(b.next_attempt_at_ms, &b.id)));
    Ok(claimed)
}

/// Logs one attempt of `delivery_id`.
pub async fn insert_attempt(conn: &mut Conn, delivery_id: &str, attempt: &Attempt) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, latency_ms, \
         response_body, attempted_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(delivery_id)
    .bind(attempt.number)
    .bind(attempt.status_code)
    .bind(attempt.error.clone())
    .bind(attempt.latency_ms)
    .bind(attempt.response_body.clone())
    .bind(attempt.attempted_at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where a delivery stands after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterAttempt {
    /// [`PENDING`] (to retry at `next_attempt_at_ms`), [`SUCCEEDED`] or [`FAILED`].
    pub status: String,
    /// When to retry, unix milliseconds.
    pub next_attempt_at_ms: Option<i64>,
    /// The attempt's status code.
    pub status_code: Option<i64>,
    /// The attempt's error.
    pub error: Option<String>,
}

/// Records the outcome of an attempt of a delivery claimed under `token`, releasing the claim.
/// Returns `false` (changing nothing) if the claim was lost, e.g. it lapsed and another
/// instance took the delivery.
///
/// A delivery whose endpoint was retired while this attempt was on its way (it is already
/// failed, still under `token`: [`retire_endpoint`](super::retire_endpoint) leaves the claim)
/// gets the attempt counted too, because the request did reach the receiver; it stays failed
/// unless the receiver accepted it, and is never retried.
pub async fn after_attempt(
    conn: &mut Conn,
    id: &str,
    token: &str,
    after: &AfterAttempt,
    now: i64,
) -> Result<bool> {
    let completed = (after.status != PENDING).then_some(now);
    let updated = sqlx::query(
        "UPDATE webhook_deliveries SET \
         status = CASE WHEN status = $9 OR $1 = $10 THEN $1 ELSE status END, \
         attempts = attempts + 1, round_attempts = round_attempts + 1, \
         next_attempt_at_ms = CASE WHEN status = $9 THEN $2 ELSE NULL END, \
         last_status_code = $3, last_error = $4, \
         completed_at = CASE WHEN status = $9 THEN $5 ELSE COALESCE(completed_at, $6) END, \
         updated_at = $6, locked_until_ms = NULL, lock_token = NULL \
         WHERE id = $7 AND lock_token = $8",
    )
    .bind(&after.status)
    .bind(after.next_attempt_at_ms)
    .bind(after.status_code)
    .bind(after.error.clone())
    .bind(completed)
    .bind(now)
    .bind(id)
    .bind(token)
    .bind(PENDING)
    .bind(SUCCEEDED)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Releases a claim without an attempt (the endpoint changed under it), due again at `due_ms`.
pub async fn release(conn: &mut Conn, id: &str, token: &str) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET locked_until_ms = NULL, lock_token = NULL \
         WHERE id = $1 AND lock_token = $2",
    )
    .bind(id)
    .bind(token)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The attempts of a delivery, first first.
pub async fn attempts_of(pool: &AnyPool, delivery_id: &str) -> Result<Vec<Attempt>> {
    let rows = sqlx::query(
        "SELECT attempt, status_code, error, latency_ms, response_body, attempted_at_ms \
         FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Attempt {
            number: row.get("attempt"),
            status_code: row.get("status_code"),
            error: row.get("error"),
            latency_ms: row.get("latency_ms"),
            response_body: row.get("response_body"),
            attempted_at_ms: row.get("attempted_at_ms"),
        })
        .collect())
}
