//! `pactum reconcile`: compares the store with the chain and prints the report as JSON on
//! stdout, a summary on stderr; exits 0 when clean, 1 on any mismatch, 2 when it could not run.

use std::io::Write;

use alloy::primitives::Address;
use anyhow::Context;
use pactum::chain::context::ChainContext;
use pactum::chain::rpc::RpcSettings;
use pactum::reconcile::{self, Options, ReadSettings};
use pactum::store::Store;

/// Arguments of `pactum reconcile`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReconcileArgs {
    /// Database URL of the store to check: `sqlite:pactum.db?mode=rwc` or `postgres://…`.
    #[arg(
        long,
        env = "PACTUM_DATABASE_URL",
        default_value = "sqlite:pactum.db?mode=rwc",
        help_heading = "Store"
    )]
    database_url: String,

    /// JSON-RPC endpoint(s) of the chain, comma-separated in order of preference.
    #[arg(
        long,
        env = "PACTUM_RPC_URL",
        default_value = "http://127.0.0.1:8545",
        help_heading = "Chain"
    )]
    rpc_url: String,

    /// RPC layer: per-request timeout, retries, circuit breakers.
    #[command(flatten)]
    rpc: RpcSettings,

    /// The UsageEscrow contract.
    #[arg(long, env = "PACTUM_ESCROW_ADDRESS", help_heading = "Chain")]
    escrow_address: Address,

    /// The token's EIP-712 domain name.
    #[arg(long, env = "PACTUM_TOKEN_NAME", default_value = "USD Coin", help_heading = "Chain")]
    token_name: String,

    /// The watcher's confirmation depth: the chain is read at the highest block this deep
    /// (1 = the head), the newest the store can have confirmed.
    #[arg(long, env = "PACTUM_CONFIRMATIONS", default_value_t = 2, help_heading = "Chain")]
    confirmations: u64,

    /// Read the chain at this block instead.
    #[arg(long, help_heading = "Reconcile")]
    block: Option<u64>,

    /// First block scanned for `EscrowActivated` events (the escrow's deployment block is
    /// enough; activations before it are not found).
    #[arg(
        long,
        env = "PACTUM_RECONCILE_FROM_BLOCK",
        default_value_t = 0,
        help_heading = "Reconcile"
    )]
    from_block: u64,

    /// Blocks per `eth_getLogs` call (providers cap the range).
    #[arg(long, env = "PACTUM_RECONCILE_LOG_RANGE", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Reconcile")]
    log_range: u64,

    /// JSON-RPC calls per batch request.
    #[arg(long, env = "PACTUM_RECONCILE_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Reconcile")]
    batch_size: u64,

    /// Batch requests in flight at once.
    #[arg(long, env = "PACTUM_RECONCILE_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Reconcile")]
    concurrency: u64,

    /// Check only the agreements of this account (`acct_…`); leaves out the deployment-wide
    /// checks (the balance, activations unknown to the store).
    #[arg(long, help_heading = "Reconcile")]
    account: Option<String>,
}

/// The exit status when the store and the chain differ.
pub(crate) const EXIT_MISMATCH: u8 = 1;
/// The exit status when the reconciliation could not run.
pub(crate) const EXIT_ERROR: u8 = 2;

/// The store and the chain differ (the report is printed already); `main` exits
/// [`EXIT_MISMATCH`] on it.
#[derive(Debug, thiserror::Error)]
#[error("the store and the chain differ")]
pub(crate) struct Mismatched;

/// Runs the reconciliation and prints the report; fails with [`Mismatched`] when anything
/// differs.
pub(crate) async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let store = Store::connect(&args.database_url).await.context("opening the store")?;
    let chain =
        ChainContext::connect(&args.rpc_url, &args.rpc, args.escrow_address, &args.token_name)
            .await
            .context("connecting to the chain")?;
    let options = Options {
        account: args.account,
        at_block: args.block,
        confirmations: args.confirmations,
        from_block: args.from_block,
        read: ReadSettings {
            batch_size: usize::try_from(args.batch_size).unwrap_or(usize::MAX),
            concurrency: usize::try_from(args.concurrency).unwrap_or(usize::MAX),
            log_range: args.log_range,
        },
    };
    let report = reconcile::run(&store, &chain, &options).await.context("reconciling")?;
    store.close().await;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &report)?;
    writeln!(stdout)?;
    eprint!("{}", report.summary());
    if report.clean { Ok(()) } else { Err(Mismatched.into()) }
}
