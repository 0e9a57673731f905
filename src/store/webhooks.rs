//! Webhook endpoints, their deliveries (one per endpoint and event) and every attempt of each.
//!
//! A delivery is `pending` until an attempt succeeds (`succeeded`) or the schedule runs out or
//! its endpoint is disabled or deleted (`failed`). Deliveries are claimed with a lease
//! (`locked_until_ms`, `lock_token`) so two instances never send the same attempt at once and a
//! killed instance's claim lapses; an outcome is recorded only under the claim's token.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, parse_json, skip_locked};

/// An endpoint that receives deliveries.
pub const ACTIVE: &str = "active";
/// An endpoint whose deliveries wait (accumulating) until it is active again.
pub const PAUSED: &str = "paused";
/// An endpoint turned off by Pactum (its receiver answered 410 Gone).
pub const DISABLED: &str = "disabled";
/// A deleted endpoint: invisible to the API, kept for its deliveries' history.
pub const DELETED: &str = "deleted";

/// A delivery still to be made.
pub const PENDING: &str = "pending";
/// A delivery a receiver accepted with a 2xx.
pub const SUCCEEDED: &str = "succeeded";
/// A delivery given up on.
pub const FAILED: &str = "failed";

/// A webhook endpoint of an agent (its signing secrets are read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its id (`whk_…`).
    pub id: String,
    /// The agent whose agreements' events it receives.
    pub agent_id: String,
    /// Where deliveries are posted.
    pub url: String,
    /// The owner's note.
    pub description: Option<String>,
    /// The event types it receives; empty: all.
    pub event_types: Vec<String>,
    /// [`ACTIVE`], [`PAUSED`], [`DISABLED`] or [`DELETED`].
    pub status: String,
    /// Why it was disabled.
    pub status_reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// An endpoint's signing secrets: the current one and, during a rotation's grace period, the
/// one before it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// The current secret (`whsec_…`).
    pub current: String,
    /// The previous secret, still signing until `previous_until`.
    pub previous: Option<String>,
    /// Unix seconds after which the previous secret no longer signs.
    pub previous_until: Option<i64>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(…)")
    }
}

/// One event to be delivered to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id (`msg_…`), sent as `webhook-id` on every attempt.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The endpoint's agent.
    pub agent_id: String,
    /// The outbox event delivered.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The exact body posted on every attempt.
    pub payload: String,
    /// [`PENDING`], [`SUCCEEDED`] or [`FAILED`].
    pub status: String,
    /// Attempts made in all.
    pub attempts: i64,
    /// Attempts made since the delivery was created or last replayed (the schedule's step).
    pub round_attempts: i64,
    /// When the next attempt is due, unix milliseconds.
    pub next_attempt_at_ms: Option<i64>,
    /// The status code of the last attempt.
    pub last_status_code: Option<i64>,
    /// The error of the last attempt.
    pub last_error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// When it succeeded or failed, unix seconds.
    pub completed_at: Option<i64>,
}

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

const ENDPOINT_COLUMNS: &str =
    "id, agent_id, url, description, event_types, status, status_reason, created_at, updated_at";

fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint> {
    Ok(Endpoint {
        id: row.get("id"),
        agent_id: row.get("agent_id"),
        url: row.get("url"),
        description: row.get("description"),
        event_types: parse_json("event_types", row.get::<&str, _>("event_types"))?,
        status: row.get("status"),
        status_reason: row.get("status_reason"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// Stores a new endpoint with its signing secret.
pub async fn insert_endpoint(conn: &mut Conn, endpoint: &Endpoint, secret: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, agent_id, url, description, event_types, status, \
         status_reason, secret, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&endpoint.id)
    .bind(&endpoint.agent_id)
    .bind(&endpoint.url)
    .bind(endpoint.description.clone())
    .bind(json_list(&endpoint.event_types))
    .bind(&endpoint.status)
    .bind(endpoint.status_reason.clone())
    .bind(secret)
    .bind(endpoint.created_at)
    .bind(endpoint.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// The agent's endpoints (not deleted), oldest first.
pub async fn list_endpoints(pool: &AnyPool, agent_id: &str) -> Result<Vec<Endpoint>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE agent_id = $1 AND status <> $2 \
         ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql).bind(agent_id).bind(DELETED).fetch_all(pool).await?;
    rows.iter().map(endpoint_from_row).collect()
}

/// The agent's endpoint `id`; `None` if there is none, it is another agent's, or deleted.
pub async fn get_endpoint(conn: &mut Conn, agent_id: &str, id: &str) -> Result<Option<Endpoint>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
         WHERE id = $1 AND agent_id = $2 AND status <> $3"
    );
    let row =
        sqlx::query(&sql).bind(id).bind(agent_id).bind(DELETED).fetch_optional(&mut *conn).await?;
    row.map(|row| endpoint_from_row(&row)).transpose()
}

/// The endpoint `id` whatever its agent or status, with its secrets; `None` if there is none.
pub async fn endpoint_with_secrets(
    pool: &AnyPool,
    id: &str,
) -> Result<Option<(Endpoint, Secrets)>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS}, secret, previous_secret, previous_secret_until \
         FROM webhook_endpoints WHERE id = $1"
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.map(|row| {
        Ok((
            endpoint_from_row(&row)?,
            Secrets {
                current: row.get("secret"),
                previous: row.get("previous_secret"),
                previous_until: row.get("previous_secret_until"),
            },
        ))
    })
    .transpose()
}

/// Writes an endpoint's editable fields (url, description, event types, status and reason).
pub async fn update_endpoint(conn: &mut Conn, endpoint: &Endpoint) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoints SET url = $1, description = $2, event_types = $3, status = $4, \
         status_reason = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&endpoint.url)
    .bind(endpoint.description.clone())
    .bind(json_list(&endpoint.event_types))
    .bind(&endpoint.status)
    .bind(endpoint.status_reason.clone())
    .bind(endpoint.updated_at)
    .bind(&endpoint.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces the signing secret with `secret`; the old one keeps signing until `grace_until`.
pub async fn rotate_secret(
    conn: &mut Conn,
    id: &str,
    secret: &str,
    grace_until: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $1, \
         secret = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(grace_until)
    .bind(secret)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets an endpoint's status (with a reason) and fails its pending deliveries with `reason`:
/// used when a receiver answers 410 ([`DISABLED`]) and when the owner deletes it ([`DELETED`]).
pub async fn retire_endpoint(
    conn: &mut Conn,
    id: &str,
    status: &str,
    reason: &str,
    now: i64,
) -> Result<u64> {
    sqlx::query(
        "UPDATE webhook_endpoints SET status = $1, status_reason = $2, updated_at = $3 \
         WHERE id = $4",
    )
    .bind(status)
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let failed = sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, last_error = COALESCE(last_error, $2), \
         completed_at = $3, updated_at = $3, next_attempt_at_ms = NULL, locked_until_ms = NULL, \
         lock_token = NULL WHERE endpoint_id = $4 AND status = $5",
    )
    .bind(FAILED)
    .bind(reason)
    .bind(now)
    .bind(id)
    .bind(PENDING)
    .execute(&mut *conn)
    .await?;
    Ok(failed.rows_affected())
}

/// The endpoints of `agents` that take new deliveries (active or paused), with their
/// subscriptions.
pub async fn subscribers(conn: &mut Conn, agents: &[&str]) -> Result<Vec<Endpoint>> {
    let mut endpoints = Vec::new();
    for agent in agents {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
             WHERE agent_id = $1 AND status IN ($2, $3) ORDER BY id"
        );
        let rows =
            sqlx::query(&sql).bind(*agent).bind(ACTIVE).bind(PAUSED).fetch_all(&mut *conn).await?;
        for row in &rows {
            endpoints.push(endpoint_from_row(row)?);
        }
    }
    Ok(endpoints)
}

