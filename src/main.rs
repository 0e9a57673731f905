//! The `pactum` binary: one subcommand per job, each parsed and run by its module in `cli`.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};
use pactum::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Pactum: a non-custodial escrow and settlement relayer for usage agreements between AI agents.
#[derive(Debug, Parser)]
#[command(name = "pactum", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each variant's arguments live next to its code in `cli::<name>`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API, the relayer and the chain watcher.
    // A setting from the `--config` file arrives as a flag before the command line's own, and
    // the later one wins.
    #[command(args_override_self = true)]
    Serve(Box<cli::serve::ServeArgs>),
    /// Run everything locally: anvil, the contracts, demo agents and the API on SQLite.
    Dev(cli::dev::DevArgs),
    /// Sign an EIP-712 typed-data document (eth_signTypedData_v4 JSON) with a local key.
    Sign(cli::sign::SignArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (what `GET /openapi.json` serves).
    Openapi(cli::openapi::OpenapiArgs),
    /// Compare the store with the chain; exit 1 on any mismatch (docs/reconcile.md).
    Reconcile(Box<cli::reconcile::ReconcileArgs>),
    /// Ask the running service for a signed go/no-go evidence packet; exit 1 on any no-go
    /// (docs/go-no-go.md). `go-no-go verify FILE` checks a saved packet.
    GoNoGo(Box<cli::go_no_go::GoNoGoArgs>),
}

fn main() -> ExitCode {
    let mut failure = ExitCode::FAILURE;
    let result =
        cli::serve::args_with_config_file().and_then(|args| match Cli::parse_from(args).command {
            Command::Sign(args) => cli::sign::run(&args),
            Command::Openapi(args) => cli::openapi::run(&args),
            Command::Serve(args) => runtime(args.log.log_format, || cli::serve::run(*args)),
            Command::Dev(args) => runtime(LogFormat::Text, || cli::dev::run(args)),
            Command::Reconcile(args) => {
                // A mismatch is a finding, not an error: it exits 1, an error 2.
                failure = ExitCode::from(cli::reconcile::EXIT_ERROR);
                runtime(LogFormat::Text, || cli::reconcile::run(*args))
            }
            Command::GoNoGo(args) => {
                // A no-go is a finding, not an error: it exits 1, an error 2.
                failure = ExitCode::from(cli::go_no_go::EXIT_ERROR);
                runtime(LogFormat::Text, || cli::go_no_go::run(*args))
            }
        });
    if let Err(error) = &result
        && error.is::<cli::reconcile::Mismatched>()
    {
        return ExitCode::from(cli::reconcile::EXIT_MISMATCH);
    }
    if let Err(error) = &result
        && error.is::<cli::go_no_go::NoGo>()
    {
        return ExitCode::from(cli::go_no_go::EXIT_NO_GO);
    }
    // One line with the whole cause chain, rather than returning the error from `main`, whose
    // report adds a backtrace whenever RUST_BACKTRACE is set.
    if let Err(error) = result {
        if LOG_FORMAT.get() == Some(&LogFormat::Json) {
            tracing::error!(error = format!("{error:#}"), "pactum stopped on an error");
        } else {
            eprintln!("error: {error:#}");
        }
        return failure;
    }
    ExitCode::SUCCESS
}

/// The format logging was started with, if it was.
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Runs a service command on a multi-threaded runtime with logging to stderr in `format`
/// (`RUST_LOG`, default `info`).
fn runtime<F, Fut>(format: LogFormat, command: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        // Colour codes only for a terminal, not in a log file or a pipe.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // Each line names its innermost span (`span`) and every span it is in (`spans`), with
        // their fields: a request's `request_id` is on every line logged while handling it.
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
    let _ = LOG_FORMAT.set(format);
    tokio::runtime::Runtime::new()?.block_on(command())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
