//! Part 3, `relay`: sponsored settlement actions relayed end to end through the real server at
//! growing load. For each level, that many agreements are activated (through the relayer too),
//! given usage and a buyer voucher, and then their sellers submit a sponsored claim each, all at
//! once (16 requests in flight). Measured from the first submission to the last confirmation:
//! actions per second, API accept → broadcast latency (p50/p99: from the 202's arrival at the
//! client to the moment the transaction carrying the action reached the node, stamped by a
//! JSON-RPC proxy between the service and anvil), gas per action from the
//! receipts, and JSON-RPC calls Pactum made per confirmed action (counted by its RPC layer in
//! the process-wide metrics registry, API and background tasks together).
//!
//! Set-up runs with automine; the measured phase mines a block a second (interval mining,
//! automine off), as a real chain would, so transactions wait for blocks and confirmations accrue
//! by time. Each agreement is paid from its own buyer wallet.
//!
//! Then the same number of claims, sent one per transaction (`relayer_batch_max = 1`), through
//! one relayer key and through three (each with the default window of 16 unmined transactions),
//! on a fresh service each: what several signers buy when every action is its own transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

use pactum::config::ServeConfig;

use super::Settings;
use crate::support::DevChain;
use crate::support::USDC;
use crate::support::faulty_rpc::FaultyRpc;
use crate::support::service::{
    Harness, TestAgent, propose_body, relayer_keys, sign_document, sign_package,
};
use crate::support::settlement::{options, record, sponsored_body};

/// Requests in flight while setting up and submitting.
const IN_FLIGHT: usize = 16;

/// What one level measured.
struct Level {
    actions: usize,
    seconds: f64,
    accept_to_broadcast_ms: Vec<f64>,
    transactions: usize,
    /// Distinct blocks the transactions were mined in.
    blocks: usize,
    gas_used: u64,
    rpc_calls: u64,
    /// JSON-RPC requests of the phase by method.
    rpc_by_method: BTreeMap<String, u64>,
    /// The chain's block gas limit.
    block_gas_limit: u64,
}

/// Total JSON-RPC requests Pactum has made in this process so far.
fn rpc_calls() -> u64 {
    rpc_calls_by_method().values().sum()
}

