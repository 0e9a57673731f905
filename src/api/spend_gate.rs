//! The policy gate of every spending entry point (`POST /v1/checks`, `activate-escrow`, the
//! spend guard's authorizations, reservations and leases): in the caller's write transaction it
//! takes the agent's decision lock, refuses an unclaimed agent outright ([`unclaimed_refusal`]),
//! loads the policy in force, counts the facts the policy needs, evaluates, and appends the
//! decision to the audit log and the check store. Whatever the caller then does with an `allow`
//! (queue an activation) commits in the same transaction, so what one decision counts the next
//! sees.
//!
//! Decisions come in batches ([`decide_batch`]): an activation decides alone, while checks are
//! decided many to a transaction by the check queue (`super::check_queue`), each seeing the
//! ones before it, so the store's single writer (SQLite) or an agent's row lock (Postgres) is
//! taken once per batch rather than once per check.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult, ErrorCode};
use crate::agreement::ids::CheckId;
use crate::governance::{
    self, ActionType, Confidence, Decision, Evaluation, Facts, Policy, ReasonCode, Request,
    Violation,
};
use crate::store::Conn;
use crate::store::agents::AgentStatus;
use crate::store::governance::audit::{self, Actor, AuditDecision, AuditEntry, AuditKind};
use crate::store::governance::{self as rows, Scope, checks, policies};

/// A spend to decide on.
#[derive(Debug, Clone)]
pub(crate) struct Spend {
    /// The account of the agent.
    pub account_id: String,
    /// The agent spending (always the credential's agent, or one the owner named).
    pub agent_id: String,
    /// `check` or `activation`: what is counted together for velocity and duplicates.
    pub kind: AuditKind,
    /// Who asked.
    pub actor: Actor,
    /// The agreement of an activation.
    pub subject_id: Option<String>,
    /// `USD` or `USDC`.
    pub currency: String,
    /// How sure the action type is.
    pub confidence: Confidence,
    /// What the engine evaluates.
    pub request: Request,
    /// The policy a check names: any other answers 404 `policy_not_found` and records nothing.
    pub expect_policy: Option<String>,
    /// The mandate the spend is made under, whose limits bind besides the policy.
    pub mandate_id: Option<String>,
    /// Only the policy's `period_budget` rules decide (a lease the owner grants is carved out
    /// of budgets; the rules about what an agent buys do not apply to it).
    pub budgets_only: bool,
    /// When the request was read, for `latency_ms`.
    pub started: std::time::Instant,
}

/// The answer to a spend check, as `POST /v1/checks` returns it and `GET /v1/checks/{id}`
/// serves it; activation decisions are stored the same way.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckResponse {
    /// `chk_…`.
    pub check_id: String,
    /// `allow`, `block` or `escalate`.
    pub decision: Decision,
    /// How sure the action type is: `high` when the caller named it.
    pub confidence: Confidence,
    /// Why (null on allow).
    pub reason_code: Option<ReasonCode>,
    /// A human-readable explanation (null on allow).
    pub message: Option<String>,
    /// The rule that decided (null on allow).
    pub violated_rule_id: Option<String>,
    /// That rule's description.
    pub violated_rule_description: Option<String>,
    /// The policy version evaluated.
    pub policy_version: u64,
    /// What the agent should do next (null on allow).
    pub next_step: Option<String>,
    /// Milliseconds spent deciding, from the moment the request was read.
    pub latency_ms: u64,
    /// When it was decided (UTC, RFC 3339).
    pub timestamp: String,
    /// A short counter-message for the agent's model (null on allow); it never repeats text of
    /// the request.
    pub decline_message: Option<String>,
    /// Every rule that fired, the deciding one included.
    pub violations: Vec<Violation>,
    /// The approval an escalation opened, when one was opened.
    pub approval_id: Option<String>,
    /// The action type evaluated (named or classified).
    pub action_type: ActionType,
}

