//! Governance rows: policy versions, spend checks, approvals, mandates, the agent halt, the
//! append-only audit log, and the facts a spending decision counts ([`facts`]).
//!
//! A spending decision runs in one write transaction that starts with [`lock_agent`], so an
//! agent's decisions are serialised and what one counts, the next sees.

pub mod activation_holds;
pub mod approvals;
pub mod audit;
pub mod checks;
pub mod guard;
pub mod holds;
pub mod intent_holds;
pub mod leases;
pub mod mandates;
pub mod policies;
pub mod usage;

use sqlx::Row;

use super::agents::AgentStatus;
use super::{Conn, Result, StoreError};
use crate::governance::{AgentState, Facts, Need, Policy, Request};
pub use activation_holds::{Bound, commit_activation, follow_activation};

/// Takes the agent's decision lock for the rest of the transaction and returns its standing;
/// `None` if there is no such agent. On Postgres the update locks the agent's row; on SQLite
/// the transaction already holds the one write lock.
pub async fn lock_agent(conn: &mut Conn, agent_id: &str) -> Result<Option<AgentState>> {
    Ok(lock_agent_with_policy(conn, agent_id).await?.map(|locked| locked.state))
}

/// An agent under its decision lock: its standing and which version of its policy is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// Active, halted or revoked.
    pub state: AgentState,
    /// Whether the agent registered itself and no owner has claimed it yet: it may spend
    /// nothing, whatever its state and policy.
    pub unclaimed: bool,
    /// The policy in force: its id and version; `None` if the agent never had one.
    pub policy: Option<(String, u64)>,
    /// The budget lease the agent spends under, if it holds one.
    pub lease_id: Option<String>,
}

/// [`lock_agent`], also naming the policy version in force, in the same statement (a decision
/// whose policy is already parsed needs no other read of it).
pub async fn lock_agent_with_policy(conn: &mut Conn, agent_id: &str) -> Result<Option<Locked>> {
    let row = sqlx::query(
        "UPDATE agents SET decision_seq = decision_seq + 1 WHERE id = $1 \
         RETURNING status, halted, \
         (SELECT policy_id FROM policy_versions WHERE agent_id = $1 \
          ORDER BY version DESC LIMIT 1) AS policy_id, \
         (SELECT MAX(version) FROM policy_versions WHERE agent_id = $1) AS policy_version, \
         (SELECT id FROM budget_leases WHERE child_agent_id = $1 AND status = 'active') \
         AS lease_id",
    )
    .bind(agent_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.get("status");
    let unclaimed = status == AgentStatus::Unclaimed.as_str();
    let state = if status == super::agents::REVOKED {
        AgentState::Revoked
    } else if row.get::<i64, _>("halted") != 0 {
        AgentState::Halted
    } else {
        AgentState::Active
    };
    let policy = match (
        row.get::<Option<String>, _>("policy_id"),
        row.get::<Option<i64>, _>("policy_version"),
    ) {
        (Some(id), Some(version)) => Some((id, super::unsigned("version", version)?)),
        _ => None,
    };
    let lease_id = row.try_get("lease_id")?;
    Ok(Some(Locked { state, unclaimed, policy, lease_id }))
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
    let window = Window { counts_since: Some(since), ..Window::default() };
    Ok(observe(conn, scope.agent_id, &window).await?.recent(scope.kind, since))
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

/// Of `fingerprints`, those a decision of `scope` counted at or after `since`, each with the
/// last time it did: the duplicate guard's lookup for a whole batch in one query.
pub async fn last_seen(
    conn: &mut Conn,
    scope: Scope<'_>,
    fingerprints: &[String],
    since: i64,
) -> Result<Vec<(String, i64)>> {
    let window = Window { seen: Some((since, fingerprints.to_vec())), ..Window::default() };
    let observed = observe(conn, scope.agent_id, &window).await?;
    Ok(observed
        .seen
        .into_iter()
        .filter(|(kind, ..)| kind == scope.kind)
        .map(|(_, fingerprint, last)| (fingerprint, last))
        .collect())
}

/// Answers every [`Need`] of `policy` for `request`, inside the decision's transaction, with
/// one read ([`observe`]).
pub async fn facts(
    conn: &mut Conn,
    scope: Scope<'_>,
    policy: &Policy,
    request: &Request,
    fingerprint: &str,
    agent: AgentState,
) -> Result<Facts> {
    let needs = policy.needs(request.at);
    let mut window = Window::default();
    for need in &needs {
        window.widen(need, fingerprint);
    }
    let observed = observe(conn, scope.agent_id, &window).await?;
    observed.facts(needs, scope.kind, fingerprint, agent, &Unstored::default())
}

/// Cents the agent committed in `[from, to)`: the deposit plus fee of each activation it
/// queued in that period that is still queued, on its way, or confirmed (not failed, rejected
/// or expired). Counted from the moment it is queued, so two activations in flight cannot both
/// take the last dollar.
pub async fn committed_spend(conn: &mut Conn, agent_id: &str, from: i64, to: i64) -> Result<u64> {
    let window = Window { spend: vec![(from, to)], ..Window::default() };
    observe(conn, agent_id, &window).await?.spent(from, to)
}

/// The width of one `hold_buckets` row: a quarter hour, which divides every time zone's offset.
pub const BUCKET_SECS: i64 = 900;

/// What decisions of one agent need to read: the ranges [`observe`] covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// The periods `[from, to)` whose counted holds are summed, each once.
    pub spend: Vec<(i64, i64)>,
    /// Per-second decision counts (of every kind) at or after this second.
    pub counts_since: Option<i64>,
    /// Counted decisions with one of these fingerprints at or after the second given.
    pub seen: Option<(i64, Vec<String>)>,
}

impl Window {
    /// Widens the window to cover `need` (with `fingerprint` for the duplicate guard).
    pub fn widen(&mut self, need: &Need, fingerprint: &str) {
        match need {
            Need::PeriodSpent { from, to, .. } => {
                if !self.spend.contains(&(*from, *to)) {
                    self.spend.push((*from, *to));
                }
            }
            Need::RecentActions { since, .. } => {
                let low = self.counts_since.get_or_insert(*since);
                *low = (*low).min(*since);
            }
            Need::Duplicate { since } => {
                let (low, fingerprints) = self.seen.get_or_insert((*since, Vec::new()));
                *low = (*low).min(*since);
                if !fingerprints.iter().any(|f| f == fingerprint) {
                    fingerprints.push(fingerprint.to_owned());
                }
            }
        }
    }
}

/// What [`observe`] read for one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Cents counted in each period asked, `((from, to), cents)`.
    pub commitments: Vec<((i64, i64), u64)>,
    /// Per-second decision counts: kind, second, count.
    pub counts: Vec<(String, i64, u64)>,
    /// The last counted decision of each fingerprint asked: kind, fingerprint, unix seconds.
    pub seen: Vec<(String, String, i64)>,
}

