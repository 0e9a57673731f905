//! Taking a job to the network: simulate it, batch sponsored claims, closes and withdraws
//! (those of parties without code), and hand it to a signer with room in its window.
use alloy::primitives::{Address, Bytes};
use backon::{ExponentialBuilder, Retryable};

use super::{LEASE, Relay, WAIT_FOR_FEES, wallets};
use crate::agreement::ids::JobId;
use crate::agreement::status::ActivationStatus;
use crate::chain::gas::{
    BATCH_GAS_PER_CLAIM, SETTLEMENT_BATCH_GAS_PER_CALL, estimate_gas_with_headroom, gas_floor,
};
use crate::chain::node_error::{NodeError, classify};
use crate::escrow::calls;
use crate::relayer::signer::{SignerHandle, Submitted};
use crate::relayer::{RelayError, Result};
use crate::store::attempts::AttemptStatus;
use crate::store::jobs::{self, Job, JobKind, JobStatus};
use crate::store::{StoreError, payments, settlement, signers};
use crate::time::now;

/// What simulating a job found.
enum Simulation {
    /// It would succeed with this gas limit.
    Gas(u64),
    /// It would revert, or the node refused it: the reason.
    Refused(String),
    /// The node could not be reached; the job waits for its lease to run out.
    Deferred,
}

impl Relay {
    /// Simulates `job`, then signs, saves and broadcasts it through `signer`. A revert fails
    /// the job with its decoded reason; an unreachable node leaves the job to its lease.
    #[tracing::instrument(skip_all, fields(job_id = %job.id, kind = %job.kind, agreement_id = ?job.agreement_id))]
    pub(super) async fn process(&self, job: Job, signer: usize) -> Result<()> {
        if job.kind == JobKind::Activate {
            self.progress(&job, ActivationStatus::Submitting, None).await?;
        }
        match self.simulate(&job, &self.signers[signer]).await {
            Simulation::Gas(gas_limit) => self.send(job, gas_limit, signer).await,
            Simulation::Refused(reason) => self.refused(&job, &reason).await,
            Simulation::Deferred => Ok(()),
        }
    }

    /// Sponsored settlement jobs leased together: one with a party whose wallet has code goes
    /// on its own ([`wallets`]); the others, when there are several, in one batch of `kind`.
    /// The batch is not simulated: every member's parties are key-only accounts (no wallet code
    /// can change its answer on-chain), the contract skips a member it refuses and carries the
    /// others, and the batch goes with the gas that carries every member. An estimate (100–300
    /// ms a batch) could only lower the limit, which that floor overrides anyway.
    pub(super) async fn process_key_only(
        &self,
        jobs: Vec<Job>,
        kind: JobKind,
        signer: usize,
    ) -> Result<()> {
        let (members, alone) = wallets::split_by_wallets(&self.provider, jobs).await;
        for job in alone {
            self.process(job, signer).await?;
        }
        if members.is_empty() {
            return Ok(());
        }
        let batch = key_only_batch(kind, &members);
        self.process_batch(members, batch, signer).await
    }

    /// Payments leased together, as one `TransferBatch.transferAll` through `batcher` when
    /// there are several and the batch simulates, otherwise each on its own.
    pub(super) async fn process_payments(
        &self,
        members: Vec<Job>,
        batcher: Address,
        signer: usize,
    ) -> Result<()> {
        let token = members[0].to;
        let batch = crate::payments::batch_call(token, members.iter().map(|m| &m.calldata)).map(
            |calldata| Batch {
                kind: JobKind::PaymentBatch,
                to: batcher,
                floor: crate::payments::batch_gas_floor(members.len(), calldata.len()),
                calldata,
                // A payer may be a smart wallet: the batch is simulated before it is sent.
                simulate: true,
            },
        );
        self.process_batch(members, batch, signer).await
    }

    /// Up to `batch_max - 1` more jobs of `kind`: a batch fills by size first — when that many
    /// are queued already (a burst), they are leased at once — and otherwise by time, waiting
    /// the batch window ([`Worker::batch_window`](super::Worker::batch_window)) for more to
    /// queue before leasing what there is.
    pub(super) async fn claim_more_of(&self, kind: JobKind) -> Result<Vec<Job>> {
        let want = self.batch_max - 1;
        let mut more = self.lease_more_of(kind, want).await?;
        if more.len() < want {
            tokio::time::sleep(self.batch_window()).await;
            more.extend(self.lease_more_of(kind, want - more.len()).await?);
        }
        Ok(more)
    }

    /// Leases the jobs among `ids` that are still queued and free (another instance, or the
    /// polled path, may have taken some), in id order.
    pub(super) async fn lease_ids(&self, ids: &[JobId]) -> Result<Vec<Job>> {
        let at = now();
        let mut tx = self.store.begin().await?;
        let leased = jobs::lease_ids(&mut tx, ids, &self.instance, at + LEASE, at).await?;
        if leased.is_empty() {
            tx.rollback().await.map_err(StoreError::from)?;
        } else {
            tx.commit().await.map_err(StoreError::from)?;
        }
        crate::metrics::jobs_leased("handed", leased.len());
        Ok(leased
            .into_iter()
            .map(|(job, queued)| {
                crate::metrics::queue_pickup((at - queued).max(0) as f64);
                job
            })
            .collect())
    }

