//! The RPC layer under every provider of the service: an ordered list of JSON-RPC endpoints
//! behind one alloy transport, with failover, retries, a circuit breaker per endpoint and call
//! counting.
//!
//! Each request goes to the first endpoint whose breaker lets it through. A transport failure
//! (connection refused or reset, a timeout, HTTP 408, 429 or 5xx, a body that is not JSON-RPC)
//! moves on to the next endpoint; when every endpoint failed, the whole round is retried with
//! exponential backoff and jitter (`backon`), within a bounded number of rounds. A JSON-RPC
//! error response (execution reverted, nonce too low, …) is an answer: it goes back to the
//! caller untouched, is never retried and never counts against the endpoint. While every
//! breaker is open, requests fail at once with [`ALL_OPEN`] in the message; the callers (the
//! relayer, the watcher, the API with 503 `chain_unavailable`) retry on their own schedule.
//!
//! Endpoints are named `rpc0`, `rpc1`, … in logs and metrics: their URLs may carry API keys.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use alloy::rpc::client::RpcClient;
use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};
use backon::Retryable;
use reqwest::Url;

use super::breaker::{Breaker, BreakerState};
use super::error::ChainError;

mod response;
mod settings;

pub use response::{Outcome, classify_response};
pub use settings::{RpcSettings, parse_urls};

/// The message of the error returned while every endpoint's circuit breaker is open.
pub const ALL_OPEN: &str = "no RPC endpoint available: every circuit breaker is open";

/// Every JSON-RPC request sent by this process, to any endpoint.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// The number of JSON-RPC requests this process has sent so far (each attempt at each endpoint
/// counts once; a batch counts once). Cheap: one atomic load.
pub fn calls_total() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// Why one round over the endpoints did not bring an answer.
#[derive(Debug)]
enum RoundError {
    /// Every endpoint tried failed at transport level: worth another round.
    Unavailable(TransportError),
    /// A refusal to pass to the caller as is.
    Refused(TransportError),
    /// No endpoint may be tried now.
    AllOpen,
}

/// One endpoint: its label, URL and breaker.
#[derive(Debug)]
struct Endpoint {
    label: String,
    url: Url,
    breaker: Mutex<Breaker>,
    /// Its chain id was read and matched.
    verified: AtomicBool,
    /// It answered with another chain's id: never used.
    wrong_chain: AtomicBool,
    /// Requests sent to it.
    calls: AtomicU64,
    /// Those that failed at transport level.
    failures: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    endpoints: Vec<Endpoint>,
    http: reqwest::Client,
    settings: RpcSettings,
    chain_id: OnceLock<u64>,
}

/// The transport: a `tower::Service` over JSON-RPC packets, as alloy's `RpcClient` takes it.
/// Cheap to clone; clones share endpoints, breakers and counters.
#[derive(Debug, Clone)]
pub struct RpcService {
    inner: Arc<Inner>,
}

/// An endpoint's label and breaker state, for tests, benchmarks and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// `rpc0`, `rpc1`, …
    pub label: String,
    /// Its breaker now.
    pub breaker: BreakerState,
    /// It answered another chain's id and is not used.
    pub wrong_chain: bool,
    /// Requests sent to it so far.
    pub calls: u64,
    /// Those that failed at transport level.
    pub failures: u64,
}

/// One endpoint probed directly by [`RpcService::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `rpc0`, `rpc1`, …
    pub label: String,
    /// The chain id it answered, or why not.
    pub chain_id: Result<u64, String>,
    /// Its head block, or why not.
    pub head: Result<u64, String>,
    /// How long the two calls took.
    pub latency: Duration,
    /// Its breaker now.
    pub breaker: BreakerState,
    /// It answered another chain's id earlier and is not used.
    pub wrong_chain: bool,
}

