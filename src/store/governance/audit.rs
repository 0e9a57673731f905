//! The audit log: one row per governance decision, appended and never changed (a trigger on
//! each engine refuses `UPDATE` and `DELETE`).

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::super::{Conn, Result, parse_json};
use crate::agreement::ids::AuditId;
use crate::vocab::string_enum;

string_enum!(
    /// What an audit row records.
    AuditKind {
        /// A `POST /v1/checks` decision.
        Check = "check",
        /// The policy decision on an `activate-escrow`.
        Activation = "activation",
        /// An owner's (or the expiry sweeper's) decision on an approval.
        Approval = "approval",
        /// A halt or resume of an agent.
        Halt = "halt",
        /// A new policy version.
        Policy = "policy",
        /// A spend-guard reservation's decision.
        Reservation = "reservation",
        /// A budget lease granted or ended.
        Lease = "lease",
        /// A mandate created, changed or revoked.
        Mandate = "mandate",
        /// A governed payment's decision.
        Payment = "payment",
        /// The policy decision on a `POST /validate` intent.
        Intent = "intent",
    }
);

string_enum!(
    /// The decision an audit row records.
    AuditDecision {
        /// Let through.
        Allow = "allow",
        /// Refused.
        Block = "block",
        /// Sent to an owner for approval.
        Escalate = "escalate",
        /// An approval approved.
        Approved = "approved",
        /// An approval rejected.
        Rejected = "rejected",
        /// An approval that ran out of time.
        Expired = "expired",
        /// The agent was halted.
        Halted = "halted",
        /// The agent was resumed.
        Resumed = "resumed",
        /// A policy or mandate was written.
        Updated = "updated",
        /// A lease was granted.
        Created = "created",
        /// A lease ended, or a hold was released.
        Released = "released",
        /// A mandate was revoked (by the owner, or with its agent).
        Revoked = "revoked",
    }
);

string_enum!(
    /// Who made the decision.
    Actor {
        /// The account's owner credential.
        Owner = "owner",
        /// The agent's own key (a check, an activation).
        Agent = "agent",
        /// Pactum itself (expiry).
        System = "system",
    }
);

/// One audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// `aud_…`, time-ordered.
    pub id: AuditId,
    /// The account.
    pub account_id: String,
    /// The agent concerned.
    pub agent_id: Option<String>,
    /// What was decided on.
    pub kind: AuditKind,
    /// The decision.
    pub decision: AuditDecision,
    /// Who decided.
    pub actor: Actor,
    /// The check, agreement, approval or policy.
    pub subject_id: Option<String>,
    /// The action type of a spending decision.
    pub action_type: Option<String>,
    /// Its amount in cents.
    pub amount_cents: Option<u64>,
    /// Its currency.
    pub currency: Option<String>,
    /// Its counterparty.
    pub counterparty: Option<String>,
    /// What the duplicate guard compares.
    pub fingerprint: Option<String>,
    /// Whether it counts toward velocity and the duplicate guard.
    pub counted: bool,
    /// Why, when a rule decided.
    pub reason_code: Option<String>,
    /// The rule that decided.
    pub violated_rule_id: Option<String>,
    /// The policy version evaluated.
    pub policy_version: Option<u64>,
    /// Message, violations, reason: whatever else the decision carried.
    pub detail: Value,
    /// Unix seconds.
    pub created_at: i64,
}

impl AuditEntry {
    /// A row with only what every row has; the caller fills in the rest.
    pub fn new(
        account_id: &str,
        agent_id: Option<&str>,
        kind: AuditKind,
        decision: AuditDecision,
        actor: Actor,
        at: i64,
    ) -> AuditEntry {
        AuditEntry {
            id: AuditId::generate(),
            account_id: account_id.to_owned(),
            agent_id: agent_id.map(str::to_owned),
            kind,
            decision,
            actor,
            subject_id: None,
            action_type: None,
            amount_cents: None,
            currency: None,
            counterparty: None,
            fingerprint: None,
            counted: false,
            reason_code: None,
            violated_rule_id: None,
            policy_version: None,
            detail: Value::Object(Default::default()),
            created_at: at,
        }
    }
}

/// Appends `entry`.
pub async fn append(conn: &mut Conn, entry: &AuditEntry) -> Result<()> {
    append_many(conn, std::slice::from_ref(entry)).await
}

/// Columns an insert writes, in the order [`append_many`] binds them.
const INSERT_COLUMNS: usize = 18;

/// Rows per `INSERT` statement: well inside both engines' limits on bound values.
const ROWS_PER_INSERT: usize = 100;

