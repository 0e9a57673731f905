//! The approval sweeper: expires approvals whose time ran out, with their consequences (an
//! activation they held ends `expired`, an audit row, `approval.expired`), so an owner's late
//! click cannot approve what stopped waiting. Deciding an approval checks its time too, so the
//! sweeper's pace bounds only how soon the expiry is announced.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{self, Store, StoreError};

/// Approvals expired per transaction.
const BATCH: i64 = 100;

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
            let expired = store::governance::expire_due(&mut tx, store::now(), BATCH).await?;
            tx.commit().await?;
            total += expired;
            if expired < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Sweeps until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        loop {
            match self.sweep().await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "approvals expired"),
                Err(error) => return Err(error.to_string()),
            }
            tokio::select! {
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return Ok(()) },
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}
