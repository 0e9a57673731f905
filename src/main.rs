//! The `pactum` binary.

use clap::Parser;

/// Pactum: a non-custodial escrow and settlement relayer for usage agreements between AI agents.
#[derive(Debug, Parser)]
#[command(name = "pactum", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
