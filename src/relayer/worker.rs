//! The relayer worker: claims queued jobs, simulates them, and hands them to a signer; keeps
//! re-broadcasting saved attempts the node has not taken yet.
//!
//! Jobs go round-robin over the signers that have room in their in-flight window (unmined
//! transactions, counted in the store across instances); with every window full nothing is
//! claimed and jobs stay queued. Several instances may run this worker on one database: jobs
//! are leased, nonces are allocated under each signer's row lock, and the monitor's writes
//! (replacement, requeue of a used nonce) are conditional, so of two instances acting on the
//! same attempt exactly one does.
//!
//! Sponsored seller claims are batched: after taking one, the worker waits briefly for more,
//! takes up to `batch_max` of them and, when the batch simulates, sends them as one
//! `sellerClaimBatch` transaction (a new job of kind [`jobs::KIND_SELLER_CLAIM_BATCH`] that the
//! claims' settlement actions move to; the claim jobs end `batched`). A batch that does not
//! simulate is sent claim by claim, so one bad claim cannot hold the others back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::{DynProvider, Provider};
use backon::{ExponentialBuilder, Retryable};
use serde_json::json;
use tokio::sync::{Notify, watch};

use super::fees::{Fees, Market};
use super::node_error::{NodeError, classify};
use super::signer::{self, SignerHandle, Submitted};
use super::{RelayError, Result};
use crate::agreement::ids::JobId;
use crate::agreement::status::ActivationStatus;
use crate::chain::gas::estimate_gas_with_headroom;
use crate::escrow::calls;
use crate::metrics;
use crate::store::jobs::{self, Attempt, Job};
use crate::store::{Store, StoreError, agreements, now, outbox, settlement, signers};

/// How long a claimed job stays leased to this worker before another may take it.
const LEASE: i64 = 60;
/// Blocks deep an attempt's nonce must be used on-chain, with none of its job's hashes mined,
/// before the job is taken to have lost the nonce to another transaction: a node (or the
/// load-balanced nodes behind one RPC URL) can count the new nonce before it serves the
/// receipt, and the watcher confirms our own hash when it is the one mined.
const NONCE_USED_DEPTH: u64 = 2;
/// Seconds a job whose fees are above the cap waits before it is tried again.
const WAIT_FOR_FEES: i64 = 1;
/// Every this many passes, the monitor asks the node about every live hash even when the
/// account's pending count shows no gap (a node may drop a transaction in the middle).
const FULL_DROP_CHECK_EVERY: u64 = 20;

/// The worker's dependencies.
#[derive(Debug, Clone)]
pub struct Worker {
    /// The store.
    pub store: Store,
    /// A read-only provider for simulation.
    pub provider: DynProvider,
    /// One handle per relayer account; jobs go round-robin over those with room.
    pub signers: Vec<SignerHandle>,
    /// Most unmined transactions per relayer account (across instances).
    pub max_in_flight: u64,
    /// Poked when a job is queued.
    pub wake: Arc<Notify>,
    /// Fallback poll period.
    pub poll: Duration,
    /// Most seller claims in one batch transaction (1: no batching).
    pub batch_max: usize,
    /// How long to wait for more claims after taking one.
    pub batch_wait: Duration,
    /// Blocks a broadcast attempt may stay unmined before it is replaced with higher fees.
    pub replace_after_blocks: u64,
    /// This instance's lease name.
    pub instance: String,
}

/// What simulating a job found.
enum Simulation {
    /// It would succeed with this gas limit.
    Gas(u64),
    /// It would revert, or the node refused it: the reason.
    Refused(String),
    /// The node could not be reached; the job waits for its lease to run out.
    Deferred,
}

