//! Crash safety of the real `pactum serve` process. Two hundred agreement lifecycles run
//! through its HTTP API while it is killed with SIGKILL at random moments and started again on
//! the same SQLite file and port; the client retries each write with the same
//! `Idempotency-Key`, as a real client would. In the end nothing is lost and nothing is done
//! twice, on-chain or in the store. A second test stops it with SIGTERM while work is in flight.
//!
//! The kill schedule comes from a seeded RNG whose seed is printed (set `PACTUM_CRASH_SEED` to
//! replay one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::process::ServeProcess;
use crate::support::service::{
    OWNER_KEY, TestAgent, propose_body, relayer_signers, sign_document, sign_package, unique_dir,
};
use crate::support::settlement::{UNIT, sponsored_body};
use crate::support::{DevChain, USDC};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use futures::StreamExt;
use pactum::agreement::settlement::EscrowStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::sync::Mutex;

/// Agreement lifecycles driven through the crashing service.
const LIFECYCLES: usize = 200;
/// Lifecycles in flight at once.
const IN_FLIGHT: usize = 50;
/// Most SIGKILLs in one run.
const MAX_KILLS: usize = 12;
/// USDC minted to each buyer wallet.
const WALLET_FUNDS: u64 = 20 * USDC;
/// How long any one wait may last before the test gives up (a lost job never finishes).
const PATIENCE: Duration = Duration::from_secs(240);

/// `pactum serve` on a SQLite file in `dir`. A write in flight when the process dies holds its
/// idempotency key until the request could no longer be running (the request timeout, plus a
/// margin), so the timeout is short.
fn server(chain: &DevChain, relayers: &[PrivateKeySigner], dir: &Path) -> (ServeProcess, String) {
    let database_url = format!("sqlite:{}?mode=rwc", dir.join("pactum.db").display());
    let server = ServeProcess::new(chain, relayers, &database_url, dir)
        .env("PACTUM_REQUEST_TIMEOUT_SECS", "5");
    (server, database_url)
}

/// What the client saw of the crashes.
#[derive(Default)]
struct Stats {
    /// Requests that met a dead or dying server and were sent again.
    connection_retries: AtomicUsize,
    /// Writes answered `idempotency_key_in_flight` (the first try died with the process).
    in_flight_retries: AtomicUsize,
    /// Writes answered from the store with `Idempotent-Replayed: true`.
    replayed: AtomicUsize,
}

/// An HTTP client that behaves like a careful agent: every write carries an `Idempotency-Key`
/// and is sent again, unchanged, when the connection fails or the key is still in flight.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    stats: Arc<Stats>,
}

impl Client {
    /// One try: `None` when the server could not be reached or the answer was cut off.
    async fn send(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Option<(StatusCode, Value, bool)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(idempotency_key) = idempotency_key {
            request = request.header("Idempotency-Key", idempotency_key);
        }
        let response = request.send().await.ok()?;
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let text = response.text().await.ok()?;
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
        Some((status, body, replayed))
    }

