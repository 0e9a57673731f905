//! The RPC layer under real faults: anvil stopped for 30 s and restarted with its state while
//! work is in flight, a dead endpoint ahead of a live one, JSON-RPC errors passed through
//! untouched, retries bounded, breakers failing fast, endpoints on different chains refused, and
//! a lagging fallback not taken for a reorganisation.

use std::net::TcpListener;
use std::time::Duration;

use crate::support::DevChain;
use crate::support::service::{Harness, sign_package, unique_dir};
use crate::support::settlement::{UNIT, action_final, record, sign_voucher, sponsor};
use alloy::node_bindings::Anvil;
use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::transports::RpcError;
use pactum::chain::breaker::BreakerState;
use pactum::chain::context::{ChainContext, ChainError};
use pactum::chain::rpc::{self, ALL_OPEN, RpcService, RpcSettings};
use pactum::chain::toolchain;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn service_of(urls: &str, settings: RpcSettings) -> RpcService {
    RpcService::new(rpc::parse_urls(urls).unwrap(), settings).unwrap()
}

#[tokio::test]
async fn work_queued_before_a_30_s_outage_completes_once_after_anvil_restarts() {
    let port = free_port();
    let dir = unique_dir("pactum-rpc-outage");
    let state = dir.join("anvil-state.json");
    let chain = DevChain::start_on(port, &state).await;
    let mut h = Harness::start_on(chain, |_, config| {
        config.rpc = RpcSettings {
            timeout_ms: 2_000,
            retries: 1,
            breaker_failures: 2,
            breaker_cooldown_ms: 1_000,
        };
    })
    .await;

    let (buyer, seller) = h.parties().await;
    let first = h.active(&buyer, &seller).await;
    record(&h, &seller, &first, 30, "usage-1").await;
    sign_voucher(&h, &buyer, &first).await;
    let (seller_wallet, buyer_wallet) = (h.chain.seller.address(), h.chain.buyer.address());
    let (seller_before, buyer_before) =
        (h.chain.balance(seller_wallet).await, h.chain.balance(buyer_wallet).await);

    // Queue a second activation and a sponsored close, then stop the chain at once.
    let second = h.accepted(&buyer, &seller, buyer_wallet, seller_wallet).await;
    let package = h.package(&buyer.key, &second).await;
    let body = sign_package(&h.chain.buyer, &package);
    let path = format!("/usage-agreements/{second}/activate-escrow");
    let (status, queued) = h.call(Method::POST, &path, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let (status, close) = sponsor(&h, &seller, &h.chain.seller, &first, "initiate_close").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{close}");
    let close_id = close["id"].as_str().unwrap().to_owned();
    let jobs = h.job_count().await;

    let pid = h.chain.anvil.child().id();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    assert!(killed.unwrap().success());
    h.chain.anvil.child_mut().wait().unwrap();
    assert!(state.is_file(), "anvil dumped its state on SIGTERM");
    let action_path = format!("/usage-agreements/{first}/settlement-actions/{close_id}");
    let (_, in_flight) = h.call(Method::GET, &action_path, Some(&seller.key), None).await;
    eprintln!("close action when the chain stopped: {}", in_flight["status"]);

    // During the outage: chain reads answer 503 chain_unavailable, store reads still work.
    let outage = std::time::Instant::now();
    let options =
        format!("/usage-agreements/{first}/settlement-action-options?action=buyer_withdraw");
    while outage.elapsed() < Duration::from_secs(30) {
        let (status, body) = h.call(Method::GET, &options, Some(&buyer.key), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "chain_unavailable", "{body}");
        let (status, body) = h
            .call(Method::GET, &format!("/usage-agreements/{first}"), Some(&buyer.key), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = h
            .call(
                Method::GET,
                &format!("/usage-agreements/{first}/escrow-status"),
                Some(&buyer.key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let rpc = h.service.as_ref().unwrap().state().chain.rpc.clone();
    assert!(
        !matches!(rpc.status()[0].breaker, BreakerState::Closed { .. }),
        "the endpoint's breaker is open during the outage: {:?}",
        rpc.status()
    );

    // Same port, same state: the work completes, once.
    h.chain.anvil = DevChain::anvil_on(port, &state);
    let done = action_final(&h, &seller.key, &first, &close_id).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    h.wait_for(&buyer.key, &second, |a| a["status"] == "active").await;
    let settled = h.wait_for(&buyer.key, &first, |a| a["status"] == "settled").await;
    assert_eq!(settled["status"], "settled");
    assert_eq!(h.chain.balance(seller_wallet).await - seller_before, U256::from(30 * UNIT));
    // The second escrow was funded exactly once: its deposit plus its fee left the buyer.
    let funded = buyer_before - h.chain.balance(buyer_wallet).await;
    let path = format!("/usage-agreements/{second}/escrow-status");
    let (_, escrow) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    let amount = |v: &Value| v.as_str().unwrap().parse::<U256>().unwrap();
    let deposit = amount(&escrow["escrow"]["deposit_amount"]);
    assert_eq!(funded, deposit + amount(&escrow["infra_fee"]["amount"]), "{escrow}");
    assert!(deposit > U256::ZERO);
    assert_eq!(h.job_count().await, jobs, "no job added or lost");
    assert!(matches!(rpc.status()[0].breaker, BreakerState::Closed { .. }));
    h.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_dead_first_endpoint_fails_over_to_the_live_one() {
    let dead = free_port();
    let h = Harness::start_with(|config| {
        config.rpc_url = format!("http://127.0.0.1:{dead}, {}", config.rpc_url);
        config.rpc.breaker_failures = 2;
        config.rpc.breaker_cooldown_ms = 60_000;
    })
    .await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let (status, body) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let status = h.service.as_ref().unwrap().state().chain.rpc.status();
    assert_eq!((status[0].label.as_str(), status[1].label.as_str()), ("rpc0", "rpc1"));
    assert!(matches!(status[0].breaker, BreakerState::Open { .. }), "{status:?}");
    assert_eq!(status[0].calls, status[0].failures, "every call to the dead one failed");
    assert!(status[0].calls <= 3, "an open breaker keeps calls off it: {status:?}");
    assert_eq!(status[1].breaker, BreakerState::Closed { failures: 0 });
    assert!(status[1].calls > 10 && status[1].failures == 0, "{status:?}");
    let registry = pactum::metrics::registry();
    assert!(registry.counter("pactum_rpc_breaker_opened_total", &[("endpoint", "rpc0")]) >= 1);
}

#[tokio::test]
async fn json_rpc_errors_pass_through_once_and_leave_the_breaker_closed() {
    let anvil = Anvil::at(toolchain::anvil()).spawn();
    let settings = RpcSettings { breaker_failures: 1, retries: 3, ..Default::default() };
    let rpc = service_of(&anvil.endpoint(), settings);
    rpc.check_chain().await.unwrap();
    let provider = ProviderBuilder::new().connect_client(rpc.client());
    let before = rpc.status()[0].calls;
    let err = provider.raw_request::<_, Value>("eth_noSuchMethod".into(), ()).await.unwrap_err();
    assert!(matches!(err, RpcError::ErrorResp(_)), "{err:?}");
    let after = &rpc.status()[0];
    assert_eq!(after.calls, before + 1, "not retried");
    assert_eq!(after.breaker, BreakerState::Closed { failures: 0 });
    assert!(rpc::calls_total() >= after.calls);
    assert_eq!(provider.get_chain_id().await.unwrap(), anvil.chain_id());
}

#[tokio::test]
async fn transport_failures_are_retried_within_bounds_then_fail_fast_while_open() {
    let dead = free_port();
    let settings = RpcSettings {
        timeout_ms: 1_000,
        retries: 2,
        breaker_failures: 3,
        breaker_cooldown_ms: 60_000,
    };
    let rpc = service_of(&format!("http://127.0.0.1:{dead}"), settings);
    let provider = ProviderBuilder::new().connect_client(rpc.client());
    let err = provider.get_block_number().await.unwrap_err();
    assert!(matches!(err, RpcError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains(&dead.to_string()), "no URL in the error: {err}");
    let status = &rpc.status()[0];
    assert_eq!((status.calls, status.failures), (3, 3), "one try and two retries");
    assert!(matches!(status.breaker, BreakerState::Open { .. }));

    let started = std::time::Instant::now();
    let err = provider.get_block_number().await.unwrap_err();
    assert!(err.to_string().contains(ALL_OPEN), "{err}");
    assert!(started.elapsed() < Duration::from_millis(50), "fails fast");
    assert_eq!(rpc.status()[0].calls, 3, "nothing sent while open");
}

#[tokio::test]
async fn endpoints_on_different_chains_are_refused_at_start() {
    let a = Anvil::at(toolchain::anvil()).chain_id(31_337u64).spawn();
    let b = Anvil::at(toolchain::anvil()).chain_id(8_453u64).spawn();
    let rpc = service_of(&format!("{},{}", a.endpoint(), b.endpoint()), RpcSettings::default());
    let err = rpc.check_chain().await.unwrap_err();
    assert!(
        matches!(err, ChainError::ChainMismatch { expected: 31_337, found: 8_453, .. }),
        "{err}"
    );
    let settings = RpcSettings::default();
    let err = ChainContext::connect(
        &format!("{},{}", a.endpoint(), b.endpoint()),
        &settings,
        alloy::primitives::Address::ZERO,
        "USD Coin",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("rpc1 on chain 8453"), "{err}");
}

/// A fallback endpoint that is behind (here an anvil forked from the primary at start that never
/// mines) serves the watcher while the primary is frozen: its head is a block the watcher read
/// long ago, unchanged, which is a lagging node, not a reorganisation. Nothing is rolled back,
/// and once the primary answers again the watcher goes on.
#[tokio::test]
async fn a_fallback_behind_the_watcher_is_waited_out_not_taken_for_a_reorganisation() {
    let mut fallback = None;
    let h = Harness::start_with_chain(|chain, config| {
        let lagging =
            Anvil::at(toolchain::anvil()).fork(chain.anvil.endpoint()).arg("--no-mining").spawn();
        config.rpc_url = format!("{}, {}", chain.anvil.endpoint(), lagging.endpoint());
        config.rpc = RpcSettings {
            timeout_ms: 500,
            retries: 0,
            breaker_failures: 1,
            breaker_cooldown_ms: 1_000,
        };
        fallback = Some(lagging);
    })
    .await;
    let fallback = fallback.unwrap();
    let forked_at =
        ProviderBuilder::new().connect_http(fallback.endpoint_url()).get_block_number().await;
    let forked_at = forked_at.unwrap();
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let path = format!("/usage-agreements/{id}");
    let active = h.poll_path(&buyer.key, &path, |a| a["activation_status"] == "confirmed").await;
    let cursor = h.service.as_ref().unwrap().state().store.clone();
    let read = pactum::store::chain::cursor(cursor.reader()).await.unwrap().unwrap();
    assert!(read.block_number > forked_at, "the watcher is past the fallback's head");

    // The primary freezes: calls time out, its breaker opens, the fallback answers.
    let pid = h.chain.anvil.child().id().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let rpc = &h.service.as_ref().unwrap().state().chain.rpc;
    let served_before = rpc.status()[1].calls;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let served = rpc.status()[1].calls - served_before;
    signal("-CONT");
    assert!(served >= 3, "the fallback served the watcher: {served} calls");

    // Back on the primary: the watcher goes on from where it was, nothing was taken back.
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let store = h.service.as_ref().unwrap().state().store.clone();
    let mut now = read;
    for _ in 0..100 {
        now = pactum::store::chain::cursor(store.reader()).await.unwrap().unwrap();
        if now.block_number > read.block_number {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(now.block_number > read.block_number, "the watcher went on: {now:?}");
    let (status, events) =
        h.call(Method::GET, &format!("{path}/events?limit=100"), Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> =
        events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(!types.contains(&"agreement.reorged"), "{types:?}");
    let (_, after) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(after["status"], active["status"]);
    assert_eq!(after["activation_status"], "confirmed");
    let reorgs = pactum::metrics::registry().counter("pactum_chain_reorgs_total", &[]);
    assert_eq!(reorgs, 0);
}
