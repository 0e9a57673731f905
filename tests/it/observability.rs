//! `/healthz`, `/readyz`, `/metrics` and the low-signer-balance warning, against a real anvil
//! and the real service.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::support::service::Harness;
use alloy::signers::local::PrivateKeySigner;
use pactum::config::Secret;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// `GET path` as text.
async fn text(h: &Harness, path: &str) -> (StatusCode, String, String) {
    let response = h.http.get(format!("{}{path}", h.base)).send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// Polls `/readyz` until it answers `want`; panics after 20 s with the last body.
async fn wait_ready(h: &Harness, want: StatusCode) -> serde_json::Value {
    let mut last = json!(null);
    for _ in 0..200 {
        let (status, body) = h.call(Method::GET, "/readyz", None, None).await;
        if status == want {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered {want}; last: {last}");
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status();
    assert!(status.unwrap().success(), "kill {signal} {pid}");
}

#[tokio::test]
async fn healthz_is_up_and_readyz_names_the_failing_rpc() {
    let h = Harness::start().await;
    let (status, body) = h.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "status": "ok" })));

    let ready = wait_ready(&h, StatusCode::OK).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["store"], "ok");
    assert_eq!(ready["checks"]["rpc"], "ok");
    assert!(ready["checks"]["watcher_lag"].as_u64().unwrap() <= 20, "{ready}");

    // A frozen node: eth_blockNumber cannot answer within the check's timeout.
    let pid = h.chain.anvil.child().id();
    signal(pid, "-STOP");
    // `kill` returns once the signal is sent, not once every thread of the node has stopped:
    // ask again (each answer must still come quickly) until the frozen node shows.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (status, body, waited) = loop {
        let started = std::time::Instant::now();
        let (status, body) = h.call(Method::GET, "/readyz", None, None).await;
        let waited = started.elapsed();
        if status != StatusCode::OK
            || std::time::Instant::now() > deadline
            || waited.as_secs() >= 10
        {
            break (status, body, waited);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The process itself is still alive while its node is not.
    let (live, _) = h.call(Method::GET, "/healthz", None, None).await;
    signal(pid, "-CONT");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "not_ready");
    assert_eq!(body["error"]["details"]["rpc"], "unreachable", "{body}");
    assert_eq!(body["error"]["details"]["store"], "ok", "{body}");
    assert!(body["error"]["details"]["watcher_lag"].is_u64(), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("rpc"), "{body}");
    assert!(waited < Duration::from_secs(10), "the RPC check must time out quickly: {waited:?}");
    assert_eq!(live, StatusCode::OK);

    // Once the node answers again, so does readiness.
    wait_ready(&h, StatusCode::OK).await;
}

#[tokio::test]
async fn readyz_fails_when_the_watcher_lags() {
    // No lag allowed, then far more new blocks than the watcher reads in one pass.
    let h = Harness::start_with(|config| config.ready_max_lag_blocks = 0).await;
    wait_ready(&h, StatusCode::OK).await;
    let _: serde_json::Value = alloy::providers::Provider::raw_request(
        &h.chain.provider,
        "anvil_mine".into(),
        (alloy::primitives::U256::from(1_000),),
    )
    .await
    .unwrap();
    let (status, body) = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["details"]["rpc"], "ok", "{body}");
    assert!(body["error"]["details"]["watcher_lag"].as_u64().unwrap() > 0, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("watcher_lag"), "{body}");
}

