//! The chain watcher: reads each new block once (its transaction hashes against the relayer's
//! in-flight attempts, and the escrow contract's logs), then, at the confirmation depth, turns
//! what it read into job and agreement status. The chain is the source of truth, so an
//! activation relayed by anyone shows up exactly like Pactum's own.
//!
//! Escrow events are applied once each, in block and log order, at the confirmation depth: each
//! moves the agreement's escrow state by the pure rules of `agreement::settlement` and writes an
//! outbox event in the same transaction. A settlement sent from a party's own wallet therefore
//! shows up exactly like one Pactum relayed. An event that moves money (activation, seller claim,
//! buyer withdraw) also gets its signed receipt (`crate::receipts`) in that transaction.
//!
//! Reorganisations: the watcher keeps the hashes of the blocks it read (`chain_blocks`). When
//! the chain's block at the cursor changes, or the next block's parent is not the block read
//! last, it walks down to the highest block the old and the new chain share and rolls back
//! everything recorded above it, confirmed or not, in one store transaction: the escrow events
//! are forgotten and each touched agreement's escrow state is folded again from the events
//! left (an activation taken back leaves the agreement `activating`, `submitted`); the
//! relayer's transactions mined there go back to `broadcast` with their jobs and settlement
//! actions back in flight (the worker sends again what the node no longer has); receipts of
//! those blocks are withdrawn; each touched agreement gets an `agreement.reorged` event. Then
//! the new canonical blocks are read, and what they hold is confirmed and applied again at the
//! confirmation depth.
//!
//! Several instances on one database each run a watcher over the one cursor: each block's
//! transaction, and a rollback's, first moves the cursor on condition that it still stands
//! where this watcher saw it; the watcher that finds it moved drops its transaction and starts
//! its next pass from the new position. So each block is recorded, and each reorganisation
//! rolled back, once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{B256, Log as PrimitiveLog};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log, TransactionRequest};
use alloy::sol_types::SolEvent;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::context::ChainContext;
use super::revert;
use crate::agreement::settlement::{ChainEvent, EscrowState};
use crate::agreement::status::AgreementStatus;
use crate::escrow::bindings::UsageEscrow;
use crate::receipts::{self, Deployment, EventFacts, Parties, ReceiptKey};
use crate::store::chain::{self as chain_store, Cursor, EscrowEvent};
use crate::store::jobs::{self, Attempt, Job};
use crate::store::{
    Conn, Store, StoreError, agreements, now, outbox, receipts as receipt_store, settlement,
};

/// Why a watcher pass failed (it is retried on the next tick).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The RPC endpoint failed.
    #[error("RPC error: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// The node does not have a block it just reported.
    #[error("block {0} is missing")]
    MissingBlock(u64),
}

impl From<sqlx::Error> for WatchError {
    fn from(error: sqlx::Error) -> Self {
        WatchError::Store(error.into())
    }
}

/// The result type of the watcher.
pub type Result<T, E = WatchError> = std::result::Result<T, E>;

/// Blocks read per pass at most, so a long catch-up still commits progress regularly.
const MAX_BLOCKS_PER_PASS: u64 = 200;

/// The watcher's configuration.
#[derive(Debug, Clone)]
pub struct Watcher {
    /// The store.
    pub store: Store,
    /// The chain and the escrow.
    pub chain: ChainContext,
    /// Blocks deep a block must be to count as confirmed (1 = the head itself).
    pub confirmations: u64,
    /// Poll period.
    pub poll: Duration,
    /// The first block to read on a fresh store; `None` starts at the head.
    pub start_block: Option<u64>,
    /// Signs the receipt of each confirmed escrow event that moves money.
    pub receipt_key: ReceiptKey,
}

