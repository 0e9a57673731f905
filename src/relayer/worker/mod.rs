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
//! Sponsored seller claims are batched: after taking one, the worker takes up to `batch_max` of
//! them (at once when that many are queued, else after waiting briefly for more) and sends them
//! as one `sellerClaimBatch` transaction with the gas floor that pays every member, unsimulated
//! (a new job of kind [`jobs::KIND_SELLER_CLAIM_BATCH`] that the claims' settlement actions move
//! to; the claim jobs end `batched`). The contract skips a claim it cannot pay and pays the
//! others, so one bad claim cannot hold the others back. A claim whose
//! buyer or seller has code (a smart wallet, an EIP-7702 delegated EOA) is never batched: its
//! wallet's ERC-1271 answer can change between simulation and inclusion ([`wallets`]).
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
use std::time::Duration;

use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use tokio::sync::{Notify, watch};

use super::Result;
use super::actors::{Actors, SignerFaults};
use super::signer::{Limits, SignerHandle};
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
    /// Poked when a job is queued.
    pub wake: Arc<Notify>,
    /// Fallback poll period.
    pub poll: Duration,
    /// Most seller claims (or payments) in one batch transaction (1: no batching).
    pub batch_max: usize,
    /// The `TransferBatch` contract payments are batched through; `None`: one transaction each.
    pub payment_batcher: Option<alloy::primitives::Address>,
    /// How long to wait for more claims after taking one.
    pub batch_wait: Duration,
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
        let mut actors =
            Actors::spawn(&self.keys, &self.provider, &self.store, self.limits, &self.faults);
        let relay = Relay { worker: &self, signers: actors.handles.clone() };
        relay.serve(shutdown, &mut actors).await
    }
}

/// One run of the worker: its settings and the signer actors started for this run.
struct Relay<'a> {
    worker: &'a Worker,
    /// One handle per relayer account, alive as long as the run.
    signers: Vec<SignerHandle>,
}

impl Deref for Relay<'_> {
    type Target = Worker;

    fn deref(&self) -> &Worker {
        self.worker
    }
}

impl Relay<'_> {
    /// Serves the queue until `shutdown` turns true or an actor of `actors` dies.
    async fn serve(&self, mut shutdown: watch::Receiver<bool>, actors: &mut Actors) -> Result<()> {
        self.rebroadcast(&[AttemptStatus::Signed, AttemptStatus::Broadcast]).await?;
        self.release_leases_of_dead_processes().await?;
        let mut next_signer = 0usize;
        // The replacement countdown survives restarts: it starts where the store says.
        let mut seen = attempts::first_seen_blocks(self.store.reader()).await?;
        let mut gaps = HashSet::new();
        let mut pass = 0u64;
        loop {
            // Claim only while some signer has room: otherwise jobs stay queued (for this
            // instance or another) instead of being leased and held.
            while let Some(signer) = self.signer_with_room(&mut next_signer).await?
                && let Some(job) = self.claim().await?
            {
                if job.kind == JobKind::SellerClaim && self.batch_max > 1 {
                    self.process_claims(job, signer).await?;
                } else if job.kind == JobKind::Payment
                    && self.batch_max > 1
                    && let Some(batcher) = self.payment_batcher
                {
                    self.process_payments(job, batcher, signer).await?;
                } else {
                    self.process(job, signer).await?;
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
            self.rebroadcast(&[AttemptStatus::Signed]).await?;
            self.monitor(&mut seen, &mut gaps, pass).await?;
            if pass.is_multiple_of(FULL_DROP_CHECK_EVERY) {
                self.release_leases_of_dead_processes().await?;
            }
            pass = pass.wrapping_add(1);
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
                died = actors.died() => return Err(died),
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
    use super::host_and_pid;

    #[test]
    fn instance_names_give_host_and_pid() {
        assert_eq!(host_and_pid("box-1-4242-0"), Some(("box-1", 4242)));
        assert_eq!(host_and_pid("pactum-7-3"), Some(("pactum", 7)));
        assert_eq!(host_and_pid("nohyphen"), None);
        assert_eq!(host_and_pid("host-notapid-0"), None);
    }
}
