//! Webhook endpoints: where deliveries go, their signing secrets, and their retirement (410
//! Gone or deletion), which ends their pending deliveries.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{ACTIVE, DELETED, FAILED, PAUSED, PENDING};
use crate::store::{Conn, Result, parse_json};

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
///
/// A delivery being sent at that moment keeps its claim (`lock_token`), so the attempt already
/// on its way is still logged by [`after_attempt`](super::after_attempt) under that token.
/// Returns how many deliveries it failed.
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
         completed_at = $3, updated_at = $3, next_attempt_at_ms = NULL \
         WHERE endpoint_id = $4 AND status = $5",
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
