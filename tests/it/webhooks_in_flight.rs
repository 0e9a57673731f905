//! Every webhook request sent has its attempt logged, even when the endpoint is retired while
//! the request is on its way: a receiver answers 410 Gone to one delivery while it still holds a
//! second, and an owner deletes an endpoint while a delivery to it is held. Both requests reach
//! the receiver, so both must have their attempt row, and no claim is reported as lapsed.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::service::{Harness, OWNER_KEY, TestAgent};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

/// What the receiver does with its `n`th request (0-based): wait until `wait` holds, then
/// answer `status`.
#[derive(Clone, Copy)]
enum Gate {
    /// Until the receiver has had this many requests.
    Arrivals(usize),
    /// Until the test releases the held requests.
    Released,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    /// The `webhook-id` of every request, in order of arrival.
    ids: Arc<Mutex<Vec<String>>>,
    arrivals: watch::Sender<usize>,
    released: watch::Sender<bool>,
    script: Arc<Vec<(Gate, u16)>>,
}

impl Receiver {
    async fn start(script: Vec<(Gate, u16)>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            url: format!("http://{}/hooks", listener.local_addr().unwrap()),
            ids: Arc::default(),
            arrivals: watch::channel(0).0,
            released: watch::channel(false).0,
            script: Arc::new(script),
        };
        let app = axum::Router::new().fallback(receive).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    /// The `webhook-id`s once at least `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        let mut arrivals = self.arrivals.subscribe();
        tokio::time::timeout(Duration::from_secs(30), arrivals.wait_for(|seen| *seen >= n))
            .await
            .expect("the requests arrive")
            .unwrap();
        self.ids.lock().unwrap().clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap) -> AxumStatus {
    let n = {
        let mut ids = receiver.ids.lock().unwrap();
        ids.push(headers["webhook-id"].to_str().unwrap().to_owned());
        ids.len() - 1
    };
    receiver.arrivals.send_modify(|seen| *seen += 1);
    let (gate, status) = receiver.script.get(n).copied().unwrap_or((Gate::Arrivals(0), 200));
    match gate {
        Gate::Arrivals(count) => {
            let _ = receiver.arrivals.subscribe().wait_for(|seen| *seen >= count).await;
        }
        Gate::Released => {
            let _ = receiver.released.subscribe().wait_for(|released| *released).await;
        }
    }
    AxumStatus::from_u16(status).unwrap()
}

/// Everything the service logs during a test, at `info` and above.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Captures the logs of this thread (the test runtime runs the service's tasks on it).
    fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn harness() -> Harness {
    Harness::start_with(|config| config.webhooks.retry_schedule = "0s,100ms".parse().unwrap()).await
}

async fn create_webhook(h: &Harness, agent: &TestAgent, url: &str) -> String {
    let path = format!("/agents/{}/webhooks", agent.id);
    let body = json!({ "url": url, "event_types": ["agreement.proposed"] });
    let (status, created) = h.call(Method::POST, &path, Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn propose(h: &Harness, buyer: &TestAgent, seller: &TestAgent) {
    h.propose(buyer, seller, h.chain.buyer.address()).await;
}

/// The delivery once it has an attempt logged and is no longer pending; panics after 30 s.
async fn finished_with_attempt(h: &Harness, agent: &TestAgent, id: &str) -> Value {
    let path = format!("/agents/{}/webhooks/deliveries/{id}", agent.id);
    let done = |d: &Value| {
        d["status"] != "pending" && d["attempts"].as_array().is_some_and(|a| !a.is_empty())
    };
    poll(h, &path, done).await
}

async fn poll(h: &Harness, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (code, body) = h.call(Method::GET, path, Some(OWNER_KEY), None).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never reached the condition; last: {last}");
}

fn attempt_codes(delivery: &Value) -> Vec<Value> {
    delivery["attempts"].as_array().unwrap().iter().map(|a| a["status_code"].clone()).collect()
}

#[tokio::test]
async fn a_410_while_another_delivery_is_in_flight_logs_both_attempts() {
    let (log, _guard) = Log::capture();
    let h = harness().await;
    let (buyer, seller) = h.parties().await;
    // The first request is answered 410 once the second has arrived; the second is held until
    // the endpoint is disabled.
    let receiver = Receiver::start(vec![(Gate::Arrivals(2), 410), (Gate::Released, 200)]).await;
    let hook = create_webhook(&h, &buyer, &receiver.url).await;
    propose(&h, &buyer, &seller).await;
    propose(&h, &buyer, &seller).await;
    let ids = receiver.wait_for(2).await;

    let hook_path = format!("/agents/{}/webhooks/{hook}", buyer.id);
    poll(&h, &hook_path, |endpoint| endpoint["status"] == "disabled").await;
    receiver.released.send_replace(true);

    let gone = finished_with_attempt(&h, &buyer, &ids[0]).await;
    assert_eq!(gone["status"], "failed", "{gone}");
    assert_eq!(attempt_codes(&gone), [json!(410)], "{gone}");
    let held = finished_with_attempt(&h, &buyer, &ids[1]).await;
    assert_eq!(attempt_codes(&held), [json!(200)], "the held request's attempt: {held}");
    assert_eq!(held["status"], "succeeded", "the receiver accepted it: {held}");

    let log = log.text();
    assert!(log.contains("webhook endpoint disabled by 410 Gone"), "logs are captured");
    assert!(!log.contains("lapsed"), "no claim reported lapsed:\n{log}");
    assert_eq!(receiver.ids.lock().unwrap().len(), 2, "nothing sent after the 410");
}

#[tokio::test]
async fn deleting_an_endpoint_mid_send_logs_the_attempt() {
    let (log, _guard) = Log::capture();
    let h = harness().await;
    let (buyer, seller) = h.parties().await;
    let receiver = Receiver::start(vec![(Gate::Released, 200)]).await;
    let hook = create_webhook(&h, &buyer, &receiver.url).await;
    propose(&h, &buyer, &seller).await;
    let ids = receiver.wait_for(1).await;

    let hook_path = format!("/agents/{}/webhooks/{hook}", buyer.id);
    let (status, body) = h.call(Method::DELETE, &hook_path, Some(OWNER_KEY), None).await;
    assert!(status.is_success(), "{status} {body}");
    receiver.released.send_replace(true);

    let delivery = finished_with_attempt(&h, &buyer, &ids[0]).await;
    assert_eq!(attempt_codes(&delivery), [json!(200)], "{delivery}");
    let log = log.text();
    assert!(log.contains("webhook attempt"), "logs are captured:\n{log}");
    assert!(!log.contains("lapsed"), "no claim reported lapsed:\n{log}");
}
