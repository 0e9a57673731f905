//! The request path reads no chain: a sponsored submission answers from what Pactum has seen
//! (the escrow in the store, the head in memory), counted by `pactum_rpc_requests_by_route_total`
//! against the real server on a real anvil; and a view left stale on purpose (the watcher's head
//! frozen by a proxy) accepts a claim the chain no longer allows, which the relayer then fails,
//! saying why, without paying anyone twice.

use std::collections::HashMap;

use alloy::primitives::U256;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::DevChain;
use crate::support::faulty_rpc::FaultyRpc;
use crate::support::service::Harness;
use crate::support::settlement::{
    UNIT, action_final, options, record, send_direct, sign_voucher, sponsored_body,
};

/// JSON-RPC calls counted against each route, by method: `route → method → count`.
async fn rpc_by_route(h: &Harness) -> HashMap<String, HashMap<String, u64>> {
    let text =
        h.http.get(format!("{}/metrics", h.base)).send().await.unwrap().text().await.unwrap();
    let mut counts: HashMap<String, HashMap<String, u64>> = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("pactum_rpc_requests_by_route_total{")) {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            line[start..start + line[start..].find('"').unwrap()].to_owned()
        };
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *counts.entry(label("route")).or_default().entry(label("method")).or_default() +=
            value as u64;
    }
    counts
}

/// The calls counted against the route whose template contains `part`.
fn calls_of<'a>(
    counts: &'a HashMap<String, HashMap<String, u64>>,
    part: &str,
) -> HashMap<&'a str, u64> {
    counts
        .iter()
        .filter(|(route, _)| route.contains(part))
        .flat_map(|(_, methods)| methods.iter().map(|(m, n)| (m.as_str(), *n)))
        .collect()
}

const SPONSORED_ROUTE: &str = "/sponsored-actions/{action}";
const OPTIONS_ROUTE: &str = "/settlement-action-options";

