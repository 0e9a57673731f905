//! Part 5, `reservations`: spend-guard reservations on one budget row, against `GET /health`,
//! on the real `pactum serve` binary in its own process (as `checks` runs it), so this process
//! is only the load generator.
//!
//! One agent whose policy is a single `period_budget` (a UTC day, $10 billion: never reached),
//! so every reservation is allowed and every one contends for the same agent: a reservation
//! takes the agent's decision lock (`UPDATE agents SET decision_seq …`), reads the day's
//! counted holds, and inserts its hold in the same transaction.
//!
//! Two loads, closed loop, N keep-alive clients each with one request in flight:
//! - **reserve**: each client posts $1 reservations back to back under the agent's key;
//! - **reserve → capture**: each client reserves $1, then captures 75 cents of it (the rest is
//!   released), and starts again; the latency is the whole round trip.
//!
//! Rounds go round-robin over `/health`, reserve and reserve → capture at each concurrency, so
//! the machine's noise falls on all alike. Latency runs from handing the built request to the
//! client to the last byte of the (last) answer. After the rounds, a guard compares what the
//! server counts against what its answers said: the budget's `counted_cents` (from
//! `POST /v1/spend-guard/estimate`, the figure a decision sees) and the cents reserved and
//! captured in the usage summary (the reservations' events) must equal what the 201s and 200s
//! add up to, or the run fails.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::served::{Server, expect, percentile, percentile_ms, spread};
use crate::support::DevChain;
use crate::{Rates, Settings, thousands};

/// What each reservation holds: $1.
const AMOUNT_CENTS: u64 = 100;
/// What a round trip captures of it; the other 25 cents are released by the capture.
const CAPTURE_CENTS: u64 = 75;
/// The daily budget: $10 billion, never reached, so the rule is evaluated but never blocks.
const BUDGET_CENTS: u64 = 1_000_000_000_000;
/// Time to live of each hold: longer than any run, so the sweeper expires none of them.
const TTL_SECONDS: u64 = 3_600;

/// What a round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Health,
    Reserve,
    RoundTrip,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Health => "GET /health",
            Load::Reserve => "reserve",
            Load::RoundTrip => "reserve → capture",
        }
    }
}

/// The owner's policy: one daily budget on the agent, in UTC.
fn policy() -> Value {
    json!({"rules": [{"id": "daily", "type": "period_budget", "period": "day",
                      "max_cents": BUDGET_CENTS, "timezone": "UTC"}]})
}

/// A $1 reservation to one of 5,000 vendors.
fn reservation_body() -> Value {
    use rand::Rng;
    json!({
        "amount_cents": AMOUNT_CENTS,
        "action_type": "spend",
        "counterparty": format!("vendor_{:04}", rand::rng().random_range(0..5_000)),
        "category": "api_calls",
        "ttl_seconds": TTL_SECONDS,
    })
}

/// What the answers say the server holds: counts of answered requests, and of requests whose
/// outcome is unknown (no answer), which bound the guard.
#[derive(Debug, Default, Clone, Copy)]
struct Ledger {
    /// Reservations answered 201 `reserved`.
    reserved: u64,
    /// Reservations with no answer (held or not).
    reserve_unknown: u64,
    /// Captures answered 200 `captured` (each of a reservation counted in `reserved`).
    captured: u64,
    /// Captures with no answer (captured or still reserved).
    capture_unknown: u64,
}

impl Ledger {
    fn add(&mut self, other: &Ledger) {
        self.reserved += other.reserved;
        self.reserve_unknown += other.reserve_unknown;
        self.captured += other.captured;
        self.capture_unknown += other.capture_unknown;
    }

    /// The budget's counted cents the answers imply: lowest and highest.
    fn counted_cents(&self) -> (u64, u64) {
        let released = AMOUNT_CENTS - CAPTURE_CENTS;
        let exact = self.reserved * AMOUNT_CENTS - self.captured * released;
        (exact - self.capture_unknown * released, exact + self.reserve_unknown * AMOUNT_CENTS)
    }
}