impl Worker {
    /// Runs until `shutdown` turns true: re-broadcasts what was saved before a restart, then
    /// serves the queue.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        self.rebroadcast(&["signed", "broadcast"]).await?;
        self.release_leases_of_dead_processes().await?;
        let mut next_signer = 0usize;
        // The replacement countdown survives restarts: it starts where the store says.
        let mut seen = jobs::first_seen_blocks(self.store.reader()).await?;
        let mut gaps = HashSet::new();
        let mut pass = 0u64;
        loop {
            // Claim only while some signer has room: otherwise jobs stay queued (for this
            // instance or another) instead of being leased and held.
            while let Some(signer) = self.signer_with_room(&mut next_signer).await?
                && let Some(job) = self.claim().await?
            {
                if job.kind == jobs::KIND_SELLER_CLAIM && self.batch_max > 1 {
                    self.process_claims(job, signer).await?;
                } else {
                    self.process(job, signer).await?;
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
            self.rebroadcast(&["signed"]).await?;
            self.monitor(&mut seen, &mut gaps, pass).await?;
            if pass.is_multiple_of(FULL_DROP_CHECK_EVERY) {
                self.release_leases_of_dead_processes().await?;
            }
            pass = pass.wrapping_add(1);
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// The index of the next signer, round-robin from `next`, whose unmined transactions are
    /// below the window; `None` when every window is full. Moves `next` past it.
    async fn signer_with_room(&self, next: &mut usize) -> Result<Option<usize>> {
        let in_flight = signers::in_flight(self.store.reader()).await?;
        let count = self.signers.len();
        for step in 0..count {
            let index = (*next + step) % count;
            let address = self.signers[index].address();
            if in_flight.get(&address).copied().unwrap_or(0) < self.max_in_flight {
                *next = index + 1;
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    async fn claim(&self) -> Result<Option<Job>> {
        let at = now();
        let mut tx = self.store.begin().await?;
        let job = jobs::claim_next(&mut tx, &self.instance, at + LEASE, at).await?;
        if let Some(job) = &job
            && let Some(queued) = jobs::queued_at(&mut tx, &job.id).await?
        {
            crate::metrics::queue_pickup((at - queued).max(0) as f64);
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(job)
    }

    /// Simulates `job`, then signs, saves and broadcasts it through `signer`. A revert fails
    /// the job with its decoded reason; an unreachable node leaves the job to its lease.
    #[tracing::instrument(skip_all, fields(job_id = %job.id, kind = %job.kind, agreement_id = ?job.agreement_id))]
    async fn process(&self, job: Job, signer: usize) -> Result<()> {
        if job.kind == jobs::KIND_ACTIVATE {
            self.progress(&job, ActivationStatus::Submitting, None).await?;
        }
        match self.simulate(&job, &self.signers[signer]).await {
            Simulation::Gas(gas_limit) => self.send(job, gas_limit, signer).await,
            Simulation::Refused(reason) => self.fail(&job, &reason, true).await,
            Simulation::Deferred => Ok(()),
        }
    }

    /// `first` and the seller claims queued with it: one `sellerClaimBatch` transaction when
    /// there are several and the batch simulates, otherwise each on its own.
    async fn process_claims(&self, first: Job, signer: usize) -> Result<()> {
        tokio::time::sleep(self.batch_wait).await;
        let at = now();
        let mut tx = self.store.begin().await?;
        let more = jobs::claim_more(
            &mut tx,
            jobs::KIND_SELLER_CLAIM,
            &self.instance,
            at + LEASE,
            at,
            self.batch_max - 1,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        let mut members = vec![first];
        members.extend(more);
        if members.len() > 1
            && let Some(batch) = batch_call(&members)
        {
            let candidate = Job {
                id: JobId::generate(),
                kind: jobs::KIND_SELLER_CLAIM_BATCH.into(),
                agreement_id: None,
                to: members[0].to,
                calldata: batch,
                status: "queued".into(),
                error: None,
            };
            if let Simulation::Gas(gas_limit) =
                self.simulate(&candidate, &self.signers[signer]).await
            {
                let at = now();
                let mut tx = self.store.begin().await?;
                let ids: Vec<JobId> = members.iter().map(|m| m.id.clone()).collect();
                // Every member must still be this instance's (a lease that ran out during the
                // simulation may have been taken): otherwise no batch, each goes on its own.
                let mut all_held = true;
                for id in &ids {
                    all_held &= signers::hold(&mut tx, id, &self.instance).await?;
                }
                if all_held {
                    jobs::enqueue_leased(&mut tx, &candidate, &self.instance, at + LEASE, at)
                        .await?;
                    for id in &ids {
                        jobs::set_job_status(&mut tx, id, "batched", None, at).await?;
                    }
                    settlement::move_to_job(&mut tx, &ids, &candidate.id, at).await?;
                    tx.commit().await.map_err(StoreError::from)?;
                    tracing::info!(job_id = %candidate.id, claims = ids.len(), "seller claims batched");
                    return self.send(candidate, gas_limit, signer).await;
                }
                drop(tx);
                tracing::warn!("a claim's lease ran out before batching; sending one by one");
            } else {
                tracing::warn!(
                    claims = members.len(),
                    "claim batch does not simulate; sending claims one by one"
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

    /// Hands `job` to the signer at index `first`, or, when its window filled up meanwhile
    /// (another instance sent through it), to the next signer with room; with every window
    /// full the job goes back to the queue unsigned.
    async fn send(&self, job: Job, gas_limit: u64, first: usize) -> Result<()> {
        let count = self.signers.len();
        for step in 0..count {
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
        let outcome = match signer.submit(job.clone(), &self.instance, gas_limit).await {
            Ok(Submitted::Sent(attempt)) if attempt.status == "broadcast" => {
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
            Err(other) => Err(other),
        };
        outcome.map(|()| false)
    }

    /// Records progress on what `job` carries: the activation's status, or its settlement
    /// actions `submitted` once there is a transaction hash.
    async fn progress(
        &self,
        job: &Job,
        status: ActivationStatus,
        tx_hash: Option<B256>,
    ) -> Result<()> {
        let at = now();
        let mut tx = self.store.begin().await?;
        if job.kind == jobs::KIND_ACTIVATE {
            let Some(agreement) = &job.agreement_id else { return Ok(()) };
            let moved =
                agreements::activation_progress(&mut tx, agreement, status, tx_hash, at).await?;
            if moved && status == ActivationStatus::Submitted {
                let data = json!({ "tx_hash": tx_hash });
                outbox::record(&mut tx, Some(agreement), "activation.submitted", &data, at).await?;
            }
        } else if let Some(tx_hash) = tx_hash {
            for action in settlement::actions_of_job(&mut tx, &job.id).await? {
                if action.status == settlement::PENDING {
                    let data = json!({
                        "settlement_action_id": action.id,
                        "action": action.action.as_str(),
                        "tx_hash": tx_hash,
                    });
                    let event = "settlement_action.submitted";
                    outbox::record(&mut tx, Some(&action.agreement_id), event, &data, at).await?;
                }
            }
            settlement::job_submitted(&mut tx, &job.id, tx_hash, at).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Fails `job` before any broadcast, with what it carried: the activation, or each
    /// settlement action. `unsent`: the job was never signed, so it is failed only while this
    /// instance still holds its lease (another may have taken it over and sent it).
    async fn fail(&self, job: &Job, reason: &str, unsent: bool) -> Result<()> {
        let at = now();
        let mut tx = self.store.begin().await?;
        if unsent && !signers::hold(&mut tx, &job.id, &self.instance).await? {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(());
        }
        tracing::warn!(%reason, job_id = %job.id, "job failed before broadcast");
        jobs::set_job_status(&mut tx, &job.id, "failed", Some(reason), at).await?;
        let data = json!({ "job_id": job.id, "kind": job.kind, "error": reason });
        outbox::record(&mut tx, job.agreement_id.as_ref(), "relayer.job_failed", &data, at).await?;
        if job.kind == jobs::KIND_ACTIVATE {
            if let Some(agreement) = &job.agreement_id
                && agreements::activation_failed(&mut tx, agreement, reason, at).await?
            {
                let data = json!({ "error": reason });
                outbox::record(&mut tx, Some(agreement), "activation.failed", &data, at).await?;
            }
        } else {
            for action in settlement::actions_of_job(&mut tx, &job.id).await? {
                settlement::finish(&mut tx, &action.id, Some(reason), None, None, at).await?;
                let data = json!({
                    "settlement_action_id": action.id,
                    "action": action.action.as_str(),
                    "error": reason,
                });
                let event = "settlement_action.failed";
                outbox::record(&mut tx, Some(&action.agreement_id), event, &data, at).await?;
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
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

/// The monitor's view of one relayer account this pass.
struct Account {
    /// `eth_getTransactionCount` at `latest`: nonces below are used on-chain.
    latest: u64,
    /// At `pending`: what the node's pool holds on top.
    pending: u64,
    /// The highest nonce of a live attempt.
    top: u64,
}

impl Worker {
    /// One monitor pass over the live attempt of every job in flight (RPC calls: the block
    /// number, two nonce counts per relayer account, at most one `eth_feeHistory`, and a hash
    /// lookup per live attempt only when the pending count shows a gap or every
    /// [`FULL_DROP_CHECK_EVERY`] passes):
    /// - its nonce used on-chain but none of the job's hashes mined: the job goes back to the
    ///   queue for a fresh nonce;
    /// - dropped by the node (hash unknown, nonce unused): the saved raw transaction is sent
    ///   again, or replaced when the node wants higher fees;
    /// - unmined `replace_after_blocks` blocks after it was first seen: replaced through its
    ///   signer with the same nonce and bumped fees (or the job says it waits for fees).
    ///
    /// `seen` holds the block each live hash was first seen at.
    async fn monitor(
        &self,
        seen: &mut HashMap<B256, u64>,
        gaps: &mut HashSet<(Address, u64)>,
        pass: u64,
    ) -> Result<()> {
        let live = jobs::live_attempts(self.store.reader()).await?;
        seen.retain(|hash, _| live.iter().any(|a| a.tx_hash == *hash));
        if live.is_empty() {
            return Ok(());
        }
        let head = match self.provider.get_block_number().await {
            Ok(head) => head,
            Err(error) => {
                tracing::warn!(%error, "monitor pass skipped: node unavailable");
                return Ok(());
            }
        };
        let mut accounts: BTreeMap<Address, Account> = BTreeMap::new();
        for attempt in &live {
            if let Some(account) = accounts.get_mut(&attempt.signer) {
                account.top = account.top.max(attempt.nonce);
                continue;
            }
            let counts = async {
                let latest = self.provider.get_transaction_count(attempt.signer).latest().await?;
                let pending = self.provider.get_transaction_count(attempt.signer).pending().await?;
                Ok::<_, alloy::transports::TransportError>((latest, pending))
            };
            let Ok((latest, pending)) = counts.await else {
                tracing::warn!("monitor pass skipped: node unavailable");
                return Ok(());
            };
            accounts.insert(attempt.signer, Account { latest, pending, top: attempt.nonce });
        }
        self.fill_gaps(&live, &accounts, gaps).await?;
        let full_check = pass.is_multiple_of(FULL_DROP_CHECK_EVERY);
        let mut market: Option<Market> = None;
        // Per account, the nonce count `NONCE_USED_DEPTH` blocks below the head, read only
        // when an attempt's nonce shows used.
        let mut deep_counts: HashMap<Address, u64> = HashMap::new();
        for attempt in live {
            let first_seen = match seen.get(&attempt.tx_hash) {
                Some(block) => *block,
                None => {
                    let mut tx = self.store.begin().await?;
                    jobs::mark_first_seen(&mut tx, &[(attempt.tx_hash, head)]).await?;
                    tx.commit().await.map_err(StoreError::from)?;
                    *seen.entry(attempt.tx_hash).or_insert(head)
                }
            };
            let Some(account) = accounts.get(&attempt.signer) else { continue };
            if attempt.nonce < account.latest {
                let deep = match deep_counts.get(&attempt.signer) {
                    Some(deep) => *deep,
                    None => {
                        let at = head.saturating_sub(NONCE_USED_DEPTH);
                        let count = self
                            .provider
                            .get_transaction_count(attempt.signer)
                            .block_id(at.into())
                            .await;
                        let Ok(count) = count else { return Ok(()) };
                        *deep_counts.entry(attempt.signer).or_insert(count)
                    }
                };
                if attempt.nonce < deep {
                    self.nonce_used(&attempt).await?;
                }
                continue;
            }
            let mut underpriced = false;
            if attempt.status == "broadcast" && (account.pending <= account.top || full_check) {
                match self.provider.get_transaction_by_hash(attempt.tx_hash).await {
                    Ok(None)
                        if !jobs::attempt_is_live(self.store.reader(), attempt.tx_hash).await? =>
                    {
                        continue;
                    }
                    Ok(None) => {
                        match signer::broadcast(&self.provider, &self.store, &attempt).await {
                            Ok(()) => {
                                tracing::warn!(tx_hash = %attempt.tx_hash, nonce = attempt.nonce, "dropped transaction sent again");
                                metrics::registry().count(
                                    "pactum_relayer_dropped_rebroadcasts_total",
                                    &[],
                                    1,
                                );
                                seen.insert(attempt.tx_hash, head);
                                if let Some(signer) = self.signer_of(attempt.signer) {
                                    signer.reconcile().await?;
                                }
                                continue;
                            }
                            Err(NodeError::ReplacementUnderpriced) => underpriced = true,
                            Err(NodeError::Unavailable(_)) => return Ok(()),
                            Err(error) => {
                                tracing::warn!(tx_hash = %attempt.tx_hash, ?error, "dropped transaction refused");
                                continue;
                            }
                        }
                    }
                    Ok(Some(_)) => {}
                    Err(_) => return Ok(()),
                }
            }
            if !underpriced && head.saturating_sub(first_seen) < self.replace_after_blocks {
                continue;
            }
            let market = match market {
                Some(market) => market,
                None => match signer::market(&self.provider).await {
                    Ok(fresh) => *market.insert(fresh),
                    Err(error) => {
                        tracing::warn!(?error, "monitor: no fee history");
                        return Ok(());
                    }
                },
            };
            if let Some(new) = self.replace(&attempt, market).await? {
                seen.insert(new, head);
            }
        }
        Ok(())
    }

    /// Fills each nonce gap seen on two passes in a row: a nonce between the chain's count and
    /// an account's highest live attempt that no live attempt holds and the node's pool does
    /// not have (its attempt was refused outright after a later nonce was taken). Every later
    /// transaction of the account waits on it, so it is used up with a no-op self-send.
    async fn fill_gaps(
        &self,
        live: &[Attempt],
        accounts: &BTreeMap<Address, Account>,
        gaps: &mut HashSet<(Address, u64)>,
    ) -> Result<()> {
        let mut found = HashSet::new();
        for (address, account) in accounts {
            let held: HashSet<u64> =
                live.iter().filter(|a| a.signer == *address).map(|a| a.nonce).collect();
            let from = account.latest.max(account.pending);
            found.extend((from..account.top).filter(|n| !held.contains(n)).map(|n| (*address, n)));
        }
        for (address, nonce) in &found {
            if !gaps.contains(&(*address, *nonce)) {
                continue;
            }
            let Some(signer) = self.signer_of(*address) else { continue };
            match signer.fill_gap(*nonce).await {
                Ok(_) => {}
                Err(RelayError::Node(error)) => {
                    tracing::warn!(%address, nonce, ?error, "nonce gap not filled");
                }
                Err(error) => return Err(error),
            }
        }
        *gaps = found;
        Ok(())
    }

    fn signer_of(&self, address: Address) -> Option<&SignerHandle> {
        self.signers.iter().find(|s| s.address() == address)
    }

    /// Replaces `attempt` through its signer; the new hash when one was saved.
    async fn replace(&self, attempt: &Attempt, market: Market) -> Result<Option<B256>> {
        let Some(signer) = self.signer_of(attempt.signer) else {
            tracing::warn!(signer = %attempt.signer, "no key for this relayer account; not replaced");
            return Ok(None);
        };
        let Some(job) = jobs::get(self.store.reader(), attempt.job_id.as_str()).await? else {
            return Ok(None);
        };
        // Bump from the highest any attempt offered: a refused replacement is bumped again.
        let attempts = jobs::attempts_of_job(self.store.reader(), &job.id).await?;
        let previous = Fees {
            max_fee_per_gas: attempts.iter().map(|a| a.max_fee_per_gas).max().unwrap_or(0),
            max_priority_fee_per_gas: attempts
                .iter()
                .map(|a| a.max_priority_fee_per_gas)
                .max()
                .unwrap_or(0),
        };
        match signer.replace(job.clone(), attempt.clone(), previous, market).await {
            Ok(Some(new)) => {
                if new.status == "broadcast" {
                    self.progress(&job, ActivationStatus::Submitted, Some(new.tx_hash)).await?;
                }
                Ok(Some(new.tx_hash))
            }
            Ok(None) => Ok(None),
            Err(RelayError::FeesAboveCap(waiting)) => {
                let reason = waiting.to_string();
                if job.error.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(job_id = %job.id, %reason, "replacement waits for fees");
                    let mut tx = self.store.begin().await?;
                    jobs::job_waiting(&mut tx, &job.id, &reason, now()).await?;
                    tx.commit().await.map_err(StoreError::from)?;
                }
                Ok(None)
            }
            Err(RelayError::Node(error)) => {
                // `ReplacementUnderpriced` included: the next pass bumps again.
                tracing::warn!(job_id = %job.id, ?error, "replacement refused");
                Ok(None)
            }
            Err(RelayError::Sign(reason)) => {
                tracing::warn!(job_id = %job.id, %reason, "replacement not signed");
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// Frees the jobs leased by processes of this host that no longer run (killed before they
    /// signed), so that a restart takes them at once instead of after the lease. Instance names
    /// are `{host}-{pid}-{n}`; a process of another host is left to its lease's expiry. Taking
    /// a job from a process that still runs would be safe too: a nonce is only allocated to
    /// the job's current lease holder.
    async fn release_leases_of_dead_processes(&self) -> Result<()> {
        let Some((host, _)) = host_and_pid(&self.instance) else { return Ok(()) };
        if !cfg!(target_os = "linux") {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        for owner in jobs::lease_owners(&mut tx, now()).await? {
            let Some((owner_host, pid)) = host_and_pid(&owner) else { continue };
            if owner_host != host || pid == std::process::id() {
                continue;
            }
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let freed = jobs::release_leases_of(&mut tx, &owner).await?;
            tracing::info!(%owner, freed, "jobs leased by a process that is gone queued again");
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// `attempt`'s nonce is used on-chain. When one of its job's hashes has a receipt, the
    /// watcher confirms it; when none has, another transaction took the nonce and the job goes
    /// back to the queue for a fresh one (none of its attempts can be mined any more, so it is
    /// never live under two nonces).
    async fn nonce_used(&self, attempt: &Attempt) -> Result<()> {
        let attempts = jobs::attempts_of_job(self.store.reader(), &attempt.job_id).await?;
        for each in &attempts {
            match self.provider.get_transaction_receipt(each.tx_hash).await {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {}
                Err(_) => return Ok(()),
            }
        }
        let mut tx = self.store.begin().await?;
        let requeued = jobs::requeue_nonce_used(
            &mut tx,
            &attempt.job_id,
            attempt.signer,
            attempt.nonce,
            now(),
        )
        .await?;
        let job = jobs::get_in(&mut tx, attempt.job_id.as_str()).await?;
        if requeued && job.is_some_and(|j| j.kind == jobs::KIND_NONCE_FILL) {
            // A fill has nothing to send again: the gap it was for is gone.
            let note = "the nonce was used by another transaction: no gap left to fill";
            jobs::set_job_status(&mut tx, &attempt.job_id, "failed", Some(note), now()).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        if !requeued {
            // Another instance (or an earlier pass) dealt with it.
            return Ok(());
        }
        tracing::warn!(job_id = %attempt.job_id, nonce = attempt.nonce, "nonce used by another transaction; job queued again");
        if let Some(signer) = self.signer_of(attempt.signer) {
            signer.reconcile().await?;
        }
        self.wake.notify_one();
        Ok(())
    }
}

/// The host and process id in an instance name `{host}-{pid}-{n}`.
fn host_and_pid(instance: &str) -> Option<(&str, u32)> {
    let mut parts = instance.rsplitn(3, '-');
    let (_, pid, host) = (parts.next()?, parts.next()?, parts.next()?);
    Some((host, pid.parse().ok()?))
}

/// The `sellerClaimBatch` call carrying every claim in `members` (each a
/// `sellerClaimWithAuthorization` call); `None` if one of them is not.
fn batch_call(members: &[Job]) -> Option<Bytes> {
    calls::seller_claim_batch(members.iter().map(|job| &job.calldata))
}

/// The reason stored for a failed job.
fn reason_of(error: &NodeError) -> String {
    match error {
        NodeError::Reverted { reason, .. } => reason.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::host_and_pid;

    #[test]
    fn instance_names_give_host_and_pid() {
        assert_eq!(host_and_pid("box-1-4242-0"), Some(("box-1", 4242)));
        assert_eq!(host_and_pid("pactum-7-3"), Some(("pactum", 7)));
        assert_eq!(host_and_pid("nohyphen"), None);
        assert_eq!(host_and_pid("host-notapid-0"), None);
    }
}
