//! Policy versions: every change of an agent's policy is a new row; the newest is in force.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::super::{Conn, Result, parse_json, unsigned};
use crate::agreement::ids::PolicyId;

/// One stored version of an agent's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyVersion {
    /// The agent it governs.
    pub agent_id: String,
    /// The policy's id (the same for every version).
    pub policy_id: PolicyId,
    /// 1 for the first version, then one more per change.
    pub version: u64,
    /// The validated document as stored (`{rules, duplicate_window_seconds}`).
    pub document: serde_json::Value,
    /// When this version was written (unix seconds).
    pub created_at: i64,
}

const COLUMNS: &str = "agent_id, policy_id, version, document, created_at";

fn from_row(row: &AnyRow) -> Result<PolicyVersion> {
    Ok(PolicyVersion {
        agent_id: row.get("agent_id"),
        policy_id: PolicyId(row.get("policy_id")),
        version: unsigned("version", row.get("version"))?,
        document: parse_json("document", row.get::<&str, _>("document"))?,
        created_at: row.get("created_at"),
    })
}

/// The agent's policy in force (its newest version); `None` if it never had one.
pub async fn current(conn: &mut Conn, agent_id: &str) -> Result<Option<PolicyVersion>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM policy_versions WHERE agent_id = $1 ORDER BY version DESC LIMIT 1"
    );
    let row = sqlx::query(&sql).bind(agent_id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// [`current`] outside a transaction.
pub async fn current_read(pool: &AnyPool, agent_id: &str) -> Result<Option<PolicyVersion>> {
    let mut conn = pool.acquire().await?;
    current(&mut conn, agent_id).await
}

/// Version `version` of the agent's policy; `None` if there is no such version.
pub async fn version(
    pool: &AnyPool,
    agent_id: &str,
    version: u64,
) -> Result<Option<PolicyVersion>> {
    let mut conn = pool.acquire().await?;
    version_in(&mut conn, agent_id, version).await
}

/// [`version`] inside a transaction.
pub async fn version_in(
    conn: &mut Conn,
    agent_id: &str,
    version: u64,
) -> Result<Option<PolicyVersion>> {
    let sql = format!("SELECT {COLUMNS} FROM policy_versions WHERE agent_id = $1 AND version = $2");
    let row = sqlx::query(&sql)
        .bind(agent_id)
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Writes the next version of the agent's policy (the first is version 1 with a new id) and
/// returns it. The caller holds the agent's decision lock, so versions never collide.
pub async fn write_next(
    conn: &mut Conn,
    agent_id: &str,
    document: &serde_json::Value,
    at: i64,
) -> Result<PolicyVersion> {
    let previous = current(conn, agent_id).await?;
    let (policy_id, version) = match previous {
        Some(previous) => (previous.policy_id, previous.version + 1),
        None => (PolicyId::generate(), 1),
    };
    sqlx::query(
        "INSERT INTO policy_versions (agent_id, policy_id, version, document, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(agent_id)
    .bind(policy_id.as_str())
    .bind(i64::try_from(version).unwrap_or(i64::MAX))
    .bind(document.to_string())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(PolicyVersion {
        agent_id: agent_id.to_owned(),
        policy_id,
        version,
        document: document.clone(),
        created_at: at,
    })
}
