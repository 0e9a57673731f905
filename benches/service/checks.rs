//! Part 4, `checks`: the rate and latency of `POST /v1/checks` against `GET /health` on the
//! real `pactum serve` binary, run as its own process (on SQLite, against anvil, the production
//! poll interval, no rate limits), so this process is only the load generator.
//!
//! One agent with a 20-rule policy of every rule type but the counterparty allowlist, and a
//! 60 s duplicate window. Each check varies action type, amount, counterparty and metadata, so
//! the answers are mostly `allow` and `escalate`, a few `block`s (denied vendors), and
//! duplicates are rare. Every check is a write: it takes the agent's decision lock, counts
//! velocity and duplicates in the audit log, appends an audit row and a check row (and an
//! approval for an escalation) in one transaction.
//!
//! Closed loop: each of N keep-alive clients keeps one request in flight. Rounds go
//! round-robin over `/health` and checks at 16 and 64 in flight, so the machine's noise falls
//! on all four alike; each round's percentiles are kept, and the table gives their median over
//! the rounds with the min–max. Latency runs from handing the built request to the client to
//! the last byte of the answer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::served::{Server, percentile, percentile_ms, spread};
use crate::support::DevChain;
use crate::{Rates, Settings, thousands};

/// Entries of the policy's larger counterparty denylist.
const DENIED_VENDORS: usize = 50;
/// The goals: checks at this many in flight…
const GOAL_IN_FLIGHT: usize = 16;
/// …run at least this fraction of `/health`'s rate in the same round…
const GOAL_RATIO: f64 = 0.4;
/// …with a p99 no higher than this, in milliseconds.
const GOAL_P99_MS: f64 = 10.0;

/// Categories the policy allows; every check names one of them.
const CATEGORIES: [&str; 6] = ["support", "retail", "saas", "travel", "hardware", "api_calls"];
/// Countries the checks come from, none of them blocked.
const COUNTRIES: [&str; 6] = ["US", "DE", "GB", "FR", "JP", "CA"];

/// What a round requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    Check,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Health => "GET /health",
            Endpoint::Check => "POST /v1/checks",
        }
    }
}

/// The owner's policy: 20 rules over every rule type but the allowlist, in the order an owner
/// might write them (caps, escalations, budgets, counterparties, categories, geography, time).
fn policy() -> Value {
    let denied: Vec<String> =
        (0..DENIED_VENDORS).map(|i| format!("vendor_denied_{i:02}")).collect();
    let wallets: Vec<String> =
        (1..=5u8).map(|i| format!("0x{}", format!("{i:02x}").repeat(20))).collect();
    json!({
        "rules": [
            {"id": "cap", "type": "per_tx_limit", "max_cents": 50_000,
             "description": "No single spend over $500"},
            {"id": "refund-cap", "type": "per_tx_limit", "max_cents": 30_000,
             "action_types": ["refund"], "description": "No refund over $300"},
            {"id": "credit-cap", "type": "per_tx_limit", "max_cents": 25_000,
             "action_types": ["credit"], "description": "No credit over $250"},
            {"id": "refund-review", "type": "escalation_threshold", "above_cents": 20_000,
             "action_types": ["refund"], "description": "Refunds over $200 go to the owner"},
            {"id": "credit-review", "type": "escalation_threshold", "above_cents": 15_000,
             "action_types": ["credit"], "description": "Credits over $150 go to the owner"},
            {"id": "discount-review", "type": "escalation_threshold", "above_cents": 10_000,
             "action_types": ["discount"], "description": "Discounts over $100 go to the owner"},
            {"id": "spend-review", "type": "escalation_threshold", "above_cents": 40_000,
             "action_types": ["spend"], "description": "Purchases over $400 go to the owner"},
            {"id": "daily", "type": "period_budget", "period": "day", "max_cents": 5_000_000,
             "timezone": "America/New_York", "description": "$50,000 a day, New York days"},
            {"id": "monthly", "type": "period_budget", "period": "month",
             "max_cents": 100_000_000, "timezone": "Europe/Berlin",
             "description": "$1,000,000 a month, Berlin months"},
            {"id": "denied-vendors", "type": "counterparty_denylist", "counterparties": denied,
             "description": "Vendors under review"},
            {"id": "denied-wallets", "type": "counterparty_denylist", "counterparties": wallets,
             "description": "Wallets we never pay"},
            {"id": "no-risky-categories", "type": "blocked_categories",
             "categories": ["gambling", "weapons", "adult_content", "crypto_mixing"]},
            {"id": "known-categories", "type": "allowed_categories", "categories": CATEGORIES},
            {"id": "sanctioned", "type": "geography_block", "countries": ["KP", "IR", "SY", "CU"],
             "description": "Sanctioned countries"},
            {"id": "high-risk", "type": "geography_block", "countries": ["RU", "BY"]},
            {"id": "always-open-utc", "type": "schedule", "timezone": "UTC",
             "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
             "start": "00:00", "end": "24:00"},
            {"id": "always-open-tokyo", "type": "schedule", "timezone": "Asia/Tokyo",
             "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
             "start": "00:00", "end": "24:00"},
            {"id": "burst", "type": "velocity", "max_actions": 10_000_000, "window_seconds": 60,
             "description": "A runaway loop, not a busy agent"},
            {"id": "old-refunds", "type": "refund_age_limit", "max_days": 90},
            {"id": "discounts", "type": "discount_cap", "max_percent": 30},
        ],
        "duplicate_window_seconds": 60,
    })
}

