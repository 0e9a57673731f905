//! Polling: `GET …/escrow-status` against `GET /healthz` on the real `pactum serve` binary in its
//! own process, loaded by `wrk` (Debian's package), another process again: the way a platform's
//! pollers and a load balancer's health checks meet a deployment. The store (SQLite) is seeded
//! with 10,000 agreements (one in two active) by an in-process service that is then stopped;
//! each escrow-status request names a random one of 1,000 of them with the API key of one of
//! its parties (a `wrk` Lua script). Rounds alternate between the two routes, so the machine's
//! noise falls on both alike; the figure is the median of the per-round ratios.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pactum::service::Service;

use crate::support::DevChain;
use crate::support::process::ServeProcess;
use crate::support::service::{config_for, unique_dir};
use crate::{Rates, Settings, seed, thousands};

/// Agreements seeded; escrow-status requests pick among the first [`POLLED`].
const SEEDED: usize = 10_000;
const POLLED: usize = 1_000;
/// `wrk` threads: the client gets its own two threads, as a separate machine would not.
const WRK_THREADS: usize = 2;

/// One `wrk` round: requests per second, and the latency percentiles it reports (ms).
#[derive(Debug, Clone, Copy)]
struct Round {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

/// Whether `wrk` can be run.
fn wrk_present() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// Runs `wrk` for `length` with `connections` against `url`, with `script` when given.
fn wrk(url: &str, connections: usize, length: Duration, script: Option<&Path>) -> Round {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{}", WRK_THREADS.min(connections)))
        .arg(format!("-c{connections}"))
        // Whole seconds: `wrk` takes no finer unit.
        .arg(format!("-d{}s", length.as_secs_f64().round().max(1.0)))
        .arg("--latency");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().expect("wrk runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&text)
}

/// `wrk --latency`'s report: `Requests/sec:`, the 50% and 99% lines, `Non-2xx` when present.
fn parse(text: &str) -> Round {
    let field = |prefix: &str| {
        text.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix)).map(str::trim)
    };
    let millis = |value: &str| {
        let (number, unit) =
            value.split_at(value.find(|c: char| c.is_alphabetic()).unwrap_or(value.len()));
        let number: f64 = number.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => number / 1e3,
            "ms" => number,
            "s" => number * 1e3,
            "m" => number * 60e3,
            _ => f64::NAN,
        }
    };
    Round {
        rate: field("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        p50_ms: field("50%").map_or(f64::NAN, millis),
        p99_ms: field("99%").map_or(f64::NAN, millis),
        non_2xx: field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}

/// The Lua script that sends each request to a random polled agreement with its party's key.
fn script(dir: &Path, targets: &[seed::Target]) -> std::path::PathBuf {
    let mut lua = String::from("local targets = {\n");
    for target in targets {
        lua.push_str(&format!("  {{\"{}\", \"Bearer {}\"}},\n", target.path, target.bearer));
    }
    lua.push_str(
        "}\nmath.randomseed(7)\nrequest = function()\n  local t = targets[math.random(#targets)]\n  \
         return wrk.format(\"GET\", t[1], {[\"Authorization\"] = t[2]})\nend\n",
    );
    let path = dir.join("escrow-status.lua");
    std::fs::write(&path, lua).expect("script written");
    path
}

/// The `polling` part.
pub(crate) async fn run(settings: &Settings) {
    println!("\n## Polling: escrow-status against /healthz, out of process (wrk)\n");
    if !wrk_present() {
        panic!(
            "`wrk` is not installed: the polling part needs Debian's `wrk` package (test.sh installs it)"
        );
    }
    let chain = DevChain::start().await;
    let dir = unique_dir("pactum-bench-polling");
    // Seed the SQLite file through an in-process service, then hand the file to `pactum serve`.
    let config = config_for(&chain, &dir);
    let database_url = config.database_url.clone();
    let service = Service::start(config).await.expect("service starts");
    let parties = seed::parties(service.state()).await;
    let seeded = if settings.quick { POLLED } else { SEEDED };
    let (targets, _) = seed::agreements(service.state(), &parties, seeded).await;
    service.shutdown().await;
    let polled = &targets[..POLLED.min(targets.len())];
    let lua = script(&dir, polled);

    let mut process =
        ServeProcess::new(&chain, std::slice::from_ref(&chain.relayer), &database_url, &dir)
            .env("PACTUM_POLL_INTERVAL_MS", "1000");
    process.spawn();
    process.wait_up().await;
    let base = process.base();
    let length = settings.http_round;
    println!("| in flight | route | requests/s median | min | max | p50 ms | p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for connections in [16usize, 64] {
        // A warm-up of each.
        wrk(&base, connections, length / 2, Some(&lua));
        wrk(&format!("{base}/healthz"), connections, length / 2, None);
        let mut status = Vec::new();
        let mut health = Vec::new();
        for _ in 0..settings.rounds {
            status.push(wrk(&base, connections, length, Some(&lua)));
            health.push(wrk(&format!("{base}/healthz"), connections, length, None));
        }
        let refused: u64 = status.iter().chain(&health).map(|r| r.non_2xx).sum();
        assert_eq!(refused, 0, "every request answered 2xx");
        let ratios = Rates::of(status.iter().zip(&health).map(|(s, h)| s.rate / h.rate).collect());
        let rates = |rounds: &[Round]| Rates::of(rounds.iter().map(|r| r.rate).collect());
        let median = |rounds: &[Round], f: fn(&Round) -> f64| {
            Rates::of(rounds.iter().map(f).collect()).median
        };
        let (s, h) = (rates(&status), rates(&health));
        println!(
            "| {connections} | escrow-status | {} | {} | {} | {:.2} | {:.2} |",
            thousands(s.median),
            thousands(s.min),
            thousands(s.max),
            median(&status, |r| r.p50_ms),
            median(&status, |r| r.p99_ms),
        );
        println!(
            "| {connections} | /healthz | {} | {} | {} | {:.2} | {:.2} |",
            thousands(h.median),
            thousands(h.min),
            thousands(h.max),
            median(&health, |r| r.p50_ms),
            median(&health, |r| r.p99_ms),
        );
        println!(
            "ratio escrow-status / healthz at {connections} connections: {:.2} ({:.2}–{:.2}); goal ≥ 0.5",
            ratios.median, ratios.min, ratios.max
        );
    }
    // Where the escrow-status reads were answered from.
    let metrics = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await;
    for line in metrics.unwrap_or_default().lines() {
        if line.starts_with("pactum_read_model_reads_total{") {
            println!("{line}");
        }
    }
    let status = process.terminate().await;
    assert!(status.success(), "pactum serve exited {status}:\n{}", process.log_tail());
    let _ = std::fs::remove_dir_all(&dir);
}