    /// Leases up to `count` queued jobs of `kind`.
    async fn lease_more_of(&self, kind: JobKind, count: usize) -> Result<Vec<Job>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let at = now();
        let mut tx = self.store.begin().await?;
        let more = jobs::claim_more(&mut tx, kind, &self.instance, at + LEASE, at, count).await?;
        crate::metrics::jobs_leased("polled", more.len());
        if more.is_empty() {
            // Nothing leased, nothing to commit (a commit makes the API's read model stale).
            tx.rollback().await.map_err(StoreError::from)?;
        } else {
            tx.commit().await.map_err(StoreError::from)?;
        }
        Ok(more)
    }

    /// `members` as one `batch` transaction when there are several and the batch simulates,
    /// otherwise each on its own.
    async fn process_batch(
        &self,
        members: Vec<Job>,
        batch: Option<Batch>,
        signer: usize,
    ) -> Result<()> {
        if members.len() > 1
            && let Some(batch) = batch
        {
            let candidate = Job {
                id: JobId::generate(),
                kind: batch.kind,
                agreement_id: None,
                to: batch.to,
                calldata: batch.calldata,
                status: JobStatus::Queued,
                error: None,
            };
            let simulated = if batch.simulate {
                self.simulate(&candidate, &self.signers[signer]).await
            } else {
                Simulation::Gas(batch.floor)
            };
            if let Simulation::Gas(estimate) = simulated {
                // Never below what the members cost when they all pay: the estimate may have
                // met members the contract skips (or the token refuses) at that state.
                let gas_limit = estimate.max(batch.floor);
                let at = now();
                let mut tx = self.store.begin().await?;
                let ids: Vec<JobId> = members.iter().map(|m| m.id.clone()).collect();
                // Every member must still be this instance's (a lease that ran out during the
                // simulation may have been taken): otherwise no batch, each goes on its own.
                // Set-based: a statement per step, whatever the batch's size.
                if signers::hold_all(&mut tx, &ids, &self.instance).await? {
                    jobs::enqueue_leased(&mut tx, &candidate, &self.instance, at + LEASE, at)
                        .await?;
                    jobs::set_status_of_all(&mut tx, &ids, JobStatus::Batched, at).await?;
                    if candidate.kind == JobKind::PaymentBatch {
                        payments::move_to_job(&mut tx, &ids, &candidate.id, at).await?;
                    } else {
                        settlement::move_to_job(&mut tx, &ids, &candidate.id, at).await?;
                    }
                    tx.commit().await.map_err(StoreError::from)?;
                    tracing::info!(job_id = %candidate.id, kind = %candidate.kind, members = ids.len(), "jobs batched");
                    return self.send(candidate, gas_limit, signer).await;
                }
                drop(tx);
                tracing::warn!("a member's lease ran out before batching; sending one by one");
            } else {
                tracing::warn!(
                    members = members.len(),
                    "batch does not simulate; sending its members one by one"
                );
            }
        }
        for job in members {
            self.process(job, signer).await?;
        }
        Ok(())
    }

    /// `eth_estimateGas` of `job` from `signer`, retried while the node is unreachable.
    async fn simulate(&self, job: &Job, signer: &SignerHandle) -> Simulation {
        let (from, to, data) = (signer.address(), job.to, &job.calldata);
        let estimate = (|| estimate_gas_with_headroom(&self.provider, from, to, data))
            .retry(ExponentialBuilder::default().with_max_times(4))
            .when(|e| classify(e).is_retryable())
            .await;
        match estimate {
            Ok(gas) => Simulation::Gas(gas),
            Err(error) => match classify(&error) {
                NodeError::Unavailable(reason) => {
                    tracing::warn!(%reason, "simulation deferred: node unavailable");
                    Simulation::Deferred
                }
                other => Simulation::Refused(reason_of(&other)),
            },
        }
    }

    /// Hands `job` to the signer at index `first` and returns once the signer has it in
    /// order (its nonce follows those of the jobs handed before); the outcome is recorded by a
    /// task of the pipeline meanwhile ([`Relay::record_sent`]). Waits for a pipeline slot first.
    async fn send(&self, job: Job, gas_limit: u64, first: usize) -> Result<()> {
        let slot = self.pipeline.slots.clone().acquire_owned().await.expect("pipeline open");
        let signer = self.signers[first].clone();
        let Some(answer) = signer.hand(job.clone(), &self.instance, gas_limit).await else {
            // The actor is gone: the run ends, and the job, unsigned, is free for the next.
            return self.after_send(&job, Err(RelayError::SignerGone)).await.map(|_| ());
        };
        let relay = self.clone();
        tokio::spawn(async move {
            let outcome = relay.record_sent(job, gas_limit, first, answer).await;
            drop(slot);
            if let Err(error) = outcome {
                let _ = relay.pipeline.errors.send(error);
            }
        });
        Ok(())
    }

    /// Waits for what the signer at `first` made of `job` (`answer`) and records it; when that
    /// signer's window had filled up meanwhile (another instance sent through it), hands the
    /// job to the next signer with room; with every window full the job goes back to the
    /// queue unsigned.
    async fn record_sent(
        &self,
        job: Job,
        gas_limit: u64,
        first: usize,
        answer: crate::relayer::signer::Answer,
    ) -> Result<()> {
        if !self.after_send(&job, answer.await).await? {
            return Ok(());
        }
        let count = self.signers.len();
        for step in 1..count {
            let signer = &self.signers[(first + step) % count];
            if !self.send_through(&job, gas_limit, signer).await? {
                return Ok(());
            }
        }
        tracing::debug!(job_id = %job.id, "every signer's window is full; job queued again");
        let mut tx = self.store.begin().await?;
        signers::release(&mut tx, &job.id, &self.instance, now()).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// One try of `job` through `signer`; `true` when that signer had no room (nothing done).
    async fn send_through(&self, job: &Job, gas_limit: u64, signer: &SignerHandle) -> Result<bool> {
        let submitted = signer.submit(job.clone(), &self.instance, gas_limit).await;
        self.after_send(job, submitted).await
    }

    /// Records what a signer made of `job`; `true` when that signer had no room (nothing done).
    async fn after_send(&self, job: &Job, submitted: Result<Submitted>) -> Result<bool> {
        let outcome = match submitted {
            Ok(Submitted::Sent(attempt)) if attempt.status == AttemptStatus::Broadcast => {
                self.progress(job, ActivationStatus::Submitted, Some(attempt.tx_hash)).await
            }
            Ok(Submitted::WindowFull) => return Ok(true),
            // Saved but not yet broadcast (re-broadcast later), or taken over by another instance.
            Ok(Submitted::Sent(_) | Submitted::NotLeased) => Ok(()),
            Err(RelayError::Node(NodeError::Unavailable(reason))) => {
                tracing::warn!(%reason, "send deferred: node unavailable");
                Ok(())
            }
            Err(RelayError::FeesAboveCap(waiting)) => {
                // Not failed: back in the queue, tried again once the lease runs out.
                let reason = waiting.to_string();
                tracing::warn!(job_id = %job.id, %reason, "job waits for fees");
                let at = now();
                let mut tx = self.store.begin().await?;
                if signers::hold(&mut tx, &job.id, &self.instance).await? {
                    jobs::requeue_waiting(&mut tx, &job.id, &reason, at + WAIT_FOR_FEES, at)
                        .await?;
                }
                tx.commit().await.map_err(StoreError::from)?;
                Ok(())
            }
            Err(RelayError::Node(other)) => self.fail(job, &reason_of(&other), false).await,
            Err(RelayError::SignerGone) => {
                // The actor died with the job in hand. Unsigned, the job is freed so that the
                // restarted run takes it at once; a saved attempt is re-broadcast from the store.
                let mut tx = self.store.begin().await?;
                signers::release(&mut tx, &job.id, &self.instance, now()).await?;
                tx.commit().await.map_err(StoreError::from)?;
                Err(RelayError::SignerGone)
            }
            Err(other) => Err(other),
        };
        outcome.map(|()| false)
    }
}

