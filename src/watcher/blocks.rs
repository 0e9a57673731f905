//! Reading one block: its hash and parent hash (the parent-hash chain reorganisations are found
//! by), the logs of the escrow and of the token, and the receipts of the transactions the
//! watcher waits for (the relayer's attempts in flight, the intents' posted hashes).
//!
//! A node that serves `eth_getBlockReceipts` gives all of it in one call per block, plus the
//! block's header unless the pass already holds it (the head's, read as `latest`). The receipts
//! are asked for by the header's hash, so they are that block's even if the chain moves between
//! the two calls. A node that refuses the method (see [`node_error::is_unsupported_method`]) is
//! read the older way from then on: the block with its transaction hashes, `eth_getLogs` for the
//! escrow's logs and the token's, and `eth_getTransactionReceipt` for each watched transaction
//! found in it. Which way is chosen once per watcher, on the first refusal, and logged.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log, TransactionReceipt};

use super::{Result, WatchError, Watcher};
use crate::chain::node_error;
use crate::payments as pure;

/// What the watcher takes from one block.
#[derive(Debug)]
pub(super) struct BlockRead {
    /// The block's hash.
    pub(super) hash: B256,
    /// Its parent's hash.
    pub(super) parent: B256,
    /// The escrow's logs, in block order.
    pub(super) escrow_logs: Vec<Log>,
    /// The token's `AuthorizationUsed` and `Transfer` logs whose first indexed topic (the
    /// authorizer, the sender) is a watched wallet, in block order.
    pub(super) token_logs: Vec<Log>,
    /// The receipts of the watched transactions mined in the block.
    pub(super) receipts: Vec<TransactionReceipt>,
}

/// What the watcher is looking for in a block besides the escrow's logs.
pub(super) struct Watched<'a> {
    /// Transaction hashes: the relayer's attempts in flight and the intents' posted hashes.
    pub(super) transactions: &'a HashSet<B256>,
    /// Wallets whose spent token authorizations are kept (see `payments`).
    pub(super) wallets: &'a [Address],
}

impl Watched<'_> {
    /// Whether `log` is a token log the payments want.
    fn wants_token_log(&self, log: &Log, token: Address) -> bool {
        let topics = log.topics();
        log.address() == token
            && topics.first().is_some_and(|t| pure::watched_topics().contains(t))
            && topics.get(1).is_some_and(|t| self.wallets.iter().any(|w| w.into_word() == *t))
    }
}

/// How a watcher reads blocks; clones (the watcher restarted by its supervisor) share it.
#[derive(Debug, Clone, Default)]
pub struct BlockReads {
    /// Set when the node refused `eth_getBlockReceipts`: read per transaction from then on.
    per_transaction: Arc<AtomicBool>,
}

impl BlockReads {
    /// True once the node refused `eth_getBlockReceipts`.
    pub fn per_transaction(&self) -> bool {
        self.per_transaction.load(Ordering::Relaxed)
    }

    /// Switches to reading per transaction; true for the caller that switched it.
    fn fall_back(&self) -> bool {
        !self.per_transaction.swap(true, Ordering::Relaxed)
    }
}

impl Watcher {
    /// Reads block `number`; `header` is its hash and parent hash when the caller already
    /// holds them (the head's), so they are not asked for again.
    pub(super) async fn read_block(
        &self,
        number: u64,
        header: Option<(B256, B256)>,
        watched: &Watched<'_>,
    ) -> Result<BlockRead> {
        if !self.block_reads.per_transaction() {
            let (hash, parent) = match header {
                Some(header) => header,
                None => self.block(number).await?,
            };
            match self.chain.provider.get_block_receipts(BlockId::hash(hash)).await {
                Ok(Some(receipts)) => {
                    return Ok(self.contents_of(hash, parent, receipts, watched));
                }
                // The block was replaced after its header was read: the next pass finds it.
                Ok(None) => return Err(WatchError::MissingBlock(number)),
                Err(error) if node_error::is_unsupported_method(&error) => {
                    if self.block_reads.fall_back() {
                        tracing::warn!(
                            %error,
                            "the node does not serve eth_getBlockReceipts; reading blocks per \
                             transaction from now on"
                        );
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        self.read_per_transaction(number, watched).await
    }

    /// The block's contents from its receipts.
    fn contents_of(
        &self,
        hash: B256,
        parent: B256,
        receipts: Vec<TransactionReceipt>,
        watched: &Watched<'_>,
    ) -> BlockRead {
        let logs = || receipts.iter().flat_map(|receipt| receipt.inner.logs());
        let escrow_logs =
            logs().filter(|log| log.address() == self.chain.escrow).cloned().collect();
        let token_logs =
            logs().filter(|log| watched.wants_token_log(log, self.chain.token)).cloned().collect();
        let receipts = receipts
            .into_iter()
            .filter(|receipt| watched.transactions.contains(&receipt.transaction_hash))
            .collect();
        BlockRead { hash, parent, escrow_logs, token_logs, receipts }
    }

    /// The block's contents from its header, log queries and one receipt per watched
    /// transaction in it: for a node without `eth_getBlockReceipts`.
    async fn read_per_transaction(&self, number: u64, watched: &Watched<'_>) -> Result<BlockRead> {
        let (hash, parent, tx_hashes) = self.block_with_hashes(number).await?;
        let provider = &self.chain.provider;
        let escrow_logs = provider
            .get_logs(&Filter::new().address(self.chain.escrow).at_block_hash(hash))
            .await?;
        let token_logs = if watched.wallets.is_empty() {
            Vec::new()
        } else {
            let topics: Vec<B256> = watched.wallets.iter().map(|w| w.into_word()).collect();
            let filter = Filter::new()
                .address(self.chain.token)
                .at_block_hash(hash)
                .event_signature(pure::watched_topics().to_vec())
                .topic1(topics);
            provider.get_logs(&filter).await?
        };
        let mut receipts = Vec::new();
        for tx_hash in tx_hashes.iter().filter(|h| watched.transactions.contains(*h)) {
            if let Some(receipt) = provider.get_transaction_receipt(*tx_hash).await? {
                receipts.push(receipt);
            }
        }
        Ok(BlockRead { hash, parent, escrow_logs, token_logs, receipts })
    }
}