/// A check body with a random action, amount, counterparty and metadata: mostly allowed,
/// refunds, credits and discounts above their thresholds escalated, a denied vendor now and
/// then blocked. Amounts and counterparties spread wide, so duplicates are rare.
fn check_body(policy_id: &str) -> Value {
    use rand::Rng;
    let mut rng = rand::rng();
    let amount_cents = rng.random_range(100..=25_000u64);
    let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
    let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
    let roll = rng.random_range(0..100);
    let (action_type, counterparty, metadata) = match roll {
        0..50 => {
            let vendor = if roll < 2 {
                format!("vendor_denied_{:02}", rng.random_range(0..DENIED_VENDORS))
            } else {
                format!("vendor_{:04}", rng.random_range(0..5_000))
            };
            (
                "spend",
                vendor,
                json!({"category": category, "country": country, "order_ref": "po-bench"}),
            )
        }
        50..75 => (
            "refund",
            format!("customer_{:05}", rng.random_range(0..50_000)),
            json!({"category": category, "country": country,
                   "days_since_purchase": rng.random_range(0..60)}),
        ),
        75..85 => (
            "credit",
            format!("customer_{:05}", rng.random_range(0..50_000)),
            json!({"category": category, "country": country}),
        ),
        _ => (
            "discount",
            format!("customer_{:05}", rng.random_range(0..50_000)),
            json!({"category": category, "country": country,
                   "discount_percent": rng.random_range(0..=25)}),
        ),
    };
    json!({
        "policy_id": policy_id,
        "action_type": action_type,
        "amount_cents": amount_cents,
        "currency": "USD",
        "counterparty": counterparty,
        "metadata": metadata,
    })
}

/// What one round measured.
#[derive(Debug, Default)]
struct Round {
    /// Microseconds per answered (200) request, sorted.
    latencies: Vec<u32>,
    elapsed: Duration,
    /// Requests that got no 200, and the first of their errors.
    failures: u64,
    first_failure: Option<String>,
    /// The server's own `latency_ms` of each check.
    server_ms: Vec<u64>,
    /// Checks by decision.
    decisions: BTreeMap<String, u64>,
}

impl Round {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies, p)
    }
}

