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
//! Jobs arrive two ways. The API of this process hands each committed job over ([`feed`]): the
//! worker leases those by id, a batchable one (a seller claim, close or withdraw, a payment)
//! after waiting the batch window for company unless a batch's worth has arrived. The polled path (every poll
//! interval, and when woken) scans the store for the rest: jobs of other instances' APIs,
//! jobs queued again, and everything after a restart.
//!
//! Sends are pipelined: the worker hands a transaction to its signer's actor (in order: the
//! actor allocates nonces in the order it receives them) and goes on forming the next batch
//! while the actor signs, saves and broadcasts; the outcome is recorded by a task of the run
//! ([`PIPELINE_DEPTH`] at most at once).
//!
//! Sponsored seller claims are batched: after taking one, the worker takes up to `batch_max` of
//! them (at once when that many are queued, else after waiting briefly for more) and sends them
//! as one `sellerClaimBatch` transaction with the gas floor that pays every member, unsimulated
//! (a new job of kind [`jobs::KIND_SELLER_CLAIM_BATCH`] that the claims' settlement actions move
//! to; the claim jobs end `batched`). The contract skips a claim it cannot pay and pays the
//! others, so one bad claim cannot hold the others back. A claim whose
//! buyer or seller has code (a smart wallet, an EIP-7702 delegated EOA) is never batched: its
//! wallet's ERC-1271 answer can change between simulation and inclusion ([`wallets`]).
//! Sponsored closes and withdraws batch the same way, in one non-atomic `batch` call (a job of
//! kind `settlement_batch`), where the contract skips a call it refuses (`BatchCallFailed`).
//!
//! The run owns the signer actors ([`Actors`]): one that dies ends the run, and the
//! supervisor's restart starts the worker, and so the actors, afresh.

mod monitor;
mod record;
mod send;
mod wallets;

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use tokio::sync::{Semaphore, mpsc, watch};

use super::actors::{Actors, SignerFaults};
use super::feed::{Handed, JobInbox};
use super::market::MarketSource;
use super::signer::{Limits, SignerHandle};
use super::{RelayError, Result};
use crate::chain::head::HeadWatch;
use crate::store::attempts::{self, AttemptStatus};
use crate::store::jobs::{self, Job, JobKind};
use crate::store::{Store, StoreError, signers};
use crate::time::now;

/// How long a claimed job stays leased to this worker before another may take it.
const LEASE: i64 = 60;
/// Blocks deep an attempt's nonce must be used on-chain, with none of its job's hashes mined,
/// before the job is taken to have lost the nonce to another transaction: a node (or the
/// load-balanced nodes behind one RPC URL) can count the new nonce before it serves the
/// receipt, and the watcher confirms our own hash when it is the one mined.
const NONCE_USED_DEPTH: u64 = 2;
/// Seconds a job whose fees are above the cap waits before it is tried again.
const WAIT_FOR_FEES: i64 = 1;
/// Seconds a settlement job refused by the chain waits before it is simulated again, while
/// the store still expects it to go through ([`Relay::refused`]).
const REFUSAL_PAUSE: i64 = 2;
/// Seconds after it was queued within which a settlement job's refusals are retried; past
/// this a refusal fails it. Longer than a reorganisation takes to settle and the watcher to
/// roll it back, and the activation to be mined again.
const REFUSAL_GRACE: i64 = 120;
/// Transactions handed to signer actors whose outcome is not recorded yet, at most: the
/// batch after these waits for one of them.
const PIPELINE_DEPTH: usize = 4;
/// The batch window's bounds when it follows the block time.
const AUTO_WINDOW: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(250));
/// The block time assumed until the watcher has measured one (Base's).
const ASSUMED_BLOCK_TIME: Duration = Duration::from_secs(2);
/// How long a shutdown waits for the outcomes of transactions already handed to the actors.
const DRAIN: Duration = Duration::from_secs(10);
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
    /// The relayer accounts' keys: each run starts one actor per key, and jobs go round-robin
    /// over those with room.
    pub keys: Vec<PrivateKeySigner>,
    /// What the actors may do: chain, fee cap, in-flight window per account.
    pub limits: Limits,
    /// The actors' test-only fault hook (see [`SignerFaults`]); empty outside tests.
    #[doc(hidden)]
    pub faults: SignerFaults,
    /// Jobs this process's API committed (and the wake-up for the others).
    pub inbox: JobInbox,
    /// The chain's head as the watcher last read it: new transactions' fees, the block time.
    pub head: HeadWatch,
    /// Fallback poll period.
    pub poll: Duration,
    /// Most seller claims (or payments) in one batch transaction (1: no batching).
    pub batch_max: usize,
    /// The `TransferBatch` contract payments are batched through; `None`: one transaction each.
    pub payment_batcher: Option<alloy::primitives::Address>,
    /// How long to wait for more claims after taking one; `None`: it follows the block time
    /// (see [`Worker::batch_window`]).
    pub batch_wait: Option<Duration>,
    /// Blocks a broadcast attempt may stay unmined before it is replaced with higher fees.
    pub replace_after_blocks: u64,
    /// This instance's lease name.
    pub instance: String,
}

