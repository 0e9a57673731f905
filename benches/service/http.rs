//! The HTTP rate of `GET …/escrow-status` against the real service: one anvil, two services on
//! their own SQLite files (a near-empty store and a large one), measured in interleaved rounds
//! so that the machine's noise falls on both alike. `GET /health` (one query, no auth) is the
//! floor the escrow-status figure is compared with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pactum::api::AppState;
use pactum::service::Service;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::seed::{self, Target};
use crate::store::{self, Seeded};
use crate::support::DevChain;
use crate::support::service::{config_for, unique_dir};
use crate::{Rates, Settings, thousands};

/// What a round requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    EscrowStatus,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Health => "GET /health",
            Endpoint::EscrowStatus => "GET …/escrow-status",
        }
    }
}

/// A running service with its seeded agreements and one keep-alive client per in-flight slot.
struct Server {
    label: String,
    service: Option<Service>,
    base: String,
    dir: PathBuf,
    targets: Arc<Vec<Target>>,
    clients: Vec<reqwest::Client>,
}

impl Server {
    async fn start(chain: &DevChain, label: &str, slots: usize) -> Server {
        let dir = unique_dir("pactum-bench");
        let mut config = config_for(chain, &dir);
        // The production default: the watcher and the relayer poll once a second.
        config.poll_interval_ms = 1_000;
        let service = Service::start(config).await.expect("service starts");
        let base = format!("http://{}", service.local_addr());
        let clients = (0..slots).map(|_| reqwest::Client::new()).collect();
        Server {
            label: label.to_owned(),
            service: Some(service),
            base,
            dir,
            targets: Arc::new(Vec::new()),
            clients,
        }
    }

    fn state(&self) -> &AppState {
        self.service.as_ref().expect("running").state()
    }

    async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            service.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one round of one configuration measured.
#[derive(Debug, Default)]
struct Round {
    requests: u64,
    elapsed: Duration,
    /// Microseconds per request.
    latencies: Vec<u32>,
}

/// `in_flight` clients request `endpoint` back to back, each on its own connection, until
/// `length` has passed; every answer must be a 200.
async fn round(server: &Server, endpoint: Endpoint, in_flight: usize, length: Duration) -> Round {
    let start = Instant::now();
    let deadline = start + length;
    let mut workers = JoinSet::new();
    for client in &server.clients[..in_flight] {
        let client = client.clone();
        let targets = server.targets.clone();
        let base = server.base.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let request = match endpoint {
                    Endpoint::Health => client.get(format!("{base}/health")),
                    Endpoint::EscrowStatus => {
                        let target = &targets[rand::random_range(0..targets.len())];
                        client.get(format!("{base}{}", target.path)).bearer_auth(&target.bearer)
                    }
                };
                let response = request.send().await.expect("request sent");
                let status = response.status();
                let body = response.bytes().await.expect("body read");
                assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
                latencies.push(sent.elapsed().as_micros().try_into().unwrap_or(u32::MAX));
            }
            latencies
        });
    }
    let mut measured = Round::default();
    while let Some(latencies) = workers.join_next().await {
        measured.latencies.extend(latencies.expect("a worker finished"));
    }
    measured.elapsed = start.elapsed();
    measured.requests = measured.latencies.len() as u64;
    measured
}

/// One figure: a server, an endpoint and a concurrency, over all rounds.
struct Figure {
    server: usize,
    endpoint: Endpoint,
    in_flight: usize,
    rates: Vec<f64>,
    latencies: Vec<u32>,
}

impl Figure {
    fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).map_or(f64::NAN, |us| f64::from(*us) / 1e3)
    }
}