    /// Sends until answered; a 500 fails the test, a 503 (starting, node busy) is retried.
    async fn request(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, Value) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "{method} {path}: no answer in {PATIENCE:?}");
            let Some((status, body, replayed)) =
                self.send(method.clone(), path, key, body, idempotency_key).await
            else {
                self.stats.connection_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}: {body}");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if status == StatusCode::CONFLICT
                && body["error"]["code"] == "idempotency_key_in_flight"
            {
                self.stats.in_flight_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            if replayed {
                self.stats.replayed.fetch_add(1, Ordering::Relaxed);
            }
            return (status, body);
        }
    }

    async fn get(&self, path: &str, key: &str) -> Value {
        let (status, body) = self.request(Method::GET, path, key, None, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A write with `idempotency_key`, expecting `expected`.
    async fn write(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: &Value,
        idempotency_key: &str,
        expected: StatusCode,
    ) -> Value {
        let (status, answer) =
            self.request(method.clone(), path, key, Some(body), Some(idempotency_key)).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        answer
    }

    /// Polls the agreement until its status is `wanted`; panics on a dead end.
    async fn wait_status(&self, key: &str, id: &str, wanted: &str) -> Value {
        let path = format!("/usage-agreements/{id}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let agreement = self.get(&path, key).await;
            let status = agreement["status"].as_str().unwrap_or_default();
            if status == wanted {
                return agreement;
            }
            // A `failed` activation whose transaction in fact succeeded would be a mined job
            // re-queued as "nonce used" (see `assert_exactly_once`).
            assert!(
                !matches!(status, "failed" | "expired" | "cancelled" | "rejected"),
                "{id} ended {status}: {agreement}"
            );
            assert!(Instant::now() < deadline, "{id} not {wanted} in {PATIENCE:?}: {agreement}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One agreement as the test drove it.
#[derive(Debug, Clone)]
struct Lifecycle {
    id: String,
    key: B256,
    wallet: Address,
    units: u64,
    fee: u64,
    close_action: String,
}

/// The buyer and seller agents, with the seller's wallet.
struct Parties {
    buyer: TestAgent,
    seller: TestAgent,
    seller_wallet: PrivateKeySigner,
}

/// Proposes, accepts and activates (buyer's local signatures, relayed), records `units` of
/// usage, has the buyer sign the voucher, and has the seller close with it through the relayer
/// (sponsored), which settles at once; returns when the agreement is `settled`. Every write
/// carries an idempotency key derived from `tag`.
async fn lifecycle(
    client: &Client,
    parties: &Parties,
    wallet: &PrivateKeySigner,
    units: u64,
    tag: &str,
    closes_submitted: &AtomicUsize,
) -> Lifecycle {
    let (buyer, seller) = (&parties.buyer, &parties.seller);
    let proposed = client
        .write(
            Method::POST,
            "/usage-agreements",
            &buyer.key,
            &propose_body(&seller.id, wallet.address()),
            &format!("{tag}-propose"),
            StatusCode::CREATED,
        )
        .await;
    let id = proposed["id"].as_str().unwrap().to_owned();
    let accept = json!({ "seller_wallet_address": parties.seller_wallet.address().to_string() });
    let path = format!("/usage-agreements/{id}/accept");
    let accept_key = format!("{tag}-accept");
    client.write(Method::PUT, &path, &seller.key, &accept, &accept_key, StatusCode::OK).await;

    let package =
        client.get(&format!("/usage-agreements/{id}/activation-package"), &buyer.key).await;
    let key: B256 = package["agreement_key"].as_str().unwrap().parse().unwrap();
    let fee: u64 = package["infra_fee"]["amount"].as_str().unwrap().parse().unwrap();
    let signed = sign_package(wallet, &package);
    let path = format!("/usage-agreements/{id}/activate-escrow");
    let activate_key = format!("{tag}-activate");
    client
        .write(Method::POST, &path, &buyer.key, &signed, &activate_key, StatusCode::ACCEPTED)
        .await;
    client.wait_status(&buyer.key, &id, "active").await;

    let path = format!("/usage-agreements/{id}/record-usage");
    let usage_key = format!("{tag}-usage");
    let body = json!({ "units": units });
    client.write(Method::POST, &path, &seller.key, &body, &usage_key, StatusCode::CREATED).await;
    let usage = client.get(&format!("/usage-agreements/{id}/usage"), &buyer.key).await;
    let document = &usage["voucher_to_sign"];
    assert_eq!(document["message"]["cumulativeUnits"], units.to_string(), "{usage}");
    let body = json!({ "cumulative_units": units, "signature": sign_document(wallet, document) });
    let path = format!("/usage-agreements/{id}/usage-vouchers");
    let voucher_key = format!("{tag}-voucher");
    client.write(Method::POST, &path, &buyer.key, &body, &voucher_key, StatusCode::OK).await;

    let path = format!("/usage-agreements/{id}/settlement-action-options?action=initiate_close");
    let offered = client.get(&path, &seller.key).await;
    assert_eq!(offered["possible"], true, "{offered}");
    let sponsored = &offered["paths"]["sponsored"];
    // Signed once: a retry after a crash sends the same signature under the same key.
    let body = sponsored_body(&parties.seller_wallet, sponsored);
    let path = sponsored["submit_to"].as_str().unwrap();
    let close_key = format!("{tag}-close");
    let queued = client
        .write(Method::POST, path, &seller.key, &body, &close_key, StatusCode::ACCEPTED)
        .await;
    closes_submitted.fetch_add(1, Ordering::Relaxed);
    let close_action = queued["id"].as_str().unwrap().to_owned();
    client.wait_status(&buyer.key, &id, "settled").await;
    Lifecycle { id, key, wallet: wallet.address(), units, fee, close_action }
}

/// Mines a block every 100 ms until `stop` (transactions are also mined as they arrive), so
/// confirmations accrue.
fn keep_mining(chain: &DevChain, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let provider = chain.provider.clone();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let _: Result<Value, _> = provider.raw_request("evm_mine".into(), ()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// `n` fresh buyer wallets, each minted [`WALLET_FUNDS`] (a fee permit uses the wallet's next
/// token nonce, so each agreement activates from its own wallet).
async fn buyer_wallets(chain: &DevChain, n: usize) -> Vec<PrivateKeySigner> {
    let wallets: Vec<PrivateKeySigner> = (0..n).map(|_| PrivateKeySigner::random()).collect();
    let mut last = None;
    for wallet in &wallets {
        // Sent one after another (automine), waiting only for the last receipt.
        let mint = chain.usdc.mint(wallet.address(), U256::from(WALLET_FUNDS));
        last = Some(mint.send().await.unwrap());
    }
    if let Some(last) = last {
        assert!(last.get_receipt().await.unwrap().status());
    }
    wallets
}

/// Creates a buyer and a seller agent through the API.
async fn agents(client: &Client, seller_wallet: PrivateKeySigner) -> Parties {
    let mut made = Vec::new();
    for name in ["buyer", "seller"] {
        let body = json!({ "name": name, "capabilities": ["usage"] });
        let agent = client
            .write(
                Method::POST,
                "/v1/agents",
                OWNER_KEY,
                &body,
                &format!("agent-{name}"),
                StatusCode::CREATED,
            )
            .await;
        made.push(TestAgent {
            id: agent["id"].as_str().unwrap().to_owned(),
            key: agent["api_key"].as_str().expect("a fresh key, not a replay").to_owned(),
        });
    }
    let seller = made.pop().unwrap();
    let buyer = made.pop().unwrap();
    Parties { buyer, seller, seller_wallet }
}

/// Every check that nothing was lost and nothing done twice: for each relayer job exactly one
/// of its transactions mined (so never two nonces for one job), every relayer transaction
/// on-chain belongs to exactly one job, each settlement action confirmed once, and the store's
/// outbox holds each confirmed change once.
async fn assert_exactly_once(
    chain: &DevChain,
    database_url: &str,
    relayers: &[PrivateKeySigner],
    agreements: &[String],
    close_actions: &BTreeSet<String>,
) {
    let store = pactum::store::Store::connect(database_url).await.unwrap();
    let reader = store.reader();
    let wanted: BTreeSet<&String> = agreements.iter().collect();

    // Jobs: one activation and one close per agreement, all confirmed; closes that went out
    // together are `batched` into a `settlement_batch` job, which is confirmed.
    let jobs = sqlx::query("SELECT id, kind, agreement_id, status, error FROM relayer_jobs")
        .fetch_all(reader)
        .await
        .unwrap();
    let mut problems: Vec<String> = Vec::new();
    macro_rules! check {
        ($ok:expr, $($why:tt)+) => {
            if !$ok {
                problems.push(format!($($why)+));
            }
        };
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for job in &jobs {
        *kinds.entry(job.get::<String, _>("kind")).or_default() += 1;
    }
    let n = agreements.len();
    check!(kinds.get("activate") == Some(&n), "{kinds:?}");
    check!(kinds.get("initiate_close") == Some(&n), "{kinds:?}");
    let batches = kinds.get("settlement_batch").copied().unwrap_or(0);
    check!(jobs.len() == 2 * n + batches, "{kinds:?}");
    let activations: BTreeSet<String> = jobs
        .iter()
        .filter(|j| j.get::<String, _>("kind") == "activate")
        .map(|j| j.get::<String, _>("agreement_id"))
        .collect();
    check!(activations.len() == n, "one activation job per agreement");

    // Attempts: per job, exactly one hash with a receipt, successful; nonces never shared.
    let attempts = sqlx::query("SELECT tx_hash, job_id, signer, nonce FROM relayer_attempts")
        .fetch_all(reader)
        .await
        .unwrap();
    let mut mined_by_job: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let mut mined_nonces: BTreeMap<(String, i64), String> = BTreeMap::new();
    for attempt in &attempts {
        let (hash, job): (String, String) = (attempt.get("tx_hash"), attempt.get("job_id"));
        let (signer, nonce): (String, i64) = (attempt.get("signer"), attempt.get("nonce"));
        let tx_hash: B256 = hash.parse().unwrap();
        let Some(receipt) = chain.provider.get_transaction_receipt(tx_hash).await.unwrap() else {
            continue;
        };
        check!(receipt.status(), "{hash} of job {job} reverted");
        mined_by_job.entry(job.clone()).or_default().push((hash.clone(), nonce));
        let signer = signer.to_lowercase();
        if let Some(other) = mined_nonces.insert((signer.clone(), nonce), job.clone()) {
            problems.push(format!("nonce {nonce} of {signer} mined for jobs {other} and {job}"));
        }
    }
    let mut sent_jobs = 0u64;
    for job in &jobs {
        let (id, status): (String, String) = (job.get("id"), job.get("status"));
        let error: Option<String> = job.get("error");
        let mined = mined_by_job.get(&id).map(Vec::as_slice).unwrap_or_default();
        if status == "batched" {
            // Carried by a batch job: never sent on its own.
            check!(mined.is_empty(), "batched job {id}: mined transactions {mined:?}");
            check!(job.get::<String, _>("kind") == "initiate_close", "batched job {id}");
            continue;
        }
        sent_jobs += 1;
        check!(mined.len() == 1, "job {id}: mined transactions {mined:?}");
        // Right after a job's own transaction is mined, the node can report the account's new
        // nonce before the receipt; a monitor that took that for "nonce used by another
        // transaction" would queue the job again and fail it with the contract's refusal
        // (`AlreadyActivated`, `InvalidStatus(status=3)`) although its transaction succeeded.
        // This check and the "no failure events" one below catch it.
        check!(
            status == "confirmed",
            "job {id} ({}) ended {status} ({error:?}) with mined transactions {mined:?}",
            job.get::<String, _>("kind")
        );
    }
    // Nothing else left the relayer accounts: each account's nonce count is its mined jobs.
    let mut sent = 0;
    for relayer in relayers {
        let count = chain.provider.get_transaction_count(relayer.address()).await.unwrap();
        let signer = relayer.address().to_string().to_lowercase();
        let ours = mined_nonces.keys().filter(|(s, _)| *s == signer).count() as u64;
        check!(count == ours, "{signer} sent {count} transactions; {ours} belong to jobs");
        sent += count;
    }
    check!(sent == sent_jobs, "one transaction per job sent on its own or as a batch");
    let replaced = attempts.len().saturating_sub(sent_jobs as usize);
    eprintln!("{} attempts for {} jobs ({replaced} replacements)", attempts.len(), jobs.len());

    // Settlement actions: the closes, each confirmed.
    let actions = sqlx::query("SELECT id, agreement_id, status FROM settlement_actions")
        .fetch_all(reader)
        .await
        .unwrap();
    let ids: BTreeSet<String> = actions.iter().map(|a| a.get::<String, _>("id")).collect();
    check!(&ids == close_actions, "one settlement action per close submitted");
    for action in &actions {
        let (id, status): (String, String) = (action.get("id"), action.get("status"));
        check!(status == "confirmed", "settlement action {id}");
    }

    // The outbox: each change recorded once.
    let events = sqlx::query("SELECT agreement_id, event_type, data FROM outbox_events")
        .fetch_all(reader)
        .await
        .unwrap();
    let mut per_agreement: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut confirmed_actions: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        let agreement: Option<String> = event.get("agreement_id");
        let kind: String = event.get("event_type");
        if let Some(agreement) = agreement {
            *per_agreement.entry((agreement, kind.clone())).or_default() += 1;
        }
        if kind == "settlement_action.confirmed" {
            let data: Value = serde_json::from_str(&event.get::<String, _>("data")).unwrap();
            let action = data["settlement_action_id"].as_str().unwrap().to_owned();
            *confirmed_actions.entry(action).or_default() += 1;
        }
    }
    for action in close_actions {
        check!(confirmed_actions.get(action) == Some(&1), "confirmed events of {action}");
    }
    for agreement in &wanted {
        for kind in [
            "agreement.proposed",
            "agreement.accepted",
            "activation.queued",
            "activation.confirmed",
            "usage.recorded",
            "usage.voucher_accepted",
            "settlement_action.queued",
            "settlement.close_initiated",
            "settlement.claimed",
            "agreement.settled",
        ] {
            let count = per_agreement.get(&((*agreement).clone(), kind.to_owned()));
            check!(count == Some(&1), "{kind} events of {agreement}");
        }
        // Nothing was reported failed that in fact succeeded (webhooks carry these).
        for kind in ["activation.failed", "relayer.job_failed", "settlement_action.failed"] {
            let count = per_agreement.get(&((*agreement).clone(), kind.to_owned()));
            check!(count.is_none(), "{kind} events of {agreement}: {count:?}");
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    store.close().await;
}

/// The escrow of each agreement settled with its units claimed, and every balance exactly what
/// one activation and one close each would leave.
async fn assert_balances(
    chain: &DevChain,
    done: &[Lifecycle],
    seller_before: U256,
    fees_before: U256,
) {
    let deposit = 100 * UNIT;
    for lifecycle in done {
        let escrow = chain.escrow.escrowOf(lifecycle.key).call().await.unwrap();
        assert!(
            EscrowStatus::from_u8(escrow.status) == Some(EscrowStatus::Settled),
            "{} is settled on-chain",
            lifecycle.id
        );
        assert_eq!(escrow.claimedUnits, lifecycle.units, "{}", lifecycle.id);
        // Nothing left to withdraw counts as withdrawn.
        assert_eq!(escrow.buyerWithdrawn, lifecycle.units == 100, "{}", lifecycle.id);
        let left = WALLET_FUNDS - deposit - lifecycle.fee;
        assert_eq!(chain.balance(lifecycle.wallet).await, U256::from(left), "{}", lifecycle.id);
    }
    let paid: u64 = done.iter().map(|l| l.units * UNIT).sum();
    let fees: u64 = done.iter().map(|l| l.fee).sum();
    let kept: u64 = done.iter().map(|l| deposit - l.units * UNIT).sum();
    assert_eq!(chain.balance(chain.seller.address()).await - seller_before, U256::from(paid));
    assert_eq!(chain.accrued_fees().await - fees_before, U256::from(fees));
    assert_eq!(
        chain.balance(*chain.escrow.address()).await,
        U256::from(kept) + fees_before + U256::from(fees)
    );
}

fn seed() -> u64 {
    std::env::var("PACTUM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_200_lifecycles_settle_once_each() {
    let seed = seed();
    eprintln!("crash_restart seed: {seed} (PACTUM_CRASH_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let chain = DevChain::start().await;
    let relayers = relayer_signers(&chain, 2);
    let dir = unique_dir("pactum-crash");
    let (mut server, database_url) = server(&chain, &relayers, &dir);
    server.spawn();
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base(),
        stats: Arc::new(Stats::default()),
    };
    server.wait_up().await;
    let parties = Arc::new(agents(&client, chain.seller.clone()).await);
    let wallets = buyer_wallets(&chain, LIFECYCLES).await;
    let units: Vec<u64> = (0..LIFECYCLES).map(|_| rng.random_range(1..=100)).collect();
    let seller_before = chain.balance(chain.seller.address()).await;
    let fees_before = chain.accrued_fees().await;

    let stop_mining = Arc::new(AtomicBool::new(false));
    let miner = keep_mining(&chain, stop_mining.clone());
    let server = Arc::new(Mutex::new(server));
    let closes_submitted = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (server, closes_submitted) = (server.clone(), closes_submitted.clone());
        tokio::spawn(async move {
            let mut kills = Vec::new();
            let started = Instant::now();
            // Kills while some lifecycle still has a relayed write to submit.
            while kills.len() < MAX_KILLS && closes_submitted.load(Ordering::Relaxed) < LIFECYCLES {
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..=2_500))).await;
                if closes_submitted.load(Ordering::Relaxed) >= LIFECYCLES {
                    break;
                }
                let down = Duration::from_millis(rng.random_range(0..=500));
                let mut server = server.lock().await;
                server.kill();
                kills.push((started.elapsed(), closes_submitted.load(Ordering::Relaxed)));
                tokio::time::sleep(down).await;
                server.spawn();
            }
            kills
        })
    };

    let started = Instant::now();
    let done: Vec<Lifecycle> = futures::stream::iter(wallets.into_iter().zip(units).enumerate())
        .map(|(i, (wallet, units))| {
            let (client, parties, closes) =
                (client.clone(), parties.clone(), closes_submitted.clone());
            async move {
                let tag = format!("lifecycle-{i}");
                lifecycle(&client, &parties, &wallet, units, &tag, &closes).await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    closes_submitted.store(LIFECYCLES, Ordering::Relaxed);
    let kills = killer.await.unwrap();
    eprintln!(
        "{} lifecycles settled in {:.1} s; {} kills (at seconds, closes submitted): {:?}",
        done.len(),
        started.elapsed().as_secs_f64(),
        kills.len(),
        kills.iter().map(|(at, n)| (at.as_secs_f64().round(), *n)).collect::<Vec<_>>()
    );
    eprintln!(
        "client: {} connection retries, {} in-flight retries, {} replayed answers",
        client.stats.connection_retries.load(Ordering::Relaxed),
        client.stats.in_flight_retries.load(Ordering::Relaxed),
        client.stats.replayed.load(Ordering::Relaxed),
    );
    assert!(kills.len() >= 3, "too few kills to mean anything: {kills:?}");

    // Every agreement settled as the API reports it; then the process stops cleanly.
    for lifecycle in &done {
        let path = format!("/usage-agreements/{}", lifecycle.id);
        let agreement = client.get(&path, &parties.buyer.key).await;
        assert_eq!(agreement["status"], "settled", "{agreement}");
        assert_eq!(agreement["activation_status"], "confirmed", "{agreement}");
    }
    // Everything confirmed: the last confirmations need no more blocks.
    stop_mining.store(true, Ordering::Relaxed);
    miner.await.unwrap();
    let mut server = Arc::try_unwrap(server).ok().expect("the killer is done").into_inner();
    let exit = server.terminate().await;
    assert!(exit.success(), "{exit}\n{}", server.log_tail());

    let ids: Vec<String> = done.iter().map(|l| l.id.clone()).collect();
    let actions: BTreeSet<String> = done.iter().map(|l| l.close_action.clone()).collect();
    assert_exactly_once(&chain, &database_url, &relayers, &ids, &actions).await;
    assert_balances(&chain, &done, seller_before, fees_before).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_work_in_flight_exits_cleanly_and_the_work_completes_after_restart() {
    const AGREEMENTS: usize = 20;
    let chain = DevChain::start().await;
    let relayers = relayer_signers(&chain, 2);
    let dir = unique_dir("pactum-sigterm");
    let (mut server, database_url) = server(&chain, &relayers, &dir);
    server.spawn();
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base(),
        stats: Arc::new(Stats::default()),
    };
    server.wait_up().await;
    let parties = agents(&client, chain.seller.clone()).await;
    let wallets = buyer_wallets(&chain, AGREEMENTS).await;

    // No blocks: every activation queued, being sent or sent but unconfirmed at SIGTERM.
    let _: Value = chain.provider.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
    let mut queued = Vec::new();
    for (i, wallet) in wallets.iter().enumerate() {
        let (buyer, seller) = (&parties.buyer, &parties.seller);
        let tag = format!("term-{i}");
        let body = propose_body(&seller.id, wallet.address());
        let key = format!("{tag}-propose");
        let proposed = client
            .write(Method::POST, "/usage-agreements", &buyer.key, &body, &key, StatusCode::CREATED)
            .await;
        let id = proposed["id"].as_str().unwrap().to_owned();
        let accept = json!({ "seller_wallet_address": chain.seller.address().to_string() });
        let (path, key) = (format!("/usage-agreements/{id}/accept"), format!("{tag}-accept"));
        client.write(Method::PUT, &path, &seller.key, &accept, &key, StatusCode::OK).await;
        let package =
            client.get(&format!("/usage-agreements/{id}/activation-package"), &buyer.key).await;
        let signed = sign_package(wallet, &package);
        let path = format!("/usage-agreements/{id}/activate-escrow");
        let key = format!("{tag}-activate");
        client.write(Method::POST, &path, &buyer.key, &signed, &key, StatusCode::ACCEPTED).await;
        queued.push(id);
    }
    // Wait until the relayer has sent some (so some work is mid-way), then SIGTERM.
    let path = format!("/usage-agreements/{}", queued[0]);
    let deadline = Instant::now() + PATIENCE;
    while client.get(&path, &parties.buyer.key).await["activation_status"] != "submitted" {
        assert!(Instant::now() < deadline, "the first activation was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = server.terminate().await;
    assert!(exit.success(), "{exit}\n{}", server.log_tail());
    assert!(client.send(Method::GET, "/healthz", "", None, None).await.is_none(), "stopped");

    // Blocks again, and a fresh process on the same store finishes every activation once.
    let _: Value = chain.provider.raw_request("evm_setAutomine".into(), (true,)).await.unwrap();
    let stop_mining = Arc::new(AtomicBool::new(false));
    let miner = keep_mining(&chain, stop_mining.clone());
    server.spawn();
    server.wait_up().await;
    for id in &queued {
        let active = client.wait_status(&parties.buyer.key, id, "active").await;
        assert_eq!(active["activation_status"], "confirmed", "{active}");
    }
    stop_mining.store(true, Ordering::Relaxed);
    miner.await.unwrap();
    let exit = server.terminate().await;
    assert!(exit.success(), "{exit}\n{}", server.log_tail());

    let store = pactum::store::Store::connect(&database_url).await.unwrap();
    let jobs =
        sqlx::query("SELECT id, status FROM relayer_jobs").fetch_all(store.reader()).await.unwrap();
    assert_eq!(jobs.len(), AGREEMENTS);
    assert!(jobs.iter().all(|j| j.get::<String, _>("status") == "confirmed"));
    let attempts = sqlx::query("SELECT tx_hash, job_id FROM relayer_attempts")
        .fetch_all(store.reader())
        .await
        .unwrap();
    let mut mined: BTreeMap<String, usize> = BTreeMap::new();
    for attempt in &attempts {
        let hash: B256 = attempt.get::<String, _>("tx_hash").parse().unwrap();
        if chain.provider.get_transaction_receipt(hash).await.unwrap().is_some() {
            *mined.entry(attempt.get("job_id")).or_default() += 1;
        }
    }
    assert_eq!(mined.len(), AGREEMENTS, "{mined:?}");
    assert!(mined.values().all(|n| *n == 1), "one mined transaction per job: {mined:?}");
    let mut sent = 0;
    for relayer in &relayers {
        sent += chain.provider.get_transaction_count(relayer.address()).await.unwrap();
    }
    assert_eq!(sent, AGREEMENTS as u64, "nothing sent twice");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
