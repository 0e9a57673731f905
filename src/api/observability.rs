//! `GET /metrics` (Prometheus text format), `GET /healthz` (liveness) and `GET /readyz`
//! (readiness: store, RPC and watcher lag).
//!
//! None of them takes a credential or counts against a rate limit: probes and scrapers call
//! them often, and they reveal no account's data. `/metrics` never calls the RPC: signer
//! balances come from the periodic check in [`crate::relayer::balance`], the rest from the
//! process's registry and a few aggregate queries on the store.

use std::time::Duration;

use alloy::providers::Provider;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use crate::metrics::{self, Series};
use crate::store::{StoreError, chain, now};

/// How long `/readyz` waits for the store and for `eth_blockNumber`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The content type of the text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /healthz`: the process is up. Checks no dependency, so a slow node or database never
/// gets a healthy process restarted.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "service",
    responses(
        (status = 200, description = "The process is up", body = Liveness),
    ),
)]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok".to_owned() })
}

/// `GET /readyz`: 200 when the store answers a query, the node answers `eth_blockNumber` within
/// two seconds and the watcher is at most `PACTUM_READY_MAX_LAG_BLOCKS` behind the head; else
/// 503 `not_ready`, with every check's result in `details`.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "service",
    responses(
        (status = 200, description = "Ready to serve", body = Ready),
        (status = 503, description = "A dependency is failing; `details` names each check", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let checks = check_readiness(&state).await;
    if checks.ready {
        Json(Ready { status: "ready".to_owned(), checks: checks.checks }).into_response()
    } else {
        ApiError::new(ErrorCode::NotReady, checks.failing_message())
            .with_details(checks.details)
            .into_response()
    }
}

/// Runs the readiness checks of `/readyz` now (the store, `eth_blockNumber`, the watcher's lag),
/// each bounded by two seconds; logs a failing dependency. The go/no-go recorder samples it.
pub async fn check_readiness(state: &AppState) -> Readiness {
    let (cursor, head) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, chain::cursor(state.store.reader())),
        tokio::time::timeout(CHECK_TIMEOUT, state.chain.provider.get_block_number()),
    );
    let cursor = match cursor {
        Ok(Ok(cursor)) => Ok(cursor),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let head = match head {
        Ok(Ok(head)) => Ok(head),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    if let Err(error) = &cursor {
        tracing::warn!(%error, "readiness: store check failed");
    }
    if let Err(error) = &head {
        tracing::warn!(%error, "readiness: rpc check failed");
    }
    readiness(&cursor, &head, state.ready_max_lag_blocks)
}

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "ok"}))]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz` when ready (a 503 carries the same checks as the error's `details`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "ready", "checks": {"store": "ok", "rpc": "ok", "watcher_lag": 1}}))]
pub struct Ready {
    /// Always `ready`.
    pub status: String,
    /// Each check's result.
    pub checks: Checks,
}

/// The readiness checks' results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// `ok` or `unreachable`.
    pub store: String,
    /// `ok` or `unreachable` (`eth_blockNumber` within two seconds).
    pub rpc: String,
    /// Blocks between the head and the watcher's last block, or `not_started` / `unknown`.
    #[schema(value_type = Value)]
    pub watcher_lag: Value,
}

/// The outcome of the readiness checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Whether every check passed.
    pub ready: bool,
    /// Each check by name: `store` and `rpc` are `ok` or `unreachable`; `watcher_lag` is the
    /// lag in blocks, or `not_started` before the watcher's first block, or `unknown`.
    pub details: Value,
    /// The same, typed, for the 200 answer.
    pub checks: Checks,
    failing: Vec<&'static str>,
}

impl Readiness {
    /// `not ready: store, rpc failing`: the failing checks by name.
    pub fn failing_message(&self) -> String {
        format!("not ready: {} failing", self.failing.join(", "))
    }
}

/// Judges the readiness checks: `cursor` is the store's answer (the watcher's position),
/// `head` the node's block number. With the node unreachable, the lag is the one the watcher
/// last saw (its head minus its position).
pub fn readiness(
    cursor: &Result<Option<chain::Cursor>, String>,
    head: &Result<u64, String>,
    max_lag: u64,
) -> Readiness {
    let mut failing = Vec::new();
    let store = if cursor.is_ok() { "ok" } else { "unreachable" };
    if cursor.is_err() {
        failing.push("store");
    }
    let rpc = if head.is_ok() { "ok" } else { "unreachable" };
    if head.is_err() {
        failing.push("rpc");
    }
    let lag = match (cursor, head) {
        (Ok(Some(c)), Ok(head)) => Some(head.saturating_sub(c.block_number)),
        (Ok(Some(c)), Err(_)) => Some(c.head_number.saturating_sub(c.block_number)),
        _ => None,
    };
    let watcher_lag = match (lag, cursor) {
        (Some(lag), _) => json!(lag),
        (None, Ok(None)) => json!("not_started"),
        (None, _) => json!("unknown"),
    };
    if lag.is_none_or(|lag| lag > max_lag) {
        failing.push("watcher_lag");
    }
    let checks = Checks { store: store.to_owned(), rpc: rpc.to_owned(), watcher_lag };
    Readiness {
        ready: failing.is_empty(),
        details: serde_json::to_value(&checks).unwrap_or_default(),
        checks,
        failing,
    }
}

/// `GET /metrics`: the registry (counters, latency histograms, signer balance gauges) and gauges read
/// from the store now. If the store does not answer, its gauges are left out and
/// `pactum_store_up` is 0.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "service",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut gauges =
        match tokio::time::timeout(CHECK_TIMEOUT, store_gauges(state.store.reader())).await {
            Ok(Ok(gauges)) => gauges,
            Ok(Err(error)) => {
                tracing::warn!(%error, "metrics: store gauges unavailable");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("metrics: store gauges timed out");
                Vec::new()
            }
        };
    let up = if gauges.is_empty() { 0.0 } else { 1.0 };
    gauges.push((("pactum_store_up", Vec::new()), up));
    let body = metrics::registry().render(&gauges);
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response()
}

/// Jobs, attempts and webhook deliveries by status, undispatched outbox events, and the
/// watcher's lag and head age. Never empty when the queries succeed (the outbox count is
/// always there).
async fn store_gauges(pool: &AnyPool) -> Result<Vec<(Series, f64)>, StoreError> {
    let mut gauges = Vec::new();
    for (name, table) in [
        ("pactum_relayer_jobs", "relayer_jobs"),
        ("pactum_relayer_job_attempts", "relayer_attempts"),
        ("pactum_webhook_deliveries", "webhook_deliveries"),
    ] {
        let sql = format!("SELECT status, COUNT(*) AS n FROM {table} GROUP BY status");
        for row in sqlx::query(&sql).fetch_all(pool).await? {
            let status: String = row.try_get("status")?;
            let count: i64 = row.try_get("n")?;
            gauges.push(((name, vec![("status", status)]), count as f64));
        }
    }
    let sql = "SELECT COUNT(*) AS n FROM outbox_events WHERE dispatched_at IS NULL";
    let undispatched: i64 = sqlx::query(sql).fetch_one(pool).await?.try_get("n")?;
    gauges.push((("pactum_outbox_undispatched", Vec::new()), undispatched as f64));
    if let Some(cursor) = chain::cursor(pool).await? {
        let lag = cursor.head_number.saturating_sub(cursor.block_number);
        gauges.push((("pactum_chain_watcher_lag_blocks", Vec::new()), lag as f64));
        if cursor.head_timestamp != 0 {
            let age = now().saturating_sub(cursor.head_timestamp as i64).max(0);
            gauges.push((("pactum_chain_head_age_seconds", Vec::new()), age as f64));
        }
    }
    Ok(gauges)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;

    use super::*;

    fn at(block_number: u64, head_number: u64) -> Result<Option<chain::Cursor>, String> {
        Ok(Some(chain::Cursor {
            block_number,
            block_hash: B256::ZERO,
            head_number,
            head_timestamp: 0,
        }))
    }

    #[test]
    fn ready_when_every_check_passes() {
        let checks = readiness(&at(97, 97), &Ok(100), 20);
        assert!(checks.ready);
        assert_eq!(checks.details, json!({ "store": "ok", "rpc": "ok", "watcher_lag": 3 }));
    }

    #[test]
    fn names_each_failing_check() {
        let checks = readiness(&at(97, 99), &Err("timed out".into()), 20);
        assert!(!checks.ready);
        assert_eq!(
            checks.details,
            json!({ "store": "ok", "rpc": "unreachable", "watcher_lag": 2 })
        );
        assert_eq!(checks.failing, vec!["rpc"]);

        let checks = readiness(&at(10, 10), &Ok(100), 20);
        assert_eq!(checks.failing, vec!["watcher_lag"]);
        assert_eq!(checks.details["watcher_lag"], 90);

        let checks = readiness(&Err("closed".into()), &Err("refused".into()), 20);
        assert_eq!(checks.failing, vec!["store", "rpc", "watcher_lag"]);
        assert_eq!(checks.details["watcher_lag"], "unknown");

        let checks = readiness(&Ok(None), &Ok(5), 20);
        assert_eq!(checks.details["watcher_lag"], "not_started");
        assert!(!checks.ready);
    }
}