/// A decision taken and recorded.
#[derive(Debug, Clone)]
pub(crate) struct Gated {
    /// The engine's answer.
    pub evaluation: Evaluation,
    /// The policy version evaluated (0 when the agent has no policy).
    pub policy_version: u64,
    /// The response as stored under `check_id`.
    pub response: CheckResponse,
    /// The audit row of the decision, appended by [`record`].
    pub entry: AuditEntry,
    /// The budget lease the agent spends under, whose capacity the decision counted.
    pub lease_id: Option<String>,
}

impl Gated {
    /// 422 `policy_blocked`, or 403 `agent_halted` when the agent is halted, for a blocked
    /// spend.
    pub(crate) fn refusal(&self) -> ApiError {
        let e = &self.evaluation;
        let code = match e.reason_code {
            Some(ReasonCode::AgentHalted) => ErrorCode::AgentHalted,
            _ => ErrorCode::PolicyBlocked,
        };
        let message = e.message.clone().unwrap_or_else(|| "the agent's policy blocks this".into());
        ApiError::new(code, message.clone()).with_details(json!({
            "reason_code": e.reason_code,
            "violated_rule_id": e.violated_rule_id,
            "message": message,
            "decline_message": e.decline_message,
            "check_id": self.response.check_id,
        }))
    }
}

/// 403 `agent_unclaimed`: the agent registered itself and no owner has claimed it, so it may
/// spend nothing. Refused before any policy is read, and nothing is recorded: an unclaimed
/// agent has no owner whose audit log or budgets a decision could count in.
pub(crate) fn unclaimed_refusal(agent_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AgentUnclaimed,
        "this agent registered itself and is not claimed yet; it can spend nothing until its \
         owner claims it (`POST /agents/claim` with its claim code)",
    )
    .with_details(json!({ "agent_id": agent_id, "status": AgentStatus::Unclaimed }))
}

/// What the duplicate guard compares: kind, action type, amount, currency and counterparty.
fn fingerprint(spend: &Spend) -> String {
    let counterparty =
        spend.request.counterparties.first().map(|c| c.to_lowercase()).unwrap_or_default();
    let mut hasher = Sha256::new();
    for part in [
        spend.kind.as_str(),
        spend.request.action_type.as_str(),
        &spend.request.amount_cents.to_string(),
        &spend.currency.to_uppercase(),
        &counterparty,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    alloy::primitives::hex::encode(&hasher.finalize()[..16])
}

/// The agent's policy in force, parsed; `None` when it has none.
pub(crate) async fn policy_in_force(
    conn: &mut Conn,
    agent_id: &str,
) -> ApiResult<Option<(Policy, policies::PolicyVersion)>> {
    let Some(stored) = policies::current(conn, agent_id).await? else { return Ok(None) };
    let policy = Policy::parse(&stored.document)
        .map_err(|e| ApiError::internal(format!("stored policy does not parse: {e}")))?;
    Ok(Some((policy, stored)))
}

/// Parsed policies by (agent, policy id, version). A stored version never changes (a change
/// is a new version), so an entry is never stale; the lock names the version in force.
type ParsedPolicies = HashMap<(String, String, u64), Arc<Policy>>;

/// Parsed policies kept at most; past this the cache starts again.
const PARSED_POLICIES: usize = 4_096;

fn parsed_policies() -> &'static Mutex<ParsedPolicies> {
    static PARSED: OnceLock<Mutex<ParsedPolicies>> = OnceLock::new();
    PARSED.get_or_init(Default::default)
}