/// One parsed sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the text exposition format line by line, checking it as a scraper would: every
/// sample belongs to the family whose `# TYPE` came before it, one `# HELP` and one `# TYPE`
/// per family, label values properly quoted and escaped, values that parse as floats.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the body ends with a line feed");
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut current: Option<(String, String)> = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(helps.insert(name.clone()), "two HELP lines for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned());
            assert!(["counter", "gauge", "histogram"].contains(&kind.as_str()), "{line}");
            assert!(helps.contains(&name), "HELP comes before TYPE for {name}");
            assert!(
                types.insert(name.clone(), kind.clone()).is_none(),
                "two TYPE lines for {name}"
            );
            current = Some((name, kind));
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let (name_end, labels, rest) = match line.find('{') {
            Some(open) => {
                let (labels, rest) = parse_labels(&line[open + 1..]);
                (open, labels, rest)
            }
            None => {
                let space = line.find(' ').unwrap();
                (space, Vec::new(), &line[space..])
            }
        };
        let name = &line[..name_end];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name:?}"
        );
        let value_text = rest.strip_prefix(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (family, kind) = current.as_ref().unwrap_or_else(|| panic!("no TYPE before {line}"));
        let belongs = match kind.as_str() {
            "histogram" => {
                let bucket =
                    name == format!("{family}_bucket") && labels.iter().any(|l| l.0 == "le");
                bucket || name == format!("{family}_count") || name == format!("{family}_sum")
            }
            "counter" => name == family && family.ends_with("_total"),
            _ => name == family,
        };
        assert!(belongs, "{name} does not belong to the {kind} family {family}");
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    samples
}

/// Parses `k="v",…}` and returns the labels and what follows the `}`.
fn parse_labels(mut text: &str) -> (Vec<(String, String)>, &str) {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = text.strip_prefix('}') {
            return (labels, rest);
        }
        let eq = text.find('=').unwrap();
        let key = text[..eq].to_owned();
        assert!(text[eq + 1..].starts_with('"'), "label value not quoted");
        let mut value = String::new();
        let mut chars = text[eq + 2..].char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated label value");
            match c {
                '\\' => match chars.next().expect("dangling escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape \\{other}"),
                },
                '"' => break eq + 2 + i + 1,
                c => value.push(c),
            }
        };
        labels.push((key, value));
        text = &text[end..];
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
    })
}

