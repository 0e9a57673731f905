//! The evidence of each section, as typed structs, and the rule that judges each one. What a
//! section shows and why it is `go` is documented in docs/go-no-go.md; the rules here are that
//! page in code.

use serde::{Deserialize, Serialize};

use super::Verdict;

/// How many recorded readiness samples the hosted-health section shows.
pub const HEALTH_HISTORY: usize = 20;

/// One `/readyz` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadinessSample {
    /// Unix milliseconds.
    pub checked_at_ms: i64,
    /// The instance that checked.
    pub instance: String,
    /// Whether every check passed.
    pub ready: bool,
    /// The checks, as `/readyz` reports them.
    pub checks: serde_json::Value,
}

/// Hosted health: `/readyz` now and its recorded history (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvidence {
    /// The check made by this run.
    pub current: ReadinessSample,
    /// The latest recorded samples before this run, newest first.
    pub history: Vec<ReadinessSample>,
    /// Of `history`, how many were ready.
    pub history_ready: usize,
}

/// `go` when ready now and the latest recorded sample before this run was ready too (there is
/// one: the service records readiness from start-up).
pub fn judge_health(evidence: &HealthEvidence) -> (Verdict, String) {
    let previous = evidence.history.first();
    let verdict = Verdict::of(evidence.current.ready && previous.is_some_and(|s| s.ready));
    let summary = match (evidence.current.ready, previous) {
        (false, _) => format!("not ready now: {}", evidence.current.checks),
        (true, None) => "ready now, but no readiness was recorded before this run".to_owned(),
        (true, Some(last)) if !last.ready => {
            format!("ready now, but the last recorded check was not: {}", last.checks)
        }
        (true, Some(_)) => format!(
            "ready now; {} of the last {} recorded checks ready",
            evidence.history_ready,
            evidence.history.len()
        ),
    };
    (verdict, summary)
}

/// One step of the canary flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryStep {
    /// What was done (`propose`, `accept`, `activate_escrow`, …).
    pub step: String,
    /// Milliseconds since the flow started, when the step ended.
    pub at_ms: u64,
    /// What it gave (an id, a status, a transaction hash).
    pub result: String,
}

/// Hosted activation: the canary agreement's flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ActivationEvidence {
    /// The chain the canary ran on.
    pub chain_id: u64,
    /// Whether the canary may run here (test chain, or a live chain explicitly allowed).
    pub allowed: bool,
    /// The canary buyer agent.
    pub buyer_agent_id: Option<String>,
    /// The canary seller agent.
    pub seller_agent_id: Option<String>,
    /// The canary buyer's wallet.
    pub buyer_wallet: Option<String>,
    /// The canary seller's wallet.
    pub seller_wallet: Option<String>,
    /// The canary agreement.
    pub agreement_id: Option<String>,
    /// The demo-funding transaction of the buyer's wallet, when it was funded.
    pub funding_tx_hash: Option<String>,
    /// The activation transaction.
    pub activation_tx_hash: Option<String>,
    /// The settling transaction (the seller's close with the final voucher).
    pub settlement_tx_hash: Option<String>,
    /// The agreement's last status seen.
    pub final_status: Option<String>,
    /// Its activation status last seen.
    pub final_activation_status: Option<String>,
    /// Each step, in order.
    pub steps: Vec<CanaryStep>,
    /// Milliseconds the flow took.
    pub elapsed_ms: u64,
    /// Why the flow stopped, if it did.
    pub error: Option<String>,
}

/// `go` when the canary agreement reached `settled` with no error.
pub fn judge_activation(evidence: &ActivationEvidence) -> (Verdict, String) {
    if let Some(error) = &evidence.error {
        return (Verdict::NoGo, format!("canary failed: {error}"));
    }
    let settled = evidence.final_status.as_deref() == Some("settled");
    let summary = match (&evidence.agreement_id, settled) {
        (Some(id), true) => format!(
            "canary agreement {id} activated and settled on chain {} in {} ms",
            evidence.chain_id, evidence.elapsed_ms
        ),
        (Some(id), false) => format!(
            "canary agreement {id} ended `{}`, not settled",
            evidence.final_status.as_deref().unwrap_or("unknown")
        ),
        (None, _) => "no canary agreement was made".to_owned(),
    };
    (Verdict::of(settled), summary)
}