impl Observed {
    /// Cents counted in `[from, to)`: a period the window asked for (0 for one it did not).
    pub fn spent(&self, from: i64, to: i64) -> Result<u64> {
        Ok(self.commitments.iter().find(|(range, _)| *range == (from, to)).map_or(0, |(_, c)| *c))
    }

    /// Decisions of `kind` counted at or after `since`.
    pub fn recent(&self, kind: &str, since: i64) -> u64 {
        self.counts
            .iter()
            .filter(|(k, second, _)| k == kind && *second >= since)
            .fold(0u64, |total, (.., n)| total.saturating_add(*n))
    }

    /// When a decision of `kind` with `fingerprint` was last counted, if it was.
    pub fn last_seen(&self, kind: &str, fingerprint: &str) -> Option<i64> {
        self.seen.iter().find(|(k, f, _)| k == kind && f == fingerprint).map(|(.., last)| *last)
    }

    /// The facts `needs` ask for a decision of `kind` with `fingerprint`: what was observed
    /// plus what `unstored` counted since (earlier decisions of the same batch).
    pub fn facts(
        &self,
        needs: Vec<Need>,
        kind: &str,
        fingerprint: &str,
        agent: AgentState,
        unstored: &Unstored,
    ) -> Result<Facts> {
        let mut facts = Facts { agent, ..Facts::default() };
        for need in needs {
            match need {
                Need::PeriodSpent { rule_id, from, to } => {
                    facts.period_spent_cents.insert(rule_id, self.spent(from, to)?);
                }
                Need::RecentActions { rule_id, since } => {
                    let recent = self.recent(kind, since).saturating_add(unstored.decisions);
                    facts.recent_actions.insert(rule_id, recent);
                }
                Need::Duplicate { since } => {
                    facts.duplicate = unstored.same_fingerprint
                        || self.last_seen(kind, fingerprint).is_some_and(|last| last >= since);
                }
            }
        }
        Ok(facts)
    }
}

/// Decisions counted but not yet stored when facts are taken: the earlier decisions of the
/// same batch, of the same agent and kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unstored {
    /// How many were counted.
    pub decisions: u64,
    /// Whether one of them had the same fingerprint.
    pub same_fingerprint: bool,
}

