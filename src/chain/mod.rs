//! The chain side of Pactum: the RPC context, the chain watcher, deploying the contracts,
//! readable revert reasons, and finding the local toolchain.

pub mod context;
pub mod deploy;
pub mod revert;
pub mod toolchain;
pub mod watcher;
