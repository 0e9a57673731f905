//! Reading the chain for a reconciliation: everything at one pinned block, in JSON-RPC batches
//! (a fresh anvil has no Multicall3, and a batch needs no contract), several batches in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::client::RpcClient;
use alloy::rpc::json_rpc::{RpcRecv, RpcSend};
use alloy::rpc::types::{Filter, Log, TransactionRequest};
use alloy::sol_types::{SolCall, SolEvent};
use futures::StreamExt;
use futures::stream::FuturesOrdered;

use super::compare::Activated;
use super::report::{BlockRange, RpcUse};
use super::{ReconcileError, Result};
use crate::agreement::settlement::{EscrowState, EscrowStatus};
use crate::chain::context::ChainContext;
use crate::escrow::bindings::{MockUSDC, UsageEscrow};
use crate::money::TokenAmount;

/// How the chain is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSettings {
    /// JSON-RPC calls per batch request.
    pub batch_size: usize,
    /// Batch requests in flight at once.
    pub concurrency: usize,
    /// Blocks per `eth_getLogs` call.
    pub log_range: u64,
}

impl Default for ReadSettings {
    fn default() -> Self {
        Self { batch_size: 500, concurrency: 4, log_range: 10_000 }
    }
}

/// Reads one deployment at one block, counting its requests.
#[derive(Debug)]
pub struct ChainReader<'a> {
    chain: &'a ChainContext,
    client: RpcClient,
    settings: ReadSettings,
    block: u64,
    requests: AtomicU64,
    calls: AtomicU64,
}