/// JSON-RPC requests Pactum has made in this process so far, by method.
fn rpc_calls_by_method() -> BTreeMap<String, u64> {
    let mut by_method = BTreeMap::new();
    for ((name, labels), n) in pactum::metrics::registry().counters() {
        if name != "pactum_rpc_requests_total" {
            continue;
        }
        let method = labels.iter().find(|(label, _)| *label == "method");
        let method = method.map_or_else(|| "unknown".to_owned(), |(_, m)| m.clone());
        *by_method.entry(method).or_default() += n;
    }
    by_method
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The status of every row of `table` whose id is in `ids`.
pub(super) async fn statuses(
    h: &Harness,
    table: &str,
    ids: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let store = &h.service.as_ref().unwrap().state().store;
    let rows = sqlx::query(&format!("SELECT id, status FROM {table}"))
        .fetch_all(store.reader())
        .await
        .unwrap();
    rows.iter()
        .map(|row| (row.get::<String, _>("id"), row.get::<String, _>("status")))
        .filter(|(id, _)| ids.contains(id))
        .collect()
}

/// Switches the chain between mining on every transaction (fast set-up) and a block a second
/// (the measured phase, as a real chain).
pub(super) async fn interval_mining(h: &Harness, on: bool) {
    let provider = &h.chain.provider;
    // Setting an interval (even 0) replaces the mining mode, so automine is set after it.
    let seconds = u64::from(on);
    let _: Value = provider.raw_request("evm_setIntervalMining".into(), (seconds,)).await.unwrap();
    if !on {
        let _: Value = provider.raw_request("evm_setAutomine".into(), (true,)).await.unwrap();
    }
}

/// `n` agreements proposed, accepted and activated through the API, each paid from its own
/// buyer wallet (as many agents would pay); returns their ids and wallets once all are active.
async fn active_agreements(
    h: &Arc<Harness>,
    buyer: &TestAgent,
    seller: &TestAgent,
    n: usize,
) -> Vec<(String, PrivateKeySigner)> {
    let mut wallets = Vec::with_capacity(n);
    for _ in 0..n {
        let wallet = PrivateKeySigner::random();
        h.chain.mint(wallet.address(), 20 * USDC).await;
        wallets.push(wallet);
    }
    let agreements: Vec<(String, PrivateKeySigner)> = futures::stream::iter(wallets)
        .map(|wallet| {
            let (h, buyer, seller) = (h.clone(), buyer.clone(), seller.clone());
            async move {
                let body = propose_body(&seller.id, wallet.address());
                let (status, proposed) =
                    h.call(Method::POST, "/usage-agreements", Some(&buyer.key), Some(&body)).await;
                assert_eq!(status, StatusCode::CREATED, "{proposed}");
                let id = proposed["id"].as_str().unwrap().to_owned();
                let accept =
                    json!({ "seller_wallet_address": h.chain.seller.address().to_string() });
                let path = format!("/usage-agreements/{id}/accept");
                let (status, body) =
                    h.call(Method::PUT, &path, Some(&seller.key), Some(&accept)).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                let package = h.package(&buyer.key, &id).await;
                let signed = sign_package(&wallet, &package);
                let path = format!("/usage-agreements/{id}/activate-escrow");
                let (status, body) =
                    h.call(Method::POST, &path, Some(&buyer.key), Some(&signed)).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                (id, wallet)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let wanted: BTreeSet<String> = agreements.iter().map(|(id, _)| id.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let now = statuses(h, "usage_agreements", &wanted).await;
        assert!(Instant::now() < deadline, "activations not all active in 10 min: {now:?}");
        assert!(now.values().all(|s| s != "failed"), "an activation failed: {now:?}");
        if now.values().filter(|s| *s == "active").count() == n {
            return agreements;
        }
        // Blocks for the confirmations of the last activations.
        let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The buyer signs (with `wallet`) the voucher Pactum offers for the recorded usage.
async fn sign_voucher(h: &Harness, buyer: &TestAgent, id: &str, wallet: &PrivateKeySigner) {
    let (_, usage) =
        h.call(Method::GET, &format!("/usage-agreements/{id}/usage"), Some(&buyer.key), None).await;
    let document = &usage["voucher_to_sign"];
    let units: u64 = document["message"]["cumulativeUnits"].as_str().unwrap().parse().unwrap();
    let body = json!({ "cumulative_units": units, "signature": sign_document(wallet, document) });
    let path = format!("/usage-agreements/{id}/usage-vouchers");
    let (status, kept) = h.call(Method::POST, &path, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
}

/// One level: `n` sponsored seller claims submitted together and followed to confirmation.
/// A chain and a service on it whose JSON-RPC goes through a proxy that stamps broadcasts,
/// with `adjust` applied to the configuration.
async fn behind_proxy(
    adjust: impl FnOnce(&DevChain, &mut ServeConfig),
) -> (Arc<Harness>, FaultyRpc) {
    let chain = DevChain::start().await;
    let proxy = FaultyRpc::start(&chain.anvil.endpoint()).await;
    let url = proxy.url.clone();
    let h = Harness::start_on(chain, |chain, config| {
        adjust(chain, config);
        config.rpc_url = url;
    })
    .await;
    (Arc::new(h), proxy)
}

async fn level(
    h: &Arc<Harness>,
    proxy: &FaultyRpc,
    buyer: &TestAgent,
    seller: &TestAgent,
    n: usize,
) -> Level {
    interval_mining(h, false).await;
    let agreements = active_agreements(h, buyer, seller, n).await;
    futures::stream::iter(agreements.iter().enumerate())
        .for_each_concurrent(IN_FLIGHT, |(i, (id, wallet))| {
            let (h, buyer, seller) = (h.clone(), buyer.clone(), seller.clone());
            async move {
                record(&h, &seller, id, 1 + (i as u64 % 50), &format!("usage-{id}")).await;
                sign_voucher(&h, &buyer, id, wallet).await;
            }
        })
        .await;
    let ids: Vec<&String> = agreements.iter().map(|(id, _)| id).collect();
    interval_mining(h, true).await;
    // The relayer's batch window follows the block time the watcher measures (a median of the
    // recent blocks): the phase starts once it has seen the 1 s blocks, not the set-up's
    // automine bursts.
    let head = &h.service.as_ref().unwrap().state().chain.head;
    let deadline = Instant::now() + Duration::from_secs(120);
    while head.block_time() != Some(Duration::from_secs(1)) {
        assert!(Instant::now() < deadline, "block time never measured: {:?}", head.block_time());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let calls_before = rpc_calls();
    let methods_before = rpc_calls_by_method();
    let started = Instant::now();
    // Each action as the API accepted it (its id, when the 202 came back), shared with the
    // watch below, which runs from the first submission: an action broadcast while others are
    // still being submitted is stamped when it was, not after the last 202.
    let accepted: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let submitting = {
        let (h, seller, accepted) = (h.clone(), seller.clone(), accepted.clone());
        let ids: Vec<String> = ids.iter().map(|id| (*id).clone()).collect();
        tokio::spawn(async move {
            futures::stream::iter(ids)
                .for_each_concurrent(IN_FLIGHT, |id| {
                    let (h, seller, accepted) = (h.clone(), seller.clone(), accepted.clone());
                    async move {
                        let offered = options(&h, &seller, &id, "seller_claim").await;
                        let sponsored = &offered["paths"]["sponsored"];
                        let body = sponsored_body(&h.chain.seller, sponsored);
                        let path = sponsored["submit_to"].as_str().unwrap();
                        let (status, queued) =
                            h.call(Method::POST, path, Some(&seller.key), Some(&body)).await;
                        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
                        let id = queued["id"].as_str().unwrap().to_owned();
                        accepted.lock().unwrap().insert(id, Instant::now());
                    }
                })
                .await;
        })
    };

    // Watch the store until every accepted action is final.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let wanted: BTreeSet<String> = accepted.lock().unwrap().keys().cloned().collect();
        let now = statuses(h, "settlement_actions", &wanted).await;
        assert!(Instant::now() < deadline, "actions not all confirmed in 10 min: {now:?}");
        assert!(now.values().all(|s| s != "failed"), "an action failed: {now:?}");
        if wanted.len() == n && now.values().filter(|s| *s == "confirmed").count() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    submitting.await.expect("every claim submitted");
    let accepted_at = std::mem::take(&mut *accepted.lock().unwrap());
    let wanted: BTreeSet<String> = accepted_at.keys().cloned().collect();
    let seconds = started.elapsed().as_secs_f64();
    let rpc_calls = rpc_calls() - calls_before;
    let mut rpc_by_method = rpc_calls_by_method();
    for (method, n) in &mut rpc_by_method {
        *n -= methods_before.get(method).copied().unwrap_or(0);
    }
    rpc_by_method.retain(|_, n| *n > 0);
    let latest = h.chain.provider.get_block_by_number(Default::default()).await.unwrap();
    let block_gas_limit = latest.expect("a latest block").header.gas_limit;
    let block_time = h.service.as_ref().unwrap().state().chain.head.block_time();
    eprintln!("relay: {n} claims; block time as measured at the end {block_time:?}");

    let store = &h.service.as_ref().unwrap().state().store;
    // Each action's first broadcast: the earliest any transaction of its job reached the node.
    let sent = proxy.broadcasts();
    let attempts = sqlx::query(
        "SELECT s.id, a.tx_hash FROM settlement_actions s \
         JOIN relayer_attempts a ON a.job_id = s.job_id",
    )
    .fetch_all(store.reader())
    .await
    .unwrap();
    let mut broadcast_at: BTreeMap<String, Instant> = BTreeMap::new();
    for row in &attempts {
        let id: String = row.get("id");
        let hash: B256 = row.get::<String, _>("tx_hash").parse().unwrap();
        if let (true, Some(at)) = (wanted.contains(&id), sent.get(&hash)) {
            let first = broadcast_at.entry(id).or_insert(*at);
            *first = (*first).min(*at);
        }
    }
    assert_eq!(broadcast_at.len(), n, "every action's broadcast stamped");
    let mut latencies: Vec<f64> = broadcast_at
        .iter()
        .map(|(id, at)| at.saturating_duration_since(accepted_at[id]).as_secs_f64() * 1_000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let rows = sqlx::query("SELECT id, tx_hash FROM settlement_actions")
        .fetch_all(store.reader())
        .await
        .unwrap();
    let hashes: BTreeSet<B256> = rows
        .iter()
        .filter(|row| wanted.contains(&row.get::<String, _>("id")))
        .map(|row| row.get::<String, _>("tx_hash").parse().unwrap())
        .collect();
    let mut gas_used = 0;
    let mut blocks = BTreeSet::new();
    for hash in &hashes {
        let receipt = h.chain.provider.get_transaction_receipt(*hash).await.unwrap().unwrap();
        assert!(receipt.status(), "{hash} reverted");
        gas_used += receipt.gas_used;
        blocks.insert(receipt.block_number);
    }
    Level {
        actions: n,
        seconds,
        accept_to_broadcast_ms: latencies,
        transactions: hashes.len(),
        blocks: blocks.len(),
        gas_used,
        rpc_calls,
        rpc_by_method,
        block_gas_limit,
    }
}

pub(crate) async fn run(settings: &Settings) {
    let levels: Vec<usize> = if settings.quick { vec![3, 12] } else { vec![10, 100, 1_000] };
    println!("\n## relay: sponsored seller claims through the real server (1 s blocks)\n");
    let (h, proxy) = behind_proxy(|_, config| {
        config.poll_interval_ms = 250;
        // The window the service picks itself: a fortieth of the measured block time.
        config.relayer_batch_wait_ms = None;
    })
    .await;
    let (buyer, seller) = h.parties().await;
    println!(
        "| actions | actions/s | accept → broadcast p50 | p99 | transactions | gas per action | RPC calls per action |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut measured = Vec::new();
    for n in levels {
        eprintln!("relay: {n} agreements…");
        let level = level(&h, &proxy, &buyer, &seller, n).await;
        let latencies = &level.accept_to_broadcast_ms;
        println!(
            "| {} | {:.1} | {:.0} ms | {:.0} ms | {} | {} | {:.2} |",
            level.actions,
            level.actions as f64 / level.seconds,
            percentile(latencies, 50.0),
            percentile(latencies, 99.0),
            level.transactions,
            super::thousands(level.gas_used as f64 / level.actions as f64),
            level.rpc_calls as f64 / level.actions as f64,
        );
        measured.push(level);
    }
    println!(
        "\n## relay: blocks, gas per block against the limit, and the chain's ceiling (1 s blocks)\n"
    );
    println!(
        "| actions | blocks | gas per block used | block gas limit | share | ceiling (actions/s at this gas per action) | actions/s ÷ ceiling |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for level in &measured {
        let per_action = level.gas_used as f64 / level.actions as f64;
        let per_block = level.gas_used as f64 / level.blocks.max(1) as f64;
        let ceiling = level.block_gas_limit as f64 / per_action;
        println!(
            "| {} | {} | {} | {} | {:.1}% | {} | {:.1}% |",
            level.actions,
            level.blocks,
            super::thousands(per_block),
            super::thousands(level.block_gas_limit as f64),
            per_block / level.block_gas_limit as f64 * 100.0,
            super::thousands(ceiling),
            level.actions as f64 / level.seconds / ceiling * 100.0,
        );
    }
    println!("\n## relay: JSON-RPC requests per confirmed action, by method\n");
    let methods: BTreeSet<&String> = measured.iter().flat_map(|l| l.rpc_by_method.keys()).collect();
    let header: Vec<String> = measured.iter().map(|l| format!("{} actions", l.actions)).collect();
    println!("| method | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(measured.len()));
    for method in methods {
        let cells: Vec<String> = measured
            .iter()
            .map(|l| {
                let n = l.rpc_by_method.get(method).copied().unwrap_or(0);
                format!("{:.2}", n as f64 / l.actions as f64)
            })
            .collect();
        println!("| `{method}` | {} |", cells.join(" | "));
    }
    if let Ok(mut h) = Arc::try_unwrap(h) {
        h.stop().await;
    }
    signers_comparison(settings).await;
}

/// Part 3b: `n` sponsored claims sent one per transaction through 1 and through 3 relayer keys.
async fn signers_comparison(settings: &Settings) {
    let n = if settings.quick { 6 } else { 300 };
    println!(
        "\n## relay: {n} sponsored claims, one transaction each, 1 vs 3 relayer keys (1 s blocks, \
         window 16)\n"
    );
    println!(
        "| relayer keys | actions | actions/s | accept → broadcast p50 | p99 | transactions | blocks | RPC calls per action |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for keys in [1, 3] {
        let (h, proxy) = behind_proxy(|chain, config| {
            config.poll_interval_ms = 250;
            config.relayer_batch_max = 1;
            config.relayer_private_keys = relayer_keys(chain, keys);
        })
        .await;
        let (buyer, seller) = h.parties().await;
        eprintln!("relay: {n} unbatched claims through {keys} relayer key(s)…");
        let level = level(&h, &proxy, &buyer, &seller, n).await;
        let latencies = &level.accept_to_broadcast_ms;
        println!(
            "| {keys} | {} | {:.1} | {:.0} ms | {:.0} ms | {} | {} | {:.2} |",
            level.actions,
            level.actions as f64 / level.seconds,
            percentile(latencies, 50.0),
            percentile(latencies, 99.0),
            level.transactions,
            level.blocks,
            level.rpc_calls as f64 / level.actions as f64,
        );
        // Stop this service before the next starts, so it neither competes for the CPU nor
        // adds to the process-wide RPC count.
        if let Ok(mut h) = Arc::try_unwrap(h) {
            h.stop().await;
        }
    }
}