#[tokio::test]
async fn metrics_after_a_real_activation() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    // The job ends `confirmed` once its transaction is deep enough.
    let mut samples = parse_exposition(&text(&h, "/metrics").await.2);
    for _ in 0..100 {
        if find(&samples, "pactum_relayer_jobs", &[("status", "confirmed")]).is_some() {
            break;
        }
        let _: serde_json::Value =
            alloy::providers::Provider::raw_request(&h.chain.provider, "evm_mine".into(), ())
                .await
                .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        samples = parse_exposition(&text(&h, "/metrics").await.2);
    }
    let (status, content_type, body) = text(&h, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("\npactum_relayer_jobs{status=\"confirmed\"} 1\n"), "{id}: {body}");
    let samples = parse_exposition(&body);

    let attempts = find(&samples, "pactum_relayer_attempts_total", &[("kind", "new")]);
    assert!(attempts.is_some_and(|s| s.value >= 1.0), "{body}");
    let stored = find(&samples, "pactum_relayer_job_attempts", &[("status", "confirmed")]);
    assert!(stored.is_some_and(|s| s.value >= 1.0), "{body}");
    let pickups = find(&samples, "pactum_relayer_queue_pickup_seconds_count", &[]);
    assert!(pickups.is_some_and(|s| s.value >= 1.0), "{body}");
    assert!(find(&samples, "pactum_relayer_queue_pickup_seconds_sum", &[]).is_some(), "{body}");
    assert!(find(&samples, "pactum_outbox_undispatched", &[]).is_some(), "{body}");
    assert!(find(&samples, "pactum_chain_watcher_lag_blocks", &[]).is_some(), "{body}");
    assert!(find(&samples, "pactum_chain_head_age_seconds", &[]).is_some(), "{body}");
    assert_eq!(find(&samples, "pactum_store_up", &[]).map(|s| s.value), Some(1.0), "{body}");

    let relayer = h.chain.relayer.address().to_checksum(None);
    let balance = find(&samples, "pactum_relayer_signer_balance_wei", &[("signer", &relayer)]);
    assert!(balance.is_some_and(|s| s.value > 1e18), "{relayer}: {body}");
    let low = find(&samples, "pactum_relayer_signer_low_balance", &[("signer", &relayer)]);
    assert_eq!(low.map(|s| s.value), Some(0.0), "{body}");

    // Scrapes are exempt from rate limits and need no credential.
    let limited = Harness::start_with(|config| config.rate_limit_read = 1).await;
    for _ in 0..5 {
        assert_eq!(text(&limited, "/metrics").await.0, StatusCode::OK);
        let (status, body) = limited.call(Method::GET, "/readyz", None, None).await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(limited.call(Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    }
}

/// The `_bucket` samples of `family` with exactly `labels` (besides `le`), by upper bound.
fn buckets(samples: &[Sample], family: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let name = format!("{family}_bucket");
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == name && s.labels.len() == labels.len() + 1)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v)))
        .map(|s| {
            let le = &s.labels.iter().find(|(k, _)| k == "le").unwrap().1;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            (le, s.value)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

#[tokio::test]
async fn request_latency_is_a_histogram_by_route_with_cumulative_buckets() {
    let h = Harness::start().await;
    // Three refusals on one route template, with a different id each time.
    for id in ["agt_a", "agt_b", "agt_c"] {
        let response = h.http.get(format!("{}/v1/agents/{id}", h.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let request_id = response.headers().get("x-request-id").expect("a request id");
        assert_eq!(request_id.len(), 32, "{request_id:?}");
    }
    // A client's own request id comes back.
    let response =
        h.http.get(format!("{}/healthz", h.base)).header("x-request-id", "trace-42").send().await;
    assert_eq!(response.unwrap().headers()["x-request-id"], "trace-42");

    let body = text(&h, "/metrics").await.2;
    let samples = parse_exposition(&body);
    assert!(body.contains("# TYPE pactum_http_request_seconds histogram\n"), "{body}");
    let family = "pactum_http_request_seconds";
    let labels = [("method", "GET"), ("route", "/v1/agents/{agent_id}"), ("status", "401")];
    let buckets = buckets(&samples, family, &labels);
    assert!(buckets.len() >= 10, "{body}");
    let count = find(&samples, &format!("{family}_count"), &labels).map(|s| s.value);
    assert_eq!(count, Some(3.0), "{body}");
    assert!(find(&samples, &format!("{family}_sum"), &labels).is_some_and(|s| s.value > 0.0));
    // Cumulative: each bucket holds the ones below it, and `+Inf` holds every request.
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 3.0)), "{buckets:?}");
    // No series per id: the route is the template.
    assert!(!body.contains("agt_a"), "{body}");

    // The relayer's and the RPC layer's latencies are histograms too.
    assert!(body.contains("# TYPE pactum_rpc_request_seconds histogram\n"), "{body}");
    assert!(body.contains("pactum_rpc_request_seconds_bucket{endpoint="), "{body}");
}

/// Log lines written by the service in this test process.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn low_signer_balance_sets_the_gauge_and_warns_once() {
    let logs = captured_logs();
    let mut signer_address = String::new();
    let h = Harness::start_with(|config| {
        // Above anvil's 10,000 ETH.
        config.signer_min_balance_wei = 10u128.pow(24);
        config.signer_balance_interval_secs = 1;
        // A relayer account of its own (anvil's sixth default account), so no other test's
        // balance check touches its gauges in this process-wide registry.
        let key: PrivateKeySigner =
            "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba".parse().unwrap();
        signer_address = key.address().to_checksum(None);
        config.relayer_private_keys = vec![Secret::new(key.to_bytes().to_string())];
    })
    .await;
    let mut low = None;
    for _ in 0..100 {
        let samples = parse_exposition(&text(&h, "/metrics").await.2);
        low = find(&samples, "pactum_relayer_signer_low_balance", &[("signer", &signer_address)])
            .map(|s| s.value);
        if low.is_some() {
            let balance =
                find(&samples, "pactum_relayer_signer_balance_wei", &[("signer", &signer_address)]);
            assert!(balance.is_some_and(|s| s.value > 0.0 && s.value < 1e24));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(low, Some(1.0), "the low-balance gauge is set for {signer_address}");
    // Several more checks run; the warning is logged once per crossing, not once per check.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("below the minimum") && l.contains(&signer_address))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
}
