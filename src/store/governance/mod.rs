//! Governance rows: policy versions, spend checks, approvals, the agent halt, the append-only
//! audit log, and the facts a spending decision counts ([`facts`]).
//!
//! A spending decision runs in one write transaction that starts with [`lock_agent`], so an
//! agent's decisions are serialised and what one counts, the next sees.

pub mod approvals;
pub mod audit;
pub mod checks;
pub mod policies;

use sqlx::Row;

use super::{Conn, Result, StoreError};
use crate::governance::{AgentState, Facts, Need, Policy, Request};

/// Takes the agent's decision lock for the rest of the transaction and returns its standing;
/// `None` if there is no such agent. On Postgres the update locks the agent's row; on SQLite
/// the transaction already holds the one write lock.
pub async fn lock_agent(conn: &mut Conn, agent_id: &str) -> Result<Option<AgentState>> {
    let row = sqlx::query(
        "UPDATE agents SET decision_seq = decision_seq + 1 WHERE id = $1 \
         RETURNING status, halted",
    )
    .bind(agent_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| {
        if row.get::<String, _>("status") == super::agents::REVOKED {
            AgentState::Revoked
        } else if row.get::<i64, _>("halted") != 0 {
            AgentState::Halted
        } else {
            AgentState::Active
        }
    }))
}

/// What counts toward a decision of `kind` (`check` or `activation`): velocity and the duplicate
/// guard count earlier decisions of the same kind that were let through or escalated, so an
/// activation is never taken for a duplicate of the check that preceded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The agent deciding.
    pub agent_id: &'a str,
    /// The audit kind of the decision.
    pub kind: &'a str,
}

/// Decisions of `scope` counted at or after `since` (unix seconds), from the per-second
/// counts ([`count_decisions`]).
pub async fn recent_decisions(conn: &mut Conn, scope: Scope<'_>, since: i64) -> Result<u64> {
    let total = sqlx::query(
        "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM decision_counts \
         WHERE agent_id = $1 AND kind = $2 AND second >= $3",
    )
    .bind(scope.agent_id)
    .bind(scope.kind)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?
    .get::<i64, _>("n");
    super::unsigned("decision_counts", total)
}