/// Appends `entries`, in order, a hundred rows per statement.
pub async fn append_many(conn: &mut Conn, entries: &[AuditEntry]) -> Result<()> {
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO audit_log (id, account_id, agent_id, kind, decision, actor, subject_id, \
             action_type, amount_cents, currency, counterparty, fingerprint, counted, \
             reason_code, violated_rule_id, policy_version, detail, created_at) VALUES {}",
            super::super::placeholders(chunk.len(), INSERT_COLUMNS)
        );
        let mut query = sqlx::query(&sql);
        for entry in chunk {
            query = query
                .bind(entry.id.as_str())
                .bind(&entry.account_id)
                .bind(entry.agent_id.clone())
                .bind(entry.kind.as_str())
                .bind(entry.decision.as_str())
                .bind(entry.actor.as_str())
                .bind(entry.subject_id.clone())
                .bind(entry.action_type.clone())
                .bind(entry.amount_cents.map(|c| i64::try_from(c).unwrap_or(i64::MAX)))
                .bind(entry.currency.clone())
                .bind(entry.counterparty.clone())
                .bind(entry.fingerprint.clone())
                .bind(i64::from(entry.counted))
                .bind(entry.reason_code.clone())
                .bind(entry.violated_rule_id.clone())
                .bind(entry.policy_version.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
                .bind(entry.detail.to_string())
                .bind(entry.created_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

const COLUMNS: &str = "id, account_id, agent_id, kind, decision, actor, subject_id, action_type, \
    amount_cents, currency, counterparty, fingerprint, counted, reason_code, violated_rule_id, \
    policy_version, detail, created_at";

fn from_row(row: &AnyRow) -> Result<AuditEntry> {
    let unsigned = |column: &'static str| -> Result<Option<u64>> {
        row.get::<Option<i64>, _>(column).map(|v| super::super::unsigned(column, v)).transpose()
    };
    Ok(AuditEntry {
        id: AuditId(row.get("id")),
        account_id: row.get("account_id"),
        agent_id: row.get("agent_id"),
        kind: super::super::parse_column("kind", row.get("kind"))?,
        decision: super::super::parse_column("decision", row.get("decision"))?,
        actor: super::super::parse_column("actor", row.get("actor"))?,
        subject_id: row.get("subject_id"),
        action_type: row.get("action_type"),
        amount_cents: unsigned("amount_cents")?,
        currency: row.get("currency"),
        counterparty: row.get("counterparty"),
        fingerprint: row.get("fingerprint"),
        counted: row.get::<i64, _>("counted") != 0,
        reason_code: row.get("reason_code"),
        violated_rule_id: row.get("violated_rule_id"),
        policy_version: unsigned("policy_version")?,
        detail: parse_json("detail", row.get::<&str, _>("detail"))?,
        created_at: row.get("created_at"),
    })
}

/// Which rows a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this agent's rows.
    pub agent_id: Option<String>,
    /// Only rows with one of these decisions (all when empty).
    pub decisions: Vec<AuditDecision>,
    /// Only rows of these kinds (all when empty).
    pub kinds: Vec<AuditKind>,
    /// At or after (unix seconds).
    pub from: Option<i64>,
    /// Before (unix seconds).
    pub to: Option<i64>,
}

/// A page of `account`'s audit rows matching `filter`, newest first: at most `limit`, strictly
/// after the `(created_at, id)` cursor when one is given.
pub async fn list(
    pool: &AnyPool,
    account: &str,
    filter: &AuditFilter,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<AuditEntry>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    // Decisions and kinds are enum strings, never user text, so they are inlined as literals.
    let in_list = |column: &str, values: Vec<&'static str>| {
        if values.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
            format!(" AND {column} IN ({})", quoted.join(", "))
        }
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE account_id = $1 \
         AND ($2 = '' OR agent_id = $2) AND created_at >= $3 AND created_at < $4{}{} \
         AND (created_at < $5 OR (created_at = $5 AND ($6 = '' OR id < $6))) \
         ORDER BY created_at DESC, id DESC LIMIT $7",
        in_list("decision", filter.decisions.iter().map(|d| d.as_str()).collect()),
        in_list("kind", filter.kinds.iter().map(|k| k.as_str()).collect()),
    );
    let rows = sqlx::query(&sql)
        .bind(account)
        .bind(filter.agent_id.clone().unwrap_or_default())
        .bind(filter.from.unwrap_or(i64::MIN))
        .bind(filter.to.unwrap_or(i64::MAX))
        .bind(created_at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}
