//! Deliveries: one per endpoint and outbox event, created by the fan-out, listed and replayed
//! through the API.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::PENDING;
use crate::store::{Conn, Result};

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

/// An undispatched outbox event: `(id, agreement_id, event_type, data, created_at,
/// agent_id)`; an event about an agent rather than an agreement has `agent_id` alone.
pub type Undispatched = (String, Option<String>, String, String, i64, Option<String>);

/// Outbox events not yet fanned out, oldest first, at most `limit`.
pub async fn undispatched(conn: &mut Conn, limit: i64) -> Result<Vec<Undispatched>> {
    let rows = sqlx::query(
        "SELECT id, agreement_id, event_type, data, created_at, agent_id FROM outbox_events \
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
                r.get("agent_id"),
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

pub(super) const DELIVERY_COLUMNS: &str = "id, endpoint_id, agent_id, event_id, event_type, payload, \
     status, attempts, round_attempts, next_attempt_at_ms, last_status_code, last_error, \
     created_at, updated_at, completed_at";

pub(super) fn delivery_from_row(row: &AnyRow) -> Delivery {
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
