//! The outbox: every status change writes an event here in the transaction that makes the
//! change, so a webhook can never report a change that did not happen nor miss one that did.

use serde_json::Value;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, parse_json};
use crate::agreement::ids::{AgreementId, EventId};

/// One event, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Its id (`evt_…`), time-ordered.
    pub id: EventId,
    /// The agreement it concerns.
    pub agreement_id: Option<AgreementId>,
    /// What happened (`agreement.accepted`, `settlement.claimed`, …).
    pub event_type: String,
    /// The event's payload.
    pub data: Value,
    /// Unix seconds.
    pub created_at: i64,
}

/// Writes an event of `event_type` about `agreement` with `data`, inside the caller's
/// transaction.
pub async fn record(
    conn: &mut Conn,
    agreement: Option<&AgreementId>,
    event_type: &str,
    data: &Value,
    now: i64,
) -> Result<EventId> {
    let id = EventId::generate();
    sqlx::query(
        "INSERT INTO outbox_events (id, agreement_id, event_type, data, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(agreement.map(|a| a.as_str().to_owned()))
    .bind(event_type)
    .bind(data.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// The events about `agreement`, oldest first.
pub async fn for_agreement(pool: &AnyPool, agreement: &AgreementId) -> Result<Vec<OutboxEvent>> {
    let rows = sqlx::query(
        "SELECT id, agreement_id, event_type, data, created_at FROM outbox_events \
         WHERE agreement_id = $1 ORDER BY created_at, id",
    )
    .bind(agreement.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OutboxEvent {
                id: EventId(row.get("id")),
                agreement_id: row.get::<Option<String>, _>("agreement_id").map(AgreementId),
                event_type: row.get("event_type"),
                data: parse_json("data", row.get("data"))?,
                created_at: row.get("created_at"),
            })
        })
        .collect()
}
