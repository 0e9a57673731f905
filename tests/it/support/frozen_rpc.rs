//! A JSON-RPC proxy in front of anvil that can freeze the head it reports: while frozen,
//! `eth_getBlockByNumber("latest")` and `eth_blockNumber` answer what the node said when the
//! freeze began, and everything else goes through. A service behind it keeps working (it signs,
//! estimates and sends) but its watcher sees no new block, so what Pactum has seen of the chain
//! falls behind the chain itself: a stale view, made on purpose.

use std::sync::{Arc, Mutex};

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
}

/// The running proxy.
pub struct FrozenRpc {
    /// Where it listens: give this to the service as its RPC URL.
    pub url: String,
    proxy: Proxy,
    task: tokio::task::JoinHandle<()>,
}

impl FrozenRpc {
    /// A proxy to `upstream`, passing everything through until [`FrozenRpc::freeze`].
    pub async fn start(upstream: &str) -> FrozenRpc {
        let proxy = Proxy {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            frozen: Arc::new(Mutex::new(None)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().route("/", post(forward)).with_state(proxy.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FrozenRpc { url, proxy, task }
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
}

impl Drop for FrozenRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        self.http.post(&self.upstream).json(&body).send().await.unwrap().json().await.unwrap()
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
    if let Ok(request) = serde_json::from_slice::<Value>(&body)
        && let Some(answer) = proxy.frozen_answer(&request)
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
