//! A JSON-RPC proxy in front of anvil: it counts the calls that pass through it by method, and
//! refuses the methods it is told to as a node without them does (geth's `-32601` "does not
//! exist/is not available"). The service under test is pointed at it instead of at anvil.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

/// The key a numbered `eth_getBlockByNumber` is counted under (a header read of one block).
pub const HEADER_BY_NUMBER: &str = "eth_getBlockByNumber(number)";
/// The key an `eth_getBlockByNumber` of a tag (`latest`, …) is counted under.
pub const HEADER_BY_TAG: &str = "eth_getBlockByNumber(tag)";

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    refused: Arc<Vec<String>>,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// The proxy, serving until dropped.
pub struct RpcProxy {
    /// Its URL, to configure as the service's RPC URL.
    pub url: String,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RpcProxy {
    /// Starts a proxy to `upstream` on an ephemeral port, refusing every method in `refused`.
    pub async fn start(upstream: &str, refused: &[&str]) -> RpcProxy {
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let shared = Shared {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            refused: Arc::new(refused.iter().map(|m| (*m).to_owned()).collect()),
            counts: counts.clone(),
        };
        let app = Router::new().route("/", post(forward)).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RpcProxy { url, counts, task }
    }

    /// The calls counted so far, by method; `eth_getBlockByNumber` is split into
    /// [`HEADER_BY_NUMBER`] and [`HEADER_BY_TAG`]. Refused calls count too.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The key a request is counted under.
fn key_of(request: &Value) -> String {
    let method = request["method"].as_str().unwrap_or("?");
    if method != "eth_getBlockByNumber" {
        return method.to_owned();
    }
    match request["params"][0].as_str() {
        Some(block) if block.starts_with("0x") => HEADER_BY_NUMBER.to_owned(),
        _ => HEADER_BY_TAG.to_owned(),
    }
}

async fn forward(State(shared): State<Shared>, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let requests = match &parsed {
        Value::Array(batch) => batch.clone(),
        single => vec![single.clone()],
    };
    {
        let mut counts = shared.counts.lock().unwrap();
        for request in &requests {
            *counts.entry(key_of(request)).or_default() += 1;
        }
    }
    if let Value::Object(request) = &parsed
        && let Some(method) = request.get("method").and_then(Value::as_str)
        && shared.refused.iter().any(|m| m == method)
    {
        let refusal = json!({
            "jsonrpc": "2.0",
            "id": request.get("id").cloned().unwrap_or(Value::Null),
            "error": {
                "code": -32601,
                "message": format!("the method {method} does not exist/is not available"),
            },
        });
        return axum::Json(refusal).into_response();
    }
    let answer = shared
        .http
        .post(&shared.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let text = answer.text().await.unwrap_or_default();
            let status = axum::http::StatusCode::from_u16(status).unwrap();
            (status, [("content-type", "application/json")], text).into_response()
        }
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}