/// What a batch of jobs is sent as: its kind, the contract it calls, the call, the least gas it
/// is sent with, and whether it is simulated first.
struct Batch {
    kind: JobKind,
    to: Address,
    calldata: Bytes,
    floor: u64,
    /// Whether it is simulated (`eth_estimateGas`) before it is sent; when not, it is sent
    /// with `floor`.
    simulate: bool,
}

/// The unsimulated batch of `kind` carrying every member: a `sellerClaimBatch` of sponsored
/// claims, or a non-atomic `batch` of sponsored closes and withdraws, with the gas that
/// carries them all; `None` when a member's call does not fit `kind`.
fn key_only_batch(kind: JobKind, members: &[Job]) -> Option<Batch> {
    let members_calls = members.iter().map(|job| &job.calldata);
    let (calldata, per_member) = match kind {
        JobKind::SellerClaimBatch => {
            (calls::seller_claim_batch(members_calls)?, BATCH_GAS_PER_CLAIM)
        }
        JobKind::SettlementBatch => {
            (calls::settlement_batch(members_calls)?, SETTLEMENT_BATCH_GAS_PER_CALL)
        }
        _ => return None,
    };
    Some(Batch {
        kind,
        to: members.first()?.to,
        floor: gas_floor(members.len(), calldata.len(), per_member),
        calldata,
        simulate: false,
    })
}

/// The reason stored for a failed job.
pub(super) fn reason_of(error: &NodeError) -> String {
    match error {
        NodeError::Reverted { reason, .. } => reason.clone(),
        other => format!("{other:?}"),
    }
}