/// The policy `locked` names, parsed: from the cache, or read and parsed once.
async fn policy_of(
    conn: &mut Conn,
    agent_id: &str,
    locked: &rows::Locked,
) -> ApiResult<(Arc<Policy>, u64, Option<String>)> {
    let Some((policy_id, version)) = &locked.policy else {
        return Ok((Arc::new(Policy::default()), 0, None));
    };
    let key = (agent_id.to_owned(), policy_id.clone(), *version);
    let cached =
        parsed_policies().lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
    let policy = match cached {
        Some(policy) => policy,
        None => {
            let stored = policies::version_in(conn, agent_id, *version)
                .await?
                .ok_or_else(|| ApiError::internal("the policy version in force vanished"))?;
            let policy =
                Arc::new(Policy::parse(&stored.document).map_err(|e| {
                    ApiError::internal(format!("stored policy does not parse: {e}"))
                })?);
            let mut parsed = parsed_policies().lock().unwrap_or_else(PoisonError::into_inner);
            if parsed.len() >= PARSED_POLICIES {
                parsed.clear();
            }
            parsed.insert(key, policy.clone());
            policy
        }
    };
    Ok((policy, *version, Some(policy_id.clone())))
}

/// What a batch of decisions has counted so far, so each decision sees the ones before it
/// (in this batch as in the store).
#[derive(Debug, Default)]
struct Counted {
    /// What the store held for each agent when the batch began (one read per agent).
    observed: HashMap<String, rows::Observed>,
    /// Decisions counted by this batch per (agent, kind).
    added: HashMap<(String, &'static str), u64>,
    /// Fingerprints counted by this batch per (agent, kind).
    seen: HashSet<(String, &'static str, String)>,
}

/// One agent of a batch under its decision lock, with its policy.
struct Standing {
    state: governance::AgentState,
    policy: Arc<Policy>,
    version: u64,
    policy_id: Option<String>,
    lease: Option<governance::LeaseFact>,
}

/// The budget lease `agent_id` spends under, as a decision sees it; `None` if it holds none.
pub(crate) async fn lease_fact(
    conn: &mut Conn,
    lease_id: Option<&str>,
) -> ApiResult<Option<governance::LeaseFact>> {
    let Some(lease_id) = lease_id else { return Ok(None) };
    let Some(lease) = rows::leases::get_in(conn, lease_id).await? else { return Ok(None) };
    let counted_cents = rows::holds::counted_under_lease(conn, lease_id).await?;
    Ok(Some(governance::LeaseFact {
        lease_id: lease.id.to_string(),
        amount_cents: lease.amount_cents,
        counted_cents,
    }))
}

/// Decides `spends` in order inside `conn`'s transaction: takes each agent's decision lock
/// (agents in id order, so two batches never wait on each other in a cycle), which also names
/// its policy version (parsed once per version), reads what the policies need in one query per
/// agent, and evaluates. Each decision counts the ones before it in the batch. Nothing is
/// written: [`record`] appends what the caller keeps.
pub(crate) async fn decide_batch(
    conn: &mut Conn,
    spends: &[Spend],
) -> ApiResult<Vec<ApiResult<Gated>>> {
    let agents: BTreeSet<&str> = spends.iter().map(|s| s.agent_id.as_str()).collect();
    let mut standing: HashMap<&str, Standing> = HashMap::new();
    let mut unclaimed: HashSet<&str> = HashSet::new();
    for agent in agents {
        let Some(locked) = rows::lock_agent_with_policy(conn, agent).await? else { continue };
        if locked.unclaimed {
            unclaimed.insert(agent);
            continue;
        }
        let (policy, version, policy_id) = policy_of(conn, agent, &locked).await?;
        let lease = lease_fact(conn, locked.lease_id.as_deref()).await?;
        standing.insert(agent, Standing { state: locked.state, policy, version, policy_id, lease });
    }
    let fingerprints: Vec<String> = spends.iter().map(fingerprint).collect();
    // Everything the batch's decisions need, one read per agent.
    let mut windows: BTreeMap<&str, rows::Window> = BTreeMap::new();
    for (spend, fingerprint) in spends.iter().zip(&fingerprints) {
        let Some(agent) = standing.get(spend.agent_id.as_str()) else { continue };
        let window = windows.entry(spend.agent_id.as_str()).or_default();
        for need in agent.policy.needs(spend.request.at) {
            window.widen(&need, fingerprint);
        }
    }
    let mut counted = Counted::default();
    for (agent_id, window) in windows {
        let observed = rows::observe(conn, agent_id, &window).await?;
        counted.observed.insert(agent_id.to_owned(), observed);
    }
    let mut decided = Vec::with_capacity(spends.len());
    for (spend, fingerprint) in spends.iter().zip(fingerprints) {
        if unclaimed.contains(spend.agent_id.as_str()) {
            decided.push(Err(unclaimed_refusal(&spend.agent_id)));
            continue;
        }
        let Some(agent) = standing.get(spend.agent_id.as_str()) else {
            decided.push(Err(ApiError::not_found("agent")));
            continue;
        };
        if spend.expect_policy.is_some() && spend.expect_policy != agent.policy_id {
            decided.push(Err(ApiError::new(
                ErrorCode::PolicyNotFound,
                "this agent has no policy with that id",
            )
            .with_details(json!({ "policy_id": spend.expect_policy }))));
            continue;
        }
        let mut facts = facts(&counted, spend, &agent.policy, &fingerprint, agent.state)?;
        facts.lease = agent.lease.clone();
        let owner = (spend.account_id.as_str(), spend.agent_id.as_str());
        let mandate = spend.mandate_id.as_deref();
        facts.mandate_refusal = match mandate_fact(conn, owner, mandate, &spend.request).await {
            Ok(refusal) => refusal,
            Err(error) => {
                decided.push(Err(error));
                continue;
            }
        };
        let evaluation = if spend.budgets_only {
            governance::evaluate(&budgets_only(&agent.policy), &spend.request, &facts)
        } else {
            governance::evaluate(&agent.policy, &spend.request, &facts)
        };
        if evaluation.decision != Decision::Block {
            let kind = spend.kind.as_str();
            *counted.added.entry((spend.agent_id.clone(), kind)).or_default() += 1;
            counted.seen.insert((spend.agent_id.clone(), kind, fingerprint.clone()));
        }
        let mut decision = gated(spend, evaluation, agent.version, fingerprint);
        decision.lease_id = agent.lease.as_ref().map(|l| l.lease_id.clone());
        decided.push(Ok(decision));
    }
    Ok(decided)
}

/// Why mandate `mandate_id` of `agent` (account and agent id) refuses `request`, counting what
/// it spent so far; `None` when there is no mandate or it admits the request. 422 on
/// `mandate_id` when it is not one of the agent's mandates.
pub(crate) async fn mandate_fact(
    conn: &mut Conn,
    agent: (&str, &str),
    mandate_id: Option<&str>,
    request: &Request,
) -> ApiResult<Option<governance::MandateFact>> {
    use crate::store::governance::mandates;
    let Some(id) = mandate_id else { return Ok(None) };
    let (account_id, agent_id) = agent;
    let mandate = mandates::get_in(conn, account_id, id)
        .await?
        .filter(|m| m.agent_id == agent_id)
        .ok_or_else(|| {
            ApiError::validation("mandate_id", "`mandate_id` is not a mandate of this agent")
        })?;
    let spent = mandates::spent(conn, id).await?;
    let asked = governance::mandate::MandateSpend {
        amount_cents: request.amount_cents,
        action_type: request.action_type.as_str(),
        counterparties: &request.counterparties,
        categories: &request.categories,
        at: request.at,
    };
    Ok(mandate.admits(&asked, spent).err().map(|refusal| governance::MandateFact {
        mandate_id: id.to_owned(),
        reason_code: refusal.reason_code(),
        message: refusal.message(),
    }))
}

/// The `period_budget` rules of `policy` alone, without the duplicate guard.
pub(crate) fn budgets_only(policy: &Policy) -> Policy {
    Policy {
        rules: policy
            .rules
            .iter()
            .filter(|rule| matches!(rule.kind, governance::RuleKind::PeriodBudget { .. }))
            .cloned()
            .collect(),
        ..Policy::default()
    }
}

/// The facts `policy` needs for `spend`: the store's counts as of the batch's start plus what
/// the batch counted before it.
fn facts(
    counted: &Counted,
    spend: &Spend,
    policy: &Policy,
    fingerprint: &str,
    agent: governance::AgentState,
) -> ApiResult<Facts> {
    let kind = spend.kind.as_str();
    let empty = rows::Observed::default();
    let observed = counted.observed.get(&spend.agent_id).unwrap_or(&empty);
    let unstored = rows::Unstored {
        decisions: counted.added.get(&(spend.agent_id.clone(), kind)).copied().unwrap_or(0),
        same_fingerprint: counted.seen.contains(&(
            spend.agent_id.clone(),
            kind,
            fingerprint.to_owned(),
        )),
    };
    let needs = policy.needs(spend.request.at);
    Ok(observed.facts(needs, kind, fingerprint, agent, &unstored)?)
}

/// The decision on `spend` as answered and as audited.
fn gated(spend: &Spend, evaluation: Evaluation, version: u64, fingerprint: String) -> Gated {
    let check_id = CheckId::generate();
    let at = spend.request.at;
    let response = CheckResponse {
        check_id: check_id.to_string(),
        decision: evaluation.decision,
        confidence: spend.confidence,
        reason_code: evaluation.reason_code,
        message: evaluation.message.clone(),
        violated_rule_id: evaluation.violated_rule_id.clone(),
        violated_rule_description: evaluation.violated_rule_description.clone(),
        policy_version: version,
        next_step: evaluation.next_step.map(str::to_owned),
        latency_ms: u64::try_from(spend.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        timestamp: crate::time::rfc3339(at),
        decline_message: evaluation.decline_message.clone(),
        violations: evaluation.violations.clone(),
        approval_id: None,
        action_type: spend.request.action_type,
    };
    let decision = match evaluation.decision {
        Decision::Allow => AuditDecision::Allow,
        Decision::Block => AuditDecision::Block,
        Decision::Escalate => AuditDecision::Escalate,
    };
    let mut entry = AuditEntry::new(
        &spend.account_id,
        Some(&spend.agent_id),
        spend.kind,
        decision,
        spend.actor,
        at,
    );
    entry.subject_id = Some(spend.subject_id.clone().unwrap_or_else(|| check_id.to_string()));
    entry.action_type = Some(spend.request.action_type.as_str().to_owned());
    entry.amount_cents = Some(spend.request.amount_cents);
    entry.currency = Some(spend.currency.clone());
    entry.counterparty = spend.request.counterparties.first().cloned();
    entry.fingerprint = Some(fingerprint);
    entry.counted = evaluation.decision != Decision::Block;
    entry.reason_code = evaluation.reason_code.map(|r| r.as_str().to_owned());
    entry.violated_rule_id = evaluation.violated_rule_id.clone();
    entry.policy_version = Some(version);
    entry.detail = json!({
        "check_id": check_id,
        "message": evaluation.message,
        "violations": evaluation.violations,
    });
    Gated { evaluation, policy_version: version, response, entry, lease_id: None }
}

/// Appends the audit rows of `decisions` and adds the counted ones to the velocity counts.
pub(crate) async fn record(conn: &mut Conn, decisions: &[&Gated]) -> ApiResult<()> {
    let entries: Vec<AuditEntry> = decisions.iter().map(|g| g.entry.clone()).collect();
    audit::append_many(conn, &entries).await?;
    let mut counts: BTreeMap<(&str, &str, i64), u64> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.counted) {
        let agent = entry.agent_id.as_deref().unwrap_or_default();
        *counts.entry((agent, entry.kind.as_str(), entry.created_at)).or_default() += 1;
    }
    for ((agent_id, kind, second), n) in counts {
        rows::count_decisions(conn, Scope { agent_id, kind }, second, n).await?;
    }
    Ok(())
}

/// Decides one `spend` inside `conn`'s transaction and records it ([`decide_batch`] of one,
/// then [`record`]). 404 if the agent is gone.
pub(crate) async fn decide(conn: &mut Conn, spend: &Spend) -> ApiResult<Gated> {
    let gated = decide_batch(conn, std::slice::from_ref(spend))
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("a batch of one decided nothing"))??;
    record(conn, &[&gated]).await?;
    Ok(gated)
}

/// Stores the check's response (after the caller set `approval_id`, when it opened one).
pub(crate) async fn store_check(conn: &mut Conn, spend: &Spend, gated: &Gated) -> ApiResult<()> {
    let body = serde_json::to_value(&gated.response).map_err(ApiError::internal)?;
    checks::insert(
        conn,
        &gated.response.check_id,
        &spend.account_id,
        &spend.agent_id,
        &body,
        spend.request.at,
    )
    .await?;
    Ok(())
}

/// An approval to open for an escalated spend: the spend, its decision, what the approval is
/// for and until when it waits.
pub(crate) struct Opening<'a> {
    /// The spend.
    pub spend: &'a Spend,
    /// Its (escalated) decision.
    pub gated: &'a Gated,
    /// What the approval is for.
    pub kind: crate::store::governance::approvals::ApprovalKind,
    /// The agreement or check it holds.
    pub subject_id: &'a str,
    /// When it stops waiting (unix seconds).
    pub expires_at: i64,
}

