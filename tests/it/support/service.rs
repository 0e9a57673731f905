//! A running Pactum against a fresh anvil: the real server on an ephemeral port with a real
//! SQLite file, driven over HTTP.

use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::Provider;
use pactum::config::{Secret, ServeConfig};
use pactum::money::TokenAmount;
use pactum::service::Service;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::DevChain;

/// The owner credential the harness configures.
pub const OWNER_KEY: &str = "ok_test_harness_owner_key_0000000000000000000000000000";

/// The receipt key the harness configures (a fixed test key, not an anvil account's).
pub const RECEIPT_KEY: &str = "0x7ec1e1b5d6f8a3c2b4e6d8f0a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9";

/// A chain, a running service and an HTTP client.
pub struct Harness {
    /// The chain the service runs against.
    pub chain: DevChain,
    /// The running service; `None` while stopped.
    pub service: Option<Service>,
    /// The service's base URL, `http://127.0.0.1:<port>`.
    pub base: String,
    /// The client the helpers send requests with.
    pub http: reqwest::Client,
    /// The directory of the SQLite file, removed on drop.
    pub db_dir: PathBuf,
    /// The database the service runs on (the SQLite file in `db_dir` unless the test chose
    /// another); a restart keeps it.
    pub database_url: String,
}

/// Mines a block every 200 ms while alive, as `pactum dev`'s block time does, so the canary's
/// transactions reach their confirmation depth.
pub struct Miner(tokio::task::JoinHandle<()>);

