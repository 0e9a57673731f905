//! Execution tokens: short-lived, single-use stand-ins for one agent's API key on one write,
//! stored only as the hash of the token.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result};
use crate::agreement::ids::{AccountId, AgentId, ExecutionTokenId, MandateId};

/// An execution token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionToken {
    /// Its public id.
    pub id: ExecutionTokenId,
    /// The account whose owner minted it.
    pub account_id: AccountId,
    /// The agent it acts as.
    pub agent_id: AgentId,
    /// The one write it may make (an `Action` name of `api::credentials`).
    pub action: String,
    /// The resource it may make it on: an agreement id, the seller agent id for `propose`, the
    /// counterparty for `reserve`.
    pub audience: String,
    /// The mandate it spends under; `None` for a token minted without one.
    pub mandate_id: Option<MandateId>,
    /// Unix seconds; from this second on it is refused.
    pub expires_at: i64,
    /// When a request first presented it; `None` while unused.
    pub used_at: Option<i64>,
    /// The `Idempotency-Key` of that request, if it carried one.
    pub used_idempotency_key: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

const COLUMNS: &str = "id, account_id, agent_id, action, audience, mandate_id, expires_at, \
    used_at, used_idempotency_key, created_at";

/// Stores a new token under the hash of its secret.
pub async fn insert(conn: &mut Conn, token: &ExecutionToken, token_hash: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO execution_tokens (id, token_hash, account_id, agent_id, action, audience, \
         mandate_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(token.id.as_str())
    .bind(token_hash)
    .bind(token.account_id.as_str())
    .bind(token.agent_id.as_str())
    .bind(&token.action)
    .bind(&token.audience)
    .bind(token.mandate_id.as_ref().map(|id| id.to_string()))
    .bind(token.expires_at)
    .bind(token.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The token whose secret hashes to `token_hash`, used or not, expired or not; `None` if none.
pub async fn by_hash(pool: &AnyPool, token_hash: &str) -> Result<Option<ExecutionToken>> {
    let sql = format!("SELECT {COLUMNS} FROM execution_tokens WHERE token_hash = $1");
    let row = sqlx::query(&sql).bind(token_hash).fetch_optional(pool).await?;
    row.map(|row| from_row(&row)).transpose()
}

/// Binds an unused token to the request presenting it now (with its `Idempotency-Key`, if
/// any). Returns `true` when this call bound it, or when it was already bound to the same
/// non-empty `Idempotency-Key` (a retry of that request); `false` otherwise. The bind is a
/// conditional update, so of two requests racing with one token only one binds it.
pub async fn bind_use(
    conn: &mut Conn,
    id: &ExecutionTokenId,
    idempotency_key: Option<&str>,
    now: i64,
) -> Result<bool> {
    let bound = sqlx::query(
        "UPDATE execution_tokens SET used_at = $2, used_idempotency_key = $3 \
         WHERE id = $1 AND used_at IS NULL",
    )
    .bind(id.as_str())
    .bind(now)
    .bind(idempotency_key)
    .execute(&mut *conn)
    .await?;
    if bound.rows_affected() == 1 {
        return Ok(true);
    }
    let Some(key) = idempotency_key else { return Ok(false) };
    let row =
        sqlx::query("SELECT id FROM execution_tokens WHERE id = $1 AND used_idempotency_key = $2")
            .bind(id.as_str())
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.is_some())
}

fn from_row(row: &AnyRow) -> Result<ExecutionToken> {
    Ok(ExecutionToken {
        id: ExecutionTokenId(row.get("id")),
        account_id: AccountId(row.get("account_id")),
        agent_id: AgentId(row.get("agent_id")),
        action: row.get("action"),
        audience: row.get("audience"),
        mandate_id: row.get::<Option<String>, _>("mandate_id").map(MandateId),
        expires_at: row.get("expires_at"),
        used_at: row.get("used_at"),
        used_idempotency_key: row.get("used_idempotency_key"),
        created_at: row.get("created_at"),
    })
}
