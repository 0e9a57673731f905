//! Reconciliation of the store against the chain (`pactum reconcile`,
//! `GET /v1/reconciliation`): for every agreement with an agreement key, the escrow the store
//! believes in against `escrowOf(key)` at one pinned block; and, for the whole deployment, the
//! activations on-chain that the store does not know and the escrow's token balance against its
//! open deposits plus accrued fees.
//!
//! The comparison ([`compare`]) does no I/O; reading the store and the chain happens here and in
//! [`read`], in batches (docs/reconcile.md).

pub mod compare;
pub mod read;
pub mod report;

use alloy::primitives::B256;

use crate::chain::context::ChainContext;
use crate::store::{Store, StoreError, agreements};
use compare::ChainView;
pub use read::ReadSettings;
pub use report::{Mismatch, MismatchKind, Report, Scope};

/// Why a reconciliation could not be made (a mismatch is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The RPC endpoint failed.
    #[error("RPC error: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// A contract call failed.
    #[error("contract call failed: {0}")]
    Contract(#[from] alloy::contract::Error),
    /// The node does not have the block to pin.
    #[error("block {0} is not on the chain")]
    MissingBlock(u64),
    /// The chain answered something that does not decode.
    #[error("undecodable chain answer: {0}")]
    Decode(String),
}

/// The result type of this module.
pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// What to reconcile, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The agreements of this account only (their checks alone), or the whole deployment.
    pub account: Option<String>,
    /// The block to read the chain at; `None` for the highest block `confirmations` deep.
    pub at_block: Option<u64>,
    /// The watcher's confirmation depth (1 = the head).
    pub confirmations: u64,
    /// The first block scanned for activations (deployment only).
    pub from_block: u64,
    /// How the chain is read.
    pub read: ReadSettings,
}

/// Reconciles the store with the chain as `options` say.
#[tracing::instrument(skip_all, fields(account = options.account.as_deref()))]
pub async fn run(store: &Store, chain: &ChainContext, options: &Options) -> Result<Report> {
    let (reader, block_hash) =
        read::ChainReader::pin(chain, options.read, options.at_block, options.confirmations)
            .await?;
    let rows = agreements::keyed(store.reader(), options.account.as_deref()).await?;
    let scope = if options.account.is_some() { Scope::Account } else { Scope::Deployment };
    let activations = match scope {
        Scope::Deployment => Some(reader.activations(options.from_block).await?),
        Scope::Account => None,
    };
    let mut keys: Vec<B256> = rows.iter().map(|row| row.key).collect();
    if let Some((_, events)) = &activations {
        let known: std::collections::HashSet<B256> = keys.iter().copied().collect();
        keys.extend(events.keys().filter(|key| !known.contains(*key)));
    }
    let escrows = reader.escrows(&keys).await?;
    let balance = match scope {
        Scope::Deployment => Some(reader.balance().await?),
        Scope::Account => None,
    };
    let view = ChainView {
        chain_id: chain.chain_id,
        escrow: chain.escrow,
        block_number: reader.block(),
        block_hash,
        escrows,
        activations,
        balance,
    };
    let mut report = compare::compare(scope, &rows, &view, &chain.escrow_domain());
    report.rpc = reader.rpc_use();
    tracing::info!(
        block = report.block_number,
        agreements = report.agreements_checked,
        mismatches = report.mismatches.len(),
        rpc_requests = report.rpc.requests,
        "reconciled"
    );
    Ok(report)
}
