//! The escrow contract: bindings generated from the committed `abi/` artifacts, the EIP-712
//! typed data the buyer and the seller sign for it, the calls made on it, and the checks of their signatures.

pub mod bindings;
pub mod calls;
pub mod package;
pub mod typed_data;
pub mod verify;
pub mod wallet;
