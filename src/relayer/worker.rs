//! The relayer worker: claims queued jobs, simulates them, and hands them to a signer; keeps
//! re-broadcasting saved attempts the node has not taken yet.

use std::sync::Arc;
use std::time::Duration;

use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{Notify, watch};

use super::node_error::{NodeError, classify};
use super::signer::{self, SignerHandle};
use super::{RelayError, Result};
use crate::agreement::status::ActivationStatus;
use crate::store::jobs::{self, Job};
use crate::store::{Store, agreements, now};

/// How long a claimed job stays leased to this worker before another may take it.
const LEASE: i64 = 60;
/// Gas limit headroom over the estimate, in percent.
const GAS_HEADROOM_PERCENT: u64 = 25;

/// The worker's dependencies.
#[derive(Debug, Clone)]
pub struct Worker {
    /// The store.
    pub store: Store,
    /// A read-only provider for simulation.
    pub provider: DynProvider,
    /// One handle per relayer account; jobs go round-robin.
    pub signers: Vec<SignerHandle>,
    /// Poked when a job is queued.
    pub wake: Arc<Notify>,
    /// Fallback poll period.
    pub poll: Duration,
    /// This instance's lease name.
    pub instance: String,
}

impl Worker {
    /// Runs until `shutdown` turns true: re-broadcasts what was saved before a restart, then
    /// serves the queue.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        self.rebroadcast(&["signed", "broadcast"]).await?;
        let mut next_signer = 0usize;
        loop {
            while let Some(job) = self.claim().await? {
                let signer = &self.signers[next_signer % self.signers.len()];
                next_signer = next_signer.wrapping_add(1);
                self.process(job, signer).await?;
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
            self.rebroadcast(&["signed"]).await?;
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    async fn claim(&self) -> Result<Option<Job>> {
        let at = now();
        let mut tx = self.store.begin().await?;
        let job = jobs::claim_next(&mut tx, &self.instance, at + LEASE, at).await?;
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        Ok(job)
    }

    /// Simulates `job`, then signs, saves and broadcasts it through `signer`. A revert fails
    /// the job with its decoded reason; an unreachable node leaves the job to its lease.
    #[tracing::instrument(skip_all, fields(job_id = %job.id, agreement_id = ?job.agreement_id))]
    async fn process(&self, job: Job, signer: &SignerHandle) -> Result<()> {
        self.progress(&job, ActivationStatus::Submitting, None).await?;
        let call = TransactionRequest::default()
            .from(signer.address())
            .to(job.to)
            .input(job.calldata.clone().into());
        let estimate = (|| async { self.provider.estimate_gas(call.clone()).await })
            .retry(ExponentialBuilder::default().with_max_times(4))
            .when(|e| classify(e).is_retryable())
            .await;
        let gas = match estimate {
            Ok(gas) => gas,
            Err(error) => match classify(&error) {
                NodeError::Unavailable(reason) => {
                    tracing::warn!(%reason, "simulation deferred: node unavailable");
                    return Ok(());
                }
                other => return self.fail(&job, &reason_of(&other)).await,
            },
        };
        let gas_limit = gas.saturating_mul(100 + GAS_HEADROOM_PERCENT) / 100;
        match signer.submit(job.clone(), gas_limit).await {
            Ok(attempt) if attempt.status == "broadcast" => {
                self.progress(&job, ActivationStatus::Submitted, Some(attempt.tx_hash)).await
            }
            Ok(_) => Ok(()),
            Err(RelayError::Node(NodeError::Unavailable(reason))) => {
                tracing::warn!(%reason, "send deferred: node unavailable");
                Ok(())
            }
            Err(RelayError::Node(other)) => self.fail(&job, &reason_of(&other)).await,
            Err(other) => Err(other),
        }
    }

    async fn progress(
        &self,
        job: &Job,
        status: ActivationStatus,
        tx_hash: Option<alloy::primitives::B256>,
    ) -> Result<()> {
        let Some(agreement) = &job.agreement_id else { return Ok(()) };
        let mut tx = self.store.begin().await?;
        agreements::activation_progress(&mut tx, agreement, status, tx_hash, now()).await?;
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        Ok(())
    }

    async fn fail(&self, job: &Job, reason: &str) -> Result<()> {
        tracing::warn!(%reason, "job failed before broadcast");
        let at = now();
        let mut tx = self.store.begin().await?;
        jobs::set_job_status(&mut tx, &job.id, "failed", Some(reason), at).await?;
        if let Some(agreement) = &job.agreement_id {
            agreements::activation_failed(&mut tx, agreement, reason, at).await?;
        }
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        Ok(())
    }

    /// Sends again every saved attempt in `statuses` (after a restart: everything not yet
    /// mined; in steady state: what the node could not take when it was signed).
    async fn rebroadcast(&self, statuses: &[&str]) -> Result<()> {
        for attempt in jobs::attempts_in(self.store.reader(), statuses).await? {
            match signer::broadcast(&self.provider, &self.store, &attempt).await {
                Ok(()) => {
                    if let Some(job) =
                        jobs::get(self.store.reader(), attempt.job_id.as_str()).await?
                    {
                        self.progress(&job, ActivationStatus::Submitted, Some(attempt.tx_hash))
                            .await?;
                    }
                }
                Err(NodeError::Unavailable(_)) => break,
                Err(error) => {
                    tracing::warn!(tx_hash = %attempt.tx_hash, ?error, "re-broadcast refused");
                }
            }
        }
        Ok(())
    }
}

/// The reason stored for a failed job.
fn reason_of(error: &NodeError) -> String {
    match error {
        NodeError::Reverted { reason, .. } => reason.clone(),
        other => format!("{other:?}"),
    }
}
