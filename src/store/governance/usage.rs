//! Tallies of the spend guard's control-plane events for the usage summary: decisions by kind
//! and outcome, reservation changes by event, approvals by status and leases by status, each
//! per agent and UTC day, in one statement.

use sqlx::{AnyPool, Row};

use super::super::{Result, unsigned};

/// One tally: what was counted, for which agent and day, how many and how many cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// `decision` (audit rows), `reservation` (reservation events), `approval` or `lease`.
    pub section: String,
    /// The decision kind (`check`, `reservation`, `activation`, `lease`); empty otherwise.
    pub kind: String,
    /// The outcome: a decision, an event, an approval or lease status.
    pub outcome: String,
    /// The agent (a lease's parent).
    pub agent_id: String,
    /// Days since 1970-01-01, UTC.
    pub day: i64,
    /// How many.
    pub count: u64,
    /// Their cents.
    pub cents: u64,
}

/// Every tally of `account` in `[from, to)`, only `agent_id`'s when given.
pub async fn tallies(
    pool: &AnyPool,
    account: &str,
    agent_id: Option<&str>,
    from: i64,
    to: i64,
) -> Result<Vec<Tally>> {
    let part =
        |section: &str, kind: &str, outcome: &str, agent: &str, table: &str, filter: &str| {
            // Postgres refuses a constant in GROUP BY (`''` where a section has no kind):
            // group by the columns only.
            let mut group = vec![kind, outcome, agent];
            group.retain(|column| !column.starts_with('\''));
            format!(
                "SELECT '{section}' AS section, {kind} AS kind, {outcome} AS outcome, \
             {agent} AS agent_id, CAST(created_at / 86400 AS BIGINT) AS day, \
             CAST(COUNT(*) AS BIGINT) AS n, \
             CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) AS cents FROM {table} \
             WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 \
             AND ($4 = '' OR {agent} = $4){filter} \
             GROUP BY {}, CAST(created_at / 86400 AS BIGINT)",
                group.join(", ")
            )
        };
    let sql = [
        part(
            "decision",
            "kind",
            "decision",
            "agent_id",
            "audit_log",
            " AND kind IN ('check', 'activation', 'reservation', 'lease', 'intent') \
             AND decision IN ('allow', 'block', 'escalate')",
        ),
        part("reservation", "''", "event", "agent_id", "reservation_events", ""),
        part("approval", "kind", "status", "agent_id", "approvals", ""),
        part("lease", "''", "status", "parent_agent_id", "budget_leases", ""),
    ]
    .join(" UNION ALL ");
    let rows = sqlx::query(&sql)
        .bind(account)
        .bind(from)
        .bind(to)
        .bind(agent_id.unwrap_or(""))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Tally {
                section: row.try_get("section")?,
                kind: row.try_get("kind")?,
                outcome: row.try_get("outcome")?,
                agent_id: row.try_get::<Option<String>, _>("agent_id")?.unwrap_or_default(),
                day: row.try_get("day")?,
                count: unsigned("n", row.try_get("n")?)?,
                cents: unsigned("cents", row.try_get("cents")?)?,
            })
        })
        .collect()
}
