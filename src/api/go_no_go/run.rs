//! One go/no-go run: every section gathered in turn (each bounded in time, a section that
//! overruns is `no_go`), the packet built, signed with the receipt key and stored.

use std::future::Future;
use std::time::Duration;

use crate::api::AppState;
use crate::gonogo::evidence::{self, SupportEvidence};
use crate::gonogo::{Deployment, Packet, Section, SectionReport, Verdict, signing};
use crate::reconcile::{self, Options, ReadSettings};
use crate::store::agents::Account;
use crate::store::gonogo as rows;
use crate::store::now;

/// How long the canary may take, end to end.
const CANARY_LIMIT: Duration = Duration::from_secs(180);
/// How long any other section may take.
const SECTION_LIMIT: Duration = Duration::from_secs(60);

/// Gathers, signs and stores the packet of run `run_id`. Never fails: a section that cannot be
/// gathered is `no_go` with the reason, and a packet that cannot be stored is logged.
#[tracing::instrument(skip(state, account), fields(run_id = %run_id))]
pub(super) async fn run(state: AppState, run_id: String, account: Account, started_at: i64) {
    let mut sections = Vec::with_capacity(Section::ALL.len());
    sections.push(bounded(Section::Provider, SECTION_LIMIT, super::provider::gather(&state)).await);
    sections.push(
        bounded(Section::Webhook, SECTION_LIMIT, super::webhook::gather(&state, &account, &run_id))
            .await,
    );
    sections.push(bounded(Section::Reconciliation, SECTION_LIMIT, reconciliation(&state)).await);
    sections.push(support(&state));
    sections.push(
        bounded(Section::HostedActivation, CANARY_LIMIT, super::canary::gather(&state, &account))
            .await,
    );
    sections.push(bounded(Section::Rollback, SECTION_LIMIT, super::rollback::gather(&state)).await);
    // Last, so the history it shows covers the whole run.
    sections
        .push(bounded(Section::HostedHealth, SECTION_LIMIT, super::health::gather(&state)).await);
    sections.sort_by_key(|s| Section::ALL.iter().position(|x| *x == s.section));

    let deployment = Deployment {
        chain_id: state.chain.chain_id,
        escrow: state.chain.escrow.to_checksum(None),
        environment: state.environment.as_str().to_owned(),
        binary_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let packet = Packet::new(run_id.clone(), deployment, started_at, now(), sections);
    let packet = signing::sign(packet, &state.go_no_go.receipt_key);
    let json = serde_json::to_string(&packet).unwrap_or_default();
    let stored = async {
        let mut tx = state.store.begin().await?;
        rows::finish_run(&mut tx, &run_id, packet.verdict.as_str(), &json, packet.finished_at)
            .await?;
        tx.commit().await.map_err(crate::store::StoreError::from)
    };
    match stored.await {
        Ok(()) => tracing::info!(verdict = %packet.verdict, "go/no-go run complete"),
        Err(error) => tracing::error!(%error, "go/no-go packet could not be stored"),
    }
}

/// `section` gathered by `gather`, or `no_go` when it takes longer than `limit`.
async fn bounded(
    section: Section,
    limit: Duration,
    gather: impl Future<Output = SectionReport>,
) -> SectionReport {
    match tokio::time::timeout(limit, gather).await {
        Ok(report) => report,
        Err(_) => SectionReport::new(
            section,
            Verdict::NoGo,
            format!("gathering took longer than {} s", limit.as_secs()),
            &serde_json::json!({ "timed_out_after_secs": limit.as_secs() }),
        ),
    }
}

/// Reconciliation: `pactum reconcile`'s deployment-wide report, `go` iff clean.
async fn reconciliation(state: &AppState) -> SectionReport {
    let options = Options {
        account: None,
        at_block: None,
        confirmations: state.confirmations,
        from_block: 0,
        read: ReadSettings::default(),
    };
    match reconcile::run(&state.store, &state.chain, &options).await {
        Ok(report) => {
            let summary = if report.clean {
                format!(
                    "store and chain agree: {} agreement(s) at block {}",
                    report.agreements_checked, report.block_number
                )
            } else {
                format!("{} difference(s) between store and chain", report.mismatches.len())
            };
            SectionReport::new(Section::Reconciliation, Verdict::of(report.clean), summary, &report)
        }
        Err(error) => SectionReport::new(
            Section::Reconciliation,
            Verdict::NoGo,
            format!("reconciliation could not run: {error}"),
            &serde_json::json!({ "error": error.to_string() }),
        ),
    }
}

/// Support: the configured contacts, where logs go, the observability endpoints.
fn support(state: &AppState) -> SectionReport {
    let settings = &state.go_no_go.settings;
    let base = &state.go_no_go.self_url;
    let evidence = SupportEvidence {
        contacts: settings
            .support_contacts
            .iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect(),
        logs: settings
            .support_logs
            .clone()
            .unwrap_or_else(|| "stderr of the pactum process".into()),
        metrics_endpoint: format!("{base}/metrics"),
        readiness_endpoint: format!("{base}/readyz"),
        liveness_endpoint: format!("{base}/healthz"),
    };
    let (verdict, summary) = evidence::judge_support(&evidence);
    SectionReport::new(Section::Support, verdict, summary, &evidence)
}