/// Reads everything `window` covers for `agent_id` in one statement: its commitments, its
/// per-second decision counts and the last time each fingerprint asked was counted. A
/// decision (or a batch of them) needs one read of the store, not one per rule.
pub async fn observe(conn: &mut Conn, agent_id: &str, window: &Window) -> Result<Observed> {
    let mut parts = Vec::new();
    let mut numbers: Vec<i64> = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    // $1 is the agent; the numbers follow, then the fingerprints.
    fn number(value: i64, numbers: &mut Vec<i64>) -> String {
        numbers.push(value);
        format!("${}", numbers.len() + 1)
    }
    // One sum per period, computed by the database from the quarter-hour totals the engine's
    // triggers keep (`hold_buckets`): what a budget costs to read does not grow with how many
    // holds the agent made in it. A period that does not start and end on a quarter hour (a
    // time zone with an offset in seconds) is summed from the holds themselves.
    for (index, (from, to)) in window.spend.iter().enumerate() {
        let sql = if from % BUCKET_SECS == 0 && to % BUCKET_SECS == 0 {
            let (from, to) =
                (number(from / BUCKET_SECS, &mut numbers), number(to / BUCKET_SECS, &mut numbers));
            format!(
                "SELECT 's' AS part, '{index}' AS kind, '' AS fingerprint, \
                 CAST(0 AS BIGINT) AS t, CAST(COALESCE(SUM(cents), 0) AS BIGINT) AS v \
                 FROM hold_buckets WHERE agent_id = $1 AND bucket >= {from} AND bucket < {to}"
            )
        } else {
            let (from, to) = (number(*from, &mut numbers), number(*to, &mut numbers));
            format!(
                "SELECT 's' AS part, '{index}' AS kind, '' AS fingerprint, \
                 CAST(0 AS BIGINT) AS t, CAST(COALESCE(SUM(counted_cents), 0) AS BIGINT) AS v \
                 FROM reservations WHERE agent_id = $1 \
                 AND counted_at >= {from} AND counted_at < {to} AND counted_cents > 0"
            )
        };
        parts.push(sql);
    }
    if let Some(since) = window.counts_since {
        let since = number(since, &mut numbers);
        parts.push(format!(
            "SELECT 'c' AS part, kind, '' AS fingerprint, CAST(second AS BIGINT) AS t, \
             CAST(n AS BIGINT) AS v \
             FROM decision_counts WHERE agent_id = $1 AND second >= {since}"
        ));
    }
    let seen = window.seen.as_ref().filter(|(_, fingerprints)| !fingerprints.is_empty());
    if let Some((since, fingerprints)) = seen {
        let since = number(*since, &mut numbers);
        texts.extend(fingerprints.iter().map(String::as_str));
        parts.push(format!(
            "SELECT 'f' AS part, kind, fingerprint, CAST(MAX(created_at) AS BIGINT) AS t, \
             CAST(0 AS BIGINT) AS v \
             FROM audit_log WHERE agent_id = $1 AND counted = 1 AND created_at >= {since} \
             AND fingerprint IN ({{fingerprints}}) GROUP BY kind, fingerprint"
        ));
    }
    let mut observed = Observed::default();
    if parts.is_empty() {
        return Ok(observed);
    }
    let first_text = numbers.len() + 2;
    let list: Vec<String> = (0..texts.len()).map(|i| format!("${}", first_text + i)).collect();
    let sql = parts.join(" UNION ALL ").replace("{fingerprints}", &list.join(", "));
    let mut query = sqlx::query(&sql).bind(agent_id);
    for value in numbers {
        query = query.bind(value);
    }
    for text in texts {
        query = query.bind(text);
    }
    for row in query.fetch_all(&mut *conn).await? {
        let (t, v) = (row.try_get::<i64, _>("t")?, row.try_get::<i64, _>("v")?);
        let kind = || row.try_get::<String, _>("kind");
        match row.try_get::<&str, _>("part")? {
            "s" => {
                let range = kind()?
                    .parse::<usize>()
                    .ok()
                    .and_then(|index| window.spend.get(index).copied())
                    .ok_or(StoreError::Corrupt {
                        column: "part",
                        reason: "no such period".into(),
                    })?;
                observed.commitments.push((range, super::unsigned("counted_cents", v)?));
            }
            "c" => observed.counts.push((kind()?, t, super::unsigned("decision_counts", v)?)),
            _ => observed.seen.push((kind()?, row.try_get("fingerprint")?, t)),
        }
    }
    Ok(observed)
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
    if approval.kind == approvals::ApprovalKind::Payment {
        use crate::payments::PaymentStatus;
        use crate::store::payments;
        let change = payments::Change { error: Some(&reason), ..payments::Change::default() };
        let from = [PaymentStatus::PendingApproval];
        let to = PaymentStatus::Blocked;
        // The hold ends `rejected` first; the payment's move then leaves it so.
        if let Some(payment) = payments::get_in(conn, &approval.subject_id).await?
            && payment.status == PaymentStatus::PendingApproval
            && let Some(hold) = &payment.reservation_id
        {
            holds::end(conn, hold, holds::HoldStatus::Rejected, &reason, actor.as_str(), at)
                .await?;
        }
        if let Some(blocked) =
            payments::transition(conn, &approval.subject_id, &from, to, &change, at).await?
        {
            payments::announce(conn, &blocked, at).await?;
        }
    }
    if approval.kind == approvals::ApprovalKind::Reservation {
        let ended = holds::end(
            conn,
            &approval.subject_id,
            holds::HoldStatus::Rejected,
            &reason,
            actor.as_str(),
            at,
        )
        .await?;
        if let Some(hold) = ended {
            outbox::record_for_agent(
                conn,
                &hold.agent_id,
                EventType::ReservationRejected,
                &holds::event_data(&hold),
                at,
            )
            .await?;
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

/// Ends the approval `id` as rejected with `reason` if it is still pending (what it waited for
/// went away), with its consequences ([`approval_ended`]) recorded as the system's.
pub async fn end_approval(conn: &mut Conn, id: &str, reason: &str, at: i64) -> Result<()> {
    let decided =
        approvals::decide(conn, id, approvals::ApprovalStatus::Rejected, Some(reason), at).await?;
    if let Some(approval) = decided {
        approval_ended(conn, &approval, audit::Actor::System, at).await?;
    }
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

/// Records a change of `mandate` (`created`, `updated` or `revoked`, as `decision` says): its
/// audit row by `actor` and the `mandate.*` webhook event to its agent, in the caller's
/// transaction.
pub async fn mandate_changed(
    conn: &mut Conn,
    mandate: &crate::governance::Mandate,
    decision: audit::AuditDecision,
    actor: audit::Actor,
    at: i64,
) -> Result<()> {
    use crate::store::outbox::{self, EventType};
    let event = match decision {
        audit::AuditDecision::Created => EventType::MandateCreated,
        audit::AuditDecision::Revoked => EventType::MandateRevoked,
        _ => EventType::MandateUpdated,
    };
    let mut entry = audit::AuditEntry::new(
        &mandate.account_id,
        Some(&mandate.agent_id),
        audit::AuditKind::Mandate,
        decision,
        actor,
        at,
    );
    entry.subject_id = Some(mandate.id.to_string());
    entry.amount_cents = Some(mandate.max_total_cents);
    entry.detail = serde_json::json!({
        "max_total_cents": mandate.max_total_cents,
        "per_tx_max_cents": mandate.per_tx_max_cents,
        "valid_until": mandate.valid_until,
        "revoke_reason": mandate.revoke_reason,
    });
    audit::append(conn, &entry).await?;
    outbox::record_for_agent(conn, &mandate.agent_id, event, &mandate_event(mandate), at).await?;
    Ok(())
}

/// The `data` of a `mandate.*` webhook event.
pub fn mandate_event(mandate: &crate::governance::Mandate) -> serde_json::Value {
    serde_json::json!({
        "mandate_id": mandate.id,
        "status": mandate.status.as_str(),
        "max_total_cents": mandate.max_total_cents,
        "per_tx_max_cents": mandate.per_tx_max_cents,
        "valid_from": mandate.valid_from.map(crate::time::rfc3339),
        "valid_until": mandate.valid_until.map(crate::time::rfc3339),
        "revoke_reason": mandate.revoke_reason,
    })
}

/// Revokes every active mandate of `agent_id` with `reason` (`agent_revoked`,
/// `agent_halted`), each with its audit row by `actor` and its `mandate.revoked` event, in the
/// caller's transaction (the one that revokes or halts the agent). Returns them.
pub async fn revoke_mandates_of_agent(
    conn: &mut Conn,
    agent_id: &str,
    reason: &str,
    actor: audit::Actor,
    at: i64,
) -> Result<Vec<crate::governance::Mandate>> {
    let revoked = mandates::revoke_all_of_agent(conn, agent_id, reason, at).await?;
    for mandate in &revoked {
        mandate_changed(conn, mandate, audit::AuditDecision::Revoked, actor, at).await?;
    }
    Ok(revoked)
}
