//! `pactum go-no-go`: asks the running service for a go/no-go run (`POST /v1/go-no-go` with the
//! operator's credential), waits for it, and writes the signed packet as `packet.json` and
//! `packet.html` into `--out`. Exits 0 when every section is `go`, 1 on any `no_go`, 2 when it
//! cannot run. `pactum go-no-go verify FILE` checks a saved packet's signature offline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pactum::gonogo::{Packet, Verdict, html, signing};
use pactum::secret::Secret;
use serde_json::Value;

/// Exit status when a section is `no_go` (or a packet does not verify).
pub(crate) const EXIT_NO_GO: u8 = 1;
/// Exit status when the run could not be made.
pub(crate) const EXIT_ERROR: u8 = 2;

/// The packet was made and is `no_go`: a finding, not an error (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("go/no-go verdict: no_go")]
pub(crate) struct NoGo;

/// `pactum go-no-go` and `pactum go-no-go verify`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct GoNoGoArgs {
    #[command(subcommand)]
    command: Option<GoNoGoCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum GoNoGoCommand {
    /// Check a saved packet's signature and content; prints the signer it recovers.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The running service's base URL.
    #[arg(long, env = "PACTUM_URL", default_value = "http://127.0.0.1:8080")]
    url: String,

    /// The operator's credential (the service's `PACTUM_OWNER_KEY`).
    #[arg(long, env = "PACTUM_OWNER_KEY", hide_env_values = true)]
    owner_key: Option<Secret>,

    /// The directory `packet.json` and `packet.html` are written to (created if missing).
    #[arg(long, default_value = "go-no-go")]
    out: PathBuf,

    /// How long to wait for the run, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The `packet.json` to check.
    file: PathBuf,

    /// The receipt signer the packet must recover (e.g. from a receipt of the same
    /// deployment); without it the packet's own `signer` is checked and printed.
    #[arg(long)]
    signer: Option<alloy::primitives::Address>,
}

/// Runs `pactum go-no-go` or its `verify`.
pub(crate) async fn run(args: GoNoGoArgs) -> anyhow::Result<()> {
    match args.command {
        Some(GoNoGoCommand::Verify(verify_args)) => verify(&verify_args),
        None => collect(args.run).await,
    }
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let packet: Packet = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a go/no-go packet", args.file.display()))?;
    let signer = match signing::verify(&packet) {
        Ok(signer) => signer,
        Err(error) => {
            eprintln!("does not verify: {error}");
            return Err(NoGo.into());
        }
    };
    if let Some(expected) = args.signer
        && expected != signer
    {
        eprintln!("does not verify: signed by {signer}, not {expected}");
        return Err(NoGo.into());
    }
    let hash = packet.signature.as_ref().map(|s| s.packet_hash.clone()).unwrap_or_default();
    println!(
        "verified: run {} ({}) signed by {signer}, packet hash {hash}",
        packet.run_id, packet.verdict
    );
    Ok(())
}

async fn collect(args: RunArgs) -> anyhow::Result<()> {
    let Some(owner_key) = args.owner_key else {
        bail!("the operator's credential is needed: set PACTUM_OWNER_KEY or pass --owner-key");
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let base = args.url.trim_end_matches('/');
    let call = |method: reqwest::Method, path: String| {
        http.request(method, format!("{base}{path}")).bearer_auth(owner_key.expose()).send()
    };
    let started = call(reqwest::Method::POST, "/v1/go-no-go".into())
        .await
        .with_context(|| format!("reaching the service at {base}"))?;
    let started = answer(started, 202).await?;
    let run_id = started["run_id"].as_str().context("the service answered no run id")?.to_owned();
    eprintln!("go/no-go run {run_id} started; waiting for it…");
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let run = loop {
        let response = call(reqwest::Method::GET, format!("/v1/go-no-go/{run_id}"))
            .await
            .with_context(|| format!("reaching the service at {base}"))?;
        let run = answer(response, 200).await?;
        if run["status"] == "complete" {
            break run;
        }
        if Instant::now() >= deadline {
            bail!("run {run_id} was not complete after {} s", args.timeout_secs);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let packet: Packet = serde_json::from_value(run["packet"].clone())
        .context("the service's packet does not parse")?;
    signing::verify(&packet).context("the service's packet does not verify")?;
    write(&args.out, &packet)?;
    for section in &packet.sections {
        println!(
            "{:<6} {:<18} {}",
            section.verdict.as_str(),
            section.section.as_str(),
            section.summary
        );
    }
    println!(
        "{}: {} (signed by {}); written to {}",
        run_id,
        packet.verdict,
        packet.signature.as_ref().map(|s| s.signer.as_str()).unwrap_or("nobody"),
        args.out.display()
    );
    match packet.verdict {
        Verdict::Go => Ok(()),
        Verdict::NoGo => Err(NoGo.into()),
    }
}

/// The JSON body of `response`, or an error naming its status and the API's error.
async fn answer(response: reqwest::Response, expected: u16) -> anyhow::Result<Value> {
    let status = response.status().as_u16();
    let body: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
    if status != expected {
        bail!(
            "the service answered HTTP {status}: {} (is this the operator's credential?)",
            body["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(body)
}

/// Writes `packet.json` (exactly as signed) and `packet.html` into `dir`.
fn write(dir: &Path, packet: &Packet) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(packet)?;
    std::fs::write(dir.join("packet.json"), json + "\n")
        .with_context(|| format!("writing {}", dir.join("packet.json").display()))?;
    std::fs::write(dir.join("packet.html"), html::render(packet))
        .with_context(|| format!("writing {}", dir.join("packet.html").display()))?;
    Ok(())
}
