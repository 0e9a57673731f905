//! The escrow contract: bindings generated from the committed `abi/` artifacts, and the EIP-712
//! typed data the buyer and the seller sign for it.

pub mod bindings;
pub mod package;
pub mod typed_data;