/// What one round measured.
#[derive(Debug, Default)]
struct Round {
    /// Microseconds per completed operation (a 200 health, a 201 reservation, a round trip
    /// whose both legs succeeded), sorted.
    latencies: Vec<u32>,
    /// Microseconds of each successful capture leg, sorted.
    captures: Vec<u32>,
    /// The server's own `decision.latency_ms` of each reservation.
    server_ms: Vec<u64>,
    elapsed: Duration,
    /// Requests that failed, and the first of their errors.
    failures: u64,
    first_failure: Option<String>,
    ledger: Ledger,
}

impl Round {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn fail(&mut self, what: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(what);
    }

    fn merge(&mut self, other: Round) {
        self.latencies.extend(other.latencies);
        self.captures.extend(other.captures);
        self.server_ms.extend(other.server_ms);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.ledger.add(&other.ledger);
    }
}

/// How a request ended: its status and body, or no answer at all.
async fn send(request: reqwest::RequestBuilder) -> Result<(StatusCode, Bytes), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    response.bytes().await.map(|body| (status, body)).map_err(|e| e.to_string())
}

/// Sends one reservation; returns its id when it was answered 201 `reserved`.
async fn reserve(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    measured: &mut Round,
) -> Option<String> {
    let request = client
        .post(format!("{base}/v1/spend-guard/reservations"))
        .bearer_auth(key)
        .json(&reservation_body());
    match send(request).await {
        Ok((StatusCode::CREATED, body)) => {
            let answer: Value = serde_json::from_slice(&body).expect("a reservation is JSON");
            assert_eq!(answer["status"], "reserved", "{answer}");
            measured.ledger.reserved += 1;
            if let Some(ms) = answer["decision"]["latency_ms"].as_u64() {
                measured.server_ms.push(ms);
            }
            Some(answer["id"].as_str().expect("a reservation id").to_owned())
        }
        Ok((status, body)) => {
            measured.fail(format!("reserve {status}: {}", String::from_utf8_lossy(&body)));
            None
        }
        Err(e) => {
            measured.ledger.reserve_unknown += 1;
            measured.fail(format!("reserve: {e}"));
            None
        }
    }
}

/// Captures [`CAPTURE_CENTS`] of reservation `id`; whether it was answered 200 `captured`.
async fn capture(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    measured: &mut Round,
) -> bool {
    let request = client
        .post(format!("{base}/v1/spend-guard/reservations/{id}/capture"))
        .bearer_auth(key)
        .json(&json!({"amount_cents": CAPTURE_CENTS}));
    match send(request).await {
        Ok((StatusCode::OK, body)) => {
            let answer: Value = serde_json::from_slice(&body).expect("a capture is JSON");
            assert_eq!(answer["status"], "captured", "{answer}");
            assert_eq!(answer["counted_cents"], CAPTURE_CENTS, "{answer}");
            measured.ledger.captured += 1;
            true
        }
        Ok((status, body)) => {
            measured.fail(format!("capture {status}: {}", String::from_utf8_lossy(&body)));
            false
        }
        Err(e) => {
            measured.ledger.capture_unknown += 1;
            measured.fail(format!("capture: {e}"));
            false
        }
    }
}

