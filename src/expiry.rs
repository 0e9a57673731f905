//! The approval sweeper: expires approvals whose time ran out, with their consequences (an
//! activation they held ends `expired`, an audit row, `approval.expired`), so an owner's late
//! click cannot approve what stopped waiting; and spend-guard holds and budget leases whose
//! time ran out, giving their amounts back; and intents whose transaction was not found mined
//! in time, with their holds. It reads only the store, so what was due while no
//! instance ran is expired by the first pass after a restart. Deciding an approval checks its time too, so the
//! sweeper's pace bounds only how soon the expiry is announced. Once an hour it also drops the
//! per-second decision counts no velocity window can reach (older than 32 days).

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{self, Store, StoreError};

/// Approvals expired per transaction.
const BATCH: i64 = 100;

/// How far back velocity counts are kept: past the longest window a rule may have (31 days).
const COUNTS_KEPT_SECS: i64 = 32 * 86_400;

/// How often old counts are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Expires due approvals every `poll`.
#[derive(Debug, Clone)]
pub struct ApprovalSweeper {
    /// The store.
    pub store: Store,
    /// How often to look.
    pub poll: Duration,
}

impl ApprovalSweeper {
    /// Expires what is due now; returns how many.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let at = store::now();
            let expired = store::governance::expire_due(&mut tx, at, BATCH).await?
                + store::governance::guard::expire_due(&mut tx, at, BATCH).await?
                + store::intents::expire_due(&mut tx, at, BATCH).await?;
            // Nothing due, nothing changed: no commit (any commit makes the read model stale).
            if expired == 0 {
                tx.rollback().await?;
                return Ok(total);
            }
            tx.commit().await?;
            total += expired;
            if expired < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Drops velocity counts older than any window can reach; returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let mut tx = self.store.begin().await?;
        let pruned =
            store::governance::prune_counts(&mut tx, store::now() - COUNTS_KEPT_SECS).await?;
        tx.commit().await?;
        Ok(pruned)
    }

    /// Sweeps until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let mut pruned_at: Option<std::time::Instant> = None;
        loop {
            match self.sweep().await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "approvals expired"),
                Err(error) => return Err(error.to_string()),
            }
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                self.prune().await.map_err(|e| e.to_string())?;
                pruned_at = Some(std::time::Instant::now());
            }
            tokio::select! {
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return Ok(()) },
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}
