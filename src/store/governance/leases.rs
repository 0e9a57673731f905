//! Budget leases: capacity a parent agent carves out of its budgets for a child agent. The
//! parent's side is a reservation of the lease's amount (`hold_id`); the child's spending
//! counts against the lease (reservations with its `lease_id`). A child holds at most one
//! active lease (a unique index), so "its lease" is never ambiguous.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::super::{Conn, Result, parse_column, unsigned};
use crate::agreement::ids::BudgetLeaseId;
use crate::vocab::string_enum;

string_enum!(
    /// Where a lease stands.
    LeaseStatus {
        /// The child may spend under it.
        Active = "active",
        /// Ended by the owner, or by a revoke or halt; the unspent rest went back.
        Released = "released",
        /// Its time ran out; the unspent rest went back.
        Expired = "expired",
    }
);

/// Leases may nest this deep: a lease of a lease of a lease.
pub const MAX_DEPTH: u64 = 3;

/// One lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// `bls_…`.
    pub id: BudgetLeaseId,
    /// The account of both agents.
    pub account_id: String,
    /// Whose budgets it comes out of.
    pub parent_agent_id: String,
    /// Who spends it.
    pub child_agent_id: String,
    /// Its capacity in cents.
    pub amount_cents: u64,
    /// 1 for a lease from an agent that holds none, one more per lease above it.
    pub depth: u64,
    /// Where it stands.
    pub status: LeaseStatus,
    /// The parent's reservation that carves it out.
    pub hold_id: String,
    /// When it ends by itself, if ever.
    pub expires_at: Option<i64>,
    /// When it ended.
    pub released_at: Option<i64>,
    /// Why it ended.
    pub release_reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, parent_agent_id, child_agent_id, amount_cents, depth, \
    status, hold_id, expires_at, released_at, release_reason, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Lease> {
    Ok(Lease {
        id: BudgetLeaseId(row.try_get("id")?),
        account_id: row.try_get("account_id")?,
        parent_agent_id: row.try_get("parent_agent_id")?,
        child_agent_id: row.try_get("child_agent_id")?,
        amount_cents: unsigned("amount_cents", row.try_get("amount_cents")?)?,
        depth: unsigned("depth", row.try_get("depth")?)?,
        status: parse_column("status", row.try_get("status")?)?,
        hold_id: row.try_get("hold_id")?,
        expires_at: row.try_get("expires_at")?,
        released_at: row.try_get("released_at")?,
        release_reason: row.try_get("release_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Stores a new lease. Fails with a unique violation ([`super::super::StoreError::Conflict`]
/// after mapping) if the child already holds an active one.
pub async fn insert(conn: &mut Conn, lease: &Lease) -> Result<()> {
    let sql = format!(
        "INSERT INTO budget_leases ({COLUMNS}) VALUES {}",
        super::super::placeholders(1, 13)
    );
    sqlx::query(&sql)
        .bind(lease.id.as_str())
        .bind(&lease.account_id)
        .bind(&lease.parent_agent_id)
        .bind(&lease.child_agent_id)
        .bind(i64::try_from(lease.amount_cents).unwrap_or(i64::MAX))
        .bind(i64::try_from(lease.depth).unwrap_or(i64::MAX))
        .bind(lease.status.as_str())
        .bind(&lease.hold_id)
        .bind(lease.expires_at)
        .bind(lease.released_at)
        .bind(lease.release_reason.clone())
        .bind(lease.created_at)
        .bind(lease.updated_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The lease `id`; `None` if there is none.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Lease>> {
    let sql = format!("SELECT {COLUMNS} FROM budget_leases WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// The lease `id` inside a transaction; `None` if there is none.
pub async fn get_in(conn: &mut Conn, id: &str) -> Result<Option<Lease>> {
    let sql = format!("SELECT {COLUMNS} FROM budget_leases WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The active lease `agent_id` spends under; `None` if it holds none.
pub async fn active_of(conn: &mut Conn, agent_id: &str) -> Result<Option<Lease>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM budget_leases WHERE child_agent_id = $1 AND status = 'active'"
    );
    let row = sqlx::query(&sql).bind(agent_id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The active leases `agent_id` granted, oldest first.
pub async fn active_granted_by(conn: &mut Conn, agent_id: &str) -> Result<Vec<Lease>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM budget_leases WHERE parent_agent_id = $1 AND status = 'active' \
         ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql).bind(agent_id).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Ends an active lease as `to` with `reason`; `None` if it was no longer active.
pub async fn end(
    conn: &mut Conn,
    id: &str,
    to: LeaseStatus,
    reason: &str,
    at: i64,
) -> Result<Option<Lease>> {
    let sql = format!(
        "UPDATE budget_leases SET status = $2, released_at = $3, release_reason = $4, \
         updated_at = $3 WHERE id = $1 AND status = 'active' RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(to.as_str())
        .bind(at)
        .bind(reason)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Up to `limit` active leases whose time ran out by `at`.
pub async fn due(conn: &mut Conn, at: i64, limit: i64) -> Result<Vec<Lease>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM budget_leases WHERE status = 'active' \
         AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
    );
    let rows = sqlx::query(&sql).bind(at).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// A page of leases, newest first: of `account`, only those `agent_id` granted or holds when
/// given, only in `status` when given; at most `limit`, strictly after the cursor.
pub async fn list(
    pool: &AnyPool,
    account: &str,
    agent_id: Option<&str>,
    status: Option<LeaseStatus>,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<Lease>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    let sql = format!(
        "SELECT {COLUMNS} FROM budget_leases WHERE account_id = $1 \
         AND ($2 = '' OR parent_agent_id = $2 OR child_agent_id = $2) \
         AND ($3 = '' OR status = $3) \
         AND (created_at < $4 OR (created_at = $4 AND ($5 = '' OR id < $5))) \
         ORDER BY created_at DESC, id DESC LIMIT $6"
    );
    let rows = sqlx::query(&sql)
        .bind(account)
        .bind(agent_id.unwrap_or(""))
        .bind(status.map(|s| s.as_str()).unwrap_or(""))
        .bind(created_at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}