impl RpcService {
    /// The layer over `urls`, in order of preference.
    pub fn new(urls: Vec<Url>, settings: RpcSettings) -> Result<Self, ChainError> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|err| ChainError::Url(format!("building the HTTP client: {err}")))?;
        let cooldown = Duration::from_millis(settings.breaker_cooldown_ms);
        let endpoints = urls
            .into_iter()
            .enumerate()
            .map(|(i, url)| Endpoint {
                label: format!("rpc{i}"),
                url,
                breaker: Mutex::new(Breaker::new(settings.breaker_failures, cooldown)),
                verified: AtomicBool::new(false),
                wrong_chain: AtomicBool::new(false),
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            })
            .collect();
        Ok(Self { inner: Arc::new(Inner { endpoints, http, settings, chain_id: OnceLock::new() }) })
    }

    /// An alloy client over this layer (treated as local when the first URL is).
    pub fn client(&self) -> RpcClient {
        let local = self
            .inner
            .endpoints
            .first()
            .is_some_and(|e| alloy::transports::utils::guess_local_url(e.url.as_str()));
        RpcClient::new(self.clone(), local)
    }

    /// Reads every endpoint's chain id and fixes the chain: fails if two endpoints disagree or
    /// none answers. An endpoint that does not answer now is checked before its first use.
    pub async fn check_chain(&self) -> Result<u64, ChainError> {
        let mut found: Option<(String, u64)> = None;
        let mut last_error = None;
        for endpoint in &self.inner.endpoints {
            match self.chain_id_of(endpoint).await {
                Ok(id) => {
                    if let Some((first, expected)) = &found
                        && *expected != id
                    {
                        return Err(ChainError::ChainMismatch {
                            first: first.clone(),
                            expected: *expected,
                            other: endpoint.label.clone(),
                            found: id,
                        });
                    }
                    endpoint.verified.store(true, Ordering::Relaxed);
                    found.get_or_insert((endpoint.label.clone(), id));
                }
                Err(err) => {
                    tracing::warn!(endpoint = %endpoint.label, error = %err, "RPC endpoint not reachable at start-up; it is checked before first use");
                    endpoint.breaker().failure(Instant::now());
                    last_error = Some(err);
                }
            }
        }
        match found {
            Some((_, id)) => {
                let _ = self.inner.chain_id.set(id);
                Ok(id)
            }
            None => Err(ChainError::Rpc(
                last_error.unwrap_or_else(|| TransportErrorKind::custom_str("no RPC endpoint")),
            )),
        }
    }

    /// Each endpoint's label and breaker state, in order.
    pub fn status(&self) -> Vec<EndpointStatus> {
        self.inner
            .endpoints
            .iter()
            .map(|e| EndpointStatus {
                label: e.label.clone(),
                breaker: e.breaker().state(),
                wrong_chain: e.wrong_chain.load(Ordering::Relaxed),
                calls: e.calls.load(Ordering::Relaxed),
                failures: e.failures.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Probes every endpoint directly (no failover, no retries, no effect on its breaker):
    /// `eth_chainId` and `eth_blockNumber`, timed. For the go/no-go packet's provider section.
    pub async fn probe(&self) -> Vec<Probe> {
        let mut probes = Vec::with_capacity(self.inner.endpoints.len());
        for endpoint in &self.inner.endpoints {
            let started = Instant::now();
            let chain_id = self.chain_id_of(endpoint).await.map_err(|e| e.to_string());
            let head = match &chain_id {
                Ok(_) => self.block_number_of(endpoint).await.map_err(|e| e.to_string()),
                Err(error) => Err(error.clone()),
            };
            probes.push(Probe {
                label: endpoint.label.clone(),
                chain_id,
                head,
                latency: started.elapsed(),
                breaker: endpoint.breaker().state(),
                wrong_chain: endpoint.wrong_chain.load(Ordering::Relaxed),
            });
        }
        probes
    }

    /// `eth_blockNumber` at one endpoint, without failover or retries.
    async fn block_number_of(&self, endpoint: &Endpoint) -> Result<u64, TransportError> {
        let body = br#"{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber","params":[]}"#.to_vec();
        let response =
            match self.exchange(endpoint, "eth_blockNumber", body, Default::default()).await {
                Outcome::Answer(response) => response,
                Outcome::Unavailable(err) | Outcome::Refused(err) => return Err(err),
            };
        let payload = response
            .single_payload()
            .ok_or_else(|| TransportErrorKind::custom_str("eth_blockNumber: batch answer"))?;
        let number: alloy::primitives::U64 = payload
            .try_success_as()
            .ok_or_else(|| TransportErrorKind::custom_str("eth_blockNumber: error answer"))?
            .map_err(|err| TransportError::deser_err(err, "eth_blockNumber result"))?;
        Ok(number.to())
    }

    /// Sends `request` with failover and retries.
    async fn request(self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let method = match request.as_single() {
            Some(single) => single.method().to_owned(),
            None => "batch".to_owned(),
        };
        let body = serde_json::to_vec(&request).map_err(TransportError::ser_err)?;
        let headers = request.headers();
        let round = || self.round(&method, &body, &headers);
        let result = round
            .retry(self.inner.settings.backoff())
            .sleep(tokio::time::sleep)
            .when(|err| matches!(err, RoundError::Unavailable(_)))
            .notify(|err, wait| {
                if let RoundError::Unavailable(err) = err {
                    tracing::debug!(%method, error = %err, ?wait, "RPC request failed at every endpoint; retrying");
                }
            })
            .await;
        result.map_err(|err| match err {
            RoundError::Unavailable(err) | RoundError::Refused(err) => err,
            RoundError::AllOpen => TransportErrorKind::custom_str(ALL_OPEN),
        })
    }

    /// One pass over the endpoints, in order, skipping those whose breaker is open.
    async fn round(
        &self,
        method: &str,
        body: &[u8],
        headers: &reqwest::header::HeaderMap,
    ) -> Result<ResponsePacket, RoundError> {
        let mut last = None;
        for endpoint in &self.inner.endpoints {
            if endpoint.wrong_chain.load(Ordering::Relaxed)
                || !endpoint.breaker().allow(Instant::now())
            {
                continue;
            }
            if !endpoint.verified.load(Ordering::Relaxed) {
                match self.verify(endpoint).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(err) => {
                        self.failed(endpoint);
                        last = Some(err);
                        continue;
                    }
                }
            }
            match self.exchange(endpoint, method, body.to_vec(), headers.clone()).await {
                Outcome::Answer(response) => {
                    endpoint.breaker().success();
                    return Ok(response);
                }
                Outcome::Refused(err) => {
                    endpoint.breaker().success();
                    return Err(RoundError::Refused(err));
                }
                Outcome::Unavailable(err) => {
                    tracing::debug!(endpoint = %endpoint.label, %method, error = %err, "RPC transport failure");
                    self.failed(endpoint);
                    last = Some(err);
                }
            }
        }
        Err(last.map_or(RoundError::AllOpen, RoundError::Unavailable))
    }

    fn failed(&self, endpoint: &Endpoint) {
        if endpoint.breaker().failure(Instant::now()) {
            crate::metrics::registry().count(
                "pactum_rpc_breaker_opened_total",
                &[("endpoint", &endpoint.label)],
                1,
            );
            tracing::warn!(endpoint = %endpoint.label, "RPC endpoint circuit breaker opened");
        }
    }

    /// Checks a not yet verified endpoint's chain id against the service's chain: false (and
    /// the endpoint is set aside for good) on a mismatch.
    async fn verify(&self, endpoint: &Endpoint) -> Result<bool, TransportError> {
        let id = self.chain_id_of(endpoint).await?;
        match self.inner.chain_id.get() {
            Some(expected) if *expected != id => {
                endpoint.wrong_chain.store(true, Ordering::Relaxed);
                tracing::error!(endpoint = %endpoint.label, expected, found = id, "RPC endpoint is on another chain; not using it");
                Ok(false)
            }
            _ => {
                endpoint.verified.store(true, Ordering::Relaxed);
                Ok(true)
            }
        }
    }

    /// `eth_chainId` at one endpoint, without failover or retries.
    async fn chain_id_of(&self, endpoint: &Endpoint) -> Result<u64, TransportError> {
        let body = br#"{"jsonrpc":"2.0","id":0,"method":"eth_chainId","params":[]}"#.to_vec();
        let response = match self.exchange(endpoint, "eth_chainId", body, Default::default()).await
        {
            Outcome::Answer(response) => response,
            Outcome::Unavailable(err) | Outcome::Refused(err) => return Err(err),
        };
        let payload = response
            .single_payload()
            .ok_or_else(|| TransportErrorKind::custom_str("eth_chainId: batch answer"))?;
        let id: alloy::primitives::U64 = payload
            .try_success_as()
            .ok_or_else(|| TransportErrorKind::custom_str("eth_chainId: error answer"))?
            .map_err(|err| TransportError::deser_err(err, "eth_chainId result"))?;
        Ok(id.to())
    }

    /// One HTTP exchange with one endpoint, counted and timed.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        method: &str,
        body: Vec<u8>,
        headers: reqwest::header::HeaderMap,
    ) -> Outcome {
        let started = Instant::now();
        let outcome = self.send(endpoint, body, headers).await;
        CALLS.fetch_add(1, Ordering::Relaxed);
        endpoint.calls.fetch_add(1, Ordering::Relaxed);
        let ok = !matches!(outcome, Outcome::Unavailable(_));
        if !ok {
            endpoint.failures.fetch_add(1, Ordering::Relaxed);
        }
        crate::metrics::rpc_call(&endpoint.label, method, started.elapsed().as_secs_f64(), ok);
        outcome
    }

    async fn send(
        &self,
        endpoint: &Endpoint,
        body: Vec<u8>,
        headers: reqwest::header::HeaderMap,
    ) -> Outcome {
        let sent = self
            .inner
            .http
            .post(endpoint.url.clone())
            .headers(headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        // `without_url`: the URL may carry an API key and must not reach logs or callers.
        let transport = |err: reqwest::Error| {
            Outcome::Unavailable(TransportErrorKind::custom_str(&format!(
                "{}: {}",
                endpoint.label,
                error_chain(&err.without_url())
            )))
        };
        let response = match sent {
            Ok(response) => response,
            Err(err) => return transport(err),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse().ok())
            .map(Duration::from_secs);
        match response.bytes().await {
            Ok(body) => classify_response(status, &body, retry_after),
            Err(err) => transport(err),
        }
    }
}

impl Endpoint {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An error and its sources, as one line ("error sending request: … : connection refused").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl tower::Service<RequestPacket> for RpcService {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.clone().request(request))
    }
}