/// Adds `n` decisions of `scope` made in `second` to the counts velocity reads.
pub async fn count_decisions(conn: &mut Conn, scope: Scope<'_>, second: i64, n: u64) -> Result<()> {
    sqlx::query(
        "INSERT INTO decision_counts (agent_id, kind, second, n) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (agent_id, kind, second) DO UPDATE SET n = decision_counts.n + excluded.n",
    )
    .bind(scope.agent_id)
    .bind(scope.kind)
    .bind(second)
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops counts older than `before` (no velocity window reaches back that far); returns how
/// many seconds it dropped.
pub async fn prune_counts(conn: &mut Conn, before: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM decision_counts WHERE second < $1")
        .bind(before)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Whether a decision of `scope` with `fingerprint` was counted at or after `since`.
pub async fn seen_fingerprint(
    conn: &mut Conn,
    scope: Scope<'_>,
    fingerprint: &str,
    since: i64,
) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT id FROM audit_log WHERE agent_id = $1 AND fingerprint = $2 \
         AND kind = $3 AND counted = 1 AND created_at >= $4 LIMIT 1",
    )
    .bind(scope.agent_id)
    .bind(fingerprint)
    .bind(scope.kind)
    .bind(since)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// Of `fingerprints`, those a decision of `scope` counted at or after `since`, each with the
/// last time it did: the duplicate guard's lookup for a whole batch in one query.
pub async fn last_seen(
    conn: &mut Conn,
    scope: Scope<'_>,
    fingerprints: &[String],
    since: i64,
) -> Result<Vec<(String, i64)>> {
    let mut found = Vec::new();
    for chunk in fingerprints.chunks(500) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT fingerprint, MAX(created_at) AS last FROM audit_log WHERE agent_id = $1 \
             AND kind = $2 AND counted = 1 AND created_at >= $3 AND fingerprint IN ({}) \
             GROUP BY fingerprint",
            list.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(scope.agent_id).bind(scope.kind).bind(since);
        for fingerprint in chunk {
            query = query.bind(fingerprint.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.push((row.get::<String, _>("fingerprint"), row.get::<i64, _>("last")));
        }
    }
    Ok(found)
}

/// Answers every [`Need`] of `policy` for `request`, inside the decision's transaction.
pub async fn facts(
    conn: &mut Conn,
    scope: Scope<'_>,
    policy: &Policy,
    request: &Request,
    fingerprint: &str,
    agent: AgentState,
) -> Result<Facts> {
    let mut facts = Facts { agent, ..Facts::default() };
    for need in policy.needs(request.at) {
        match need {
            Need::PeriodSpent { rule_id, from, to } => {
                let spent = committed_spend(conn, scope.agent_id, from, to).await?;
                facts.period_spent_cents.insert(rule_id, spent);
            }
            Need::RecentActions { rule_id, since } => {
                let count = recent_decisions(conn, scope, since).await?;
                facts.recent_actions.insert(rule_id, count);
            }
            Need::Duplicate { since } => {
                facts.duplicate = seen_fingerprint(conn, scope, fingerprint, since).await?;
            }
        }
    }
    Ok(facts)
}

/// Cents the agent committed in `[from, to)`: the deposit plus fee of each activation it
/// queued in that period that is still queued, on its way, or confirmed (not failed, rejected
/// or expired). Counted from the moment it is queued, so two activations in flight cannot both
/// take the last dollar.
pub async fn committed_spend(conn: &mut Conn, agent_id: &str, from: i64, to: i64) -> Result<u64> {
    let rows = sqlx::query(
        "SELECT committed_cents FROM usage_agreements WHERE buyer_agent_id = $1 \
         AND committed_at >= $2 AND committed_at < $3 \
         AND activation_status IN ('pending', 'submitting', 'submitted', 'confirmed')",
    )
    .bind(agent_id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut total: u64 = 0;
    for row in rows {
        let cents = row.get::<Option<i64>, _>("committed_cents").unwrap_or(0);
        let cents = super::unsigned("committed_cents", cents)?;
        total = total.checked_add(cents).ok_or(StoreError::Corrupt {
            column: "committed_cents",
            reason: "committed spend overflows".into(),
        })?;
    }
    Ok(total)
}

/// Records what a queued activation commits of its buyer's budgets.
pub async fn commit_activation(
    conn: &mut Conn,
    agreement_id: &str,
    cents: u64,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE usage_agreements SET committed_cents = $2, committed_at = $3 WHERE id = $1",
    )
    .bind(agreement_id)
    .bind(i64::try_from(cents).unwrap_or(i64::MAX))
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records what follows an approval that ended without being approved (`rejected` or
/// `expired`, as `approval.status` says): its waiting activation ends the same way with
/// nothing sent, an audit row by `actor`, and the `approval.*` webhook event.
pub async fn approval_ended(
    conn: &mut Conn,
    approval: &approvals::Approval,
    actor: audit::Actor,
    at: i64,
) -> Result<()> {
    use crate::agreement::ids::AgreementId;
    use crate::agreement::status::ActivationStatus;
    use crate::store::outbox::{self, EventType};
    let (decision, outcome, event) = match approval.status {
        approvals::ApprovalStatus::Expired => {
            (audit::AuditDecision::Expired, ActivationStatus::Expired, EventType::ApprovalExpired)
        }
        _ => (
            audit::AuditDecision::Rejected,
            ActivationStatus::Rejected,
            EventType::ApprovalRejected,
        ),
    };
    let reason = approval.decision_reason.clone().unwrap_or_else(|| match approval.status {
        approvals::ApprovalStatus::Expired => "approval_expired".to_owned(),
        _ => "approval_rejected".to_owned(),
    });
    if approval.kind == approvals::ApprovalKind::Activation {
        let agreement = AgreementId(approval.subject_id.clone());
        if super::agreements::end_awaiting_approval(conn, &agreement, outcome, &reason, at).await? {
            let data = serde_json::json!({ "error": reason, "approval_id": approval.id });
            outbox::record(conn, Some(&agreement), EventType::ActivationFailed, &data, at).await?;
        }
    }
    let mut entry = audit::AuditEntry::new(
        &approval.account_id,
        Some(&approval.agent_id),
        audit::AuditKind::Approval,
        decision,
        actor,
        at,
    );
    entry.subject_id = Some(approval.id.to_string());
    entry.amount_cents = Some(approval.amount_cents);
    entry.currency = Some(approval.currency.clone());
    entry.action_type = Some(approval.action_type.clone());
    entry.detail = serde_json::json!({
        "kind": approval.kind.as_str(),
        "subject_id": approval.subject_id,
        "reason": approval.decision_reason,
    });
    audit::append(conn, &entry).await?;
    outbox::record_for_agent(conn, &approval.agent_id, event, &approval_event(approval), at)
        .await?;
    Ok(())
}

/// The `data` of an `approval.*` webhook event.
pub fn approval_event(approval: &approvals::Approval) -> serde_json::Value {
    serde_json::json!({
        "approval_id": approval.id,
        "status": approval.status.as_str(),
        "kind": approval.kind.as_str(),
        "subject_id": approval.subject_id,
        "amount_cents": approval.amount_cents,
        "currency": approval.currency,
        "reason_code": approval.reason_code,
        "decision_reason": approval.decision_reason,
    })
}

/// Expires up to `limit` approvals whose time ran out by `at`, each with its consequences
/// ([`approval_ended`]). Returns how many it expired.
pub async fn expire_due(conn: &mut Conn, at: i64, limit: i64) -> Result<usize> {
    let expired = approvals::expire_due(conn, at, limit).await?;
    for approval in &expired {
        approval_ended(conn, approval, audit::Actor::System, at).await?;
    }
    Ok(expired.len())
}
