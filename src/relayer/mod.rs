//! The relayer: durable jobs, one nonce owner per signer, broadcast and re-broadcast.
//!
//! The API queues a job in the transaction that accepts the party's request. The
//! [`worker`] claims it, simulates it, and hands it to the [`signer`] actor that owns the
//! chosen relayer account's nonces; that actor signs, saves the signed transaction, and only
//! then broadcasts. The chain watcher follows every saved hash to its receipt.

pub mod actors;
pub mod balance;
pub mod feed;
pub mod fees;
pub mod market;
pub mod signer;
pub mod worker;

use crate::chain::node_error::NodeError;
use crate::store::StoreError;

/// Why relaying a job failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node refused or could not be reached.
    #[error("node error: {0:?}")]
    Node(NodeError),
    /// The transaction could not be built or signed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The fees needed are above the configured cap: nothing was sent; the job waits.
    #[error("{0}")]
    FeesAboveCap(fees::Waiting),
    /// The signer's actor is gone (it died, or the service is shutting down).
    #[error("the signer task stopped")]
    SignerGone,
    /// A signer's actor died (it panicked): the run ends so the supervisor starts fresh actors.
    #[error("the signer actor of {address} died: {reason}")]
    SignerDied {
        /// The relayer account whose actor died.
        address: alloy::primitives::Address,
        /// The panic or how it ended.
        reason: String,
    },
}

/// The result type of the relayer.
pub type Result<T, E = RelayError> = std::result::Result<T, E>;
