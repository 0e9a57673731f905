//! Spend checks as answered, kept for `GET /v1/checks/{check_id}`.

use sqlx::{AnyPool, Row};

use super::super::{Conn, Result, parse_json};

/// A stored check: whose it is and the response it got.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheck {
    /// The account of its agent.
    pub account_id: String,
    /// The agent it was made for.
    pub agent_id: String,
    /// The response body as answered.
    pub response: serde_json::Value,
}

/// Stores a check's response.
pub async fn insert(
    conn: &mut Conn,
    id: &str,
    account_id: &str,
    agent_id: &str,
    response: &serde_json::Value,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO spend_checks (id, account_id, agent_id, response, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(account_id)
    .bind(agent_id)
    .bind(response.to_string())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The check `id`; `None` if there is none.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<StoredCheck>> {
    let row = sqlx::query("SELECT account_id, agent_id, response FROM spend_checks WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        Ok(StoredCheck {
            account_id: row.get("account_id"),
            agent_id: row.get("agent_id"),
            response: parse_json("response", row.get::<&str, _>("response"))?,
        })
    })
    .transpose()
}