/// `in_flight` clients run `load` back to back, each on its own connection, until `length`
/// has passed.
async fn round(server: &Server, load: Load, in_flight: usize, length: Duration) -> Round {
    let start = Instant::now();
    let deadline = start + length;
    let mut workers = JoinSet::new();
    for client in &server.clients[..in_flight] {
        let client = client.clone();
        let (base, key) = (server.base.clone(), server.agent_key.clone());
        workers.spawn(async move {
            let mut measured = Round::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let done = match load {
                    Load::Health => match send(client.get(format!("{base}/health"))).await {
                        Ok((StatusCode::OK, _)) => true,
                        Ok((status, body)) => {
                            measured.fail(format!("{status}: {}", String::from_utf8_lossy(&body)));
                            false
                        }
                        Err(e) => {
                            measured.fail(e);
                            false
                        }
                    },
                    Load::Reserve => reserve(&client, &base, &key, &mut measured).await.is_some(),
                    Load::RoundTrip => match reserve(&client, &base, &key, &mut measured).await {
                        Some(id) => {
                            let leg = Instant::now();
                            let captured = capture(&client, &base, &key, &id, &mut measured).await;
                            if captured {
                                measured.captures.push(micros(leg.elapsed()));
                            }
                            captured
                        }
                        None => false,
                    },
                };
                if done {
                    measured.latencies.push(micros(sent.elapsed()));
                }
            }
            measured
        });
    }
    let mut measured = Round::default();
    while let Some(worker) = workers.join_next().await {
        measured.merge(worker.expect("a worker finished"));
    }
    measured.elapsed = start.elapsed();
    measured.latencies.sort_unstable();
    measured.captures.sort_unstable();
    measured.server_ms.sort_unstable();
    measured
}

fn micros(took: Duration) -> u32 {
    took.as_micros().try_into().unwrap_or(u32::MAX)
}

/// One figure: a load at one concurrency, over all rounds.
struct Figure {
    load: Load,
    in_flight: usize,
    rounds: Vec<Round>,
}

impl Figure {
    fn rates(&self) -> Vec<f64> {
        self.rounds.iter().map(Round::rate).collect()
    }

    /// The per-round `p` percentile of `of` (total latency or the capture leg): median over
    /// the rounds, min, max.
    fn percentile(&self, p: f64, of: impl Fn(&Round) -> &[u32]) -> Rates {
        Rates::of(self.rounds.iter().map(|r| percentile_ms(of(r), p)).collect())
    }

    fn failures(&self) -> u64 {
        self.rounds.iter().map(|r| r.failures).sum()
    }
}

/// Starts the server, measures every figure, prints the tables and checks the books.
pub(crate) async fn run(settings: &Settings) {
    let chain = DevChain::start().await;
    run_on(settings, &chain, "SQLite", None).await;
    // The same on Postgres when the test server is configured (PACTUM_TEST_DATABASE_URL).
    if let Some(url) = crate::support::databases::fresh_postgres().await {
        run_on(settings, &chain, "Postgres", Some(&url)).await;
        crate::support::databases::drop_postgres(&url).await;
    }
}