/// `in_flight` clients request `endpoint` back to back, each on its own connection, until
/// `length` has passed.
async fn round(server: &Server, endpoint: Endpoint, in_flight: usize, length: Duration) -> Round {
    let start = Instant::now();
    let deadline = start + length;
    let mut workers = JoinSet::new();
    for client in &server.clients[..in_flight] {
        let client = client.clone();
        let base = server.base.clone();
        let key = server.agent_key.clone();
        let policy_id = server.policy["id"].as_str().expect("policy id").to_owned();
        workers.spawn(async move {
            let mut measured = Round::default();
            while Instant::now() < deadline {
                let request = match endpoint {
                    Endpoint::Health => client.get(format!("{base}/health")),
                    Endpoint::Check => client
                        .post(format!("{base}/v1/checks"))
                        .bearer_auth(&key)
                        .json(&check_body(&policy_id)),
                };
                let sent = Instant::now();
                let answer = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.map(|body| (status, body))
                    }
                    Err(e) => Err(e),
                };
                let took = sent.elapsed();
                let body = match answer {
                    Ok((StatusCode::OK, body)) => body,
                    Ok((status, body)) => {
                        measured.failures += 1;
                        measured.first_failure.get_or_insert_with(|| {
                            format!("{status}: {}", String::from_utf8_lossy(&body))
                        });
                        continue;
                    }
                    Err(e) => {
                        measured.failures += 1;
                        measured.first_failure.get_or_insert_with(|| e.to_string());
                        continue;
                    }
                };
                measured.latencies.push(took.as_micros().try_into().unwrap_or(u32::MAX));
                if endpoint == Endpoint::Check {
                    let answer: Value = serde_json::from_slice(&body).expect("a check is JSON");
                    let decision = answer["decision"].as_str().unwrap_or("none").to_owned();
                    *measured.decisions.entry(decision).or_default() += 1;
                    measured.server_ms.push(answer["latency_ms"].as_u64().expect("latency_ms"));
                }
            }
            measured
        });
    }
    let mut measured = Round::default();
    while let Some(worker) = workers.join_next().await {
        let worker = worker.expect("a worker finished");
        measured.latencies.extend(worker.latencies);
        measured.failures += worker.failures;
        if measured.first_failure.is_none() {
            measured.first_failure = worker.first_failure;
        }
        measured.server_ms.extend(worker.server_ms);
        for (decision, n) in worker.decisions {
            *measured.decisions.entry(decision).or_default() += n;
        }
    }
    measured.elapsed = start.elapsed();
    measured.latencies.sort_unstable();
    measured
}

/// One figure: an endpoint at one concurrency, over all rounds.
struct Figure {
    endpoint: Endpoint,
    in_flight: usize,
    rounds: Vec<Round>,
}

impl Figure {
    fn rates(&self) -> Vec<f64> {
        self.rounds.iter().map(Round::rate).collect()
    }

    /// The per-round `p` percentile: median over the rounds, min, max.
    fn percentile(&self, p: f64) -> Rates {
        Rates::of(self.rounds.iter().map(|r| r.percentile_ms(p)).collect())
    }

    fn failures(&self) -> u64 {
        self.rounds.iter().map(|r| r.failures).sum()
    }
}

/// Starts the server, measures every figure and prints the tables and the goals.
pub(crate) async fn run(settings: &Settings) {
    let chain = DevChain::start().await;
    run_on(settings, &chain, "SQLite", None).await;
    // The same on Postgres when the test server is configured (PACTUM_TEST_DATABASE_URL).
    if let Some(url) = crate::support::databases::fresh_postgres().await {
        run_on(settings, &chain, "Postgres", Some(&url)).await;
        crate::support::databases::drop_postgres(&url).await;
    }
}

