//! Throughput of the activation hot paths and of the HTTP API: `cargo bench --bench service`.
//!
//! A plain timing loop rather than criterion (no heavy dependency): a warm-up, then a number of
//! fixed-length rounds, reporting the median and the min/max rate over the rounds. The machines
//! this runs on are small and shared, so read the medians and the ratios, never one round; no
//! number here is asserted. `docs/benchmarks.md` explains each figure and records a run.
//!
//! - `pure`: activation-package builds, typed-data digests and signature checks per second.
//! - `http`: a real `pactum::service::Service` on SQLite against anvil, `GET /health` and
//!   `GET …/escrow-status` from concurrent keep-alive clients, on a near-empty store and on one
//!   holding 100,000 agreements; and, on both stores without HTTP, the queries behind
//!   escrow-status and the chain watcher's per-pass sweeps.
//!
//! - `relay`: sponsored settlement actions relayed through the real server at growing load:
//!   actions/s, accept → broadcast latency, gas and JSON-RPC calls per action.
//! - `checks`: `POST /v1/checks` under a 20-rule policy against `GET /health`, on the real
//!   `pactum serve` binary in its own process, from 16 and 64 keep-alive clients: requests/s,
//!   p50/p99 latency, the server's own `latency_ms`, and the goals (≥ 0.4× `/health`, p99 ≤
//!   10 ms at 16 in flight).
//! - `reservations`: `POST /v1/spend-guard/reservations` on one agent's budget row, and reserve
//!   → capture round trips, against `GET /health` on the same out-of-process server, from 16
//!   and 64 keep-alive clients; then a guard that the server's books match the answers.
//!
//! - `payments`: governed payments through the real server, one transaction each (payments/s,
//!   authorize → confirmed p50/p99, gas per payment), against the same payers' authorizations
//!   sent straight to the chain one per transaction and through `TransferBatch` in batches of
//!   10, 25 and 50 (gas per payment and its ratio, payments per block).
//!
//! - `polling`: `GET …/escrow-status` against `GET /healthz` on `pactum serve` in its own
//!   process, loaded by `wrk` (Debian's package) from a third process: requests/s, p50/p99, and
//!   the ratio (goal ≥ 0.5).
//!
//! - `reconcile`: `pactum reconcile` over 100,000 active agreements (store rows seeded directly,
//!   escrow words written with `anvil_setStorageAt`): seconds and JSON-RPC requests.
//!
//! Arguments after `--`: `pure`, `http`, `relay`, `checks`, `reservations`, `payments`,
//! `polling` or `reconcile` runs one part only.
//! `PACTUM_BENCH_QUICK=1` (also the default when the binary is not started by `cargo bench`,
//! e.g. `cargo test --bench service`) shortens everything to a smoke run; `PACTUM_BENCH_ROWS`,
//! `PACTUM_BENCH_ROUNDS` and `PACTUM_BENCH_SECS` override the store size, the rounds and the
//! length of an HTTP round (`http`, `checks` and `reservations`).

// `pub`: the benchmark uses a part of the test support; the rest is exported, not dead. The
// test binary (tests/it/main.rs) includes it privately, so a helper nothing uses is caught there.
#[path = "../../tests/it/support/mod.rs"]
pub mod support;

mod checks;
mod http;
mod payments;
mod polling;
mod pure;
mod reconcile;
mod relay;
mod reservations;
mod seed;
mod served;
mod store;

use std::time::{Duration, Instant};

/// How long and how much to measure.
#[derive(Debug, Clone)]
struct Settings {
    quick: bool,
    pure: bool,
    http: bool,
    relay: bool,
    checks: bool,
    reservations: bool,
    payments: bool,
    polling: bool,
    reconcile: bool,
    /// Agreements in the large store.
    rows: usize,
    /// Agreements in the near-empty store.
    small_rows: usize,
    /// Measured rounds per figure.
    rounds: usize,
    /// Length of one pure round.
    pure_round: Duration,
    /// Length of one HTTP round.
    http_round: Duration,
    /// In-flight requests to measure with.
    concurrency: Vec<usize>,
}