/// The reservation figures against one `pactum serve` on `database_url` (a fresh SQLite file
/// when `None`), headed with `engine`.
async fn run_on(settings: &Settings, chain: &DevChain, engine: &str, database_url: Option<&str>) {
    let slots = settings.concurrency.iter().copied().max().unwrap_or(1);
    let server =
        Server::start(chain, "reservations", slots, database_url, "buyer-agent-bench", &policy())
            .await;
    let day_before = budget(&server).await["period_start"].clone();

    let mut figures = Vec::new();
    for &in_flight in &settings.concurrency {
        for load in [Load::Health, Load::Reserve, Load::RoundTrip] {
            figures.push(Figure { load, in_flight, rounds: Vec::new() });
        }
    }
    // Everything the answers said, warm-up included: what the guard checks.
    let mut books = Ledger::default();
    // Holds counted today when each measured round began (round-robin: one per pass).
    let mut counted_at_pass = Vec::new();
    for figure in &figures {
        let warm = round(&server, figure.load, figure.in_flight, settings.http_round / 2).await;
        books.add(&warm.ledger);
    }
    for _ in 0..settings.rounds {
        counted_at_pass.push(books.reserved);
        for figure in &mut figures {
            let measured = round(&server, figure.load, figure.in_flight, settings.http_round).await;
            books.add(&measured.ledger);
            figure.rounds.push(measured);
        }
    }

    println!(
        "\n## Reservations on {engine}: $1 holds on one budget row against `/health` (`pactum \
         serve` out of process; {} rounds of {:?}; one `period_budget` rule)\n",
        settings.rounds, settings.http_round
    );
    println!(
        "| load | in flight | median ops/s | min | max | p50 ms (min–max) | p99 ms (min–max) | \
         failures |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for figure in &figures {
        let rates = Rates::of(figure.rates());
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            figure.load.name(),
            figure.in_flight,
            thousands(rates.median),
            thousands(rates.min),
            thousands(rates.max),
            spread(figure.percentile(0.50, |r| &r.latencies), 2),
            spread(figure.percentile(0.99, |r| &r.latencies), 2),
            figure.failures(),
        );
    }

    println!("\n## Reservations on {engine}: the capture leg and the server's decision time\n");
    println!(
        "| load | in flight | capture p50 ms | capture p99 ms | decision latency_ms median | p99 \
         |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for figure in figures.iter().filter(|f| f.load != Load::Health) {
        let mut server_ms: Vec<u64> =
            figure.rounds.iter().flat_map(|r| r.server_ms.iter().copied()).collect();
        server_ms.sort_unstable();
        let leg = |p: f64| match figure.load {
            Load::RoundTrip => spread(figure.percentile(p, |r| &r.captures), 2),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            figure.load.name(),
            figure.in_flight,
            leg(0.50),
            leg(0.99),
            percentile(&server_ms, 0.50).map_or("–".into(), |ms| ms.to_string()),
            percentile(&server_ms, 0.99).map_or("–".into(), |ms| ms.to_string()),
        );
    }

    let find = |load: Load, k: usize| {
        figures
            .iter()
            .find(|f| (f.load, f.in_flight) == (load, k))
            .expect("every figure is measured")
    };
    // Each ratio is taken within a round, then the median over the rounds.
    let ratio = |load: Load, k: usize| {
        let (ops, health) = (find(load, k).rates(), find(Load::Health, k).rates());
        Rates::of(ops.iter().zip(health).map(|(o, h)| o / h).collect())
    };
    println!(
        "\n## Ratio on {engine}: reservations and round trips / health, median of the per-round \
         ratios (min–max)\n"
    );
    println!("| in flight | reservations / health | round trips / health |");
    println!("|---:|---:|---:|");
    for &k in &settings.concurrency {
        println!(
            "| {k} | {} | {} |",
            spread(ratio(Load::Reserve, k), 3),
            spread(ratio(Load::RoundTrip, k), 3)
        );
    }

    // Every reservation of the day is a row the next decision reads: show the rate against
    // how many there were.
    println!("\n## Reservations on {engine}: rate by pass, against the holds counted today\n");
    let loads: Vec<&Figure> = figures.iter().filter(|f| f.load != Load::Health).collect();
    let header: Vec<String> =
        loads.iter().map(|f| format!("{} at {} /s", f.load.name(), f.in_flight)).collect();
    println!("| pass | holds counted at its start | {} |", header.join(" | "));
    println!("|---:|---:|{}", "---:|".repeat(loads.len()));
    for (pass, counted) in counted_at_pass.iter().enumerate() {
        let rates: Vec<String> = loads.iter().map(|f| thousands(f.rounds[pass].rate())).collect();
        println!("| {} | {} | {} |", pass + 1, thousands(*counted as f64), rates.join(" | "));
    }
    if database_url.is_none() {
        println!(
            "\nStore after {} reservations (warm-up included): {:.1} MB (SQLite file and WAL).",
            thousands(books.reserved as f64),
            crate::store_mb(&server.dir),
        );
    }

    check_books(&server, engine, &books, &day_before).await;

    let failures: Vec<String> = figures
        .iter()
        .filter(|f| f.failures() > 0)
        .map(|f| {
            let first = f.rounds.iter().find_map(|r| r.first_failure.clone()).unwrap_or_default();
            format!("{} at {}: {} failed, first: {first}", f.load.name(), f.in_flight, f.failures())
        })
        .collect();
    if !failures.is_empty() {
        println!("\nFailed requests:\n- {}", failures.join("\n- "));
    }
    let log = server.process.log_tail();
    server.stop().await;
    // A smoke run only needs the endpoints to answer; a real run counts only if every answer
    // was the expected one.
    assert!(books.reserved > 0, "no reservation was answered 201:\n{}\n{log}", failures.join("\n"));
    if !settings.quick {
        assert!(failures.is_empty(), "requests failed:\n{}\n{log}", failures.join("\n"));
    }
}