#[tokio::test]
async fn a_sponsored_claim_is_accepted_without_a_single_rpc_call() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    record(&h, &seller, &id, 30, "usage-30").await;
    sign_voucher(&h, &buyer, &id).await;
    let seller_before = h.chain.balance(h.chain.seller.address()).await;

    let offered = options(&h, &seller, &id, "seller_claim").await;
    assert_eq!(offered["possible"], true, "{offered}");
    let sponsored = &offered["paths"]["sponsored"];
    let body = sponsored_body(&h.chain.seller, sponsored);
    let submit_to = sponsored["submit_to"].as_str().unwrap();
    let (status, queued) = h.call(Method::POST, submit_to, Some(&seller.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");

    let counts = rpc_by_route(&h).await;
    let submit = calls_of(&counts, SPONSORED_ROUTE);
    assert!(
        submit.values().all(|n| *n == 0),
        "the sponsored submission called the node: {submit:?}"
    );
    // The options read the seller's ether for the direct path's cost, nothing else: the escrow
    // comes from the store, the clock and the fees from the head in memory, the gas limit from
    // the table.
    let offered_calls = calls_of(&counts, OPTIONS_ROUTE);
    let others: Vec<_> = offered_calls.iter().filter(|(m, _)| **m != "eth_getBalance").collect();
    assert!(
        others.is_empty(),
        "the options called the node for more than a balance: {offered_calls:?}"
    );
    assert!(offered_calls.get("eth_getBalance").copied().unwrap_or(0) <= 1, "{offered_calls:?}");

    // The counter does see a route that reads the chain: the direct instructions estimate gas.
    let path = format!("/usage-agreements/{id}/claim-instructions");
    let (status, _) = h.call(Method::GET, &path, Some(&seller.key), None).await;
    assert_eq!(status, StatusCode::OK);
    let direct =
        calls_of(&rpc_by_route(&h).await, "/claim-instructions").get("eth_estimateGas").copied();
    assert!(direct.unwrap_or(0) >= 1, "the direct instructions' estimate was not counted");

    let done = action_final(&h, &seller.key, &id, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    let paid = h.chain.balance(h.chain.seller.address()).await - seller_before;
    assert_eq!(paid, U256::from(30 * UNIT), "the seller is paid the voucher once");
}

#[tokio::test]
async fn a_stale_view_accepts_a_claim_the_chain_refuses_and_the_relayer_fails_it_saying_why() {
    let chain = DevChain::start().await;
    let proxy = FaultyRpc::start(&chain.anvil.endpoint()).await;
    let url = proxy.url.clone();
    let h = Harness::start_on(chain, |_, config| config.rpc_url = url).await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    record(&h, &seller, &id, 30, "usage-30").await;
    sign_voucher(&h, &buyer, &id).await;
    let path = format!("/usage-agreements/{id}/claim-instructions");
    let (status, direct) = h.call(Method::GET, &path, Some(&seller.key), None).await;
    assert_eq!(status, StatusCode::OK, "{direct}");
    let seller_before = h.chain.balance(h.chain.seller.address()).await;

    // The watcher stops seeing new blocks; the seller claims from its own wallet meanwhile.
    proxy.freeze().await;
    send_direct(&h, h.chain.seller.address(), &direct).await;

    // Pactum's view still has the voucher unclaimed: the claim is offered and accepted.
    let offered = options(&h, &seller, &id, "seller_claim").await;
    assert_eq!(offered["possible"], true, "the stale view offers the claim: {offered}");
    assert_eq!(offered["escrow"]["claimed_units"], 0, "{offered}");
    let sponsored = &offered["paths"]["sponsored"];
    let body = sponsored_body(&h.chain.seller, sponsored);
    let submit_to = sponsored["submit_to"].as_str().unwrap();
    let (status, queued) = h.call(Method::POST, submit_to, Some(&seller.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");

    // The relayer checks the claim against the chain before it pays any gas: it fails it with
    // the contract's reason.
    let done = action_final(&h, &seller.key, &id, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.starts_with("NothingToClaim"), "the failure says why: {done}");
    assert!(done["tx_hash"].is_null(), "never broadcast: {done}");

    // Once the watcher sees the chain again, the view has the seller's own claim; the seller was
    // paid once.
    proxy.thaw();
    let status_path = format!("/usage-agreements/{id}/escrow-status");
    h.wait_path(&seller.key, &status_path, |s: &Value| s["escrow"]["claimed_units"] == 30).await;
    let paid = h.chain.balance(h.chain.seller.address()).await - seller_before;
    assert_eq!(paid, U256::from(30 * UNIT), "paid exactly once");
    let again = options(&h, &seller, &id, "seller_claim").await;
    assert_eq!(again["possible"], false, "{again}");
    assert_eq!(again["reason"]["code"], "nothing_to_claim", "{again}");
}

/// The options' direct transaction (its gas limit from the table) against the direct route's
/// (the node's estimate plus headroom) for `action` as `agent`: the table must allow at least
/// as much, and the transaction sent with the table's limit must go through.
async fn direct_by_table(
    h: &Harness,
    agent: &crate::support::service::TestAgent,
    from: alloy::primitives::Address,
    id: &str,
    action: &str,
    route: &str,
) {
    let offered = options(h, agent, id, action).await;
    assert_eq!(offered["possible"], true, "{offered}");
    let table = &offered["paths"]["direct"]["transaction"];
    let (status, estimated) = h
        .call(Method::GET, &format!("/usage-agreements/{id}/{route}"), Some(&agent.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{estimated}");
    let gas = |v: &Value| v["gas"].as_str().unwrap().parse::<u64>().unwrap();
    println!(
        "{action} by {from}: table {} ≥ estimate with headroom {}",
        gas(table),
        gas(&estimated)
    );
    assert!(
        gas(table) >= gas(&estimated),
        "{action}: table {table} below the estimate {estimated}"
    );
    assert_eq!(table["data"], estimated["data"], "the same call");
    send_direct(h, from, table).await;
}

#[tokio::test]
async fn the_direct_gas_table_covers_the_nodes_estimate_for_every_action() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    // A seller never paid before (a new balance word) claims, then the buyer closes and
    // withdraws the rest once the window has passed.
    let id = h.active(&buyer, &seller).await;
    record(&h, &seller, &id, 30, "usage-30").await;
    sign_voucher(&h, &buyer, &id).await;
    direct_by_table(&h, &seller, seller_wallet, &id, "seller_claim", "claim-instructions").await;
    let status_path = format!("/usage-agreements/{id}/escrow-status");
    h.wait_path(&buyer.key, &status_path, |s: &Value| s["escrow"]["claimed_units"] == 30).await;
    direct_by_table(&h, &buyer, buyer_wallet, &id, "initiate_close", "initiate-close-calldata")
        .await;
    h.wait_path(&buyer.key, &status_path, |s: &Value| s["escrow"]["status"] == "closing").await;
    h.chain.advance(3_601).await;
    direct_by_table(&h, &buyer, buyer_wallet, &id, "buyer_withdraw", "withdraw-instructions").await;
    // The seller's close with the buyer's final voucher settles at once.
    let other = h.active(&buyer, &seller).await;
    record(&h, &seller, &other, 40, "usage-40").await;
    sign_voucher(&h, &buyer, &other).await;
    direct_by_table(
        &h,
        &seller,
        seller_wallet,
        &other,
        "initiate_close",
        "initiate-close-calldata",
    )
    .await;
}
