//! Webhooks end to end: a real service on anvil delivers to a real local HTTP receiver whose
//! answers each test scripts (500s, slow answers, `Retry-After`, 410, a request held open while
//! the service is killed). Signatures are checked with the `standardwebhooks` crate, an
//! implementation independent of Pactum's.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::DevChain;
use crate::support::service::{Harness, OWNER_KEY, TestAgent, propose_body, unique_dir};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus, Uri};
use axum::response::{IntoResponse, Response};
use pactum::agreement::ids::{Environment, SecretKey};
use pactum::store::agents::ensure_account;
use pactum::store::now;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// This status, with a short body.
    Status(u16),
    /// This status with a `Retry-After` header.
    RetryAfter(u16, &'static str),
    /// 200, after a pause.
    Slow(Duration),
    /// Never answers (within any test).
    Hold,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Hit {
    fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether the independent Standard Webhooks implementation accepts it under `secret`.
    pub(crate) fn verifies_with(&self, secret: &str) -> bool {
        standardwebhooks::Webhook::new(secret).unwrap().verify(&self.body, &self.headers).is_ok()
    }
}

#[derive(Default)]
struct Inner {
    hits: Mutex<Vec<Hit>>,
    script: Mutex<VecDeque<Reply>>,
}

/// A local HTTP server recording every request and answering from a script (then 200).
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub(crate) async fn start(script: Vec<Reply>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let inner = Arc::new(Inner { script: Mutex::new(script.into()), ..Inner::default() });
        let app = axum::Router::new().fallback(receive).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, inner }
    }

    fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// The hits once there are at least `n`; panics after 20 s.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..400 {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} requests, got {}", self.hits().len());
    }
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hit = Hit { path: uri.path().to_owned(), headers, body, at: Instant::now() };
    inner.hits.lock().unwrap().push(hit);
    let reply = inner.script.lock().unwrap().pop_front().unwrap_or(Reply::Status(200));
    let status = |code| AxumStatus::from_u16(code).unwrap();
    match reply {
        Reply::Status(code) if code < 300 => (status(code), "ok").into_response(),
        Reply::Status(code) => (status(code), "boom: receiver failed").into_response(),
        Reply::RetryAfter(code, after) => {
            (status(code), [("retry-after", after)], "busy").into_response()
        }
        Reply::Slow(pause) => {
            tokio::time::sleep(pause).await;
            (AxumStatus::OK, "slow ok").into_response()
        }
        Reply::Hold => {
            tokio::time::sleep(Duration::from_secs(300)).await;
            AxumStatus::OK.into_response()
        }
    }
}