impl Settings {
    /// From the command line and the `PACTUM_BENCH_*` variables, read once here.
    fn from_env() -> Settings {
        let args: Vec<String> = std::env::args().skip(1).collect();
        // `cargo bench` passes `--bench`; `cargo test --all-targets` runs the binary without it.
        let under_cargo_bench = args.iter().any(|a| a == "--bench");
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |name: &str| {
            var(name).map(|v| v.parse::<f64>().unwrap_or_else(|_| panic!("{name}={v}: a number")))
        };
        let quick = var("PACTUM_BENCH_QUICK").is_some_and(|v| v != "0") || !under_cargo_bench;
        let parts: Vec<&str> =
            args.iter().filter(|a| !a.starts_with('-')).map(String::as_str).collect();
        let wants = |part: &str| parts.is_empty() || parts.contains(&part);
        let rounds =
            number("PACTUM_BENCH_ROUNDS").map_or(if quick { 2 } else { 7 }, |n| n as usize);
        let rows =
            number("PACTUM_BENCH_ROWS").map_or(if quick { 2_000 } else { 100_000 }, |n| n as usize);
        let http_secs = number("PACTUM_BENCH_SECS").unwrap_or(if quick { 0.3 } else { 3.0 });
        Settings {
            quick,
            pure: wants("pure"),
            http: wants("http"),
            relay: wants("relay"),
            checks: wants("checks"),
            reservations: wants("reservations"),
            payments: wants("payments"),
            polling: wants("polling"),
            reconcile: wants("reconcile"),
            rows,
            small_rows: 100,
            rounds: rounds.max(1),
            pure_round: Duration::from_millis(if quick { 20 } else { 500 }),
            http_round: Duration::from_secs_f64(http_secs),
            concurrency: vec![16, 64],
        }
    }
}

/// Rates over the measured rounds.
#[derive(Debug, Clone, Copy)]
struct Rates {
    median: f64,
    min: f64,
    max: f64,
}

impl Rates {
    fn of(mut rates: Vec<f64>) -> Rates {
        assert!(!rates.is_empty(), "at least one round");
        rates.sort_by(f64::total_cmp);
        let n = rates.len();
        let median =
            if n % 2 == 1 { rates[n / 2] } else { (rates[n / 2 - 1] + rates[n / 2]) / 2.0 };
        Rates { median, min: rates[0], max: rates[n - 1] }
    }
}

/// `n` with thousands separators and no decimals (`12,345`).
/// The SQLite file `pactum.db` in `dir` and its write-ahead log, in MB.
fn store_mb(dir: &std::path::Path) -> f64 {
    ["pactum.db", "pactum.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len() as f64 / 1e6)
        .sum()
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Operations per second of `op` in each of `settings.rounds` rounds, after a warm-up round.
fn rate_of(settings: &Settings, mut op: impl FnMut()) -> Rates {
    let round = |length: Duration, op: &mut dyn FnMut()| {
        let start = Instant::now();
        let mut ops = 0u64;
        while start.elapsed() < length {
            op();
            ops += 1;
        }
        ops as f64 / start.elapsed().as_secs_f64()
    };
    round(settings.pure_round, &mut op);
    Rates::of((0..settings.rounds).map(|_| round(settings.pure_round, &mut op)).collect())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // A test runner (nextest) enumerating tests: this binary holds none.
        return;
    }
    let settings = Settings::from_env();
    println!(
        "pactum service benchmark: {} rounds per figure{}; {} CPUs; load average {}",
        settings.rounds,
        if settings.quick { " (quick smoke run: figures are not meaningful)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
    );
    if settings.pure {
        pure::run(&settings);
    }
    if settings.http
        || settings.relay
        || settings.checks
        || settings.reservations
        || settings.payments
        || settings.polling
        || settings.reconcile
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        if settings.http {
            runtime.block_on(http::run(&settings));
        }
        if settings.relay {
            runtime.block_on(relay::run(&settings));
        }
        if settings.checks {
            runtime.block_on(checks::run(&settings));
        }
        if settings.reservations {
            runtime.block_on(reservations::run(&settings));
        }
        if settings.payments {
            runtime.block_on(payments::run(&settings));
        }
        if settings.polling {
            runtime.block_on(polling::run(&settings));
        }
        if settings.reconcile {
            runtime.block_on(reconcile::run(&settings));
        }
    }
    println!("\nload average at the end: {}", load_average());
}

/// The 1-, 5- and 15-minute load averages (Linux), to tell a quiet run from a busy one.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
