//! Rolling a reorganisation back: find the highest block the old and the new chain share, and
//! undo everything recorded above it in one store transaction (escrow events, relayer
//! transactions, receipts, intents' transactions), folding each touched agreement's escrow
//! state again.

use std::collections::BTreeMap;

use alloy::primitives::B256;
use serde_json::json;

use super::apply::chain_event;
use super::{Result, Watcher};
use crate::agreement::settlement::EscrowState;
use crate::agreement::status::AgreementStatus;
use crate::store::chain::{self as chain_store, Cursor};
use crate::store::jobs::JobKind;
use crate::store::outbox::EventType;
use crate::store::{
    Conn, agreements, attempts, now, outbox, receipts as receipt_store, settlement,
};

impl Watcher {
    /// The chain changed under the cursor: finds the highest block at or below `from` that the
    /// store and the chain agree on and rolls back everything recorded above it.
    pub(super) async fn reorganised(
        &self,
        stored: Option<(u64, B256)>,
        from: u64,
        head: u64,
        head_timestamp: u64,
    ) -> Result<()> {
        let mut fork = None;
        let recorded = chain_store::blocks_below(self.store.reader(), from).await?;
        for (number, hash) in &recorded {
            if self.block(*number).await?.0 == *hash {
                fork = Some(*number);
                break;
            }
        }
        let fork = fork.unwrap_or_else(|| {
            // Deeper than the recorded window (or recorded before the window existed): roll
            // back as far as it reaches; what lies below is beyond repair by this watcher.
            let floor = recorded.last().map_or(from, |(n, _)| *n);
            tracing::error!(from, floor, "reorganisation deeper than the recorded blocks");
            floor.saturating_sub(1)
        });
        crate::metrics::reorg();
        tracing::warn!(fork, depth = from - fork.min(from), "chain reorganised; rolling back");
        self.roll_back(stored, fork, head, head_timestamp).await
    }

    /// Rolls back, in one store transaction, every effect of the blocks above `fork` (see the
    /// module's doc) and moves the cursor to `fork`; nothing when the cursor has moved from
    /// `stored` meanwhile (another watcher rolled the same reorganisation back first).
    pub(super) async fn roll_back(
        &self,
        stored: Option<(u64, B256)>,
        fork: u64,
        head: u64,
        head_timestamp: u64,
    ) -> Result<()> {
        let fork_hash = self.block(fork).await?.0;
        let at = now();
        let mut tx = self.store.begin().await?;
        let cursor =
            Cursor { block_number: fork, block_hash: fork_hash, head_number: head, head_timestamp };
        if !chain_store::move_cursor(&mut tx, stored, &cursor, at).await? {
            tx.rollback().await?;
            tracing::info!(fork, "reorganisation already rolled back by another watcher");
            return Ok(());
        }
        let keys = chain_store::forget_above(&mut tx, fork).await?;
        let withdrawn = receipt_store::withdraw_above(&mut tx, fork).await?;
        let unmined = attempts::unmine_above(&mut tx, fork, at).await?;
        let payments = super::payments::roll_back(&mut tx, fork, at).await?;
        let intents = super::intents::roll_back(&mut tx, fork, at).await?;
        let mut touched: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (agreement, receipt) in withdrawn {
            touched.entry(agreement.as_str().to_owned()).or_default().push(receipt.as_str().into());
        }
        for job in &unmined {
            if job.kind == JobKind::Activate {
                if let Some(agreement) = &job.agreement_id {
                    touched.entry(agreement.as_str().to_owned()).or_default();
                }
                continue;
            }
            for action in settlement::actions_of_job(&mut tx, &job.id).await? {
                touched.entry(action.agreement_id.as_str().to_owned()).or_default();
            }
            settlement::reopen_job(&mut tx, &job.id, at).await?;
        }
        for key in keys {
            if let Some(record) = agreements::get_by_key(&mut tx, key).await? {
                touched.entry(record.id.as_str().to_owned()).or_default();
            }
        }
        for (id, receipts) in &touched {
            let Some(record) = agreements::get_in(&mut tx, id).await? else { continue };
            let status = refold(&mut tx, &record, at).await?;
            let data = json!({
                "fork_block_number": fork,
                "status": status,
                "withdrawn_receipts": receipts,
            });
            outbox::record(&mut tx, Some(&record.id), EventType::AgreementReorged, &data, at)
                .await?;
        }
        tx.commit().await?;
        tracing::warn!(
            fork,
            agreements = touched.len(),
            transactions = unmined.len(),
            payments,
            intents,
            "rolled back to the last common block"
        );
        Ok(())
    }
}

/// Folds `record`'s escrow state again from its applied events (after a reorganisation took
/// some away) and stores it; an agreement with no activation left goes back to `activating`.
/// Returns the agreement's status now.
async fn refold(tx: &mut Conn, record: &agreements::AgreementRecord, at: i64) -> Result<String> {
    let (Some(key), Some(terms)) = (record.agreement_key, &record.terms) else {
        return Ok(record.status.as_str().to_owned());
    };
    let events = chain_store::applied_events_of(tx, key).await?;
    let mut state = EscrowState::NONE;
    for event in &events {
        if let Some(change) = chain_event(event, terms.buyer) {
            state = state.apply(&change);
        }
    }
    match (state.status.agreement_status(), events.last()) {
        (Some(status), Some(last)) => {
            let place = (last.tx_hash, last.block_number, last.block_hash);
            agreements::escrow_changed(tx, &record.id, &state, status, place, at).await?;
            Ok(status.as_str().to_owned())
        }
        _ if agreements::activation_unconfirmed(tx, &record.id, at).await? => {
            Ok(AgreementStatus::Activating.as_str().to_owned())
        }
        _ => Ok(record.status.as_str().to_owned()),
    }
}
