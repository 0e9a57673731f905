//! A JSON-RPC proxy in front of anvil that misbehaves on request, everything else going through:
//! - it can freeze the head it reports: while frozen, `eth_getBlockByNumber("latest")` and
//!   `eth_blockNumber` answer what the node said when the freeze began. A service behind it
//!   keeps working (it signs, estimates and sends) but its watcher sees no new block, so what
//!   Pactum has seen of the chain falls behind the chain itself: a stale view, made on purpose;
//! - it can refuse `eth_call`s with a state override, as nodes that do not support them do;
//! - it can refuse whole methods, as a node without them does (geth's `-32601` "does not
//!   exist/is not available");
//! - it counts the calls that reach it, by method, so a test can bound what the service asks;
//! - it stamps when each raw transaction first reached it, so a benchmark can time broadcasts
//!   to the moment the service sent them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use alloy::primitives::{B256, keccak256};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    /// The latest block as the node gave it when the freeze began.
    frozen: Arc<Mutex<Option<Value>>>,
    /// Whether `eth_call` with a state override is refused.
    no_overrides: Arc<std::sync::atomic::AtomicBool>,
    /// Methods refused outright.
    refused: Arc<Mutex<HashSet<String>>>,
    /// Calls received, by [`key_of`] their request.
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// When each raw transaction (by hash) was first sent through.
    broadcasts: Arc<Mutex<HashMap<B256, Instant>>>,
}

/// The key a numbered `eth_getBlockByNumber` is counted under (a header read of one block).
pub const HEADER_BY_NUMBER: &str = "eth_getBlockByNumber(number)";
/// The key an `eth_getBlockByNumber` of a tag (`latest`, …) is counted under.
pub const HEADER_BY_TAG: &str = "eth_getBlockByNumber(tag)";

/// The running proxy.
pub struct FaultyRpc {
    /// Where it listens: give this to the service as its RPC URL.
    pub url: String,
    proxy: Proxy,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyRpc {
    /// A proxy to `upstream`, passing everything through until [`FaultyRpc::freeze`].
    pub async fn start(upstream: &str) -> FaultyRpc {
        let proxy = Proxy {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            frozen: Arc::new(Mutex::new(None)),
            no_overrides: Default::default(),
            refused: Default::default(),
            counts: Default::default(),
            broadcasts: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().route("/", post(forward)).with_state(proxy.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultyRpc { url, proxy, task }
    }

    /// From now on the head reported is the node's latest block as of now.
    pub async fn freeze(&self) {
        let latest = self.proxy.call("eth_getBlockByNumber", json!(["latest", false])).await;
        *self.proxy.frozen.lock().unwrap() = Some(latest["result"].clone());
    }

    /// The node's own head again.
    pub fn thaw(&self) {
        *self.proxy.frozen.lock().unwrap() = None;
    }

    /// From now on an `eth_call` with a state override (its third parameter) is answered with
    /// the JSON-RPC error of a node that does not take them.
    pub fn refuse_state_overrides(&self) {
        self.proxy.no_overrides.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl FaultyRpc {
    /// From now on every call of `method` is answered with the JSON-RPC error of a node that
    /// does not serve it.
    pub fn refuse_method(&self, method: &str) {
        self.proxy.refused.lock().unwrap().insert(method.to_owned());
    }

    /// The calls received so far, by method (each request of a batch counts), refused ones
    /// included; `eth_getBlockByNumber` is split into [`HEADER_BY_NUMBER`] and
    /// [`HEADER_BY_TAG`].
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.proxy.counts.lock().unwrap().clone()
    }

    /// When each transaction sent through `eth_sendRawTransaction` first arrived, by hash.
    pub fn broadcasts(&self) -> HashMap<B256, Instant> {
        self.proxy.broadcasts.lock().unwrap().clone()
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

impl Drop for FaultyRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        self.http.post(&self.upstream).json(&body).send().await.unwrap().json().await.unwrap()
    }

    /// The proxy's own answer to `request`, if it refuses it or asks for the head while frozen.
    fn own_answer(&self, request: &Value) -> Option<Value> {
        if let Some(method) = request["method"].as_str()
            && self.refused.lock().unwrap().contains(method)
        {
            let message = format!("the method {method} does not exist/is not available");
            let error = json!({ "code": -32601, "message": message });
            return Some(json!({ "jsonrpc": "2.0", "id": request["id"], "error": error }));
        }
        let overrides = request["method"] == "eth_call" && !request["params"][2].is_null();
        if overrides && self.no_overrides.load(std::sync::atomic::Ordering::SeqCst) {
            let error = json!({ "code": -32602, "message": "too many arguments, want at most 2" });
            return Some(json!({ "jsonrpc": "2.0", "id": request["id"], "error": error }));
        }
        self.frozen_answer(request)
    }

    /// The frozen answer to `request`, if it asks for the head while frozen.
    fn frozen_answer(&self, request: &Value) -> Option<Value> {
        let block = self.frozen.lock().unwrap().clone()?;
        let result = match request["method"].as_str()? {
            "eth_getBlockByNumber" if request["params"][0] == "latest" => block,
            "eth_blockNumber" => block["number"].clone(),
            _ => return None,
        };
        Some(json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }))
    }
}

async fn forward(State(proxy): State<Proxy>, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let arrived = Instant::now();
    if let Ok(requests) = serde_json::from_slice::<Value>(&body) {
        let mut counts = proxy.counts.lock().unwrap();
        for request in requests.as_array().map_or(std::slice::from_ref(&requests), Vec::as_slice) {
            *counts.entry(key_of(request)).or_default() += 1;
            if request["method"] == "eth_sendRawTransaction"
                && let Some(raw) = request["params"][0].as_str()
                && let Ok(raw) = alloy::primitives::hex::decode(raw)
            {
                proxy.broadcasts.lock().unwrap().entry(keccak256(&raw)).or_insert(arrived);
            }
        }
    }
    if let Ok(request) = serde_json::from_slice::<Value>(&body)
        && let Some(answer) = proxy.own_answer(&request)
    {
        return axum::Json(answer).into_response();
    }
    let response = proxy
        .http
        .post(&proxy.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                bytes,
            )
                .into_response()
        }
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}