/// Creates a webhook for `agent` under the harness's owner key; returns the answer.
pub(crate) async fn create_webhook(
    h: &Harness,
    agent: &TestAgent,
    url: &str,
    types: &[&str],
) -> Value {
    let path = format!("/agents/{}/webhooks", agent.id);
    let body = json!({ "url": url, "event_types": types, "description": "test receiver" });
    let (status, created) = h.call(Method::POST, &path, Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// The agent's deliveries (newest first), optionally in `status`.
async fn deliveries(h: &Harness, agent: &TestAgent, status: Option<&str>) -> Vec<Value> {
    let mut path = format!("/agents/{}/webhooks/deliveries?limit=100", agent.id);
    if let Some(status) = status {
        path.push_str(&format!("&status={status}"));
    }
    let (code, body) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// One delivery with its attempts, once `done` holds; panics after 20 s.
async fn delivery_when(
    h: &Harness,
    agent: &TestAgent,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/agents/{}/webhooks/deliveries/{id}", agent.id);
    let mut last = Value::Null;
    for _ in 0..400 {
        let (code, body) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery {id} never reached the condition; last: {last}");
}

async fn propose(h: &Harness, buyer: &TestAgent, seller: &TestAgent) -> String {
    h.propose(buyer, seller, h.chain.buyer.address()).await["id"].as_str().unwrap().to_owned()
}

fn error_code(response: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (response.0, response.1["error"]["code"].as_str())
}

#[tokio::test]
async fn delivers_every_event_of_a_real_agreement_signed_for_a_standard_verifier() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let receiver = Receiver::start(Vec::new()).await;
    let buyer_hook = create_webhook(&h, &buyer, &format!("{}/buyer", receiver.url), &[]).await;
    let seller_url = format!("{}/seller", receiver.url);
    let seller_hook = create_webhook(&h, &seller, &seller_url, &["agreement.accepted"]).await;
    let buyer_secret = buyer_hook["secret"].as_str().unwrap().to_owned();
    let seller_secret = seller_hook["secret"].as_str().unwrap().to_owned();
    assert!(buyer_secret.starts_with("whsec_"), "{buyer_hook}");
    assert_eq!(buyer_hook["status"], "active");
    assert_eq!(seller_hook["event_types"], json!(["agreement.accepted"]));

    // The secret is shown once: neither the list nor the endpoint shows it again.
    let list_path = format!("/agents/{}/webhooks", buyer.id);
    let (status, list) = h.call(Method::GET, &list_path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let one_path = format!("{list_path}/{}", buyer_hook["id"].as_str().unwrap());
    let (status, one) = h.call(Method::GET, &one_path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    for shown in [&list, &one] {
        assert!(!shown.to_string().contains("whsec_"), "{shown}");
        assert!(!shown.to_string().contains(&buyer_secret[6..]), "{shown}");
    }

    let id = h.active(&buyer, &seller).await;

    let expected = [
        "agreement.proposed",
        "agreement.accepted",
        "activation.queued",
        "activation.submitted",
        "activation.confirmed",
        // The buyer's budget hold of the activation: held when queued, captured on confirmation.
        "reservation.reserved",
        "reservation.captured",
    ];
    let mut buyer_hits = Vec::new();
    for _ in 0..400 {
        buyer_hits = receiver.hits().into_iter().filter(|hit| hit.path == "/hooks/buyer").collect();
        let types: Vec<Value> = buyer_hits.iter().map(|hit| hit.json()["type"].clone()).collect();
        if expected.iter().all(|t| types.contains(&json!(t))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let types: Vec<String> =
        buyer_hits.iter().map(|hit| hit.json()["type"].as_str().unwrap().to_owned()).collect();
    for event_type in expected {
        let count = types.iter().filter(|t| *t == event_type).count();
        assert_eq!(count, 1, "{event_type} delivered exactly once: {types:?}");
    }
    assert!(types.iter().all(|t| pactum::webhooks::events::is_known(t)), "{types:?}");
    let ids: std::collections::HashSet<&str> = buyer_hits.iter().map(Hit::id).collect();
    assert_eq!(ids.len(), buyer_hits.len(), "one message per event");
    for hit in &buyer_hits {
        assert!(hit.verifies_with(&buyer_secret), "the standard verifier accepts it");
        assert!(!hit.verifies_with(&seller_secret), "another endpoint's secret does not verify");
        let payload = hit.json();
        assert!(payload["id"].as_str().unwrap().starts_with("evt_"), "{payload}");
        assert_eq!(payload["data"]["agreement_id"], id.as_str(), "{payload}");
        if payload["type"].as_str().unwrap().starts_with("reservation.") {
            assert_eq!(payload["data"]["source"], "activation", "{payload}");
            assert_eq!(payload["data"]["agent_id"], buyer.id.as_str());
        } else {
            assert_eq!(payload["data"]["buyer_agent_id"], buyer.id.as_str());
        }
        assert!(payload["created_at"].is_string());
        assert!(hit.id().starts_with("msg_"));
        assert_eq!(hit.headers["content-type"], "application/json");
        assert!(hit.headers["user-agent"].to_str().unwrap().starts_with("Pactum-Webhooks/"));
        let signature = hit.headers["webhook-signature"].to_str().unwrap();
        assert!(signature.starts_with("v1,") && !signature.contains(' '), "{signature}");
    }
    let confirmed = buyer_hits.iter().find(|h| h.json()["type"] == "activation.confirmed").unwrap();
    assert_eq!(confirmed.json()["data"]["status"], "active");

    // The seller's endpoint took only the type it subscribed to.
    let seller_hits: Vec<Hit> =
        receiver.hits().into_iter().filter(|hit| hit.path == "/hooks/seller").collect();
    assert_eq!(seller_hits.len(), 1);
    assert_eq!(seller_hits[0].json()["type"], "agreement.accepted");
    assert!(seller_hits[0].verifies_with(&seller_secret));

    // Every delivery is logged with its attempt: status, latency, the answer's first bytes.
    let logged = deliveries(&h, &buyer, Some("succeeded")).await;
    assert_eq!(logged.len(), expected.len(), "{logged:?}");
    let one = delivery_when(&h, &buyer, logged[0]["id"].as_str().unwrap(), |_| true).await;
    assert_eq!(one["attempt_count"], 1);
    assert_eq!(one["attempts"][0]["status_code"], 200, "{one}");
    assert_eq!(one["attempts"][0]["response_body"], "ok");
    assert!(one["attempts"][0]["latency_ms"].is_i64());
    assert_eq!(one["payload"]["id"], one["event_id"]);

    // Refusals: an unknown event type, a bad limit, another account's agent.
    let path = format!("/agents/{}/webhooks", buyer.id);
    let bad = json!({ "url": receiver.url, "event_types": ["agreement.exploded"] });
    let response = h.call(Method::POST, &path, Some(OWNER_KEY), Some(&bad)).await;
    assert_eq!(
        error_code(&response),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_event_type"))
    );
    let bad_limit = format!("/agents/{}/webhooks/deliveries?limit=101", buyer.id);
    let response = h.call(Method::GET, &bad_limit, Some(OWNER_KEY), None).await;
    assert_eq!(error_code(&response), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error")));
    let other_key = SecretKey::generate("ok", Environment::Test);
    let store = &h.service.as_ref().unwrap().state().store;
    let mut tx = store.begin().await.unwrap();
    ensure_account(&mut tx, "other", &other_key.hash(), now()).await.unwrap();
    tx.commit().await.unwrap();
    for probe in [list_path.clone(), one_path.clone(), format!("{list_path}/deliveries")] {
        let response = h.call(Method::GET, &probe, Some(other_key.reveal()), None).await;
        assert_eq!(error_code(&response), (StatusCode::NOT_FOUND, Some("not_found")), "{probe}");
    }
    let body = json!({ "url": receiver.url });
    let response = h.call(Method::POST, &list_path, Some(other_key.reveal()), Some(&body)).await;
    assert_eq!(error_code(&response), (StatusCode::NOT_FOUND, Some("not_found")));
    let response = h.call(Method::GET, &list_path, Some(&buyer.key), None).await;
    assert_eq!(response.0, StatusCode::NOT_FOUND, "owner routes do not exist for agent keys");
}

#[tokio::test]
async fn retries_failures_and_timeouts_honours_retry_after_and_stops_at_410() {
    let h = Harness::start_with(|config| {
        config.webhooks.timeout_secs = 1;
        config.webhooks.retry_schedule = "0s,100ms,100ms".parse().unwrap();
    })
    .await;
    let flaky = Receiver::start(vec![Reply::Status(500), Reply::Status(500)]).await;
    let slow = Receiver::start(vec![Reply::Slow(Duration::from_secs(3))]).await;
    let busy = Receiver::start(vec![Reply::RetryAfter(503, "2")]).await;
    let gone = Receiver::start(vec![Reply::Status(410)]).await;
    let broken = Receiver::start(vec![Reply::Status(500); 3]).await;
    let mut agents = Vec::new();
    for receiver in [&flaky, &slow, &busy, &gone, &broken] {
        let (buyer, seller) = h.parties().await;
        let hook = create_webhook(&h, &buyer, &receiver.url, &["agreement.proposed"]).await;
        propose(&h, &buyer, &seller).await;
        agents.push((buyer, seller, hook));
    }

    // 500, 500, 200: three attempts with one webhook-id, all logged, then succeeded.
    let hits = flaky.wait_for(3).await;
    assert!(hits.iter().all(|hit| hit.id() == hits[0].id()), "same webhook-id on every retry");
    assert!(hits.iter().all(|hit| hit.body == hits[0].body), "same body on every retry");
    let (buyer, _, _) = &agents[0];
    let done = delivery_when(&h, buyer, hits[0].id(), |d| d["status"] == "succeeded").await;
    let attempts = done["attempts"].as_array().unwrap();
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(200)], "{done}");
    assert_eq!(attempts[0]["response_body"], "boom: receiver failed");
    assert_eq!(attempts[0]["error"], "HTTP 500");
    assert!(attempts.iter().all(|a| a["latency_ms"].as_i64().unwrap() >= 0));
    assert_eq!(done["attempt_count"], 3);

    // Slower than the 1 s timeout: logged as a timeout, then retried with the same id.
    let hits = slow.wait_for(2).await;
    assert_eq!(hits[0].id(), hits[1].id());
    let (buyer, _, _) = &agents[1];
    let done = delivery_when(&h, buyer, hits[0].id(), |d| d["status"] == "succeeded").await;
    assert_eq!(done["attempts"][0]["error"], "timeout", "{done}");
    assert_eq!(done["attempts"][0]["status_code"], Value::Null);
    assert!(done["attempts"][0]["latency_ms"].as_i64().unwrap() >= 900, "{done}");
    assert_eq!(done["attempts"][1]["status_code"], 200);

    // 503 with `Retry-After: 2`: the retry waits 2 s instead of the schedule's 100 ms.
    let hits = busy.wait_for(2).await;
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(1_900), "retried after {gap:?}");
    let (buyer, _, _) = &agents[2];
    let done = delivery_when(&h, buyer, hits[0].id(), |d| d["status"] == "succeeded").await;
    assert_eq!(done["attempts"][0]["status_code"], 503);

    // 410 Gone: the endpoint is disabled, the delivery failed, and nothing more is sent.
    let hits = gone.wait_for(1).await;
    let (buyer, seller, hook) = &agents[3];
    let failed = delivery_when(&h, buyer, hits[0].id(), |d| d["status"] == "failed").await;
    assert_eq!(failed["attempt_count"], 1);
    let hook_path = format!("/agents/{}/webhooks/{}", buyer.id, hook["id"].as_str().unwrap());
    let (_, endpoint) = h.call(Method::GET, &hook_path, Some(OWNER_KEY), None).await;
    assert_eq!(endpoint["status"], "disabled", "{endpoint}");
    assert!(endpoint["status_reason"].as_str().unwrap().contains("410"));
    propose(&h, buyer, seller).await;

    // The schedule (3 attempts) used up: failed, listed as failed, and replayed on request.
    let hits = broken.wait_for(3).await;
    let (broken_buyer, _, _) = &agents[4];
    let id = hits[0].id().to_owned();
    delivery_when(&h, broken_buyer, &id, |d| d["status"] == "failed").await;
    let failed_list = deliveries(&h, broken_buyer, Some("failed")).await;
    assert_eq!(failed_list.len(), 1);
    assert_eq!(failed_list[0]["id"], id.as_str());
    assert_eq!(failed_list[0]["last_status_code"], 500);
    assert!(deliveries(&h, broken_buyer, Some("succeeded")).await.is_empty());
    let replay = format!("/agents/{}/webhooks/deliveries/{id}/replay", broken_buyer.id);
    let (status, replayed) = h.call(Method::POST, &replay, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["status"], "pending");
    let hits = broken.wait_for(4).await;
    assert_eq!(hits[3].id(), id, "a replay is the same message");
    let done = delivery_when(&h, broken_buyer, &id, |d| d["status"] == "succeeded").await;
    assert_eq!(done["attempt_count"], 4);
    assert!(deliveries(&h, broken_buyer, Some("failed")).await.is_empty());

    // The disabled endpoint got nothing more; its delivery replays once it is re-enabled.
    assert_eq!(gone.hits().len(), 1, "a disabled endpoint is not called");
    assert_eq!(deliveries(&h, buyer, None).await.len(), 1, "no delivery for a disabled endpoint");
    let replay = format!("/agents/{}/webhooks/deliveries/{}/replay", buyer.id, hits_id(&gone));
    let response = h.call(Method::POST, &replay, Some(OWNER_KEY), None).await;
    assert_eq!(error_code(&response), (StatusCode::CONFLICT, Some("webhook_not_active")));
    let resume = json!({ "status": "active" });
    let (status, endpoint) =
        h.call(Method::PATCH, &hook_path, Some(OWNER_KEY), Some(&resume)).await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");
    let (status, _) = h.call(Method::POST, &replay, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let hits = gone.wait_for(2).await;
    assert_eq!(hits[0].id(), hits[1].id());
}

fn hits_id(receiver: &Receiver) -> String {
    receiver.hits()[0].id().to_owned()
}

#[tokio::test]
async fn a_paused_endpoint_keeps_its_backlog_and_rotation_signs_with_both_secrets() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let receiver = Receiver::start(Vec::new()).await;
    let hook = create_webhook(&h, &buyer, &receiver.url, &[]).await;
    let old_secret = hook["secret"].as_str().unwrap().to_owned();
    let hook_path = format!("/agents/{}/webhooks/{}", buyer.id, hook["id"].as_str().unwrap());
    let pause = json!({ "status": "paused" });
    let (status, paused) = h
        .call_with(
            Method::PATCH,
            &hook_path,
            Some(OWNER_KEY),
            Some(&pause),
            &[("Idempotency-Key", "pause-1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["status"], "paused");

    let wallets = (h.chain.buyer.address(), h.chain.seller.address());
    h.accepted(&buyer, &seller, wallets.0, wallets.1).await;
    let mut backlog = Vec::new();
    for _ in 0..100 {
        backlog = deliveries(&h, &buyer, Some("pending")).await;
        if backlog.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(backlog.len(), 2, "proposed and accepted wait while paused");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.hits().is_empty(), "nothing is sent while paused");
    let replay = format!(
        "/agents/{}/webhooks/deliveries/{}/replay",
        buyer.id,
        backlog[0]["id"].as_str().unwrap()
    );
    let response = h.call(Method::POST, &replay, Some(OWNER_KEY), None).await;
    assert_eq!(error_code(&response), (StatusCode::CONFLICT, Some("delivery_pending")));

    // Rotation: the new secret once; its replay under the same key does not show it again.
    let rotate = format!("{hook_path}/rotate-secret");
    let headers = [("Idempotency-Key", "rotate-1")];
    let (status, rotated) =
        h.call_with(Method::POST, &rotate, Some(OWNER_KEY), None, &headers).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != old_secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    let (status, again) = h.call_with(Method::POST, &rotate, Some(OWNER_KEY), None, &headers).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["secret"], Value::Null, "{again}");

    // Resume: the backlog arrives, each signed with the new secret and the old (grace period).
    let resume = json!({ "status": "active" });
    let (status, _) = h.call(Method::PATCH, &hook_path, Some(OWNER_KEY), Some(&resume)).await;
    assert_eq!(status, StatusCode::OK);
    let hits = receiver.wait_for(2).await;
    let mut types: Vec<String> =
        hits.iter().map(|hit| hit.json()["type"].as_str().unwrap().to_owned()).collect();
    types.sort();
    assert_eq!(types, ["agreement.accepted", "agreement.proposed"]);
    for hit in &hits {
        assert!(hit.verifies_with(&new_secret));
        assert!(hit.verifies_with(&old_secret));
        let signature = hit.headers["webhook-signature"].to_str().unwrap();
        assert_eq!(signature.split(' ').count(), 2, "{signature}");
    }
    for delivery in deliveries(&h, &buyer, None).await {
        delivery_when(&h, &buyer, delivery["id"].as_str().unwrap(), |d| d["status"] == "succeeded")
            .await;
    }

    // Deleted: gone from the API, and no longer called.
    let (status, _) = h.call(Method::DELETE, &hook_path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let response = h.call(Method::GET, &hook_path, Some(OWNER_KEY), None).await;
    assert_eq!(error_code(&response), (StatusCode::NOT_FOUND, Some("not_found")));
    propose(&h, &buyer, &seller).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.hits().len(), 2, "a deleted endpoint is not called");
}

#[tokio::test]
async fn refuses_urls_that_reach_private_addresses_unless_allowed() {
    let h = Harness::start_with(|config| config.webhooks.allow_private_urls = false).await;
    let agent = h.agent("hooked").await;
    let path = format!("/agents/{}/webhooks", agent.id);
    for url in [
        "http://127.0.0.1:8080/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
    ] {
        let body = json!({ "url": url });
        let response = h.call(Method::POST, &path, Some(OWNER_KEY), Some(&body)).await;
        assert_eq!(
            error_code(&response),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("webhook_url_not_allowed")),
            "{url}: {}",
            response.1
        );
    }
    for url in ["ftp://8.8.8.8/", "https://user:pw@8.8.8.8/", "not a url"] {
        let body = json!({ "url": url });
        let response = h.call(Method::POST, &path, Some(OWNER_KEY), Some(&body)).await;
        assert_eq!(
            error_code(&response),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error")),
            "{url}"
        );
    }
    // A public address is accepted, and cannot be moved to a private one later. Created under
    // an `Idempotency-Key`, a retry names the same endpoint without showing the secret again.
    let body = json!({ "url": "https://8.8.8.8/hooks" });
    let headers = [("Idempotency-Key", "create-public-1")];
    let (status, hook) =
        h.call_with(Method::POST, &path, Some(OWNER_KEY), Some(&body), &headers).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    let (status, again) =
        h.call_with(Method::POST, &path, Some(OWNER_KEY), Some(&body), &headers).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], hook["id"]);
    assert_eq!(again["secret"], Value::Null);
    let hook_path = format!("{path}/{}", hook["id"].as_str().unwrap());
    let body = json!({ "url": "http://192.168.1.1/" });
    let response = h.call(Method::PATCH, &hook_path, Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(
        error_code(&response),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("webhook_url_not_allowed"))
    );

    // DNS may change after registration, so every attempt checks the address again: an
    // endpoint stored with a loopback URL (as if its name now resolved there) is never called.
    let receiver = Receiver::start(Vec::new()).await;
    let (buyer, seller) = h.parties().await;
    let endpoint = pactum::store::webhooks::Endpoint {
        id: "whk_rebound".into(),
        agent_id: buyer.id.clone(),
        url: receiver.url.clone(),
        description: None,
        event_types: Vec::new(),
        status: "active".into(),
        status_reason: None,
        created_at: now(),
        updated_at: now(),
    };
    let secret = pactum::webhooks::signature::SigningSecret::generate().reveal();
    let store = &h.service.as_ref().unwrap().state().store;
    let mut tx = store.begin().await.unwrap();
    pactum::store::webhooks::insert_endpoint(&mut tx, &endpoint, &secret).await.unwrap();
    tx.commit().await.unwrap();
    propose(&h, &buyer, &seller).await;
    let mut listed = Vec::new();
    for _ in 0..200 {
        listed = deliveries(&h, &buyer, None).await;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let refused =
        delivery_when(&h, &buyer, &id, |d| d["attempt_count"].as_i64().unwrap() >= 1).await;
    let error = refused["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("address_not_allowed"), "{refused}");
    assert_eq!(refused["status"], "pending", "retried on the schedule");
    assert!(receiver.hits().is_empty(), "nothing reached the private address");
}

#[tokio::test]
async fn fans_out_retries_pauses_and_replays_on_postgres() {
    let Some(database_url) = crate::support::databases::fresh_postgres().await else { return };
    let mut h = Harness::start_with(|config| {
        config.database_url = database_url.clone();
        config.webhooks.retry_schedule = "0s,100ms".parse().unwrap();
    })
    .await;
    let (buyer, seller) = h.parties().await;
    let receiver = Receiver::start(vec![Reply::Status(500), Reply::Status(500)]).await;
    let hook = create_webhook(&h, &buyer, &receiver.url, &["agreement.proposed"]).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    propose(&h, &buyer, &seller).await;
    let hits = receiver.wait_for(2).await;
    let id = hits[0].id().to_owned();
    delivery_when(&h, &buyer, &id, |d| d["status"] == "failed").await;
    assert_eq!(deliveries(&h, &buyer, Some("failed")).await.len(), 1);

    // Paused, a replay waits; resumed, it goes out and succeeds.
    let hook_path = format!("/agents/{}/webhooks/{}", buyer.id, hook["id"].as_str().unwrap());
    let pause = json!({ "status": "paused" });
    let (status, _) = h.call(Method::PATCH, &hook_path, Some(OWNER_KEY), Some(&pause)).await;
    assert_eq!(status, StatusCode::OK);
    let replay = format!("/agents/{}/webhooks/deliveries/{id}/replay", buyer.id);
    let (status, _) = h.call(Method::POST, &replay, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits().len(), 2, "nothing is sent while paused");
    let resume = json!({ "status": "active" });
    let (status, _) = h.call(Method::PATCH, &hook_path, Some(OWNER_KEY), Some(&resume)).await;
    assert_eq!(status, StatusCode::OK);
    let hits = receiver.wait_for(3).await;
    assert_eq!(hits[2].id(), id);
    assert!(hits[2].verifies_with(&secret));
    let done = delivery_when(&h, &buyer, &id, |d| d["status"] == "succeeded").await;
    assert_eq!(done["attempt_count"], 3);
    h.stop().await;
    crate::support::databases::drop_postgres(&database_url).await;
}

/// `pactum serve` as a child process, its output appended to `log`.
fn serve(chain: &DevChain, dir: &std::path::Path, port: u16, log: &std::path::Path) -> Child {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_pactum"))
        .arg("serve")
        .env("PACTUM_DATABASE_URL", format!("sqlite:{}?mode=rwc", dir.join("pactum.db").display()))
        .env("PACTUM_LISTEN", format!("127.0.0.1:{port}"))
        .env("PACTUM_RPC_URL", chain.anvil.endpoint())
        .env("PACTUM_ESCROW_ADDRESS", chain.escrow.address().to_string())
        .env("PACTUM_RELAYER_PRIVATE_KEYS", chain.relayer.to_bytes().to_string())
        .env("PACTUM_OWNER_KEY", OWNER_KEY)
        .env("PACTUM_POLL_INTERVAL_MS", "50")
        .env("PACTUM_WEBHOOK_ALLOW_PRIVATE_URLS", "true")
        .env("PACTUM_WEBHOOK_TIMEOUT_SECS", "2")
        .env("PACTUM_WEBHOOK_RETRY_SCHEDULE", "0s,100ms,100ms,100ms")
        .env("RUST_LOG", "debug,pactum=trace")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap()
}

async fn until_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pactum serve did not come up");
}

async fn call(
    http: &reqwest::Client,
    method: Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_delivery_cut_by_a_killed_process_arrives_after_restart_and_no_secret_is_logged() {
    let chain = DevChain::start().await;
    let dir = unique_dir("pactum-webhooks-kill");
    let log = dir.join("serve.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = serve(&chain, &dir, port, &log);
    until_healthy(&http, &base).await;

    let agent = |name: &str| {
        call(
            &http,
            Method::POST,
            format!("{base}/v1/agents"),
            OWNER_KEY,
            Some(json!({ "name": name })),
        )
    };
    let (buyer, seller) = (agent("buyer").await, agent("seller").await);
    let buyer_id = buyer["id"].as_str().unwrap();
    let receiver = Receiver::start(vec![Reply::Hold]).await;
    let hooks = format!("{base}/agents/{buyer_id}/webhooks");
    let hook =
        call(&http, Method::POST, hooks.clone(), OWNER_KEY, Some(json!({ "url": receiver.url })))
            .await;
    let first_secret = hook["secret"].as_str().unwrap().to_owned();
    let rotate = format!("{hooks}/{}/rotate-secret", hook["id"].as_str().unwrap());
    let rotated = call(&http, Method::POST, rotate, OWNER_KEY, None).await;
    let second_secret = rotated["secret"].as_str().unwrap().to_owned();

    let body = propose_body(seller["id"].as_str().unwrap(), chain.buyer.address());
    let buyer_key = buyer["api_key"].as_str().unwrap();
    call(&http, Method::POST, format!("{base}/usage-agreements"), buyer_key, Some(body)).await;

    // The receiver holds the first attempt open; the service dies mid-delivery.
    let held = receiver.wait_for(1).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let mut child = serve(&chain, &dir, port, &log);
    until_healthy(&http, &base).await;
    // The dead instance's claim lapses (timeout 2 s + 5 s) and the delivery goes out again.
    let hits = receiver.wait_for(2).await;
    assert_eq!(hits[1].id(), held[0].id(), "the same webhook-id after the restart");
    assert_eq!(hits[1].body, held[0].body);
    assert!(hits[1].verifies_with(&second_secret));
    assert!(hits[1].verifies_with(&first_secret), "the old secret signs during the grace period");
    let list = format!("{hooks}/deliveries");
    let mut delivered = Value::Null;
    for _ in 0..100 {
        delivered = call(&http, Method::GET, list.clone(), OWNER_KEY, None).await;
        if delivered["data"][0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered["data"].as_array().unwrap().len(), 1, "{delivered}");
    assert_eq!(delivered["data"][0]["status"], "succeeded", "{delivered}");

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    child.wait().unwrap();

    // Nothing either process wrote holds a secret, in any form.
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(output.contains("webhook attempt"), "the deliveries were logged");
    assert!(output.contains("webhook signing secret rotated"));
    for secret in [&first_secret, &second_secret] {
        let raw = &secret["whsec_".len()..];
        assert!(!output.contains(raw), "a signing secret reached the logs");
        let bytes = base64_decode(raw);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!output.contains(&hex), "a signing secret's bytes reached the logs");
    }
    // No secret of any endpoint (`whsec_` then base64); the schema's comment names the prefix.
    let leaked = output.match_indices("whsec_").any(|(at, _)| {
        output[at + 6..].chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '+')
    });
    assert!(!leaked, "a signing secret reached the logs");
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

/// Claims on one store: what two dispatcher instances would do with the same due delivery.
async fn claims_on(url: &str) {
    use pactum::store::webhooks::{self as rows, AfterAttempt, Delivery, Endpoint};
    let store = pactum::store::Store::connect(url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let key = SecretKey::generate("ok", Environment::Test);
    let account = ensure_account(&mut tx, "claims", &key.hash(), now()).await.unwrap();
    let (agent, agent_key) = pactum::store::agents::new_agent(
        account.id,
        "claims",
        None,
        Vec::new(),
        Environment::Test,
        now(),
    );
    pactum::store::agents::insert_agent(&mut tx, &agent, &agent_key.hash()).await.unwrap();
    let endpoint = Endpoint {
        id: pactum::webhooks::new_id("whk_"),
        agent_id: agent.id.to_string(),
        url: "https://8.8.8.8/hooks".into(),
        description: None,
        event_types: Vec::new(),
        status: rows::ACTIVE.into(),
        status_reason: None,
        created_at: now(),
        updated_at: now(),
    };
    let secret = pactum::webhooks::signature::SigningSecret::generate().reveal();
    rows::insert_endpoint(&mut tx, &endpoint, &secret).await.unwrap();
    let event = pactum::store::outbox::record(
        &mut tx,
        None,
        pactum::store::outbox::EventType::RelayerJobFailed,
        &json!({}),
        now(),
    )
    .await
    .unwrap();
    let delivery = Delivery {
        id: pactum::webhooks::new_id("msg_"),
        endpoint_id: endpoint.id.clone(),
        agent_id: endpoint.agent_id.clone(),
        event_id: event.to_string(),
        event_type: "relayer.job_failed".into(),
        payload: "{}".into(),
        status: rows::PENDING.into(),
        attempts: 0,
        round_attempts: 0,
        next_attempt_at_ms: Some(1_000),
        last_status_code: None,
        last_error: None,
        created_at: now(),
        updated_at: now(),
        completed_at: None,
    };
    assert!(rows::insert_delivery(&mut tx, &delivery).await.unwrap());
    let twin = Delivery { id: pactum::webhooks::new_id("msg_"), ..delivery.clone() };
    assert!(!rows::insert_delivery(&mut tx, &twin).await.unwrap(), "one per (endpoint, event)");
    tx.commit().await.unwrap();

    let claim = |at: i64, token: &'static str| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let claimed = rows::claim_due(&mut tx, at, at + 7_000, token, 10).await.unwrap();
            tx.commit().await.unwrap();
            claimed.len()
        }
    };
    assert_eq!(claim(2_000, "a").await, 1, "the first instance takes it");
    assert_eq!(claim(2_001, "b").await, 0, "the second does not, while the lease holds");
    assert_eq!(claim(9_001, "b").await, 1, "a lapsed lease (a dead instance) is taken over");
    let after = AfterAttempt {
        status: rows::SUCCEEDED.into(),
        next_attempt_at_ms: None,
        status_code: Some(200),
        error: None,
    };
    let mut tx = store.begin().await.unwrap();
    assert!(!rows::after_attempt(&mut tx, &delivery.id, "a", &after, now()).await.unwrap());
    assert!(rows::after_attempt(&mut tx, &delivery.id, "b", &after, now()).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(claim(20_000, "c").await, 0, "a finished delivery is not claimed again");
    store.close().await;
}

#[tokio::test]
async fn claims_are_exclusive_until_their_lease_lapses() {
    claims_on(&crate::support::databases::fresh_sqlite()).await;
    if let Some(url) = crate::support::databases::fresh_postgres().await {
        claims_on(&url).await;
        crate::support::databases::drop_postgres(&url).await;
    }
}