/// Opens an approval for an escalated spend, waiting until `expires_at`, and announces it
/// (`approval.requested`). The caller commits it with the rest of the decision.
pub(crate) async fn open_approval(
    conn: &mut Conn,
    spend: &Spend,
    gated: &Gated,
    kind: crate::store::governance::approvals::ApprovalKind,
    subject_id: &str,
    expires_at: i64,
) -> ApiResult<crate::store::governance::approvals::Approval> {
    let opening = Opening { spend, gated, kind, subject_id, expires_at };
    let mut opened = open_approvals(conn, &[opening]).await?;
    opened.pop().ok_or_else(|| ApiError::internal("no approval opened"))
}

/// [`open_approval`] for several spends at once, in a few statements.
pub(crate) async fn open_approvals(
    conn: &mut Conn,
    openings: &[Opening<'_>],
) -> ApiResult<Vec<crate::store::governance::approvals::Approval>> {
    use crate::store::governance::approvals::{self, Approval, ApprovalStatus};
    use crate::store::outbox::{self, EventType};
    let approvals: Vec<Approval> = openings
        .iter()
        .map(|o| {
            let (spend, e) = (o.spend, &o.gated.evaluation);
            Approval {
                id: crate::agreement::ids::ApprovalId::generate(),
                account_id: spend.account_id.clone(),
                agent_id: spend.agent_id.clone(),
                kind: o.kind,
                subject_id: o.subject_id.to_owned(),
                status: ApprovalStatus::Pending,
                action_type: spend.request.action_type.as_str().to_owned(),
                amount_cents: spend.request.amount_cents,
                currency: spend.currency.clone(),
                counterparty: spend.request.counterparties.first().cloned(),
                reason_code: e.reason_code.map_or("escalated", |r| r.as_str()).to_owned(),
                violated_rule_id: e.violated_rule_id.clone(),
                message: e.message.clone().unwrap_or_default(),
                policy_version: Some(o.gated.policy_version),
                expires_at: o.expires_at,
                decided_at: None,
                decision_reason: None,
                created_at: spend.request.at,
            }
        })
        .collect();
    approvals::insert_many(conn, &approvals).await?;
    let data: Vec<serde_json::Value> = approvals.iter().map(rows::approval_event).collect();
    let events: Vec<outbox::AgentEvent<'_>> = approvals
        .iter()
        .zip(&data)
        .map(|(a, data)| (a.agent_id.as_str(), EventType::ApprovalRequested, data))
        .collect();
    let at = openings.first().map_or_else(crate::time::now, |o| o.spend.request.at);
    outbox::record_many_for_agents(conn, &events, at).await?;
    Ok(approvals)
}
