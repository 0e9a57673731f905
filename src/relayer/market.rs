//! What a new relayer transaction offers, read without a node call per transaction.
//!
//! The base fee comes from the head the watcher publishes ([`HeadWatch`]): the next block's is
//! bounded by the head's (see [`Market::after_head`]), and a new transaction offers twice that.
//! The tip moves slowly, so it is read with `eth_feeHistory` at most once every
//! [`TIP_REFRESH_BLOCKS`] heads and shared by every signer of the process. With no fresh head
//! (the watcher stopped, a node outage) every read asks `eth_feeHistory`, as before there was
//! a head in memory. Replacements keep reading the fee history each time: a stuck transaction
//! is where the market's current tip matters.

use std::sync::{Arc, Mutex};

use alloy::eips::BlockNumberOrTag;
use alloy::providers::{DynProvider, Provider};

use super::fees::{self, Market};
use crate::chain::head::HeadWatch;
use crate::chain::node_error::{NodeError, classify};

/// Heads between two reads of the tip.
pub const TIP_REFRESH_BLOCKS: u64 = 10;

/// The market for new transactions, shared by the signer actors of one worker run.
#[derive(Debug, Clone)]
pub struct MarketSource {
    provider: DynProvider,
    head: HeadWatch,
    /// The tip last read and the head it was read at.
    tip: Arc<Mutex<Option<(u64, u128)>>>,
}

impl MarketSource {
    /// Reads the head from `head` and, when it must, the fee history from `provider`.
    pub fn new(provider: DynProvider, head: HeadWatch) -> Self {
        Self { provider, head, tip: Arc::default() }
    }

    /// The market for a new transaction now: from the fresh head and the kept tip when there
    /// are both, else from one `eth_feeHistory` call (which refreshes the tip).
    pub async fn market(&self) -> Result<Market, NodeError> {
        let head = self.head.fresh();
        if let Some(head) = head
            && let Some(base_fee) = head.base_fee_per_gas
            && let Some(tip) = self.tip_for(head.number)
        {
            return Ok(Market::after_head(u128::from(base_fee), tip));
        }
        let market = history_market(&self.provider).await?;
        if let Some(head) = head {
            *self.tip.lock().expect("tip lock") = Some((head.number, market.tip));
        }
        Ok(market)
    }

    /// The kept tip when it was read fewer than [`TIP_REFRESH_BLOCKS`] heads before `head`
    /// (a head below it, after a reorganisation, keeps it too).
    fn tip_for(&self, head: u64) -> Option<u128> {
        let kept = *self.tip.lock().expect("tip lock");
        kept.filter(|(read_at, _)| head.saturating_sub(*read_at) < TIP_REFRESH_BLOCKS)
            .map(|(_, tip)| tip)
    }
}

/// The market now, from one `eth_feeHistory` call.
pub async fn history_market(provider: &DynProvider) -> Result<Market, NodeError> {
    let history = provider
        .get_fee_history(fees::HISTORY_BLOCKS, BlockNumberOrTag::Latest, &[fees::TIP_PERCENTILE])
        .await
        .map_err(|e| classify(&e))?;
    let rewards = history.reward.unwrap_or_default();
    Market::from_history(&history.base_fee_per_gas, &rewards)
        .ok_or_else(|| NodeError::Rejected("eth_feeHistory returned no base fee".into()))
}