/// One RPC endpoint, probed directly (no failover, no retries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointProbe {
    /// `rpc0`, `rpc1`, … (URLs may carry API keys and are never shown).
    pub label: String,
    /// The chain id it answered.
    pub chain_id: Option<u64>,
    /// Whether that is the service's chain.
    pub chain_id_matches: bool,
    /// Its head block.
    pub head: Option<u64>,
    /// Blocks between its head and the watcher's last block.
    pub lag_blocks: Option<u64>,
    /// Milliseconds the two calls took.
    pub latency_ms: u64,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// Provider: every configured RPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEvidence {
    /// The service's chain.
    pub chain_id: u64,
    /// The watcher's last block.
    pub watcher_block: Option<u64>,
    /// The largest lag still `go` (`PACTUM_READY_MAX_LAG_BLOCKS`).
    pub max_lag_blocks: u64,
    /// Each endpoint, in order of preference.
    pub endpoints: Vec<EndpointProbe>,
}

/// `go` when every endpoint answered the service's chain id and a head within the lag bound.
pub fn judge_provider(evidence: &ProviderEvidence) -> (Verdict, String) {
    let bad: Vec<String> = evidence
        .endpoints
        .iter()
        .filter_map(|e| {
            let why = if let Some(error) = &e.error {
                format!("unreachable ({error})")
            } else if !e.chain_id_matches {
                format!("on chain {:?}, not {}", e.chain_id, evidence.chain_id)
            } else if e.lag_blocks.is_none_or(|lag| lag > evidence.max_lag_blocks) {
                format!("watcher lag {:?} blocks", e.lag_blocks)
            } else {
                return None;
            };
            Some(format!("{}: {why}", e.label))
        })
        .collect();
    if evidence.endpoints.is_empty() {
        return (Verdict::NoGo, "no RPC endpoint is configured".to_owned());
    }
    if bad.is_empty() {
        let n = evidence.endpoints.len();
        (Verdict::Go, format!("{n} RPC endpoint(s) on chain {} and in step", evidence.chain_id))
    } else {
        (Verdict::NoGo, bad.join("; "))
    }
}

/// A signed test delivery to one webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookProbe {
    /// The endpoint (`whk_…`).
    pub endpoint_id: String,
    /// Its agent.
    pub agent_id: String,
    /// Its URL's scheme, host and port (the path and query may carry tokens).
    pub origin: String,
    /// The `webhook-id` of the test message.
    pub message_id: String,
    /// The HTTP status answered.
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
    /// Milliseconds.
    pub latency_ms: u64,
    /// A 2xx answer.
    pub delivered: bool,
}

/// Webhook: a test delivery to each active endpoint of the operator's agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvidence {
    /// The event type of the test message.
    pub event_type: String,
    /// Each endpoint's result.
    pub endpoints: Vec<WebhookProbe>,
}

/// `go` when every endpoint answered 2xx; with no endpoint at all also `go` (nothing would be
/// delivered, so nothing can fail), said so in the summary.
pub fn judge_webhook(evidence: &WebhookEvidence) -> (Verdict, String) {
    if evidence.endpoints.is_empty() {
        return (Verdict::Go, "no webhook endpoints configured".to_owned());
    }
    let failed: Vec<String> = evidence
        .endpoints
        .iter()
        .filter(|p| !p.delivered)
        .map(|p| match (p.status, &p.error) {
            (Some(status), _) => format!("{} answered {status}", p.endpoint_id),
            (None, Some(error)) => format!("{}: {error}", p.endpoint_id),
            (None, None) => format!("{}: no answer", p.endpoint_id),
        })
        .collect();
    if failed.is_empty() {
        (
            Verdict::Go,
            format!("{} endpoint(s) took the signed test delivery", evidence.endpoints.len()),
        )
    } else {
        (Verdict::NoGo, failed.join("; "))
    }
}

/// Support: who to call, where logs and metrics are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportEvidence {
    /// `PACTUM_SUPPORT_CONTACT`, one entry per contact.
    pub contacts: Vec<String>,
    /// Where the service's logs go.
    pub logs: String,
    /// The Prometheus endpoint.
    pub metrics_endpoint: String,
    /// The readiness endpoint.
    pub readiness_endpoint: String,
    /// The liveness endpoint.
    pub liveness_endpoint: String,
}

/// `go` when at least one contact is configured.
pub fn judge_support(evidence: &SupportEvidence) -> (Verdict, String) {
    if evidence.contacts.is_empty() {
        (Verdict::NoGo, "no support contact configured (PACTUM_SUPPORT_CONTACT)".to_owned())
    } else {
        (
            Verdict::Go,
            format!("contacts: {}; logs: {}", evidence.contacts.join(", "), evidence.logs),
        )
    }
}

/// One table's rows in the store and in the restored copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    /// The table.
    pub table: String,
    /// Rows in the store before the backup.
    pub before: i64,
    /// Rows in the restored copy.
    pub restored: i64,
    /// Rows in the store after the backup.
    pub after: i64,
}

