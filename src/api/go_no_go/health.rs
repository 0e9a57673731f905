//! The hosted-health section, and the task that records `/readyz` results over time for it:
//! every few seconds each instance runs the readiness checks and appends the result to
//! `readiness_samples` (bounded), so the packet can show history, not just a moment.

use std::time::Duration;

use tokio::sync::watch;

use crate::agreement::ids::ReadinessSampleId;
use crate::api::AppState;
use crate::api::observability::check_readiness;
use crate::gonogo::evidence::{self, HEALTH_HISTORY, HealthEvidence, ReadinessSample};
use crate::gonogo::{Section, SectionReport, Verdict};
use crate::store::StoreError;
use crate::store::gonogo as rows;
use crate::time::now_ms;

/// Records readiness every `interval` until stopped.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// The service's state (the checks read the store and the chain).
    pub state: AppState,
    /// Between samples.
    pub interval: Duration,
}

impl Recorder {
    /// Records a sample at once and then every `interval`, until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        loop {
            if let Err(error) = record(&self.state).await {
                // A store that cannot take the sample is itself what the next check reports.
                tracing::warn!(%error, "readiness sample not recorded");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.wait_for(|stop| *stop) => return Ok(()),
            }
        }
    }
}

/// Runs the readiness checks now and records the result.
async fn record(state: &AppState) -> Result<ReadinessSample, StoreError> {
    let readiness = check_readiness(state).await;
    let sample = ReadinessSample {
        checked_at_ms: now_ms(),
        instance: state.go_no_go.instance.clone(),
        ready: readiness.ready,
        checks: readiness.details,
    };
    let mut tx = state.store.begin().await?;
    rows::insert_sample(&mut tx, ReadinessSampleId::generate().as_str(), &sample).await?;
    tx.commit().await?;
    Ok(sample)
}

/// Gathers the hosted-health section: the history recorded so far, then a check now.
pub(super) async fn gather(state: &AppState) -> SectionReport {
    let history = match rows::recent_samples(state.store.reader(), HEALTH_HISTORY as i64).await {
        Ok(history) => history,
        Err(error) => {
            return SectionReport::new(
                Section::HostedHealth,
                Verdict::NoGo,
                format!("readiness history could not be read: {error}"),
                &serde_json::json!({ "error": error.to_string() }),
            );
        }
    };
    let current = match record(state).await {
        Ok(sample) => sample,
        // Checked, not recorded: the store refused the write, which the check shows too.
        Err(_) => {
            let readiness = check_readiness(state).await;
            ReadinessSample {
                checked_at_ms: now_ms(),
                instance: state.go_no_go.instance.clone(),
                ready: false,
                checks: readiness.details,
            }
        }
    };
    let history_ready = history.iter().filter(|s| s.ready).count();
    let evidence = HealthEvidence { current, history, history_ready };
    let (verdict, summary) = evidence::judge_health(&evidence);
    SectionReport::new(Section::HostedHealth, verdict, summary, &evidence)
}