/// The agent's daily budget as `POST /v1/spend-guard/estimate` sees it: what a decision reads.
async fn budget(server: &Server) -> Value {
    let estimate = expect(
        server.clients[0]
            .post(format!("{}/v1/spend-guard/estimate", server.base))
            .bearer_auth(&server.agent_key)
            .json(&json!({"kind": "payment", "amount_cents": 1})),
        StatusCode::OK,
    )
    .await;
    let budgets = estimate["budgets"].as_array().expect("budgets");
    assert_eq!(budgets.len(), 1, "{estimate}");
    budgets[0].clone()
}

/// The correctness guard: the budget's counted cents, and the cents reserved and captured in
/// the usage summary, must be what the answers add up to (within what requests without an
/// answer could have done). Panics otherwise.
async fn check_books(server: &Server, engine: &str, books: &Ledger, day_before: &Value) {
    let budget = budget(server).await;
    let summary = expect(
        server.clients[0]
            .get(format!(
                "{}/v1/spend-guard/usage/summary?agent_id={}",
                server.base, server.agent_id
            ))
            .bearer_auth(&server.agent_key),
        StatusCode::OK,
    )
    .await;
    let cents = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("cents in {summary}"));
    let totals = &summary["totals"];
    let reserved_cents = cents(&totals["reservations"]["reserved_cents"]);
    let captured_cents = cents(&totals["reservations"]["captured_cents"]);
    let allowed = totals["decisions"]["reservation"]["allow"].as_u64().unwrap_or(0);
    let counted = cents(&budget["counted_cents"]);

    let within = |got: u64, low: u64, high: u64| (low..=high).contains(&got);
    let (counted_low, counted_high) = books.counted_cents();
    let reserved = (books.reserved, books.reserved + books.reserve_unknown);
    let captured = (books.captured, books.captured + books.capture_unknown);
    let same_day = budget["period_start"] == *day_before;
    let mut wrong = Vec::new();
    if same_day && !within(counted, counted_low, counted_high) {
        wrong.push(format!(
            "the budget counts {counted} cents; the answers say {counted_low}–{counted_high}"
        ));
    }
    if !within(reserved_cents, reserved.0 * AMOUNT_CENTS, reserved.1 * AMOUNT_CENTS) {
        wrong.push(format!(
            "the summary has {reserved_cents} cents reserved; the answers say {}–{} holds of \
             {AMOUNT_CENTS}",
            reserved.0, reserved.1
        ));
    }
    if !within(allowed, reserved.0, reserved.1) {
        wrong.push(format!(
            "the summary has {allowed} reservations allowed; the answers say {}–{}",
            reserved.0, reserved.1
        ));
    }
    if !within(captured_cents, captured.0 * CAPTURE_CENTS, captured.1 * CAPTURE_CENTS) {
        wrong.push(format!(
            "the summary has {captured_cents} cents captured; the answers say {}–{} captures \
             of {CAPTURE_CENTS}",
            captured.0, captured.1
        ));
    }
    println!(
        "\nBooks on {engine}: {} reservations answered 201 and {} captures answered 200 (warm-up \
         included; {} reservations and {} captures without an answer); the budget counts {} \
         cents{}, the summary {} cents reserved and {} captured: {}.",
        thousands(books.reserved as f64),
        thousands(books.captured as f64),
        books.reserve_unknown,
        books.capture_unknown,
        thousands(counted as f64),
        if same_day { "" } else { " (the UTC day turned during the run: not compared)" },
        thousands(reserved_cents as f64),
        thousands(captured_cents as f64),
        if wrong.is_empty() { "they agree" } else { "THEY DISAGREE" },
    );
    assert!(wrong.is_empty(), "the books do not balance on {engine}:\n- {}", wrong.join("\n- "));
}
