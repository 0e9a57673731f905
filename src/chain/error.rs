//! Why the chain could not be reached or does not hold what was configured: the error of the
//! RPC layer ([`super::rpc`]) and of the chain context built on it ([`super::context`]).

use alloy::primitives::Address;

/// Why the chain could not be reached or does not hold what was configured.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint failed.
    #[error("RPC error: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// A contract call failed.
    #[error("contract call failed: {0}")]
    Contract(#[from] alloy::contract::Error),
    /// The RPC URL does not parse.
    #[error("invalid RPC URL: {0}")]
    Url(String),
    /// No code at the configured escrow address.
    #[error("no contract at the escrow address {0}")]
    NoEscrow(Address),
    /// Two RPC endpoints serve different chains.
    #[error("RPC endpoints disagree: {first} is on chain {expected}, {other} on chain {found}")]
    ChainMismatch {
        /// The first endpoint that answered.
        first: String,
        /// Its chain id.
        expected: u64,
        /// The endpoint on another chain.
        other: String,
        /// That endpoint's chain id.
        found: u64,
    },
}

/// The result type of this module.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;
