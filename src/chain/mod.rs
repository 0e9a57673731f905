//! The chain side of Pactum: the RPC context and the RPC layer under it,
//! demo funding on test chains, deploying the contracts, readable revert reasons, and finding the local toolchain.

pub mod breaker;
pub mod context;
pub mod deploy;
pub mod error;
pub mod faucet;
pub mod gas;
pub mod head;
pub mod node_error;
pub mod revert;
pub mod rpc;
pub mod toolchain;
