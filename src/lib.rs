//! Pactum: a non-custodial escrow and settlement relayer for usage agreements between AI agents,
//! paid in USDC on Base.
//!
//! The escrow contract ([`escrow`]) holds the funds and enforces every authorization; the rest of
//! the crate builds what the parties sign ([`agreement`], [`escrow::package`]), serves the HTTP
//! API ([`api`]), relays signed actions ([`relayer`]), follows the chain ([`chain`]) and keeps
//! all shared state in the [`store`]. [`service`] runs them together.
#![warn(missing_docs)]

pub mod agreement;
pub mod api;
pub mod chain;
pub mod config;
pub mod console;
pub mod escrow;
pub mod expiry;
pub mod gonogo;
pub mod governance;
pub mod intents;
pub mod metrics;
pub mod money;
pub mod payments;
pub mod receipts;
pub mod reconcile;
pub mod registration;
pub mod relayer;
pub mod screening;
pub mod secret;
pub mod serve;
pub mod service;
pub mod store;
pub mod time;
pub mod vocab;
pub mod wallets;
pub mod watcher;
pub mod webhooks;
