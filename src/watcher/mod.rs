//! The chain watcher: reads each new block once (on a node that serves it, with one
//! `eth_getBlockReceipts` call: see `blocks`), takes from it the escrow contract's logs, the
//! token logs of watched payments and the receipts of the relayer's in-flight attempts and of
//! the intents' transactions, and records the block's hash. At the confirmation depth it turns
//! what it read into job and agreement status, checking each block against the hash it
//! recorded rather than asking the node again, one store transaction per block height. The
//! chain is the source of truth, so an activation relayed by anyone shows up exactly like
//! Pactum's own.
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

mod apply;
mod blocks;
mod intents;
mod passes;
mod payments;
mod reorg;

use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::B256;
use alloy::providers::Provider;
use tokio::sync::watch;

use crate::chain::context::ChainContext;
use crate::receipts::ReceiptKey;
use crate::store::{Store, StoreError};
use apply::Issuer;
pub(crate) use apply::chain_event;
pub use blocks::BlockReads;

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
    /// How blocks are read: `BlockReads::default()` asks for each block's receipts at once,
    /// and reads per transaction after the node's first refusal.
    pub block_reads: BlockReads,
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

    /// What receipts are signed with and name as their deployment.
    fn issuer(&self) -> Issuer<'_> {
        Issuer { key: &self.receipt_key, deployment: self.chain.deployment() }
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
