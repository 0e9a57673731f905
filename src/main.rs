//! The `pactum` binary: one subcommand per job, each parsed and run by its module in `cli`.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    let result =
        cli::serve::args_with_config_file().and_then(|args| match Cli::parse_from(args).command {
            Command::Sign(args) => cli::sign::run(&args),
            Command::Openapi(args) => cli::openapi::run(&args),
            Command::Serve(args) => runtime(|| cli::serve::run(*args)),
            Command::Dev(args) => runtime(|| cli::dev::run(args)),
        });
    // One line with the whole cause chain, rather than returning the error from `main`, whose
    // report adds a backtrace whenever RUST_BACKTRACE is set.
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Runs a service command on a multi-threaded runtime with logging to stderr
/// (`RUST_LOG`, default `info`).
fn runtime<F, Fut>(command: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
