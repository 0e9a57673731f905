//! The RPC layer's settings (the `RPC` flags of `pactum serve`): timeouts, retry rounds, breaker
//! thresholds, and the list of endpoint URLs.

use std::time::Duration;

use backon::ExponentialBuilder;
use reqwest::Url;

use crate::chain::error::ChainError;

/// Shortest wait before a retry round.
const MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest wait before a retry round (before jitter, which adds up to as much again).
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Most time spent waiting between rounds of one request.
const MAX_TOTAL_DELAY: Duration = Duration::from_secs(10);

/// How the RPC layer retries and when it gives up on an endpoint (the `RPC` settings of
/// `pactum serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct RpcSettings {
    /// Milliseconds one JSON-RPC request to one endpoint may take, connection included.
    #[arg(
        long = "rpc-timeout-ms",
        env = "PACTUM_RPC_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "RPC"
    )]
    pub timeout_ms: u64,

    /// Retry rounds after a request failed at every endpoint (0 tries each endpoint once).
    #[arg(
        long = "rpc-retries",
        env = "PACTUM_RPC_RETRIES",
        default_value_t = 3,
        help_heading = "RPC"
    )]
    pub retries: usize,

    /// Transport failures in a row after which an endpoint's circuit breaker opens.
    #[arg(
        long = "rpc-breaker-failures",
        env = "PACTUM_RPC_BREAKER_FAILURES",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "RPC"
    )]
    pub breaker_failures: u32,

    /// Milliseconds an open breaker waits before letting one trial request through.
    #[arg(
        long = "rpc-breaker-cooldown-ms",
        env = "PACTUM_RPC_BREAKER_COOLDOWN_MS",
        default_value_t = 5_000,
        help_heading = "RPC"
    )]
    pub breaker_cooldown_ms: u64,
}

impl Default for RpcSettings {
    fn default() -> Self {
        Self { timeout_ms: 10_000, retries: 3, breaker_failures: 3, breaker_cooldown_ms: 5_000 }
    }
}

impl RpcSettings {
    /// The backoff between retry rounds: exponential from 100 ms to 2 s, with jitter, at most
    /// `retries` rounds and 10 s of waiting in all.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(MIN_DELAY)
            .with_max_delay(MAX_DELAY)
            .with_max_times(self.retries)
            .with_total_delay(Some(MAX_TOTAL_DELAY))
            .with_jitter()
    }
}

/// Parses `PACTUM_RPC_URL`: one URL or several, comma-separated, in order of preference. Errors
/// name the endpoint by its label, never by its text.
pub fn parse_urls(list: &str) -> Result<Vec<Url>, ChainError> {
    let urls = list
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .enumerate()
        .map(|(i, url)| {
            url.parse::<Url>()
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .ok_or_else(|| ChainError::Url(format!("rpc{i} is not an http(s) URL")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err(ChainError::Url("no RPC URL configured".into()));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn backoff_is_bounded() {
        let settings = RpcSettings { retries: 5, ..Default::default() };
        let delays: Vec<Duration> = settings.backoff().build().collect();
        assert_eq!(delays.len(), 5);
        // Jitter adds at most the delay again.
        assert!(delays.iter().all(|d| *d >= MIN_DELAY && *d <= MAX_DELAY * 2), "{delays:?}");
        assert!(delays.iter().sum::<Duration>() <= MAX_TOTAL_DELAY + MAX_DELAY * 2);
        let none = RpcSettings { retries: 0, ..Default::default() };
        assert_eq!(none.backoff().build().count(), 0);
    }

    #[test]
    fn urls_parse_in_order_and_errors_hide_them() {
        let urls = parse_urls("http://a:1, https://b.example/v2/KEY ,").unwrap();
        assert_eq!(urls.len(), 2);
        assert_eq!(urls[1].host_str(), Some("b.example"));
        let err = parse_urls("http://ok:1,ftp://secret-key@x").unwrap_err().to_string();
        assert!(err.contains("rpc1") && !err.contains("secret"), "{err}");
        assert!(parse_urls(" , ").is_err());
    }
}