impl TableCount {
    /// The copy holds what the store held at some moment of the backup.
    pub fn consistent(&self) -> bool {
        let (low, high) = (self.before.min(self.after), self.before.max(self.after));
        (low..=high).contains(&self.restored)
    }
}

/// A backup just made and restored into a scratch database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackupEvidence {
    /// The exact commands run (credentials redacted).
    pub commands: Vec<String>,
    /// Where it was restored (removed afterwards).
    pub restored_into: String,
    /// The last migration version in the restored copy.
    pub restored_schema_version: Option<i64>,
    /// Row counts compared.
    pub tables: Vec<TableCount>,
    /// Milliseconds backup and restore took.
    pub elapsed_ms: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Rollback: what a rollback would start from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackEvidence {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The last applied migration's version.
    pub schema_version: Option<i64>,
    /// Its description.
    pub last_migration: Option<String>,
    /// Migrations applied.
    pub migrations_applied: i64,
    /// Whether the last migration can be reversed in place (sqlx down scripts): never here.
    pub reversible: bool,
    /// How to roll back instead.
    pub rollback: String,
    /// `CARGO_PKG_VERSION`.
    pub binary_version: String,
    /// The backup and restore.
    pub backup: BackupEvidence,
}

/// `go` when the backup restored, its schema matches and every compared table is consistent.
pub fn judge_rollback(evidence: &RollbackEvidence) -> (Verdict, String) {
    let backup = &evidence.backup;
    if let Some(error) = &backup.error {
        return (Verdict::NoGo, format!("backup and restore failed: {error}"));
    }
    if backup.restored_schema_version != evidence.schema_version {
        return (
            Verdict::NoGo,
            format!(
                "the restored copy is at schema {:?}, the store at {:?}",
                backup.restored_schema_version, evidence.schema_version
            ),
        );
    }
    if let Some(bad) = backup.tables.iter().find(|t| !t.consistent()) {
        return (
            Verdict::NoGo,
            format!(
                "table {} restored {} rows, the store held {}",
                bad.table, bad.restored, bad.before
            ),
        );
    }
    (
        Verdict::Go,
        format!(
            "schema {} ({}), not reversible in place: restore from backup; backup restored and checked in {} ms",
            evidence.schema_version.unwrap_or_default(),
            evidence.last_migration.as_deref().unwrap_or("none"),
            backup.elapsed_ms
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ready: bool) -> ReadinessSample {
        ReadinessSample {
            checked_at_ms: 1,
            instance: "i".into(),
            ready,
            checks: serde_json::json!({}),
        }
    }

    #[test]
    fn health_needs_ready_now_and_before() {
        let judge = |current, history: Vec<ReadinessSample>| {
            let history_ready = history.iter().filter(|s| s.ready).count();
            judge_health(&HealthEvidence { current: sample(current), history, history_ready }).0
        };
        assert_eq!(judge(true, vec![sample(true), sample(false)]), Verdict::Go);
        assert_eq!(judge(true, vec![sample(false)]), Verdict::NoGo);
        assert_eq!(judge(true, vec![]), Verdict::NoGo);
        assert_eq!(judge(false, vec![sample(true)]), Verdict::NoGo);
    }

    #[test]
    fn webhooks_fail_on_any_failed_endpoint_and_pass_with_none() {
        let probe = |delivered, status| WebhookProbe {
            endpoint_id: "whk_1".into(),
            agent_id: "agt".into(),
            origin: "http://127.0.0.1:1".into(),
            message_id: "msg".into(),
            status,
            error: None,
            latency_ms: 1,
            delivered,
        };
        let evidence = |endpoints| WebhookEvidence { event_type: "t".into(), endpoints };
        assert_eq!(judge_webhook(&evidence(vec![])).0, Verdict::Go);
        assert_eq!(judge_webhook(&evidence(vec![probe(true, Some(204))])).0, Verdict::Go);
        let (verdict, summary) =
            judge_webhook(&evidence(vec![probe(true, Some(200)), probe(false, Some(500))]));
        assert_eq!(verdict, Verdict::NoGo);
        assert!(summary.contains("500"), "{summary}");
    }

    #[test]
    fn a_restored_count_must_lie_between_the_counts_around_the_backup() {
        let count =
            |before, restored, after| TableCount { table: "t".into(), before, restored, after };
        assert!(count(3, 3, 3).consistent());
        assert!(count(3, 4, 5).consistent());
        assert!(!count(3, 2, 3).consistent());
    }
}
