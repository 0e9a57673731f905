//! `pactum serve`: the API, the relayer and the chain watcher until ctrl-c or SIGTERM.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use pactum::config::{LogConfig, LogFormat, ServeConfig, toml_to_args};
use pactum::service::Service;

/// Arguments of `pactum serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A TOML file of settings (keys are the flag names); flags and `PACTUM_*` variables win.
    #[arg(long, env = "PACTUM_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) log: LogConfig,

    #[command(flatten)]
    pub(crate) serve: ServeConfig,
}

/// The process arguments with the settings of the `--config` file (or `PACTUM_CONFIG`) of a
/// `serve` command spliced in right after `serve`, below any flag given on the command line.
pub(crate) fn args_with_config_file() -> anyhow::Result<Vec<OsString>> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some(serve_at) = args.iter().position(|a| a == "serve") else { return Ok(args) };
    let from_flag = args.iter().enumerate().skip(serve_at).find_map(|(i, arg)| {
        let arg = arg.to_str()?;
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
        (arg == "--config").then(|| args.get(i + 1).map(PathBuf::from)).flatten()
    });
    let Some(path) = from_flag.or_else(|| std::env::var_os("PACTUM_CONFIG").map(PathBuf::from))
    else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let extra = toml_to_args(&text)
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("in the config file {}", path.display()))?;
    let mut spliced = args[..=serve_at].to_vec();
    spliced.extend(extra.into_iter().map(OsString::from));
    spliced.extend_from_slice(&args[serve_at + 1..]);
    Ok(spliced)
}

/// Runs the service until ctrl-c or SIGTERM.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Installed before the service starts answering, so a SIGTERM sent as soon as `/health`
    // answers is a graceful shutdown, not the default action that ends the process at once.
    let shutdown = shutdown_signal();
    let service = Service::start(args.serve).await.context("starting the service")?;
    match args.log.log_format {
        LogFormat::Text => println!("pactum listening on http://{}", service.local_addr()),
        // A collector reading JSON lines gets this one as JSON too.
        LogFormat::Json => tracing::info!(address = %service.local_addr(), "pactum listening"),
    }
    service.run_until(shutdown).await;
    Ok(())
}

/// Completes on ctrl-c or SIGTERM. The handlers are installed by the call, not when the future
/// is first polled, so a signal that arrives while a command is still starting is kept for it
/// rather than ending the process at once (which would leave a child such as `pactum dev`'s anvil
/// running).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            // A handler that cannot be installed never fires; the other one still can.
            let wait = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(interrupt) => {}
                _ = wait(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
