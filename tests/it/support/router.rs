//! The API router alone, driven with `Router::oneshot`: a real SQLite store and the real
//! handlers, no socket and no anvil. The chain is [`ChainContext::unconnected`], so only tests
//! whose routes never read the chain belong here; [`Client`] lets a helper serve both harnesses.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use pactum::agreement::ids::{Environment, SecretKey};
use pactum::api::{self, AppState, Shared};
use pactum::chain::context::ChainContext;
use pactum::config::ServeConfig;
use pactum::receipts::ReceiptKey;
use pactum::screening::{Screener, ScreeningConfig};
use pactum::store::{Store, agents, now};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::service::{Harness, OWNER_KEY, TestAgent, config_without_chain, unique_dir};

/// anvil's chain id, which the unconnected chain claims (so keys are `test` ones).
const CHAIN_ID: u64 = 31_337;

/// The router over fresh state, and that state.
pub struct Api {
    /// What the handlers share.
    pub state: AppState,
    /// The router, cloned for each request.
    pub router: axum::Router,
    /// The directory of the SQLite file, removed on drop.
    pub db_dir: PathBuf,
}

impl Api {
    /// A fresh store and router with the harness's default settings.
    pub async fn start() -> Api {
        Self::start_with(|_| {}).await
    }

    /// A fresh store and router, with `adjust` applied to the configuration first. The state is
    /// built as `Service::start` builds it, minus what needs a node.
    pub async fn start_with(adjust: impl FnOnce(&mut ServeConfig)) -> Api {
        let db_dir = unique_dir("pactum-router");
        let mut config = config_without_chain(&db_dir);
        adjust(&mut config);
        let store = Store::connect(&config.database_url).await.unwrap();
        let chain = ChainContext::unconnected(
            &config.rpc_url,
            &config.rpc,
            CHAIN_ID,
            config.escrow_address,
            &config.token_name,
        )
        .unwrap();
        let operator_account = match &config.owner_key {
            Some(owner_key) => {
                let mut tx = store.begin().await.unwrap();
                let hash = SecretKey::from_presented(owner_key.expose()).hash();
                let account =
                    agents::ensure_account(&mut tx, "operator", &hash, now()).await.unwrap();
                tx.commit().await.unwrap();
                Some(account.id)
            }
            None => None,
        };
        let screener = Screener::new(
            chain.provider.clone(),
            &ScreeningConfig {
                oracle: Some(config.sanctions_oracle.unwrap_or(chain.sanctions_oracle)),
                denylist: config.denylist.clone(),
                fail_closed: !config.screening_fail_open,
            },
        )
        .unwrap();
        let receipt_key =
            ReceiptKey::from_setting(config.receipt_private_key.as_ref(), CHAIN_ID).unwrap();
        let checks =
            pactum::api::check_queue::CheckQueue::start(store.clone(), config.approval_ttl_secs);
        let state = AppState(Arc::new(Shared {
            operator_account,
            faucet: None,
            store,
            chain,
            screener,
            policy: config.terms_policy(),
            environment: config.environment.unwrap_or(Environment::Test),
            relayer: Default::default(),
            max_body_bytes: config.max_body_bytes,
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            webhooks: config.webhooks.clone(),
            authorization_ttl: config.authorization_ttl_secs,
            receipt_signer: receipt_key.address(),
            rate_limits: config.rate_limits(),
            idempotency_ttl: config.idempotency_ttl_secs,
            ready_max_lag_blocks: config.ready_max_lag_blocks,
            confirmations: config.confirmations,
            early_claim_threshold: config.early_claim_threshold,
            approval_ttl: config.approval_ttl_secs,
            checks,
            credentials_seen: Default::default(),
            read_model: Default::default(),
            wallet_balances: Default::default(),
            gas_balances: Default::default(),
            risk_verdicts: Default::default(),
            registration: config.registration.clone(),
            console: config.console.clone(),
            relayer_addresses: vec![],
            go_no_go: pactum::api::go_no_go::Equipment {
                receipt_key,
                settings: config.go_no_go.clone(),
                database_url: pactum::config::Secret::new(config.database_url.clone()),
                self_url: "http://127.0.0.1:1".into(),
                instance: "router".into(),
            },
        }));
        Api { router: api::app(state.clone()), state, db_dir }
    }

    /// Sends `request` through the router; returns the status, the `Content-Type` and the body
    /// as text.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Option<String>, String) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, content_type, String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.db_dir);
    }
}

/// What the tests' helpers need of a running API: requests with the JSON answer, and the store.
/// [`Harness`] sends them over HTTP, [`Api`] through the router.
pub trait Client {
    /// Sends `body` (if any) to `path` with `key` as bearer and extra `headers`; returns the
    /// status and JSON body (a body that is not JSON comes back as `{"raw": text}`).
    fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = (StatusCode, Value)>;

    /// Sends a request built by hand: `headers` in order, `body` as bytes; returns the status,
    /// the `Content-Type` and the body as text.
    fn send_raw(
        &self,
        method: Method,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> impl Future<Output = (StatusCode, Option<String>, String)>;

    /// The service's store.
    fn store(&self) -> Store;

    /// [`Client::call_with`] without extra headers.
    fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> impl Future<Output = (StatusCode, Value)> {
        self.call_with(method, path, key, body, &[])
    }

    /// Creates an agent under the owner credential.
    fn agent(&self, name: &str) -> impl Future<Output = TestAgent> {
        async move {
            let body = json!({ "name": name, "capabilities": ["usage"] });
            let (status, agent) =
                self.call(Method::POST, "/v1/agents", Some(OWNER_KEY), Some(&body)).await;
            assert_eq!(status, StatusCode::CREATED, "{agent}");
            TestAgent {
                id: agent["id"].as_str().unwrap().to_owned(),
                key: agent["api_key"].as_str().unwrap().to_owned(),
            }
        }
    }
}

impl Client for Api {
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
        let (status, _, text) = self.send(request.body(body).unwrap()).await;
        let json = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
        (status, json)
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> (StatusCode, Option<String>, String) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    fn store(&self) -> Store {
        self.state.store.clone()
    }
}

impl Client for Harness {
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        Harness::call_with(self, method, path, key, body, headers).await
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> (StatusCode, Option<String>, String) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.expect("request sent");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, content_type, response.text().await.unwrap())
    }

    fn store(&self) -> Store {
        self.service.as_ref().unwrap().state().store.clone()
    }
}

/// A second account's owner credential and one agent of it.
pub async fn other_account(api: &Api) -> (String, TestAgent) {
    let key = SecretKey::generate("ok", Environment::Test);
    let store = api.store();
    let mut tx = store.begin().await.unwrap();
    agents::ensure_account(&mut tx, "other", &key.hash(), now()).await.unwrap();
    tx.commit().await.unwrap();
    let owner = key.reveal().to_owned();
    let body = json!({ "name": "other-agent" });
    let (status, agent) = api.call(Method::POST, "/v1/agents", Some(&owner), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent = TestAgent {
        id: agent["id"].as_str().unwrap().to_owned(),
        key: agent["api_key"].as_str().unwrap().to_owned(),
    };
    (owner, agent)
}
