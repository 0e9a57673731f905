//! Pactum: a non-custodial escrow and settlement relayer for usage agreements between AI agents,
//! paid in USDC on Base.
//!
//! The escrow contract ([`escrow`]) holds the funds and enforces every authorization; the rest of
//! the crate builds what the parties sign, relays it, and reports status.
#![warn(missing_docs)]

pub mod chain;
pub mod escrow;
pub mod money;