impl Worker {
    /// Runs until `shutdown` turns true: starts an actor per relayer key, re-broadcasts what
    /// was saved before a restart, then serves the queue. An actor that dies ends the run with
    /// [`super::RelayError::SignerDied`] (or [`super::RelayError::SignerGone`] when a request was in its
    /// hands); the actors end with the run, so a restart always starts fresh ones.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<()> {
        let market = MarketSource::new(self.provider.clone(), self.head.clone());
        let mut actors = Actors::spawn(
            &self.keys,
            &self.provider,
            &market,
            &self.store,
            self.limits,
            &self.faults,
        );
        let (errors, mut failed) = mpsc::unbounded_channel();
        let relay = Relay {
            signers: actors.handles.clone().into(),
            pipeline: Pipeline { slots: Arc::new(Semaphore::new(PIPELINE_DEPTH)), errors },
            worker: Arc::new(self),
        };
        let inbox = relay.inbox.receiver.clone();
        let mut inbox = inbox.lock().await;
        let served = relay.serve(shutdown, &mut actors, &mut inbox, &mut failed).await;
        // Let the transactions already in the actors' hands be saved, sent and recorded.
        let drained = relay.pipeline.slots.acquire_many(PIPELINE_DEPTH as u32);
        let _ = tokio::time::timeout(DRAIN, drained).await;
        match (served, failed.try_recv()) {
            (Ok(()), Ok(error)) => Err(error),
            (served, _) => served,
        }
    }

    /// The batch window: the configured one, else [`window_for`] the block time the watcher
    /// measured and the transactions the relayer keys may have in flight.
    pub fn batch_window(&self) -> Duration {
        let lanes = (self.keys.len() as u64).saturating_mul(self.limits.max_in_flight);
        self.batch_wait.unwrap_or_else(|| window_for(self.head.block_time(), lanes))
    }
}

/// The batch window that follows a chain's `block_time` when the relayer keys together may have
/// `lanes` transactions unmined: the block time shared out over them, so a steady stream of
/// batches (one per window) never fills every key's window before a block mines and frees it —
/// a full window would hold the next batch back a whole block. 10–250 ms; Base's 2 s assumed
/// until the block time is measured. One key with 16 in flight: 62 ms on 1 s blocks, 125 ms on
/// 2 s; three keys: 21 and 42 ms.
pub fn window_for(block_time: Option<Duration>, lanes: u64) -> Duration {
    let (least, most) = AUTO_WINDOW;
    let block = block_time.unwrap_or(ASSUMED_BLOCK_TIME);
    let lanes = u32::try_from(lanes.max(1)).unwrap_or(u32::MAX);
    (block / lanes).clamp(least, most)
}

/// One run of the worker: its settings, the signer actors started for this run, and the
/// transactions in their hands.
#[derive(Clone)]
struct Relay {
    worker: Arc<Worker>,
    /// One handle per relayer account, alive as long as the run.
    signers: Arc<[SignerHandle]>,
    pipeline: Pipeline,
}

/// The sends in the signer actors' hands: a slot each, and where an outcome that must end the
/// run is reported.
#[derive(Clone)]
struct Pipeline {
    slots: Arc<Semaphore>,
    errors: mpsc::UnboundedSender<RelayError>,
}