impl Watcher {
    /// Runs passes until `shutdown` turns true; a failed pass is logged and retried.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        loop {
            if let Err(error) = self.pass().await {
                tracing::warn!(%error, "watcher pass failed; retrying");
            }
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// One pass: read new blocks, then confirm what is deep enough.
    pub async fn pass(&self) -> Result<()> {
        let latest = self
            .chain
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await?
            .ok_or(WatchError::MissingBlock(0))?;
        let (head, head_timestamp) = (latest.header.number, latest.header.timestamp);
        let read = chain_store::cursor(self.store.reader()).await?;
        // Where the store's position stood when this watcher last saw it: every move of it is
        // conditional on that, so of two watchers on one database one records each step.
        let mut stored = read.as_ref().map(|c| (c.block_number, c.block_hash));
        let mut cursor = match read {
            Some(cursor) => cursor,
            None => {
                let start = self.start_block.unwrap_or(head).min(head);
                // The cursor names the last block read, so start one before `start`.
                let before = start.saturating_sub(1);
                let block = self.block(before).await?;
                Cursor {
                    block_number: before,
                    block_hash: block.0,
                    head_number: head,
                    head_timestamp,
                }
            }
        };
        if head < cursor.block_number {
            let recorded = chain_store::blocks_below(self.store.reader(), head).await?;
            if recorded.first() == Some(&(head, latest.header.hash)) {
                // The node's head is a block read before, unchanged: this node is behind (a
                // lagging fallback endpoint), not on another chain. Wait for it.
                tracing::warn!(head, cursor = cursor.block_number, "node behind the watcher");
                return Ok(());
            }
        }
        if head < cursor.block_number
            || (head == cursor.block_number && latest.header.hash != cursor.block_hash)
        {
            // The block read last was replaced (same height or a shorter chain).
            let from = cursor.block_number.min(head);
            return self.reorganised(stored, from, head, head_timestamp).await;
        }
        let last = head.min(cursor.block_number + MAX_BLOCKS_PER_PASS);
        // Every hash a job in flight ever had: a replaced attempt may be the one mined.
        let mut in_flight: HashMap<B256, Attempt> = jobs::attempts_watched(self.store.reader())
            .await?
            .into_iter()
            .map(|a| (a.tx_hash, a))
            .collect();
        for number in cursor.block_number + 1..=last {
            let (hash, parent, tx_hashes) = self.block_with_hashes(number).await?;
            if parent != cursor.block_hash && number > 0 {
                // The block read last is no longer this block's parent.
                return self.reorganised(stored, cursor.block_number, head, head_timestamp).await;
            }
            let logs = self
                .chain
                .provider
                .get_logs(&Filter::new().address(self.chain.escrow).at_block_hash(hash))
                .await?;
            let mut mined = Vec::new();
            for tx_hash in tx_hashes.iter().filter(|h| in_flight.contains_key(*h)) {
                if let Some(receipt) = self.chain.provider.get_transaction_receipt(*tx_hash).await?
                {
                    mined.push((*tx_hash, receipt.status()));
                }
            }
            cursor = Cursor {
                block_number: number,
                block_hash: hash,
                head_number: head,
                head_timestamp,
            };
            let mut tx = self.store.begin().await?;
            if !chain_store::move_cursor(&mut tx, stored, &cursor, now()).await? {
                // Another watcher recorded this block first; start again from where it is.
                tx.rollback().await?;
                return Ok(());
            }
            for (tx_hash, succeeded) in &mined {
                jobs::attempt_mined(&mut tx, *tx_hash, number, hash, *succeeded, now()).await?;
                in_flight.remove(tx_hash);
            }
            for log in &logs {
                if let Some(event) = decode_event(log, number, hash) {
                    chain_store::insert_event(&mut tx, &event).await?;
                }
            }
            chain_store::record_block(&mut tx, number, hash).await?;
            tx.commit().await?;
            stored = Some((number, hash));
        }
        if cursor.head_number != head || cursor.head_timestamp != head_timestamp {
            cursor.head_number = head;
            cursor.head_timestamp = head_timestamp;
            let mut tx = self.store.begin().await?;
            chain_store::move_cursor(&mut tx, stored, &cursor, now()).await?;
            tx.commit().await?;
        }
        self.confirm(head).await?;
        self.expire(head_timestamp).await
    }

