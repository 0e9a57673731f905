//! Pactum's integration tests, as one test binary: one module per area, and [`support`] for the
//! set-up they share (a fresh anvil with the contracts deployed, a running service, signing).
//!
//! One binary links alloy, sqlx and axum once instead of once per area. A new area is a file
//! `tests/it/<area>.rs` and a `mod <area>;` line here (docs/benchmarks.md, "Test build").

mod activation_e2e;
mod api_activation;
mod api_agreements;
mod api_errors;
mod batch_payout_refused;
mod console;
mod crash_restart;
mod credentials;
mod deploy;
mod early_claim;
mod eip7702_buyer;
mod gas_on_anvil;
mod go_no_go;
mod governance;
#[cfg(unix)]
mod governance_doc;
mod idempotency;
mod instances_postgres;
mod intents;
mod json_logs;
mod mandates;
mod node_error;
mod observability;
mod openapi;
mod package_cast;
mod package_cast_server;
mod payments;
mod pipeline;
mod postgres;
mod rate_limits;
mod read_model;
mod receipts;
mod reconcile;
mod relayer_contract_wallets;
mod relayer_faults;
mod relayer_recovery;
mod relayer_signers;
mod reorg;
mod request_path;
mod risk;
mod rpc_faults;
mod screening;
mod secrets_in_logs;
mod self_registration;
mod serve_cli;
mod serving;
mod settlement;
mod settlement_batch;
mod sign_cli;
mod signed_numbers;
mod signer_supervision;
mod smart_wallet_doc;
mod store_conformance;
mod verify_signature;
#[cfg(unix)]
mod walkthrough;
mod wallets;
mod watcher_reads;
mod webhooks;
mod webhooks_in_flight;

// Private here, so a helper no test uses is a dead-code warning. Its items are `pub` because the
// benchmark (benches/service/main.rs) includes the same files as a `pub` module, where unused
// ones are then exported rather than dead.
mod spend_guard;
#[allow(unreachable_pub)]
mod support;