impl Deref for Relay {
    type Target = Worker;

    fn deref(&self) -> &Worker {
        &self.worker
    }
}

impl Relay {
    /// Serves the queue until `shutdown` turns true, an actor of `actors` dies, or a send's
    /// outcome reports an error on `failed`; takes hand-offs from `inbox`.
    async fn serve(
        &self,
        mut shutdown: watch::Receiver<bool>,
        actors: &mut Actors,
        inbox: &mut mpsc::Receiver<Handed>,
        failed: &mut mpsc::UnboundedReceiver<RelayError>,
    ) -> Result<()> {
        self.rebroadcast(&[AttemptStatus::Signed, AttemptStatus::Broadcast]).await?;
        self.release_leases_of_dead_processes().await?;
        let mut next_signer = 0usize;
        // The replacement countdown survives restarts: it starts where the store says.
        let mut seen = attempts::first_seen_blocks(self.store.reader()).await?;
        let mut gaps = HashSet::new();
        let mut pass = 0u64;
        let mut handed = Vec::new();
        let mut polled_at: Option<Instant> = None;
        loop {
            if !handed.is_empty() {
                self.take_handed(&mut handed, inbox, &mut next_signer).await?;
            }
            // The polled path: at most once per poll interval while hand-offs keep the worker
            // busy, and whenever it was woken or the interval passed.
            if polled_at.is_none_or(|at| at.elapsed() >= self.poll) {
                polled_at = Some(Instant::now());
                self.take_polled(&mut next_signer, &shutdown).await?;
                self.rebroadcast(&[AttemptStatus::Signed]).await?;
                self.monitor(&mut seen, &mut gaps, pass).await?;
                if pass.is_multiple_of(FULL_DROP_CHECK_EVERY) {
                    self.release_leases_of_dead_processes().await?;
                }
                pass = pass.wrapping_add(1);
            }
            if *shutdown.borrow() {
                return Ok(());
            }
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                Some(job) = inbox.recv() => handed.push(job),
                _ = self.inbox.wake.notified() => polled_at = None,
                _ = tokio::time::sleep(self.poll) => {}
                died = actors.died() => return Err(died),
                Some(error) = failed.recv() => return Err(error),
            }
        }
    }

    /// Claims queued jobs from the store while some signer has room, and sends them.
    async fn take_polled(
        &self,
        next_signer: &mut usize,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<()> {
        // Claim only while some signer has room: otherwise jobs stay queued (for this
        // instance or another) instead of being leased and held.
        while let Some(signer) = self.signer_with_room(next_signer).await?
            && let Some(job) = self.claim().await?
        {
            let mut group = vec![job];
            if self.batches(group[0].kind) {
                group.extend(self.claim_more_of(group[0].kind).await?);
            }
            self.process_group(group, signer).await?;
            if *shutdown.borrow() {
                break;
            }
        }
        Ok(())
    }

    /// Leases the jobs handed over in `handed` (and those arriving on `inbox` within the
    /// batch window when they are batchable) and sends them: seller claims and payments in
    /// batches, the others one by one. A job another instance or the polled path took first
    /// is passed over; with every signer's window full the hand-offs are dropped and the
    /// polled path takes the jobs when there is room.
    async fn take_handed(
        &self,
        handed: &mut Vec<Handed>,
        inbox: &mut mpsc::Receiver<Handed>,
        next_signer: &mut usize,
    ) -> Result<()> {
        while !handed.is_empty() {
            let Some(signer) = self.signer_with_room(next_signer).await? else {
                handed.clear();
                return Ok(());
            };
            self.fill(handed, inbox).await;
            let take = handed.len().min(self.batch_max.max(1));
            let ids: Vec<_> = handed.drain(..take).map(|h| h.id).collect();
            let jobs = self.lease_ids(&ids).await?;
            self.process_group(jobs, signer).await?;
        }
        Ok(())
    }

    /// Whether jobs of `kind` go out in batches here: seller claims, closes and withdraws, and
    /// payments when there is a `TransferBatch`, unless batching is off (`batch_max` 1).
    fn batches(&self, kind: JobKind) -> bool {
        self.batch_max > 1
            && match kind {
                JobKind::SellerClaim | JobKind::InitiateClose | JobKind::BuyerWithdraw => true,
                JobKind::Payment => self.payment_batcher.is_some(),
                _ => false,
            }
    }

    /// Sends jobs leased together: those of a kind that [batches](Relay::batches) as one batch
    /// per kind (closes and withdraws together), the others one by one.
    async fn process_group(&self, jobs: Vec<Job>, signer: usize) -> Result<()> {
        let (batchable, alone): (Vec<_>, Vec<_>) =
            jobs.into_iter().partition(|job| self.batches(job.kind));
        let (claims, rest): (Vec<_>, Vec<_>) =
            batchable.into_iter().partition(|job| job.kind == JobKind::SellerClaim);
        let (payments, settlements): (Vec<_>, Vec<_>) =
            rest.into_iter().partition(|job| job.kind == JobKind::Payment);
        if !claims.is_empty() {
            self.process_key_only(claims, JobKind::SellerClaimBatch, signer).await?;
        }
        if !settlements.is_empty() {
            self.process_key_only(settlements, JobKind::SettlementBatch, signer).await?;
        }
        if let (false, Some(batcher)) = (payments.is_empty(), self.payment_batcher) {
            self.process_payments(payments, batcher, signer).await?;
        }
        for job in alone {
            self.process(job, signer).await?;
        }
        Ok(())
    }

    /// Waits, within the batch window, for more hand-offs when every one in `handed` is a
    /// batchable job and there are fewer than a batch of them: a batch fills by size first,
    /// then by time.
    async fn fill(&self, handed: &mut Vec<Handed>, inbox: &mut mpsc::Receiver<Handed>) {
        while let Ok(more) = inbox.try_recv() {
            handed.push(more);
        }
        if !handed.iter().all(|h| self.batches(h.kind)) {
            return;
        }
        let until = tokio::time::Instant::now() + self.batch_window();
        while handed.len() < self.batch_max {
            match tokio::time::timeout_at(until, inbox.recv()).await {
                Ok(Some(more)) => handed.push(more),
                Ok(None) | Err(_) => break,
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
            if in_flight.get(&address).copied().unwrap_or(0) < self.limits.max_in_flight {
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
            crate::metrics::jobs_leased("polled", 1);
            crate::metrics::queue_pickup((at - queued).max(0) as f64);
        }
        // An idle poll changed nothing: ending it without a commit leaves the API's read model
        // (which any commit makes stale) alone.
        if job.is_some() {
            tx.commit().await.map_err(StoreError::from)?;
        } else {
            tx.rollback().await.map_err(StoreError::from)?;
        }
        Ok(job)
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
}

/// The host and process id in an instance name `{host}-{pid}-{n}`.
fn host_and_pid(instance: &str) -> Option<(&str, u32)> {
    let mut parts = instance.rsplitn(3, '-');
    let (_, pid, host) = (parts.next()?, parts.next()?, parts.next()?);
    Some((host, pid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{host_and_pid, window_for};

    #[test]
    fn the_batch_window_follows_the_block_time_within_bounds() {
        let ms = Duration::from_millis;
        let window = |block: Option<u64>, lanes| window_for(block.map(ms), lanes).as_millis();
        assert_eq!(window(Some(1_000), 16), 62, "one key on anvil's 1 s blocks");
        assert_eq!(window(Some(2_000), 16), 125, "one key on Base's 2 s blocks");
        assert_eq!(window(Some(1_000), 48), 20, "three keys share the block");
        assert_eq!(window(Some(12_000), 16), 250, "a slow chain stops at 250 ms");
        assert_eq!(window(Some(0), 16), 10, "automine stops at 10 ms");
        assert_eq!(window(None, 16), 125, "Base's block time until it is measured");
        assert_eq!(window(Some(1_000), 0), 250, "no lanes counts as one");
    }

    #[test]
    fn instance_names_give_host_and_pid() {
        assert_eq!(host_and_pid("box-1-4242-0"), Some(("box-1", 4242)));
        assert_eq!(host_and_pid("pactum-7-3"), Some(("pactum", 7)));
        assert_eq!(host_and_pid("nohyphen"), None);
        assert_eq!(host_and_pid("host-notapid-0"), None);
    }
}