/// Waits until the watcher has stored its first cursor, so every answer reads a real row.
async fn wait_for_watcher(server: &Server) {
    let client = &server.clients[0];
    for _ in 0..200 {
        let health: Value = client
            .get(format!("{}/health", server.base))
            .send()
            .await
            .expect("health answers")
            .json()
            .await
            .expect("health is JSON");
        if !health["last_block"].is_null() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the watcher stored no cursor in 10 s");
}

/// Seeds both stores, measures every figure and prints the tables.
pub(crate) async fn run(settings: &Settings) {
    let slots = settings.concurrency.iter().copied().max().unwrap_or(1);
    let chain = DevChain::start().await;
    let mut servers = vec![
        Server::start(&chain, &format!("{} rows", thousands(settings.small_rows as f64)), slots)
            .await,
        Server::start(&chain, &format!("{} rows", thousands(settings.rows as f64)), slots).await,
    ];

    println!(
        "\n## Seeding (store functions, {}-row transactions)\n",
        thousands(seed::BATCH as f64)
    );
    println!("| store | agreements | seconds | agreements/s | SQLite file MB |");
    println!("|---|---:|---:|---:|---:|");
    for (server, rows) in servers.iter_mut().zip([settings.small_rows, settings.rows]) {
        let parties = seed::parties(server.state()).await;
        let (targets, took) = seed::agreements(server.state(), &parties, rows).await;
        server.targets = Arc::new(targets);
        println!(
            "| {} | {} | {:.1} | {} | {:.1} |",
            server.label,
            thousands(rows as f64),
            took.as_secs_f64(),
            thousands(rows as f64 / took.as_secs_f64()),
            crate::store_mb(&server.dir),
        );
        wait_for_watcher(server).await;
    }
    let stores: Vec<_> = servers
        .iter()
        .map(|s| Seeded { label: &s.label, state: s.state(), targets: &s.targets })
        .collect();
    store::run(settings, &stores).await;

    let mut figures = Vec::new();
    for server in 0..servers.len() {
        for endpoint in [Endpoint::Health, Endpoint::EscrowStatus] {
            for &in_flight in &settings.concurrency {
                figures.push(Figure {
                    server,
                    endpoint,
                    in_flight,
                    rates: Vec::new(),
                    latencies: Vec::new(),
                });
            }
        }
    }
    // A warm-up round of each opens the connections and fills the caches; then the rounds go
    // round-robin over the figures, so a noisy moment lands on one round of each, not on one
    // figure.
    for figure in &figures {
        round(&servers[figure.server], figure.endpoint, figure.in_flight, settings.http_round / 2)
            .await;
    }
    for _ in 0..settings.rounds {
        for figure in &mut figures {
            let measured = round(
                &servers[figure.server],
                figure.endpoint,
                figure.in_flight,
                settings.http_round,
            )
            .await;
            figure.rates.push(measured.requests as f64 / measured.elapsed.as_secs_f64());
            figure.latencies.extend(measured.latencies);
        }
    }

    println!(
        "\n## HTTP: requests per second ({} rounds of {:?}; client and server share the CPUs)\n",
        settings.rounds, settings.http_round
    );
    println!("| store | endpoint | in flight | median req/s | min | max | p50 ms | p99 ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for figure in &mut figures {
        let rates = Rates::of(figure.rates.clone());
        let (p50, p99) = (figure.percentile_ms(0.50), figure.percentile_ms(0.99));
        println!(
            "| {} | {} | {} | {} | {} | {} | {p50:.2} | {p99:.2} |",
            servers[figure.server].label,
            figure.endpoint.name(),
            figure.in_flight,
            thousands(rates.median),
            thousands(rates.min),
            thousands(rates.max),
        );
    }

    // Each ratio is taken within a round (the two figures ran seconds apart), then the median
    // over the rounds: a slow stretch of the machine moves both sides of a ratio together.
    let paired = |a: (usize, Endpoint), b: (usize, Endpoint), k: usize| {
        let of = |(server, endpoint): (usize, Endpoint)| {
            let found = figures
                .iter()
                .find(|f| (f.server, f.endpoint, f.in_flight) == (server, endpoint, k));
            found.expect("every figure is measured").rates.clone()
        };
        let ratios = of(a).iter().zip(of(b)).map(|(x, y)| x / y).collect();
        let ratio = Rates::of(ratios);
        format!("{:.2} ({:.2}–{:.2})", ratio.median, ratio.min, ratio.max)
    };
    let (small, large) = (&servers[0].label, &servers[1].label);
    println!("\n## Ratios: median of the per-round ratios (min–max)\n");
    println!(
        "| in flight | escrow-status / health, {small} | escrow-status / health, {large} \
         | escrow-status, {large} / {small} |"
    );
    println!("|---:|---:|---:|---:|");
    let (health, status) = (Endpoint::Health, Endpoint::EscrowStatus);
    for &k in &settings.concurrency {
        println!(
            "| {k} | {} | {} | {} |",
            paired((0, status), (0, health), k),
            paired((1, status), (1, health), k),
            paired((1, status), (0, status), k),
        );
    }

    for server in servers {
        server.stop().await;
    }
}