/// Outbox events not yet fanned out, oldest first, at most `limit`: `(id, agreement_id,
/// event_type, data, created_at)`.
pub async fn undispatched(
    conn: &mut Conn,
    limit: i64,
) -> Result<Vec<(String, Option<String>, String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT id, agreement_id, event_type, data, created_at FROM outbox_events \
         WHERE dispatched_at IS NULL ORDER BY created_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("agreement_id"),
                r.get("event_type"),
                r.get("data"),
                r.get("created_at"),
            )
        })
        .collect())
}

/// Marks an outbox event as fanned out.
pub async fn mark_dispatched(conn: &mut Conn, event_id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE outbox_events SET dispatched_at = $1 WHERE id = $2")
        .bind(now)
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Creates a pending delivery unless the endpoint already has one for this event (two
/// instances fanning out the same event create one). Returns whether it was created.
pub async fn insert_delivery(conn: &mut Conn, delivery: &Delivery) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, agent_id, event_id, event_type, \
         payload, status, attempts, round_attempts, next_attempt_at_ms, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $9, $9) \
         ON CONFLICT (endpoint_id, event_id) DO NOTHING",
    )
    .bind(&delivery.id)
    .bind(&delivery.endpoint_id)
    .bind(&delivery.agent_id)
    .bind(&delivery.event_id)
    .bind(&delivery.event_type)
    .bind(&delivery.payload)
    .bind(PENDING)
    .bind(delivery.next_attempt_at_ms)
    .bind(delivery.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, agent_id, event_id, event_type, payload, \
     status, attempts, round_attempts, next_attempt_at_ms, last_status_code, last_error, \
     created_at, updated_at, completed_at";

fn delivery_from_row(row: &AnyRow) -> Delivery {
    Delivery {
        id: row.get("id"),
        endpoint_id: row.get("endpoint_id"),
        agent_id: row.get("agent_id"),
        event_id: row.get("event_id"),
        event_type: row.get("event_type"),
        payload: row.get("payload"),
        status: row.get("status"),
        attempts: row.get("attempts"),
        round_attempts: row.get("round_attempts"),
        next_attempt_at_ms: row.get("next_attempt_at_ms"),
        last_status_code: row.get("last_status_code"),
        last_error: row.get("last_error"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        completed_at: row.get("completed_at"),
    }
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
pub async fn after_attempt(
    conn: &mut Conn,
    id: &str,
    token: &str,
    after: &AfterAttempt,
    now: i64,
) -> Result<bool> {
    let completed = (after.status != PENDING).then_some(now);
    let updated = sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
         round_attempts = round_attempts + 1, next_attempt_at_ms = $2, last_status_code = $3, \
         last_error = $4, completed_at = $5, updated_at = $6, locked_until_ms = NULL, \
         lock_token = NULL WHERE id = $7 AND lock_token = $8 AND status = $9",
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

/// The agent's deliveries, newest first, optionally only those in `status`, at most `limit`.
pub async fn list_deliveries(
    pool: &AnyPool,
    agent_id: &str,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
         WHERE agent_id = $1 AND ($2 = '' OR status = $2) ORDER BY created_at DESC, id DESC \
         LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(agent_id)
        .bind(status.unwrap_or(""))
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(delivery_from_row).collect())
}

/// The agent's delivery `id`; `None` if there is none or it is another agent's.
pub async fn get_delivery(conn: &mut Conn, agent_id: &str, id: &str) -> Result<Option<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND agent_id = $2"
    );
    let row = sqlx::query(&sql).bind(id).bind(agent_id).fetch_optional(&mut *conn).await?;
    Ok(row.map(|row| delivery_from_row(&row)))
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

/// Puts a finished (succeeded or failed) delivery back to pending, due at `due_ms`, with its
/// schedule restarted; its attempts stay logged. Returns `false` if it is still pending.
pub async fn replay(conn: &mut Conn, id: &str, due_ms: i64, now: i64) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, round_attempts = 0, next_attempt_at_ms = $2, \
         completed_at = NULL, updated_at = $3, locked_until_ms = NULL, lock_token = NULL \
         WHERE id = $4 AND status <> $1",
    )
    .bind(PENDING)
    .bind(due_ms)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}
