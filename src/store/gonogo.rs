//! Go/no-go runs and the readiness samples behind the hosted-health section
//! (docs/go-no-go.md). Runs are rows so that they survive a restart and every instance on one
//! database serves the same latest run.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result};
use crate::gonogo::evidence::ReadinessSample;

/// A run's status while it gathers evidence.
pub const RUNNING: &str = "running";
/// A run's status once its packet is written.
pub const COMPLETE: &str = "complete";

/// How many readiness samples are kept; older ones are pruned as new ones come.
pub const SAMPLES_KEPT: i64 = 1_000;

/// A go/no-go run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Its id (`gng_…`).
    pub id: String,
    /// The operator's account that started it.
    pub account_id: String,
    /// [`RUNNING`] or [`COMPLETE`].
    pub status: String,
    /// `go` or `no_go` once complete.
    pub verdict: Option<String>,
    /// The signed packet's JSON once complete.
    pub packet: Option<String>,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds, once complete.
    pub finished_at: Option<i64>,
}

const RUN_COLUMNS: &str = "id, account_id, status, verdict, packet, started_at, finished_at";

fn run_from_row(row: &AnyRow) -> Run {
    Run {
        id: row.get("id"),
        account_id: row.get("account_id"),
        status: row.get("status"),
        verdict: row.get("verdict"),
        packet: row.get("packet"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
    }
}

/// Stores a new run, [`RUNNING`].
pub async fn insert_run(
    conn: &mut Conn,
    id: &str,
    account_id: &str,
    started_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO go_no_go_runs (id, account_id, status, started_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(account_id)
    .bind(RUNNING)
    .bind(started_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks run `id` [`COMPLETE`] with its verdict and signed packet.
pub async fn finish_run(
    conn: &mut Conn,
    id: &str,
    verdict: &str,
    packet: &str,
    finished_at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE go_no_go_runs SET status = $1, verdict = $2, packet = $3, finished_at = $4 \
         WHERE id = $5",
    )
    .bind(COMPLETE)
    .bind(verdict)
    .bind(packet)
    .bind(finished_at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The most recently started run; `None` before the first.
pub async fn latest_run(pool: &AnyPool) -> Result<Option<Run>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM go_no_go_runs ORDER BY started_at DESC, id DESC LIMIT 1"
    );
    Ok(sqlx::query(&sql).fetch_optional(pool).await?.map(|row| run_from_row(&row)))
}

/// Run `id`; `None` if there is none.
pub async fn get_run(pool: &AnyPool, id: &str) -> Result<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM go_no_go_runs WHERE id = $1");
    Ok(sqlx::query(&sql).bind(id).fetch_optional(pool).await?.map(|row| run_from_row(&row)))
}

/// The newest run still [`RUNNING`] that started at or after `since` (unix seconds), read in
/// the caller's transaction; `None` if there is none.
pub async fn running_since(conn: &mut Conn, since: i64) -> Result<Option<Run>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM go_no_go_runs WHERE status = $1 AND started_at >= $2 \
         ORDER BY started_at DESC, id DESC LIMIT 1"
    );
    let row = sqlx::query(&sql).bind(RUNNING).bind(since).fetch_optional(&mut *conn).await?;
    Ok(row.map(|row| run_from_row(&row)))
}

/// Records a readiness sample and prunes all but the newest [`SAMPLES_KEPT`].
pub async fn insert_sample(conn: &mut Conn, id: &str, sample: &ReadinessSample) -> Result<()> {
    sqlx::query(
        "INSERT INTO readiness_samples (id, instance, ready, checks, checked_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&sample.instance)
    .bind(i64::from(sample.ready))
    .bind(sample.checks.to_string())
    .bind(sample.checked_at_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM readiness_samples WHERE checked_at_ms < (SELECT MIN(checked_at_ms) FROM \
         (SELECT checked_at_ms FROM readiness_samples ORDER BY checked_at_ms DESC LIMIT $1) AS kept)",
    )
    .bind(SAMPLES_KEPT)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The newest `limit` samples, newest first.
pub async fn recent_samples(pool: &AnyPool, limit: i64) -> Result<Vec<ReadinessSample>> {
    let rows = sqlx::query(
        "SELECT instance, ready, checks, checked_at_ms FROM readiness_samples \
         ORDER BY checked_at_ms DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ReadinessSample {
                checked_at_ms: row.get("checked_at_ms"),
                instance: row.get("instance"),
                ready: row.get::<i64, _>("ready") != 0,
                checks: super::parse_json("checks", row.get::<&str, _>("checks"))?,
            })
        })
        .collect()
}

/// The last applied migration: its version and description, and how many are applied; `None`
/// when the migrations table is empty.
pub async fn schema_version(pool: &AnyPool) -> Result<(Option<(i64, String)>, i64)> {
    let last = sqlx::query(
        "SELECT version, description FROM _sqlx_migrations WHERE success = TRUE \
         ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?
    .map(|row| (row.get::<i64, _>("version"), row.get::<String, _>("description")));
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success = TRUE")
        .fetch_one(pool)
        .await?
        .get("n");
    Ok((last, count))
}

/// The rows of `table`, one of [`COUNTED_TABLES`] (a table name cannot be bound).
pub async fn count_rows(pool: &AnyPool, table: &str) -> Result<i64> {
    let table = COUNTED_TABLES.iter().find(|t| **t == table).ok_or(super::StoreError::Corrupt {
        column: "table",
        reason: format!("`{table}` is not a counted table"),
    })?;
    Ok(sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}")).fetch_one(pool).await?.get("n"))
}

/// The tables whose rows a restored backup is checked against.
pub const COUNTED_TABLES: [&str; 7] = [
    "_sqlx_migrations",
    "accounts",
    "agents",
    "usage_agreements",
    "relayer_jobs",
    "receipts",
    "webhook_endpoints",
];

/// The active webhook endpoints of the agents of `account_id`, oldest first (ids only; the
/// caller reads each with its secrets).
pub async fn account_endpoint_ids(pool: &AnyPool, account_id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT e.id FROM webhook_endpoints e JOIN agents a ON a.id = e.agent_id \
         WHERE a.account_id = $1 AND e.status = $2 ORDER BY e.created_at, e.id",
    )
    .bind(account_id)
    .bind(super::webhooks::ACTIVE)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|row| row.get("id")).collect())
}
