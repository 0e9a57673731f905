//! Intents in the watcher: the transaction an agent posted is looked for in each block the
//! watcher reads (and, once, by its receipt, since it may have been mined before its hash was
//! posted); where it is found, its USDC `Transfer` logs are checked against the intent
//! ([`crate::intents::verify`]) and the verdict recorded with the block. At the confirmation
//! depth the verdict resolves the intent (confirmed, mismatched or failed) and its hold with
//! it; a block reorganised away before or after that sends the intent back to waiting.

use std::collections::HashMap;

use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::SolEvent;

use super::{Result, Watcher};
use crate::escrow::bindings::MockUSDC;
use crate::intents::{Expected, TokenTransfer, Verdict, verify};
use crate::money::Cents;
use crate::store::intents::{self, Intent, Mined};
use crate::store::{Conn, StoreError, now, wallets};

/// Intents whose transaction is awaited, by the hash posted.
pub(super) type Awaited = HashMap<B256, Intent>;

impl Watcher {
    /// The intents waiting for their transaction to be mined. Those whose hash was never
    /// looked up are looked up by receipt first (the transaction may be mined in a block read
    /// before the hash was posted), and recorded when found; the rest are returned, to be found
    /// in the blocks read next.
    pub(super) async fn intents_awaited(&self) -> Result<Awaited> {
        let mut awaited = Awaited::new();
        for intent in intents::watched(self.store.reader()).await? {
            let Some(tx_hash) = intent.tx_hash else { continue };
            if intent.looked_up {
                awaited.insert(tx_hash, intent);
                continue;
            }
            let receipt = self.chain.provider.get_transaction_receipt(tx_hash).await?;
            let found = match &receipt {
                Some(receipt) => self.sighting(&intent, receipt).await?,
                None => None,
            };
            let mut tx = self.store.begin().await?;
            match &found {
                Some(mined) => {
                    intents::found_mined(&mut tx, &intent.id, mined, now()).await?;
                }
                None => intents::looked_up(&mut tx, &intent.id).await?,
            }
            tx.commit().await?;
            if found.is_none() {
                awaited.insert(tx_hash, intent);
            }
        }
        Ok(awaited)
    }

    /// The awaited intents whose transaction is among `receipts` (the watched receipts of one
    /// block), with where each was found and the verdict on it; they are taken out of
    /// `awaited`.
    pub(super) async fn intents_in_block(
        &self,
        awaited: &mut Awaited,
        receipts: &[TransactionReceipt],
    ) -> Result<Vec<(String, Mined)>> {
        let mut found = Vec::new();
        for receipt in receipts {
            let Some(intent) = awaited.get(&receipt.transaction_hash) else { continue };
            if let Some(mined) = self.sighting(intent, receipt).await? {
                found.push((intent.id.clone(), mined));
                awaited.remove(&receipt.transaction_hash);
            }
        }
        Ok(found)
    }

    /// Where `receipt` was mined and the verdict on it for `intent`; `None` for a receipt
    /// without a block (still pending).
    async fn sighting(
        &self,
        intent: &Intent,
        receipt: &TransactionReceipt,
    ) -> Result<Option<Mined>> {
        let (Some(block_number), Some(block_hash)) = (receipt.block_number, receipt.block_hash)
        else {
            return Ok(None);
        };
        let registered = {
            let mut conn = self.store.reader().acquire().await.map_err(StoreError::from)?;
            wallets::addresses_of_agent(&mut conn, &intent.agent_id).await?
        };
        let transfers: Vec<TokenTransfer> = receipt
            .inner
            .logs()
            .iter()
            .filter(|log| log.address() == intent.token)
            .filter_map(|log| MockUSDC::Transfer::decode_log(&log.inner).ok())
            .map(|event| TokenTransfer { from: event.from, to: event.to, value: event.value })
            .collect();
        let expected = Expected {
            wallets: &registered,
            to: intent.to,
            amount: Cents(intent.amount_cents).to_token_amount().0,
        };
        // The deployment's chain is the only one read; an intent of another chain (a
        // deployment moved) can match nothing here.
        let verdict = if intent.chain_id == self.chain.chain_id {
            verify(&expected, receipt.status(), &transfers)
        } else {
            Verdict::NoTransfer
        };
        tracing::info!(intent_id = %intent.id, block_number, %verdict, "intent transaction mined");
        Ok(Some(Mined { block_number, block_hash, verdict }))
    }
}

/// Resolves `intent` (found mined at the confirmation depth) by its verdict, in the caller's
/// transaction; when its block is no longer `canonical` (the hash recorded at that height), it
/// waits to be mined again instead.
pub(super) async fn confirm_intent(tx: &mut Conn, intent: &Intent, canonical: B256) -> Result<()> {
    let Some(mined) = &intent.mined else { return Ok(()) };
    let at = now();
    if mined.block_hash != canonical {
        tracing::warn!(intent_id = %intent.id, "intent's block was reorganised away");
        intents::unmine(tx, &intent.id, at).await?;
    } else if let Some(resolved) =
        intents::resolve(tx, &intent.id, mined.verdict.final_status(), at).await?
    {
        tracing::info!(intent_id = %resolved.id, status = %resolved.status, "intent resolved");
    }
    Ok(())
}

/// Sends every intent whose transaction was found above `fork` back to waiting for it (a
/// confirmed one back to `broadcast`, its hold held again), in the rollback's transaction.
/// Returns how many.
pub(super) async fn roll_back(tx: &mut Conn, fork: u64, at: i64) -> Result<usize> {
    let ids = intents::mined_above(tx, fork).await?;
    for id in &ids {
        intents::unmine(tx, id, at).await?;
    }
    Ok(ids.len())
}
