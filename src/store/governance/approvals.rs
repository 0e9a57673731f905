//! Approvals: a spend the policy escalated, waiting for the owner until it expires. Every
//! decision is a conditional update from `pending`, so exactly one decision wins.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::super::{Conn, Result, parse_column, unsigned};
use crate::agreement::ids::ApprovalId;
use crate::vocab::string_enum;

string_enum!(
    /// Where an approval stands.
    ApprovalStatus {
        /// Waiting for the owner.
        Pending = "pending",
        /// The owner approved; the spend went ahead.
        Approved = "approved",
        /// The owner rejected it (or the agent was revoked).
        Rejected = "rejected",
        /// Nobody decided before it expired.
        Expired = "expired",
    }
);

string_enum!(
    /// What an approval is for.
    ApprovalKind {
        /// An escrow activation, whose signatures wait with the agreement.
        Activation = "activation",
        /// A spend check that escalated (the approval binds nothing by itself).
        Check = "check",
        /// A spend-guard reservation that escalated: approving holds it.
        Reservation = "reservation",
        /// A governed payment that escalated: approving holds it and lets the wallet sign.
        Payment = "payment",
    }
);

/// One approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// `apr_…`.
    pub id: ApprovalId,
    /// The account whose owner decides.
    pub account_id: String,
    /// The agent that asked.
    pub agent_id: String,
    /// What it approves.
    pub kind: ApprovalKind,
    /// The agreement (activation) or check.
    pub subject_id: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// The action type of the spend.
    pub action_type: String,
    /// Its amount in cents.
    pub amount_cents: u64,
    /// Its currency.
    pub currency: String,
    /// Its counterparty.
    pub counterparty: Option<String>,
    /// Why the policy escalated.
    pub reason_code: String,
    /// The rule that escalated.
    pub violated_rule_id: Option<String>,
    /// The policy's message.
    pub message: String,
    /// The policy version evaluated.
    pub policy_version: Option<u64>,
    /// After this (unix seconds) it can no longer be approved.
    pub expires_at: i64,
    /// When it was decided or expired.
    pub decided_at: Option<i64>,
    /// The owner's reason, or why it ended without one.
    pub decision_reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

const COLUMNS: &str = "id, account_id, agent_id, kind, subject_id, status, action_type, \
    amount_cents, currency, counterparty, reason_code, violated_rule_id, message, \
    policy_version, expires_at, decided_at, decision_reason, created_at";

fn from_row(row: &AnyRow) -> Result<Approval> {
    Ok(Approval {
        id: ApprovalId(row.get("id")),
        account_id: row.get("account_id"),
        agent_id: row.get("agent_id"),
        kind: parse_column("kind", row.get("kind"))?,
        subject_id: row.get("subject_id"),
        status: parse_column("status", row.get("status"))?,
        action_type: row.get("action_type"),
        amount_cents: unsigned("amount_cents", row.get("amount_cents"))?,
        currency: row.get("currency"),
        counterparty: row.get("counterparty"),
        reason_code: row.get("reason_code"),
        violated_rule_id: row.get("violated_rule_id"),
        message: row.get("message"),
        policy_version: row
            .get::<Option<i64>, _>("policy_version")
            .map(|v| unsigned("policy_version", v))
            .transpose()?,
        expires_at: row.get("expires_at"),
        decided_at: row.get("decided_at"),
        decision_reason: row.get("decision_reason"),
        created_at: row.get("created_at"),
    })
}

/// Stores a new approval.
pub async fn insert(conn: &mut Conn, approval: &Approval) -> Result<()> {
    insert_many(conn, std::slice::from_ref(approval)).await
}

/// Stores new approvals, a hundred rows per statement.
pub async fn insert_many(conn: &mut Conn, approvals: &[Approval]) -> Result<()> {
    for chunk in approvals.chunks(100) {
        let sql = format!(
            "INSERT INTO approvals ({COLUMNS}) VALUES {}",
            super::super::placeholders(chunk.len(), 18)
        );
        let mut query = sqlx::query(&sql);
        for approval in chunk {
            query = query
                .bind(approval.id.as_str())
                .bind(&approval.account_id)
                .bind(&approval.agent_id)
                .bind(approval.kind.as_str())
                .bind(&approval.subject_id)
                .bind(approval.status.as_str())
                .bind(&approval.action_type)
                .bind(i64::try_from(approval.amount_cents).unwrap_or(i64::MAX))
                .bind(&approval.currency)
                .bind(approval.counterparty.clone())
                .bind(&approval.reason_code)
                .bind(approval.violated_rule_id.clone())
                .bind(&approval.message)
                .bind(approval.policy_version.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
                .bind(approval.expires_at)
                .bind(approval.decided_at)
                .bind(approval.decision_reason.clone())
                .bind(approval.created_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The approval `id`; `None` if there is none.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Approval>> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// The approval `id` inside a transaction; `None` if there is none.
pub async fn get_in(conn: &mut Conn, id: &str) -> Result<Option<Approval>> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The newest approval of `kind` for `subject_id`; `None` if there is none.
pub async fn latest_for(
    pool: &AnyPool,
    kind: ApprovalKind,
    subject_id: &str,
) -> Result<Option<Approval>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE kind = $1 AND subject_id = $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    let row = sqlx::query(&sql).bind(kind.as_str()).bind(subject_id).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// Decides a pending approval: moves it to `status` if it is still `pending` and has not
/// expired at `at`, and returns it; `None` if another decision (or expiry) came first.
pub async fn decide(
    conn: &mut Conn,
    id: &str,
    status: ApprovalStatus,
    reason: Option<&str>,
    at: i64,
) -> Result<Option<Approval>> {
    let sql = format!(
        "UPDATE approvals SET status = $2, decided_at = $3, decision_reason = $4 \
         WHERE id = $1 AND status = 'pending' AND expires_at > $3 RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(status.as_str())
        .bind(at)
        .bind(reason.map(str::to_owned))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Expires up to `limit` pending approvals whose time ran out by `at`, and returns them.
pub async fn expire_due(conn: &mut Conn, at: i64, limit: i64) -> Result<Vec<Approval>> {
    let sql = format!(
        "UPDATE approvals SET status = 'expired', decided_at = $1 WHERE id IN ( \
           SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1 \
           ORDER BY expires_at LIMIT $2) AND status = 'pending' RETURNING {COLUMNS}"
    );
    let rows = sqlx::query(&sql).bind(at).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Ends every pending approval of `agent_id` as `rejected` with `reason` (the agent was
/// revoked), and returns them.
pub async fn end_pending_of_agent(
    conn: &mut Conn,
    agent_id: &str,
    reason: &str,
    at: i64,
) -> Result<Vec<Approval>> {
    let sql = format!(
        "UPDATE approvals SET status = 'rejected', decided_at = $2, decision_reason = $3 \
         WHERE agent_id = $1 AND status = 'pending' RETURNING {COLUMNS}"
    );
    let rows = sqlx::query(&sql).bind(agent_id).bind(at).bind(reason).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// A page of approvals, newest first: of `account`, only `agent_id`'s when given, only in
/// `status` when given; at most `limit`, strictly after the `(created_at, id)` cursor.
pub async fn list(
    pool: &AnyPool,
    account: &str,
    agent_id: Option<&str>,
    status: Option<ApprovalStatus>,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<Approval>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE account_id = $1 AND ($2 = '' OR agent_id = $2) \
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
