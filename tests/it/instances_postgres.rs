//! Two `pactum serve` processes (each with its API, relayer worker, signers, watcher and webhook
//! dispatcher) on one Postgres database and one chain, with the same three relayer keys, started
//! at the same moment: actions submitted to both APIs are each sent in exactly one mined
//! transaction, no signer's nonce is used twice or skipped, and both instances do part of the
//! work. Runs when `PACTUM_TEST_DATABASE_URL` names a Postgres server (SQLite serves one process
//! only).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::databases::{drop_postgres, fresh_postgres};
use crate::support::process::ServeProcess;
use crate::support::service::{
    OWNER_KEY, TestAgent, propose_body, relayer_signers, sign_package, unique_dir,
};
use crate::support::{DevChain, USDC};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

/// Activations relayed, half submitted to each instance.
const ACTIONS: usize = 500;
/// Relayer keys, the same in both instances.
const SIGNERS: usize = 3;
/// Requests in flight while submitting.
const IN_FLIGHT: usize = 16;

/// One instance's HTTP API.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Proposes, accepts and submits the signed activation of one agreement paid by the chain's
    /// buyer wallet; returns its id once queued (HTTP 202).
    async fn activate(&self, chain: &DevChain, buyer: &TestAgent, seller: &TestAgent) -> String {
        let body = propose_body(&seller.id, chain.buyer.address());
        let (status, proposed) =
            self.call(Method::POST, "/usage-agreements", &buyer.key, Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{proposed}");
        let id = proposed["id"].as_str().unwrap().to_owned();
        let accept = json!({ "seller_wallet_address": chain.seller.address().to_string() });
        let path = format!("/usage-agreements/{id}/accept");
        let (status, body) = self.call(Method::PUT, &path, &seller.key, Some(&accept)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let path = format!("/usage-agreements/{id}/activation-package");
        let (status, package) = self.call(Method::GET, &path, &buyer.key, None).await;
        assert_eq!(status, StatusCode::OK, "{package}");
        let signed = sign_package(&chain.buyer, &package);
        let path = format!("/usage-agreements/{id}/activate-escrow");
        let (status, body) = self.call(Method::POST, &path, &buyer.key, Some(&signed)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        id
    }
}

/// Starts both `servers` at once and waits until each answers; their APIs.
async fn start_both(servers: &mut [ServeProcess]) -> [Api; 2] {
    for server in servers.iter_mut() {
        server.spawn();
    }
    for server in servers.iter() {
        server.wait_up().await;
    }
    let http = reqwest::Client::new();
    [Api { base: servers[0].base(), http: http.clone() }, Api { base: servers[1].base(), http }]
}

/// Creates an agent through the owner API of `api`.
async fn agent(api: &Api, name: &str) -> TestAgent {
    let body = json!({ "name": name, "capabilities": ["usage"] });
    let (status, agent) = api.call(Method::POST, "/v1/agents", OWNER_KEY, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    TestAgent {
        id: agent["id"].as_str().unwrap().to_owned(),
        key: agent["api_key"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_queue_and_the_signers_on_postgres() {
    let Some(database_url) = fresh_postgres().await else { return };
    let chain = DevChain::start().await;
    let dir = unique_dir("pactum-instances");
    // No infra fee, so one buyer wallet can fund every activation at once (a fee permit would
    // need a wallet each).
    let mut servers: Vec<ServeProcess> = (0..2)
        .map(|_| {
            ServeProcess::new(&chain, &relayer_signers(&chain, SIGNERS), &database_url, &dir)
                .env("PACTUM_INFRA_FEE_BPS", "0")
                .env("PACTUM_INFRA_FEE_FIXED", "0")
                .env("PACTUM_INFRA_FEE_MINIMUM", "0")
        })
        .collect();
    // Both start at once on the empty database (migrations included).
    let apis = Arc::new(start_both(&mut servers).await);
    let (buyer, seller) = (agent(&apis[0], "buyer").await, agent(&apis[1], "seller").await);
    let signers: Vec<Address> =
        relayer_signers(&chain, SIGNERS).iter().map(|k| k.address()).collect();

    // Automine stays on; a block every 200 ms besides lets confirmations accrue.
    let provider = chain.provider.clone();
    let miner = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _: Result<Value, _> = provider.raw_request("evm_mine".into(), ()).await;
        }
    });

    let chain = &chain;
    let ids: Vec<String> = futures::stream::iter(0..ACTIONS)
        .map(|i| {
            let (apis, buyer, seller) = (apis.clone(), buyer.clone(), seller.clone());
            async move { apis[i % 2].activate(chain, &buyer, &seller).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ACTIONS);

    // Every activation confirmed (read from the shared store).
    let store = pactum::store::Store::connect(&database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = sqlx::query("SELECT status, activation_status FROM usage_agreements")
            .fetch_all(store.reader())
            .await
            .unwrap();
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for row in &rows {
            *counts.entry((row.get("status"), row.get("activation_status"))).or_default() += 1;
        }
        let done = counts.get(&("active".into(), "confirmed".into())).copied().unwrap_or(0);
        if done == ACTIONS {
            break;
        }
        assert!(Instant::now() < deadline, "not all activations confirmed: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    miner.abort();

    // Each job confirmed, and both instances signed some of them (a job is signed only by the
    // instance holding its lease, so `lease_owner` names the one that sent it).
    let jobs = sqlx::query("SELECT id, status, lease_owner FROM relayer_jobs")
        .fetch_all(store.reader())
        .await
        .unwrap();
    assert_eq!(jobs.len(), ACTIONS);
    let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
    for job in &jobs {
        assert_eq!(job.get::<String, _>("status"), "confirmed");
        *by_owner.entry(job.get("lease_owner")).or_default() += 1;
    }
    assert_eq!(by_owner.len(), 2, "both instances sent jobs: {by_owner:?}");

    // Exactly one mined transaction per job, found on the chain, not in the store's word.
    let attempts = sqlx::query("SELECT tx_hash, job_id, signer, nonce FROM relayer_attempts")
        .fetch_all(store.reader())
        .await
        .unwrap();
    let attempts: Vec<(B256, String, Address, u64)> = attempts
        .iter()
        .map(|row| {
            (
                row.get::<String, _>("tx_hash").parse().unwrap(),
                row.get("job_id"),
                row.get::<String, _>("signer").parse().unwrap(),
                row.get::<i64, _>("nonce") as u64,
            )
        })
        .collect();
    // In the store too, no nonce is held by two jobs (replacements share their job's; a
    // `failed` attempt holds nothing).
    let live =
        sqlx::query("SELECT job_id, signer, nonce FROM relayer_attempts WHERE status <> 'failed'")
            .fetch_all(store.reader())
            .await
            .unwrap();
    let mut holders: BTreeMap<(String, i64), BTreeSet<String>> = BTreeMap::new();
    for row in &live {
        holders.entry((row.get("signer"), row.get("nonce"))).or_default().insert(row.get("job_id"));
    }
    assert!(holders.values().all(|jobs| jobs.len() == 1), "a nonce went to two jobs");
    let provider = &chain.provider;
    let mined: Vec<(String, Address, u64)> = futures::stream::iter(&attempts)
        .map(|(hash, job, signer, nonce)| async move {
            let receipt = provider.get_transaction_receipt(*hash).await.unwrap()?;
            assert!(receipt.status(), "{hash} of job {job} reverted");
            Some((job.clone(), *signer, *nonce))
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|mined| async move { mined })
        .collect()
        .await;
    let mut per_job: BTreeMap<&str, usize> = BTreeMap::new();
    for (job, _, _) in &mined {
        *per_job.entry(job).or_default() += 1;
    }
    assert_eq!(per_job.len(), ACTIONS, "every job has a mined transaction");
    assert!(per_job.values().all(|n| *n == 1), "a job was mined twice: {per_job:?}");

    // Per signer: the mined nonces are 0, 1, 2, … (none used twice, none skipped), matching the
    // chain's count, and every signer took part.
    for signer in &signers {
        let mut nonces: Vec<u64> =
            mined.iter().filter(|(_, s, _)| s == signer).map(|(_, _, n)| *n).collect();
        nonces.sort_unstable();
        assert!(!nonces.is_empty(), "signer {signer} sent nothing");
        assert_eq!(nonces, (0..nonces.len() as u64).collect::<Vec<_>>(), "signer {signer}");
        let count = provider.get_transaction_count(*signer).latest().await.unwrap();
        assert_eq!(count, nonces.len() as u64, "signer {signer}: only Pactum's transactions");
    }
    assert_eq!(mined.len(), ACTIONS);
    let escrowed = chain.balance(*chain.escrow.address()).await;
    assert_eq!(escrowed, U256::from(ACTIONS as u64 * 10 * USDC));
    eprintln!(
        "{ACTIONS} activations: jobs per instance {:?}, attempts {}",
        by_owner.values().collect::<Vec<_>>(),
        attempts.len()
    );

    for server in &mut servers {
        let exit = server.terminate().await;
        assert!(exit.success(), "{exit}\n{}", server.log_tail());
    }
    store.close().await;
    drop_postgres(&database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_instance_is_refused_by_the_other_within_a_second() {
    let Some(database_url) = fresh_postgres().await else { return };
    let chain = DevChain::start().await;
    let dir = unique_dir("pactum-instances-revoke");
    let mut servers: Vec<ServeProcess> = (0..2)
        .map(|_| ServeProcess::new(&chain, &relayer_signers(&chain, 1), &database_url, &dir))
        .collect();
    let apis = start_both(&mut servers).await;
    let agent = agent(&apis[0], "revoked-elsewhere").await;
    let list = format!("/usage-agreements/agents/{}/agreements", agent.id);
    // Both instances have read the key (and keep it in memory).
    for api in &apis {
        let (status, body) = api.call(Method::GET, &list, &agent.key, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) =
        apis[0].call(Method::DELETE, &format!("/v1/agents/{}", agent.id), OWNER_KEY, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revoked = Instant::now();
    // The instance that revoked refuses the next request.
    let (status, body) = apis[0].call(Method::GET, &list, &agent.key, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The other within the bound its memory is trusted for.
    let bound = pactum::api::credentials_seen::FRESH;
    loop {
        let (status, body) = apis[1].call(Method::GET, &list, &agent.key, None).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["error"]["code"], "invalid_credential", "{body}");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        // Slack for a stalled machine between the clock read and the request, not the cache.
        assert!(revoked.elapsed() < bound * 3, "still accepted {:?} after", revoked.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for server in &mut servers {
        let exit = server.terminate().await;
        assert!(exit.success(), "{exit}\n{}", server.log_tail());
    }
    drop_postgres(&database_url).await;
}

/// Sends `n` reservations of $1 as `agent`, alternating between the two instances, all at
/// once; how many were held, with every refusal checked to be the budget's (or lease's).
async fn reserve_dollars(apis: &[Api; 2], agent: &TestAgent, n: usize, refusal: &str) -> usize {
    let body = json!({ "amount_cents": 100, "action_type": "spend", "counterparty": "vendor_1" });
    let answers: Vec<(StatusCode, Value)> = futures::stream::iter(0..n)
        .map(|i| {
            apis[i % 2].call(Method::POST, "/v1/spend-guard/reservations", &agent.key, Some(&body))
        })
        .buffer_unordered(n)
        .collect()
        .await;
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["details"]["reason_code"], refusal, "{body}");
    }
    answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count()
}

/// What `agent`'s `daily` budget counts, as the estimate route reads it.
async fn budget_counted(api: &Api, agent: &TestAgent) -> u64 {
    let body = json!({ "kind": "payment", "amount_cents": 1 });
    let (status, estimate) =
        api.call(Method::POST, "/v1/spend-guard/estimate", &agent.key, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{estimate}");
    estimate["budgets"][0]["counted_cents"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_hold_more_than_a_budget_or_resolve_a_hold_twice_on_postgres() {
    let Some(database_url) = fresh_postgres().await else { return };
    let chain = DevChain::start().await;
    let dir = unique_dir("pactum-instances-spend");
    let mut servers: Vec<ServeProcess> = (0..2)
        .map(|_| ServeProcess::new(&chain, &relayer_signers(&chain, 1), &database_url, &dir))
        .collect();
    let apis = start_both(&mut servers).await;
    let daily = |max: u64| {
        json!({ "rules": [{ "id": "daily", "type": "period_budget", "period": "day",
                            "max_cents": max, "timezone": "UTC" }] })
    };

    // 200 reservations of $1 against a $60 budget, half through each instance.
    let agent = agent(&apis[0], "budgeted").await;
    let path = format!("/agents/{}/policies", agent.id);
    let (status, body) = apis[1].call(Method::PUT, &path, OWNER_KEY, Some(&daily(6_000))).await;
    assert!(status.is_success(), "{body}");
    assert_eq!(reserve_dollars(&apis, &agent, 200, "period_budget_exceeded").await, 60);
    assert_eq!(budget_counted(&apis[0], &agent).await, 6_000);

    // 100 captures and releases of one hold, from both instances: one of them wins.
    let racer = self::agent(&apis[0], "racer").await;
    let path = format!("/agents/{}/policies", racer.id);
    apis[0].call(Method::PUT, &path, OWNER_KEY, Some(&daily(100_000))).await;
    let body = json!({ "amount_cents": 500, "action_type": "spend", "counterparty": "v" });
    let (status, hold) =
        apis[1].call(Method::POST, "/v1/spend-guard/reservations", &racer.key, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let id = hold["id"].as_str().unwrap();
    let answers: Vec<(bool, StatusCode)> = futures::stream::iter(0..100)
        .map(|i| {
            let capture = i % 4 < 2;
            let what = if capture { "capture" } else { "release" };
            let path = format!("/v1/spend-guard/reservations/{id}/{what}");
            let (api, key) = (&apis[i % 2], racer.key.clone());
            async move { (capture, api.call(Method::POST, &path, &key, None).await.0) }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let path = format!("/v1/spend-guard/reservations/{id}");
    let (_, hold) = apis[0].call(Method::GET, &path, &racer.key, None).await;
    let captured = hold["status"] == "captured";
    for (capture, status) in answers {
        let expected = if capture == captured { StatusCode::OK } else { StatusCode::CONFLICT };
        assert_eq!(status, expected, "capture {capture}, hold {hold}");
    }
    let changes = hold["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "captured" || e["event"] == "released")
        .count();
    assert_eq!(changes, 1, "{hold}");

    // A $50 parent leases $30 and $20; both children spend far past their leases at once,
    // through both instances: each gets exactly its lease, the parent never more than $50.
    let parent = self::agent(&apis[0], "parent").await;
    let (a, b) = (self::agent(&apis[0], "child-a").await, self::agent(&apis[1], "child-b").await);
    let path = format!("/agents/{}/policies", parent.id);
    apis[0].call(Method::PUT, &path, OWNER_KEY, Some(&daily(5_000))).await;
    for (child, cents) in [(&a, 3_000), (&b, 2_000)] {
        let body = json!({ "parent_agent_id": parent.id, "child_agent_id": child.id, "amount_cents": cents });
        let (status, lease) = apis[1]
            .call(Method::POST, "/v1/spend-guard/budget-leases", OWNER_KEY, Some(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{lease}");
    }
    let (held_a, held_b) = tokio::join!(
        reserve_dollars(&apis, &a, 60, "lease_exhausted"),
        reserve_dollars(&apis, &b, 60, "lease_exhausted"),
    );
    assert_eq!((held_a, held_b), (30, 20));
    assert_eq!(budget_counted(&apis[1], &parent).await, 5_000);
    let body = json!({ "amount_cents": 1, "action_type": "spend", "counterparty": "v" });
    let (status, refused) =
        apis[0].call(Method::POST, "/v1/spend-guard/reservations", &parent.key, Some(&body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    for server in &mut servers {
        server.terminate().await;
    }
    drop_postgres(&database_url).await;
}
