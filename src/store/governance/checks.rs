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

/// A check to store: its id, whose it is, when, and its response.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCheck<'a> {
    /// `chk_…`.
    pub id: &'a str,
    /// The account of its agent.
    pub account_id: &'a str,
    /// The agent.
    pub agent_id: &'a str,
    /// The response as answered.
    pub response: &'a serde_json::Value,
    /// Unix seconds.
    pub at: i64,
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
    insert_many(conn, &[NewCheck { id, account_id, agent_id, response, at }]).await
}

/// Stores the responses of `checks`, a hundred rows per statement.
pub async fn insert_many(conn: &mut Conn, checks: &[NewCheck<'_>]) -> Result<()> {
    for chunk in checks.chunks(100) {
        let sql = format!(
            "INSERT INTO spend_checks (id, account_id, agent_id, response, created_at) VALUES {}",
            super::super::placeholders(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for check in chunk {
            query = query
                .bind(check.id)
                .bind(check.account_id)
                .bind(check.agent_id)
                .bind(check.response.to_string())
                .bind(check.at);
        }
        query.execute(&mut *conn).await?;
    }
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