impl Miner {
    /// Starts mining on `h`'s chain.
    pub fn start(h: &Harness) -> Miner {
        let provider = h.chain.provider.clone();
        Miner(tokio::spawn(async move {
            loop {
                let _: Result<Value, _> = provider.raw_request("evm_mine".into(), ()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An agent created through the API.
#[derive(Debug, Clone)]
pub struct TestAgent {
    /// Its id (`agt_…`).
    pub id: String,
    /// Its API key.
    pub key: String,
}

impl Harness {
    /// A fresh chain and service with default settings.
    pub async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    /// A fresh chain and service, with `adjust` applied to the configuration first.
    pub async fn start_with(adjust: impl FnOnce(&mut ServeConfig)) -> Harness {
        Self::start_with_chain(|_, config| adjust(config)).await
    }

    /// A fresh chain and service, with `adjust` applied to the configuration first; `adjust`
    /// sees the chain (e.g. to pick relayer keys from its dev accounts).
    pub async fn start_with_chain(adjust: impl FnOnce(&DevChain, &mut ServeConfig)) -> Harness {
        Self::start_on(DevChain::start().await, adjust).await
    }

    /// A service on `chain` (already started, with anything a test deployed on it), with
    /// `adjust` applied to the configuration first.
    pub async fn start_on(
        chain: DevChain,
        adjust: impl FnOnce(&DevChain, &mut ServeConfig),
    ) -> Harness {
        let db_dir = unique_dir("pactum-test");
        let mut config = config_for(&chain, &db_dir);
        adjust(&chain, &mut config);
        let database_url = config.database_url.clone();
        let service = Service::start(config).await.expect("service starts");
        let base = format!("http://{}", service.local_addr());
        Harness {
            chain,
            service: Some(service),
            base,
            http: reqwest::Client::new(),
            db_dir,
            database_url,
        }
    }

    /// Stops the service gracefully (the chain and the database stay).
    pub async fn stop(&mut self) {
        if let Some(service) = self.service.take() {
            service.shutdown().await;
        }
    }

    /// Starts the service again on the same chain and database, as after a crash or deploy.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut config = config_for(&self.chain, &self.db_dir);
        config.database_url = self.database_url.clone();
        let service = Service::start(config).await.expect("service restarts");
        self.base = format!("http://{}", service.local_addr());
        self.service = Some(service);
    }

    /// Polls `GET /usage-agreements/{id}` without mining until `done` holds (for tests that
    /// control block production themselves); panics after 30 s.
    pub async fn poll_until(&self, key: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.poll_path(key, &format!("/usage-agreements/{id}"), done).await
    }

    /// Polls `GET {path}` without mining until `done` holds (for tests that control block
    /// production themselves); panics after 30 s with the last body.
    pub async fn poll_path(&self, key: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let (_, body) = self.call(Method::GET, path, Some(key), None).await;
            if done(&body) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("condition not reached on {path}; last: {last}");
    }

    /// Turns anvil's automine on or off.
    pub async fn automine(&self, on: bool) {
        let _: Value =
            self.chain.provider.raw_request("evm_setAutomine".into(), (on,)).await.unwrap();
    }

    /// Sends `body` (if any) to `path` with `key` as bearer; returns the status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, key, body, &[]).await
    }

    /// [`Harness::call`] with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
        if is_json {
            super::conformance::assert_conforms(&method, path, status, &json);
        }
        (status, json)
    }

    /// Creates an agent under the owner credential.
    pub async fn agent(&self, name: &str) -> TestAgent {
        let body = json!({ "name": name, "capabilities": ["usage"] });
        let (status, agent) =
            self.call(Method::POST, "/v1/agents", Some(OWNER_KEY), Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{agent}");
        TestAgent {
            id: agent["id"].as_str().unwrap().to_owned(),
            key: agent["api_key"].as_str().unwrap().to_owned(),
        }
    }

    /// Writes `rules` as `agent`'s policy, under the owner credential.
    pub async fn set_policy(&self, agent: &TestAgent, rules: Value) {
        let path = format!("/agents/{}/policies", agent.id);
        let body = json!({ "rules": rules });
        let (status, answer) = self.call(Method::PUT, &path, Some(OWNER_KEY), Some(&body)).await;
        assert!(status.is_success(), "{status} {answer}");
    }

    /// The types of the outbox events written for `agent` whose type starts with `prefix`,
    /// oldest first.
    pub async fn agent_event_types(&self, agent: &TestAgent, prefix: &str) -> Vec<String> {
        use sqlx::Row;
        let store = self.service.as_ref().unwrap().state().store.clone();
        let rows = sqlx::query(
            "SELECT event_type FROM outbox_events WHERE agent_id = $1 AND event_type LIKE $2 \
             ORDER BY id",
        )
        .bind(&agent.id)
        .bind(format!("{prefix}%"))
        .fetch_all(store.reader())
        .await
        .unwrap();
        rows.iter().map(|r| r.get::<String, _>("event_type")).collect()
    }

    /// A buyer and a seller agent.
    pub async fn parties(&self) -> (TestAgent, TestAgent) {
        (self.agent("buyer").await, self.agent("seller").await)
    }

    /// Proposes 100 API calls at 10 cents from `buyer` (paying from `wallet`) to `seller`.
    pub async fn propose(&self, buyer: &TestAgent, seller: &TestAgent, wallet: Address) -> Value {
        let body = propose_body(&seller.id, wallet);
        let (status, agreement) =
            self.call(Method::POST, "/usage-agreements", Some(&buyer.key), Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{agreement}");
        agreement
    }

    /// Proposes and accepts (seller paid to `seller_wallet`); returns the agreement id.
    pub async fn accepted(
        &self,
        buyer: &TestAgent,
        seller: &TestAgent,
        buyer_wallet: Address,
        seller_wallet: Address,
    ) -> String {
        let id = self.propose(buyer, seller, buyer_wallet).await["id"].as_str().unwrap().to_owned();
        let body = json!({ "seller_wallet_address": seller_wallet.to_string() });
        let path = format!("/usage-agreements/{id}/accept");
        let (status, accepted) =
            self.call(Method::PUT, &path, Some(&seller.key), Some(&body)).await;
        assert_eq!(status, StatusCode::OK, "{accepted}");
        id
    }

    /// The activation package of agreement `id`.
    pub async fn package(&self, key: &str, id: &str) -> Value {
        let path = format!("/usage-agreements/{id}/activation-package");
        let (status, package) = self.call(Method::GET, &path, Some(key), None).await;
        assert_eq!(status, StatusCode::OK, "{package}");
        package
    }

    /// Polls `GET /usage-agreements/{id}` (mining a block each round, so confirmations
    /// accrue) until `done` holds; panics after 30 s with the last body.
    pub async fn wait_for(&self, key: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let path = format!("/usage-agreements/{id}");
        let mut last = Value::Null;
        for _ in 0..300 {
            let (_, body) = self.call(Method::GET, &path, Some(key), None).await;
            if done(&body) {
                return body;
            }
            last = body;
            let _: Value = self.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("condition not reached; last: {last}");
    }

    /// Proposes and accepts an agreement of 100 units at 10 cents paid by the chain's buyer
    /// wallet to its seller wallet, and submits its signed activation; returns its id once the
    /// activation is queued (HTTP 202).
    pub async fn queued(&self, buyer: &TestAgent, seller: &TestAgent) -> String {
        let (buyer_wallet, seller_wallet) =
            (self.chain.buyer.address(), self.chain.seller.address());
        let id = self.accepted(buyer, seller, buyer_wallet, seller_wallet).await;
        let package = self.package(&buyer.key, &id).await;
        let body = sign_package(&self.chain.buyer, &package);
        let path = format!("/usage-agreements/{id}/activate-escrow");
        let (status, queued) = self.call(Method::POST, &path, Some(&buyer.key), Some(&body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        id
    }

    /// [`Harness::queued`], then waits until the agreement is `active` and `confirmed`.
    pub async fn active(&self, buyer: &TestAgent, seller: &TestAgent) -> String {
        let id = self.queued(buyer, seller).await;
        self.wait_for(&buyer.key, &id, |a| a["status"] == "active").await;
        id
    }

    /// Polls `GET {path}` (mining a block each round) until `done` holds; panics after 30 s.
    pub async fn wait_path(&self, key: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..300 {
            let (_, body) = self.call(Method::GET, path, Some(key), None).await;
            if done(&body) {
                return body;
            }
            last = body;
            let _: Value = self.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("condition not reached on {path}; last: {last}");
    }

    /// How many relayer jobs the store holds (to show nothing was queued).
    pub async fn job_count(&self) -> i64 {
        use sqlx::Row;
        let store = self.service.as_ref().unwrap().state().store.clone();
        sqlx::query("SELECT COUNT(*) AS n FROM relayer_jobs")
            .fetch_one(store.reader())
            .await
            .unwrap()
            .get::<i64, _>("n")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.db_dir);
    }
}

/// The body of `activate-escrow` for `package`: every document signed by `signer` as a buyer's
/// wallet would, with the package's `agreement_key` and `chain_id` echoed back.
pub fn sign_package(signer: &alloy::signers::local::PrivateKeySigner, package: &Value) -> Value {
    let sign = |doc: &Value| {
        super::sign_hash(signer, pactum::escrow::package::digest_of(doc).unwrap()).to_string()
    };
    let mut body = json!({
        "activation_signature": sign(&package["activation"]),
        "funding_signature": sign(&package["funding"]),
        "agreement_key": package["agreement_key"],
        "chain_id": package["chain_id"],
    });
    if let Some(fee) = package.get("infra_fee") {
        body["infra_fee_permit_signature"] = json!(sign(&fee["permit"]));
    }
    body
}

/// A policy of one rule: `max_cents` a UTC day.
pub fn daily_budget(max_cents: u64) -> Value {
    json!([{ "id": "daily", "type": "period_budget", "period": "day", "max_cents": max_cents,
             "timezone": "UTC" }])
}

/// `signer`'s signature of an `eth_signTypedData_v4` document, as a wallet makes it.
pub fn sign_document(signer: &alloy::signers::local::PrivateKeySigner, document: &Value) -> String {
    super::sign_hash(signer, pactum::escrow::package::digest_of(document).unwrap()).to_string()
}

/// The body of a proposal of 100 API calls at 10 cents to `seller_id`, paid from `wallet`.
pub fn propose_body(seller_id: &str, wallet: Address) -> Value {
    json!({
        "seller_agent_id": seller_id,
        "service_id": "svc_search",
        "quantity": 100,
        "unit": "api_calls",
        "price_per_unit_cents": 10,
        "payment_method": { "rail": "stablecoin", "provider": "x402" },
        "settlement_model": "bilateral_escrow",
        "activation_version": "v2",
        "buyer_wallet_address": wallet.to_string(),
    })
}

/// The service configuration for `chain`, with its SQLite file in `dir`.
pub fn config_for(chain: &DevChain, dir: &std::path::Path) -> ServeConfig {
    ServeConfig {
        rpc_url: chain.anvil.endpoint(),
        escrow_address: *chain.escrow.address(),
        relayer_private_keys: vec![Secret::new(chain.relayer.to_bytes().to_string())],
        ..config_without_chain(dir)
    }
}

/// The harness's settings with no chain: its SQLite file in `dir`, an RPC URL where nothing
/// answers, a made-up escrow address and no relayer key. [`config_for`] fills the chain in.
pub fn config_without_chain(dir: &std::path::Path) -> ServeConfig {
    ServeConfig {
        database_url: format!("sqlite:{}?mode=rwc", dir.join("pactum.db").display()),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: 65_536,
        request_timeout_secs: 30,
        owner_key: Some(Secret::new(OWNER_KEY)),
        environment: None,
        // Port 1: nothing listens there, so a read of the chain fails at once.
        rpc_url: "http://127.0.0.1:1".into(),
        rpc: pactum::chain::rpc::RpcSettings::default(),
        escrow_address: alloy::primitives::Address::repeat_byte(0xe5),
        token_name: "USD Coin".into(),
        confirmations: 2,
        poll_interval_ms: 50,
        relayer_poll_interval_ms: None,
        start_block: None,
        relayer_private_keys: vec![],
        transfer_batch_address: None,
        relayer_batch_max: 50,
        relayer_batch_wait_ms: Some(200),
        relayer_max_fee_per_gas_gwei: 500,
        relayer_replace_after_blocks: 3,
        relayer_max_in_flight: 16,
        authorization_ttl_secs: 3_600,
        idempotency_ttl_secs: 86_400,
        // A fixed receipt key, so receipts outlive a restart; no rate limits (tests poll hard).
        receipt_private_key: Some(Secret::new(RECEIPT_KEY)),
        faucet_private_key: None,
        rate_limit_window_secs: 60,
        rate_limit_read: 0,
        rate_limit_write: 0,
        rate_limit_sponsored: 0,
        rate_limit_management: 0,
        rate_limit_checks: 0,
        rate_limit_governance: 0,
        rate_limit_registration: 0,
        rate_limit_registration_window_secs: 3_600,
        approval_ttl_secs: 86_400,
        sanctions_oracle: None,
        denylist: None,
        screening_fail_open: false,
        activation_window_secs: 3_600,
        expiry_secs: 86_400,
        close_window_secs: 3_600,
        infra_fee_bps: 200,
        infra_fee_fixed: TokenAmount::from_base_units(3_000),
        infra_fee_minimum: TokenAmount::from_base_units(100_000),
        early_claim_threshold: TokenAmount::from_base_units(10_000_000),
        ready_max_lag_blocks: 20,
        signer_min_balance_wei: 10_000_000_000_000_000,
        signer_balance_interval_secs: 1,
        webhooks: pactum::webhooks::WebhookSettings {
            allow_private_urls: true,
            ..Default::default()
        },
        registration: Default::default(),
        console: Default::default(),
        go_no_go: pactum::gonogo::GoNoGoSettings {
            support_contacts: vec!["harness operator <operator@example.test>".into()],
            ..Default::default()
        },
    }
}

/// `n` relayer accounts (at most 5): anvil's dev accounts 3, 4, …, funded with ETH by anvil
/// and used by nothing else (account 3 is the chain's `relayer`; account 8 is the mock USDC
/// proxy's admin).
pub fn relayer_signers(chain: &DevChain, n: usize) -> Vec<alloy::signers::local::PrivateKeySigner> {
    assert!(n <= 5, "dev accounts 3..=7 are free for relayers");
    chain.anvil.keys()[3..3 + n]
        .iter()
        .map(|key| alloy::signers::local::PrivateKeySigner::from(key.clone()))
        .collect()
}

/// The private keys of [`relayer_signers`], as the configuration takes them.
pub fn relayer_keys(chain: &DevChain, n: usize) -> Vec<Secret> {
    relayer_signers(chain, n).iter().map(|key| Secret::new(key.to_bytes().to_string())).collect()
}

/// Sets the infra fee to zero, so activation packages carry no EIP-2612 fee permit and one
/// buyer wallet can have any number of activations in flight.
pub fn without_infra_fee(config: &mut ServeConfig) {
    config.infra_fee_bps = 0;
    config.infra_fee_fixed = TokenAmount::from_base_units(0);
    config.infra_fee_minimum = TokenAmount::from_base_units(0);
}

/// A fresh directory under the system's temp dir.
pub fn unique_dir(prefix: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // The process id alone is not enough: ids are reused, and a directory an earlier run left
    // behind (a database of an older schema) must never be picked up again. A random part
    // makes the name new, and `create_dir` fails rather than reuse one that exists.
    loop {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{:016x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u64>(),
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}
