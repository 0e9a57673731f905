//! The chain side of Pactum: the RPC context and the RPC layer under it, the chain watcher,
//! deploying the contracts, readable revert reasons, and finding the local toolchain.

pub mod breaker;
pub mod context;
pub mod deploy;
pub mod gas;
pub mod revert;
pub mod rpc;
pub mod toolchain;
pub mod watcher;
