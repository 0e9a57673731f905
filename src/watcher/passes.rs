//! A watcher pass: read each new block once (see `blocks`: its receipts against the relayer's
//! attempts and the intents' posted hashes, the escrow's logs, the watched token logs), then
//! confirm what is deep enough, height by height: jobs' outcomes, escrow events in block and log
//! order, and intents' verdicts; agreements past their activation deadline expire.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{B256, Log as PrimitiveLog};
use alloy::providers::Provider;
use alloy::rpc::types::{Log, TransactionRequest};
use alloy::sol_types::SolEvent;
use serde_json::{Value, json};

use super::apply::{apply_event, job_outcome};
use super::blocks::Watched;
use super::payments;
use super::{MAX_BLOCKS_PER_PASS, Result, WatchError, Watcher};
use crate::agreement::settlement::ClaimSkipReason;
use crate::chain::revert;
use crate::escrow::bindings::UsageEscrow;
use crate::store::attempts::{self, Attempt, AttemptStatus};
use crate::store::chain::{self as chain_store, Cursor, EscrowEvent};
use crate::store::jobs::{self, Job};
use crate::store::outbox::EventType;
use crate::store::{agreements, now, outbox};

impl Watcher {
    /// One pass: read new blocks, then confirm what is deep enough.
    pub async fn pass(&self) -> Result<()> {
        let latest = self
            .chain
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await?
            .ok_or(WatchError::MissingBlock(0))?;
        self.chain.head.publish(crate::chain::head::Head::read_now(&latest.header));
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
        let mut in_flight: HashMap<B256, Attempt> = attempts::attempts_watched(self.store.reader())
            .await?
            .into_iter()
            .map(|a| (a.tx_hash, a))
            .collect();
        let mut awaited = self.intents_awaited().await?;
        let wallets = self.watched_wallets(head_timestamp).await?;
        for number in cursor.block_number + 1..=last {
            // The head's header was read above; another block's is read once, here.
            let header =
                (number == head).then_some((latest.header.hash, latest.header.parent_hash));
            let transactions: HashSet<B256> =
                in_flight.keys().chain(awaited.keys()).copied().collect();
            let watched = Watched { transactions: &transactions, wallets: &wallets };
            let block = self.read_block(number, header, &watched).await?;
            let hash = block.hash;
            if block.parent != cursor.block_hash && number > 0 {
                // The block read last is no longer this block's parent.
                return self.reorganised(stored, cursor.block_number, head, head_timestamp).await;
            }
            let spent = payments::spent_authorizations(&block.token_logs, &wallets, number, hash);
            let paid = self.intents_in_block(&mut awaited, &block.receipts).await?;
            let mined: Vec<_> = block
                .receipts
                .iter()
                .filter(|receipt| in_flight.contains_key(&receipt.transaction_hash))
                .map(|r| (r.transaction_hash, r.status(), r.gas_used, r.effective_gas_price))
                .collect();
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
            for (tx_hash, succeeded, gas_used, price) in &mined {
                attempts::attempt_mined(&mut tx, *tx_hash, number, hash, *succeeded, now()).await?;
                attempts::attempt_gas(&mut tx, *tx_hash, *gas_used, *price, now()).await?;
                in_flight.remove(tx_hash);
            }
            for (intent_id, found) in &paid {
                crate::store::intents::found_mined(&mut tx, intent_id, found, now()).await?;
            }
            for log in &block.escrow_logs {
                if let Some(event) = decode_event(log, number, hash) {
                    chain_store::insert_event(&mut tx, &event).await?;
                }
            }
            for event in &spent {
                chain_store::insert_event(&mut tx, event).await?;
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

    /// Applies everything at least `confirmations` deep whose block is still canonical, one
    /// store transaction per block height, lowest first. Canonical is judged by the hash the
    /// watcher recorded when it read the block: a reorganisation is found (and rolled back) when
    /// the next block is read, so the node is not asked again here.
    async fn confirm(&self, head: u64) -> Result<()> {
        let Some(depth_height) = (head + 1).checked_sub(self.confirmations.max(1)) else {
            return Ok(());
        };
        let mut heights: BTreeMap<u64, Deep> = BTreeMap::new();
        for attempt in attempts::attempts_in(self.store.reader(), &[AttemptStatus::Mined]).await? {
            match attempt.block_number {
                Some(number) if number <= depth_height && attempt.block_hash.is_some() => {
                    heights.entry(number).or_default().attempts.push(attempt);
                }
                _ => {}
            }
        }
        for event in chain_store::unapplied_events(self.store.reader(), depth_height).await? {
            heights.entry(event.block_number).or_default().events.push(event);
        }
        for intent in crate::store::intents::mined_up_to(self.store.reader(), depth_height).await? {
            if let Some(mined) = &intent.mined {
                heights.entry(mined.block_number).or_default().intents.push(intent);
            }
        }
        if heights.is_empty() {
            return Ok(());
        }
        let recorded: HashMap<u64, B256> =
            chain_store::blocks_below(self.store.reader(), depth_height)
                .await?
                .into_iter()
                .collect();
        for (number, deep) in heights {
            let canonical = match recorded.get(&number) {
                Some(hash) => *hash,
                // Not read by this watcher (an intent's transaction found by its receipt in a
                // block before the watcher's first, or one past the recorded window): ask.
                None => self.block(number).await?.0,
            };
            self.confirm_height(number, canonical, deep).await?;
        }
        Ok(())
    }

    /// Applies what block `number` holds (`canonical` is its hash) in one store transaction:
    /// the outcomes of the relayer's attempts mined there, then the escrow events in log order,
    /// then the intents' verdicts. Work found in another block of that height is undone
    /// instead (an attempt watched again, an intent waiting again) or left for the rollback.
    async fn confirm_height(&self, number: u64, canonical: B256, deep: Deep) -> Result<()> {
        // What needs the node (a revert's reason) is asked before the transaction opens.
        let mut outcomes = Vec::new();
        for attempt in deep.attempts {
            if attempt.block_hash != Some(canonical) {
                outcomes.push(Outcome::ReorganisedAway(attempt));
                continue;
            }
            let job = jobs::get(self.store.reader(), attempt.job_id.as_str()).await?;
            let error = match (&job, attempt.succeeded) {
                (Some(job), Some(false)) => Some(self.revert_reason(&attempt, job, number).await),
                (None, Some(false)) => Some("reverted".to_owned()),
                _ => None,
            };
            outcomes.push(Outcome::Confirmed { attempt, job, error });
        }
        let mut tx = self.store.begin().await?;
        for outcome in &outcomes {
            match outcome {
                Outcome::ReorganisedAway(attempt) => {
                    // Watch it again as broadcast (it may be re-mined).
                    tracing::warn!(tx_hash = %attempt.tx_hash, number, "mined block was reorganised away");
                    attempts::attempt_unmined(&mut tx, attempt).await?;
                }
                Outcome::Confirmed { attempt, job, error } => {
                    // `false`: another watcher confirmed it first, or a reorganisation moved it.
                    let error = error.as_deref();
                    if attempts::attempt_confirmed(&mut tx, attempt, error, now()).await?
                        && let Some(job) = job
                    {
                        job_outcome(&mut tx, job, attempt, error).await?;
                    }
                }
            }
        }
        for event in deep.events.iter().filter(|e| e.block_hash == canonical) {
            // Of two watchers on one database, only the one that marks it applies it.
            if chain_store::mark_applied(&mut tx, event).await? {
                apply_event(&mut tx, event, &self.issuer()).await?;
            }
        }
        for intent in &deep.intents {
            super::intents::confirm_intent(&mut tx, intent, canonical).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks agreements whose activation deadline passed (by the chain's clock) as expired.
    async fn expire(&self, timestamp: u64) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let expired = agreements::expire_due(&mut tx, timestamp as i64).await?;
        let payments = super::payments::expire(&mut tx, timestamp as i64, now()).await?;
        for id in &expired {
            outbox::record(&mut tx, Some(id), EventType::AgreementExpired, &json!({}), now())
                .await?;
        }
        if expired.is_empty() && payments == 0 {
            // Nothing due: no commit, which would make the API's read model stale for nothing.
            tx.rollback().await?;
            return Ok(());
        }
        tx.commit().await?;
        if payments > 0 {
            tracing::info!(payments, "payments expired before they moved");
        }
        if !expired.is_empty() {
            tracing::info!(expired = expired.len(), "agreements expired before activation");
        }
        Ok(())
    }

    /// Why a mined transaction reverted: the call replayed on the state its block left. A revert
    /// usually comes from a transaction earlier in the same block (a front-run, a transfer that
    /// emptied the payer), which the state before the block would not show.
    async fn revert_reason(&self, attempt: &Attempt, job: &Job, number: u64) -> String {
        // A reverted transaction that used (nearly) all of its gas limit ran out of gas: a call
        // that runs out inside a sub-call keeps 1/64 of the gas for the caller, which then
        // reverts with no data. Whatever a replay says, that is what happened.
        // The gas used was recorded from the block's receipts when the attempt was mined; only
        // an attempt without it (none the watcher marked mined) needs its receipt asked for.
        let gas_used = match attempts::gas_used(self.store.reader(), attempt.tx_hash).await {
            Ok(Some(gas_used)) => Some(gas_used),
            _ => match self.chain.provider.get_transaction_receipt(attempt.tx_hash).await {
                Ok(Some(receipt)) => Some(receipt.gas_used),
                _ => None,
            },
        };
        if let Some(gas_used) = gas_used
            && u128::from(gas_used) * 64 >= u128::from(attempt.gas_limit) * 63
        {
            return format!(
                "out of gas (used {gas_used} of its gas limit of {})",
                attempt.gas_limit
            );
        }
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
}

/// What one block height holds that is deep enough to confirm.
#[derive(Default)]
struct Deep {
    /// The relayer's attempts mined there, by signer and nonce.
    attempts: Vec<Attempt>,
    /// Escrow events (and spent token authorizations) not yet applied, in log order.
    events: Vec<EscrowEvent>,
    /// Intents whose transaction was found there.
    intents: Vec<crate::store::intents::Intent>,
}

/// What confirmation does with a mined attempt at the depth.
enum Outcome {
    /// Its block is not the one recorded at that height.
    ReorganisedAway(Attempt),
    /// Confirmed, with its job (if the store still has it) and the revert's reason if it
    /// reverted.
    Confirmed { attempt: Attempt, job: Option<Job>, error: Option<String> },
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
            json!({
                "cumulative_units": e.cumulativeUnits.to_string(),
                "reason": ClaimSkipReason::from_u8(e.reason).map(ClaimSkipReason::as_str),
            }),
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