/// The checks figures against one `pactum serve` on `database_url` (a fresh SQLite file when
/// `None`), headed with `engine`.
async fn run_on(settings: &Settings, chain: &DevChain, engine: &str, database_url: Option<&str>) {
    let slots = settings.concurrency.iter().copied().max().unwrap_or(1);
    let server =
        Server::start(chain, "checks", slots, database_url, "support-agent-bench", &policy()).await;
    assert_eq!(server.policy["rules"].as_array().map(Vec::len), Some(20), "{}", server.policy);

    let mut figures = Vec::new();
    for &in_flight in &settings.concurrency {
        for endpoint in [Endpoint::Health, Endpoint::Check] {
            figures.push(Figure { endpoint, in_flight, rounds: Vec::new() });
        }
    }
    // A warm-up round of each opens the connections and fills the caches; then the rounds go
    // round-robin over the figures, so a noisy moment lands on one round of each.
    let mut warm_up_checks = 0;
    for figure in &figures {
        let warm = round(&server, figure.endpoint, figure.in_flight, settings.http_round / 2).await;
        if figure.endpoint == Endpoint::Check {
            warm_up_checks += warm.latencies.len();
        }
    }
    for _ in 0..settings.rounds {
        for figure in &mut figures {
            let measured =
                round(&server, figure.endpoint, figure.in_flight, settings.http_round).await;
            figure.rounds.push(measured);
        }
    }

    println!(
        "\n## Checks on {engine}: `POST /v1/checks` against `/health` (`pactum serve` out of \
         process; {} rounds of {:?}; 20-rule policy)\n",
        settings.rounds, settings.http_round
    );
    println!(
        "| endpoint | in flight | median req/s | min | max | p50 ms (min–max) | p99 ms (min–max) \
         | failures |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for figure in &figures {
        let rates = Rates::of(figure.rates());
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            figure.endpoint.name(),
            figure.in_flight,
            thousands(rates.median),
            thousands(rates.min),
            thousands(rates.max),
            spread(figure.percentile(0.50), 2),
            spread(figure.percentile(0.99), 2),
            figure.failures(),
        );
    }

    println!("\n## Checks on {engine}: what the server answered\n");
    println!(
        "| in flight | checks | allow | escalate | block | server latency_ms median | p99 | mean |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for figure in figures.iter().filter(|f| f.endpoint == Endpoint::Check) {
        let mut server_ms: Vec<u64> =
            figure.rounds.iter().flat_map(|r| r.server_ms.iter().copied()).collect();
        server_ms.sort_unstable();
        let mean = server_ms.iter().sum::<u64>() as f64 / server_ms.len().max(1) as f64;
        let decision = |name: &str| -> u64 {
            figure.rounds.iter().map(|r| r.decisions.get(name).copied().unwrap_or(0)).sum()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {mean:.2} |",
            figure.in_flight,
            thousands(server_ms.len() as f64),
            thousands(decision("allow") as f64),
            thousands(decision("escalate") as f64),
            thousands(decision("block") as f64),
            percentile(&server_ms, 0.50).map_or("–".into(), |ms| ms.to_string()),
            percentile(&server_ms, 0.99).map_or("–".into(), |ms| ms.to_string()),
        );
    }

    // Each ratio is taken within a round (the two figures ran seconds apart), then the median
    // over the rounds: a slow stretch of the machine moves both sides together.
    let find = |endpoint: Endpoint, k: usize| {
        figures
            .iter()
            .find(|f| (f.endpoint, f.in_flight) == (endpoint, k))
            .expect("every figure is measured")
    };
    let ratio = |k: usize| {
        let (checks, health) =
            (find(Endpoint::Check, k).rates(), find(Endpoint::Health, k).rates());
        Rates::of(checks.iter().zip(health).map(|(c, h)| c / h).collect())
    };
    println!("\n## Ratio on {engine}: checks / health, median of the per-round ratios (min–max)\n");
    println!("| in flight | checks / health |");
    println!("|---:|---:|");
    for &k in &settings.concurrency {
        println!("| {k} | {} |", spread(ratio(k), 2));
    }

    let total_checks: usize = figures
        .iter()
        .filter(|f| f.endpoint == Endpoint::Check)
        .flat_map(|f| &f.rounds)
        .map(|r| r.latencies.len())
        .sum();
    if database_url.is_none() {
        println!(
            "\nStore after {} checks (warm-up included): {:.1} MB (SQLite file and WAL).",
            thousands((total_checks + warm_up_checks) as f64),
            crate::store_mb(&server.dir),
        );
    }

    if settings.concurrency.contains(&GOAL_IN_FLIGHT) {
        let ratio = ratio(GOAL_IN_FLIGHT);
        let p99 = find(Endpoint::Check, GOAL_IN_FLIGHT).percentile(0.99);
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        let note = if settings.quick { " (quick smoke run: not meaningful)" } else { "" };
        println!("\nGoals on {engine} at {GOAL_IN_FLIGHT} in flight{note}:");
        println!(
            "- rate ≥ {GOAL_RATIO}× /health: {} — median ratio {}",
            verdict(ratio.median >= GOAL_RATIO),
            spread(ratio, 2),
        );
        println!(
            "- p99 ≤ {GOAL_P99_MS} ms: {} — median of the per-round p99 {} ms",
            verdict(p99.median <= GOAL_P99_MS),
            spread(p99, 2),
        );
    }

    let failures: Vec<String> = figures
        .iter()
        .filter(|f| f.failures() > 0)
        .map(|f| {
            let first = f.rounds.iter().find_map(|r| r.first_failure.clone()).unwrap_or_default();
            format!(
                "{} at {}: {} failed, first: {first}",
                f.endpoint.name(),
                f.in_flight,
                f.failures()
            )
        })
        .collect();
    if !failures.is_empty() {
        println!("\nFailed requests:\n- {}", failures.join("\n- "));
    }
    let log = server.process.log_tail();
    server.stop().await;
    // A smoke run only needs the endpoint to answer; a real run counts only if every answer
    // was a 200.
    assert!(total_checks > 0, "no check was answered 200:\n{}\n{log}", failures.join("\n"));
    if !settings.quick {
        assert!(failures.is_empty(), "requests failed:\n{}\n{log}", failures.join("\n"));
    }
}
