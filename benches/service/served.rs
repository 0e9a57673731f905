//! The real `pactum serve` binary in its own process, for the parts that measure it over HTTP
//! (`checks`, `reservations`): a fresh SQLite file (or the Postgres database given) against
//! anvil, the production poll interval, no rate limits, one agent under the owner's policy,
//! and a keep-alive client per in-flight slot. Also the small helpers those parts share to
//! send a request and summarise its latencies.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Rates;
use crate::support::DevChain;
use crate::support::process::ServeProcess;
use crate::support::service::{OWNER_KEY, unique_dir};

/// `pactum serve` with one agent under a policy, and the clients to load it with.
pub(crate) struct Server {
    pub(crate) process: ServeProcess,
    pub(crate) base: String,
    /// The directory of the SQLite file (when on SQLite) and of the server's log.
    pub(crate) dir: PathBuf,
    pub(crate) agent_id: String,
    pub(crate) agent_key: String,
    /// The policy as `PUT /agents/{id}/policies` answered it.
    pub(crate) policy: Value,
    pub(crate) clients: Vec<reqwest::Client>,
}

impl Server {
    /// Starts `pactum serve` on `database_url` (a fresh SQLite file under a directory named
    /// after `part` when `None`), creates the agent `agent_name` and puts `policy` on it, and
    /// waits until the watcher has stored its first cursor.
    pub(crate) async fn start(
        chain: &DevChain,
        part: &str,
        slots: usize,
        database_url: Option<&str>,
        agent_name: &str,
        policy: &Value,
    ) -> Server {
        let dir = unique_dir(&format!("pactum-bench-{part}"));
        let database_url = database_url.map_or_else(
            || format!("sqlite:{}?mode=rwc", dir.join("pactum.db").display()),
            str::to_owned,
        );
        let mut process =
            ServeProcess::new(chain, std::slice::from_ref(&chain.relayer), &database_url, &dir)
                // The production default: the watcher and the relayer poll once a second.
                .env("PACTUM_POLL_INTERVAL_MS", "1000")
                .env("PACTUM_RATE_LIMIT_CHECKS", "0")
                .env("PACTUM_RATE_LIMIT_GOVERNANCE", "0");
        process.spawn();
        process.wait_up().await;
        let base = process.base();
        let clients: Vec<reqwest::Client> =
            (0..slots.max(1)).map(|_| reqwest::Client::new()).collect();

        let http = &clients[0];
        let created = expect(
            http.post(format!("{base}/v1/agents"))
                .bearer_auth(OWNER_KEY)
                .json(&json!({"name": agent_name, "capabilities": ["refunds"]})),
            StatusCode::CREATED,
        )
        .await;
        let agent_id = created["id"].as_str().expect("agent id").to_owned();
        let agent_key = created["api_key"].as_str().expect("agent key").to_owned();
        let policy = expect(
            http.put(format!("{base}/agents/{agent_id}/policies"))
                .bearer_auth(OWNER_KEY)
                .json(policy),
            StatusCode::CREATED,
        )
        .await;
        let server = Server { process, base, dir, agent_id, agent_key, policy, clients };
        server.wait_for_watcher().await;
        server
    }

    /// Waits until the watcher has stored its first cursor, so `/health` reads a real row.
    async fn wait_for_watcher(&self) {
        for _ in 0..200 {
            let health =
                expect(self.clients[0].get(format!("{}/health", self.base)), StatusCode::OK).await;
            if !health["last_block"].is_null() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the watcher stored no cursor in 10 s:\n{}", self.process.log_tail());
    }

    /// Stops the process (it must exit cleanly) and removes its directory.
    pub(crate) async fn stop(mut self) {
        let status = self.process.terminate().await;
        assert!(status.success(), "pactum serve exited {status}:\n{}", self.process.log_tail());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `request` and returns its JSON body, panicking unless the status is `status`.
pub(crate) async fn expect(request: reqwest::RequestBuilder, status: StatusCode) -> Value {
    let response = request.send().await.expect("request sent");
    let got = response.status();
    let body = response.text().await.expect("body read");
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).expect("a JSON body")
}

/// The `p` quantile (0–1) of sorted `values`, nearest rank.
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied()
}

/// The `p` quantile of sorted microseconds, in milliseconds (NaN when there are none).
pub(crate) fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    percentile(sorted_us, p).map_or(f64::NAN, |us| f64::from(us) / 1e3)
}

/// `median (min–max)` with `decimals` decimals.
pub(crate) fn spread(rates: Rates, decimals: usize) -> String {
    format!("{:.d$} ({:.d$}–{:.d$})", rates.median, rates.min, rates.max, d = decimals)
}