impl<'a> ChainReader<'a> {
    /// A reader pinned at `at`, or else at the highest block `confirmations` deep (the latest
    /// block the watcher may have confirmed: 1 is the head itself); returns it with the pinned
    /// block's hash.
    pub async fn pin(
        chain: &'a ChainContext,
        settings: ReadSettings,
        at: Option<u64>,
        confirmations: u64,
    ) -> Result<(ChainReader<'a>, B256)> {
        let reader = ChainReader {
            chain,
            client: chain.rpc.client(),
            settings: ReadSettings {
                batch_size: settings.batch_size.max(1),
                concurrency: settings.concurrency.max(1),
                log_range: settings.log_range.max(1),
            },
            block: 0,
            requests: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        };
        let block = match at {
            Some(number) => number,
            None => {
                reader.counted(1);
                let head = chain.provider.get_block_number().await?;
                head.saturating_sub(confirmations.saturating_sub(1))
            }
        };
        reader.counted(1);
        let header = chain
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(block))
            .await?
            .ok_or(ReconcileError::MissingBlock(block))?;
        Ok((ChainReader { block, ..reader }, header.header.hash))
    }

    /// The pinned block.
    pub fn block(&self) -> u64 {
        self.block
    }

    /// The requests and calls made so far.
    pub fn rpc_use(&self) -> RpcUse {
        RpcUse {
            requests: self.requests.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
        }
    }

    fn counted(&self, calls: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(calls, Ordering::Relaxed);
    }

    /// `escrowOf(key)` of every key, at the pinned block.
    pub async fn escrows(&self, keys: &[B256]) -> Result<HashMap<B256, EscrowState>> {
        let at = BlockId::number(self.block);
        let params: Vec<(TransactionRequest, BlockId)> = keys
            .iter()
            .map(|key| {
                let call = UsageEscrow::escrowOfCall { key: *key };
                let tx = TransactionRequest::default()
                    .to(self.chain.escrow)
                    .input(call.abi_encode().into());
                (tx, at)
            })
            .collect();
        let answers: Vec<Bytes> = self.batched("eth_call", params).await?;
        keys.iter()
            .zip(answers)
            .map(|(key, data)| {
                let e = UsageEscrow::escrowOfCall::abi_decode_returns(&data)
                    .map_err(|err| ReconcileError::Decode(format!("escrowOf({key}): {err}")))?;
                let status = EscrowStatus::from_u8(e.status).ok_or_else(|| {
                    ReconcileError::Decode(format!("escrowOf({key}): status {}", e.status))
                })?;
                let state = EscrowState {
                    status,
                    buyer_withdrawn: e.buyerWithdrawn,
                    closes_at: e.closesAt.to::<u64>(),
                    claimed_units: e.claimedUnits,
                };
                Ok((*key, state))
            })
            .collect()
    }

    /// The `EscrowActivated` events of blocks `from` to the pinned block, by key.
    pub async fn activations(&self, from: u64) -> Result<(BlockRange, HashMap<B256, Activated>)> {
        let range = BlockRange { from: from.min(self.block), to: self.block };
        let step = self.settings.log_range;
        let filters: Vec<(Filter,)> = (range.from..=range.to)
            .step_by(usize::try_from(step).unwrap_or(usize::MAX))
            .map(|start| {
                let end = start.saturating_add(step - 1).min(range.to);
                let filter = Filter::new()
                    .address(self.chain.escrow)
                    .event_signature(UsageEscrow::EscrowActivated::SIGNATURE_HASH)
                    .from_block(start)
                    .to_block(end);
                (filter,)
            })
            .collect();
        let pages: Vec<Vec<Log>> = self.batched("eth_getLogs", filters).await?;
        let mut found = HashMap::new();
        for log in pages.into_iter().flatten() {
            let decoded = UsageEscrow::EscrowActivated::decode_log(&log.inner)
                .map_err(|err| ReconcileError::Decode(format!("EscrowActivated: {err}")))?;
            let event = Activated {
                key: decoded.agreementKey,
                deposit: TokenAmount::new(decoded.deposit),
                unit_price: TokenAmount::new(decoded.unitPrice),
                block_number: log.block_number.unwrap_or_default(),
            };
            found.insert(event.key, event);
        }
        Ok((range, found))
    }

    /// The escrow's token balance and its accrued fees, at the pinned block.
    pub async fn balance(&self) -> Result<(U256, U256)> {
        let at = BlockId::number(self.block);
        let token = MockUSDC::new(self.chain.token, &self.chain.provider);
        let escrow = UsageEscrow::new(self.chain.escrow, &self.chain.provider);
        let balance = token.balanceOf(self.chain.escrow).block(at);
        let fees = escrow.accruedFees().block(at);
        self.counted(1);
        self.counted(1);
        let (balance, fees) = tokio::try_join!(balance.call(), fees.call())?;
        Ok((balance, fees))
    }

    /// `method` with each of `params`, in batches of at most `batch_size` calls, at most
    /// `concurrency` batches at a time; the answers in the order of `params`.
    async fn batched<P: RpcSend, R: RpcRecv>(
        &self,
        method: &'static str,
        params: Vec<P>,
    ) -> Result<Vec<R>> {
        let mut answers = Vec::with_capacity(params.len());
        let mut in_flight = FuturesOrdered::new();
        for chunk in params.chunks(self.settings.batch_size) {
            in_flight.push_back(self.batch::<P, R>(method, chunk));
            if in_flight.len() >= self.settings.concurrency
                && let Some(page) = in_flight.next().await
            {
                answers.extend(page?);
            }
        }
        while let Some(page) = in_flight.next().await {
            answers.extend(page?);
        }
        Ok(answers)
    }

    /// One batch request of `method` with each of `chunk`.
    async fn batch<P: RpcSend, R: RpcRecv>(
        &self,
        method: &'static str,
        chunk: &[P],
    ) -> Result<Vec<R>> {
        let mut batch = self.client.new_batch();
        let waiters = chunk
            .iter()
            .map(|p| batch.add_call::<_, R>(method, p))
            .collect::<Result<Vec<_>, _>>()?;
        self.counted(chunk.len() as u64);
        batch.send().await?;
        let mut answers = Vec::with_capacity(waiters.len());
        for waiter in waiters {
            answers.push(waiter.await?);
        }
        Ok(answers)
    }
}