    /// Applies everything at least `confirmations` deep whose block is still canonical.
    async fn confirm(&self, head: u64) -> Result<()> {
        let Some(depth_height) = (head + 1).checked_sub(self.confirmations.max(1)) else {
            return Ok(());
        };
        let mut canonical: HashMap<u64, B256> = HashMap::new();
        for attempt in jobs::attempts_in(self.store.reader(), &["mined"]).await? {
            let (Some(number), Some(hash)) = (attempt.block_number, attempt.block_hash) else {
                continue;
            };
            if number > depth_height {
                continue;
            }
            if self.canonical_hash(&mut canonical, number).await? != hash {
                // Reorganised away: watch it again as broadcast (it may be re-mined).
                tracing::warn!(tx_hash = %attempt.tx_hash, number, "mined block was reorganised away");
                let mut tx = self.store.begin().await?;
                jobs::attempt_unmined(&mut tx, &attempt).await?;
                tx.commit().await?;
                continue;
            }
            let job = jobs::get(self.store.reader(), attempt.job_id.as_str()).await?;
            let error = match (&job, attempt.succeeded) {
                (Some(job), Some(false)) => Some(self.revert_reason(&attempt, job, number).await),
                (None, Some(false)) => Some("reverted".to_owned()),
                _ => None,
            };
            let mut tx = self.store.begin().await?;
            if !jobs::attempt_confirmed(&mut tx, &attempt, error.as_deref(), now()).await? {
                continue;
            }
            if let Some(job) = &job {
                job_outcome(&mut tx, job, &attempt, error.as_deref()).await?;
            }
            tx.commit().await?;
        }
        for event in chain_store::unapplied_events(self.store.reader(), depth_height).await? {
            if self.canonical_hash(&mut canonical, event.block_number).await? != event.block_hash {
                continue;
            }
            let mut tx = self.store.begin().await?;
            if !chain_store::mark_applied(&mut tx, &event).await? {
                continue;
            }
            apply_event(&mut tx, &event, &self.issuer()).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The chain changed under the cursor: finds the highest block at or below `from` that the
    /// store and the chain agree on and rolls back everything recorded above it.
    async fn reorganised(
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
    async fn roll_back(
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
        let unmined = jobs::unmine_above(&mut tx, fork, at).await?;
        let mut touched: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (agreement, receipt) in withdrawn {
            touched.entry(agreement.as_str().to_owned()).or_default().push(receipt.as_str().into());
        }
        for job in &unmined {
            if job.kind == jobs::KIND_ACTIVATE {
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
            outbox::record(&mut tx, Some(&record.id), "agreement.reorged", &data, at).await?;
        }
        tx.commit().await?;
        tracing::warn!(
            fork,
            agreements = touched.len(),
            transactions = unmined.len(),
            "rolled back to the last common block"
        );
        Ok(())
    }

    /// Marks agreements whose activation deadline passed (by the chain's clock) as expired.
    async fn expire(&self, timestamp: u64) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let expired = agreements::expire_due(&mut tx, timestamp as i64).await?;
        for id in &expired {
            outbox::record(&mut tx, Some(id), "agreement.expired", &json!({}), now()).await?;
        }
        tx.commit().await?;
        if !expired.is_empty() {
            tracing::info!(expired = expired.len(), "agreements expired before activation");
        }
        Ok(())
    }

    /// Why a mined transaction reverted: the call replayed on the state its block left. A revert
    /// usually comes from a transaction earlier in the same block (a front-run, a transfer that
    /// emptied the payer), which the state before the block would not show.
    async fn revert_reason(&self, attempt: &Attempt, job: &Job, number: u64) -> String {
        let call = TransactionRequest::default()
            .from(attempt.signer)
            .to(job.to)
            .input(job.calldata.clone().into())
            .gas_limit(attempt.gas_limit);
        match self.chain.provider.call(call).block(BlockId::number(number)).await {
            Ok(_) => "reverted (out of gas, or the state changed again later in the block)".into(),
            Err(error) => revert::revert_data(&error)
                .map(|data| revert::decode_revert(&data))
                .unwrap_or_else(|| format!("reverted: {error}")),
        }
    }

    /// What receipts are signed with and name as their deployment.
    fn issuer(&self) -> Issuer<'_> {
        Issuer {
            key: &self.receipt_key,
            deployment: Deployment {
                chain_id: self.chain.chain_id,
                escrow: self.chain.escrow,
                token: self.chain.token,
            },
        }
    }

    async fn canonical_hash(&self, cache: &mut HashMap<u64, B256>, number: u64) -> Result<B256> {
        if let Some(hash) = cache.get(&number) {
            return Ok(*hash);
        }
        let hash = self.block(number).await?.0;
        cache.insert(number, hash);
        Ok(hash)
    }

    async fn block(&self, number: u64) -> Result<(B256, B256)> {
        let (hash, parent, _) = self.block_with_hashes(number).await?;
        Ok((hash, parent))
    }

    async fn block_with_hashes(&self, number: u64) -> Result<(B256, B256, Vec<B256>)> {
        let block = self
            .chain
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await?
            .ok_or(WatchError::MissingBlock(number))?;
        let hashes = block.transactions.hashes().collect();
        Ok((block.header.hash, block.header.parent_hash, hashes))
    }
}

/// The receipt key and the deployment receipts name.
struct Issuer<'a> {
    key: &'a ReceiptKey,
    deployment: Deployment,
}

/// Signs and stores the receipt of `event` when it moves money (activation, seller claim,
/// buyer withdraw; see `ReceiptKind::of_event`), in the caller's transaction. A receipt for the
/// same transaction and log index already stored is kept as it is.
async fn issue_receipt(
    tx: &mut Conn,
    event: &EscrowEvent,
    record: &agreements::AgreementRecord,
    issuer: &Issuer<'_>,
) -> Result<()> {
    let parties = Parties {
        agreement_id: record.id.clone(),
        buyer_agent_id: record.buyer_agent_id.clone(),
        seller_agent_id: record.seller_agent_id.clone(),
        buyer_wallet: record.terms.as_ref().map_or(record.buyer_wallet, |t| t.buyer),
        seller_wallet: record
            .terms
            .as_ref()
            .map(|t| t.seller)
            .or(record.seller_wallet)
            .unwrap_or_default(),
    };
    let facts = EventFacts {
        event: &event.event,
        agreement_key: event.agreement_key,
        data: &event.data,
        tx_hash: event.tx_hash,
        block_number: event.block_number,
        block_hash: event.block_hash,
        log_index: event.log_index,
    };
    let Some(receipt) = receipts::receipt_for(&facts, parties, issuer.deployment, now()) else {
        return Ok(());
    };
    let receipt = issuer.key.sign(receipt);
    let stored = receipt_store::insert(tx, &receipt).await?;
    tracing::info!(receipt_id = %receipt.id, kind = %receipt.kind, agreement_id = %record.id, stored, "receipt issued");
    Ok(())
}

/// Applies one confirmed escrow event to the agreement it concerns (if Pactum has it): the
/// escrow state moves as the contract moved it, the agreement status follows, and the change
/// goes to the outbox in the same transaction, with the event's signed receipt when it moves
/// money.
async fn apply_event(tx: &mut Conn, event: &EscrowEvent, issuer: &Issuer<'_>) -> Result<()> {
    let Some(record) = agreements::get_by_key(tx, event.agreement_key).await? else {
        return Ok(());
    };
    issue_receipt(tx, event, &record, issuer).await?;
    let at = now();
    if event.event == "EscrowActivated" {
        let applied = agreements::escrow_activated(
            tx,
            event.agreement_key,
            event.tx_hash,
            event.block_number,
            event.block_hash,
            at,
        )
        .await?;
        if applied {
            let data = json!({ "tx_hash": event.tx_hash, "block_number": event.block_number });
            outbox::record(tx, Some(&record.id), "activation.confirmed", &data, at).await?;
        }
        tracing::info!(agreement_key = %event.agreement_key, applied, "escrow activation confirmed");
        return Ok(());
    }
    let (Some(seen), Some(terms)) = (&record.escrow, &record.terms) else {
        tracing::warn!(agreement_key = %event.agreement_key, event = %event.event, "settlement event before activation; ignored");
        return Ok(());
    };
    let Some(change) = chain_event(event, terms.buyer) else { return Ok(()) };
    let state = seen.state.apply(&change);
    let status = state.status.agreement_status().unwrap_or(record.status);
    agreements::escrow_changed(
        tx,
        &record.id,
        &state,
        status,
        (event.tx_hash, event.block_number, event.block_hash),
        at,
    )
    .await?;
    let event_type = match change {
        ChainEvent::CloseInitiated { .. } => "settlement.close_initiated",
        ChainEvent::UsageClaimed { .. } => "settlement.claimed",
        ChainEvent::BuyerWithdrawn => "settlement.withdrawn",
        ChainEvent::Settled { .. } => "agreement.settled",
        ChainEvent::Activated | ChainEvent::ClaimSkipped => return Ok(()),
    };
    let mut data = event.data.clone();
    data["tx_hash"] = json!(event.tx_hash);
    data["block_number"] = json!(event.block_number);
    data["status"] = json!(status);
    outbox::record(tx, Some(&record.id), event_type, &data, at).await?;
    tracing::info!(agreement_id = %record.id, event = %event.event, %status, "escrow event applied");
    Ok(())
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

/// A stored escrow event as the pure state machine's input; `buyer` tells whose close it was.
fn chain_event(event: &EscrowEvent, buyer: alloy::primitives::Address) -> Option<ChainEvent> {
    let units = |field: &str| event.data[field].as_str().and_then(|v| v.parse::<u64>().ok());
    Some(match event.event.as_str() {
        "EscrowActivated" => ChainEvent::Activated,
        "CloseInitiated" => ChainEvent::CloseInitiated {
            by_buyer: event.data["initiator"].as_str().and_then(|a| a.parse().ok()) == Some(buyer),
            closes_at: units("closes_at")?,
        },
        "UsageClaimed" => ChainEvent::UsageClaimed { cumulative_units: units("cumulative_units")? },
        "BuyerWithdrawn" => ChainEvent::BuyerWithdrawn,
        "AgreementSettled" => ChainEvent::Settled {
            claimed_units: units("claimed_units")?,
            buyer_amount_is_zero: event.data["buyer_amount"].as_str() == Some("0"),
        },
        "ClaimSkipped" => ChainEvent::ClaimSkipped,
        _ => return None,
    })
}

/// What a job's confirmed (or reverted) attempt means for what it carried: an activation fails
/// with the revert reason; each settlement action is confirmed, or failed with the reason — a
/// batched claim the contract skipped (nothing left to claim) fails too, saying so.
async fn job_outcome(
    tx: &mut Conn,
    job: &Job,
    attempt: &Attempt,
    error: Option<&str>,
) -> Result<()> {
    let at = now();
    if let Some(reason) = error {
        let data = json!({ "job_id": job.id, "kind": job.kind, "tx_hash": attempt.tx_hash, "error": reason });
        outbox::record(tx, job.agreement_id.as_ref(), "relayer.job_failed", &data, at).await?;
    }
    if job.kind == jobs::KIND_ACTIVATE {
        if let (Some(reason), Some(agreement)) = (error, &job.agreement_id)
            && agreements::activation_failed(tx, agreement, reason, at).await?
        {
            let data = json!({ "error": reason, "tx_hash": attempt.tx_hash });
            outbox::record(tx, Some(agreement), "activation.failed", &data, at).await?;
        }
        return Ok(());
    }
    for action in settlement::actions_of_job(tx, &job.id).await? {
        let outcome = match error {
            Some(reason) => Some(reason.to_owned()),
            None => {
                let key = agreements::get_in(tx, action.agreement_id.as_str())
                    .await?
                    .and_then(|a| a.agreement_key);
                let events = match key {
                    Some(key) => chain_store::events_of(tx, attempt.tx_hash, key).await?,
                    None => Vec::new(),
                };
                let skipped = events.iter().any(|e| e.event == "ClaimSkipped")
                    && !events.iter().any(|e| e.event == "UsageClaimed");
                skipped.then(|| "ClaimSkipped: nothing left to claim when the batch ran".to_owned())
            }
        };
        settlement::finish(
            tx,
            &action.id,
            outcome.as_deref(),
            Some(attempt.tx_hash),
            attempt.block_number,
            at,
        )
        .await?;
        let event_type = if outcome.is_some() {
            "settlement_action.failed"
        } else {
            "settlement_action.confirmed"
        };
        let data = json!({
            "settlement_action_id": action.id,
            "action": action.action.as_str(),
            "tx_hash": attempt.tx_hash,
            "error": outcome,
        });
        outbox::record(tx, Some(&action.agreement_id), event_type, &data, at).await?;
    }
    Ok(())
}

/// An escrow log as a stored event: its name, agreement key and fields; `None` for logs that
/// are not escrow events.
fn decode_event(log: &Log, block_number: u64, block_hash: B256) -> Option<EscrowEvent> {
    let inner: &PrimitiveLog = &log.inner;
    let (name, key, data): (&str, B256, Value) = if let Ok(e) =
        UsageEscrow::EscrowActivated::decode_log(inner)
    {
        let e = e.data;
        (
            "EscrowActivated",
            e.agreementKey,
            json!({
                "buyer": e.buyer, "seller": e.seller, "unit_price": e.unitPrice.to_string(),
                "quantity": e.quantity.to_string(), "deposit": e.deposit.to_string(),
                "infra_fee": e.infraFee.to_string(), "expiry": e.expiry.to_string(),
                "close_window": e.closeWindow.to_string(),
            }),
        )
    } else if let Ok(e) = UsageEscrow::CloseInitiated::decode_log(inner) {
        let e = e.data;
        (
            "CloseInitiated",
            e.agreementKey,
            json!({ "initiator": e.initiator, "closes_at": e.closesAt.to_string() }),
        )
    } else if let Ok(e) = UsageEscrow::UsageClaimed::decode_log(inner) {
        let e = e.data;
        (
            "UsageClaimed",
            e.agreementKey,
            json!({ "seller": e.seller, "cumulative_units": e.cumulativeUnits.to_string(), "amount": e.amount.to_string() }),
        )
    } else if let Ok(e) = UsageEscrow::BuyerWithdrawn::decode_log(inner) {
        let e = e.data;
        (
            "BuyerWithdrawn",
            e.agreementKey,
            json!({ "buyer": e.buyer, "amount": e.amount.to_string() }),
        )
    } else if let Ok(e) = UsageEscrow::ClaimSkipped::decode_log(inner) {
        let e = e.data;
        (
            "ClaimSkipped",
            e.agreementKey,
            json!({ "cumulative_units": e.cumulativeUnits.to_string() }),
        )
    } else if let Ok(e) = UsageEscrow::AgreementSettled::decode_log(inner) {
        let e = e.data;
        (
            "AgreementSettled",
            e.agreementKey,
            json!({
                "claimed_units": e.claimedUnits.to_string(),
                "seller_amount": e.sellerAmount.to_string(),
                "buyer_amount": e.buyerAmount.to_string(),
            }),
        )
    } else {
        return None;
    };
    Some(EscrowEvent {
        block_hash,
        log_index: log.log_index?,
        block_number,
        tx_hash: log.transaction_hash?,
        agreement_key: key,
        event: name.to_owned(),
        data,
    })
}
