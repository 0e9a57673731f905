//! What the chain watcher asks the node, counted by a JSON-RPC proxy in front of anvil: one
//! `eth_getBlockReceipts` per block read and at most one header read per block, whatever
//! Pactum had in flight there, with no per-transaction receipt and no log query; and, on a node
//! that refuses `eth_getBlockReceipts`, the per-block reads instead, chosen once, with
//! activations and claims still confirmed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::DevChain;
use crate::support::faulty_rpc::{FaultyRpc, HEADER_BY_NUMBER};
use crate::support::service::Harness;
use crate::support::settlement::{action_final, record, sign_voucher, sponsor};
use alloy::providers::Provider;
use reqwest::{Method, StatusCode};
use sqlx::Row;

const RECEIPTS: &str = "eth_getBlockReceipts";

/// A service on a fresh chain whose every RPC call goes through a proxy refusing `refused`.
async fn proxied(refused: &[&str]) -> (Harness, FaultyRpc) {
    let chain = DevChain::start().await;
    let proxy = FaultyRpc::start(&chain.anvil.endpoint()).await;
    for method in refused {
        proxy.refuse_method(method);
    }
    let url = proxy.url.clone();
    let h = Harness::start_on(chain, |_, config| config.rpc_url = url).await;
    (h, proxy)
}

/// Waits until the watcher has read up to the chain's head (nothing mines meanwhile, so no
/// block read is then in flight); returns that block number. Panics after 30 s.
async fn caught_up(h: &Harness) -> u64 {
    let store = h.service.as_ref().unwrap().state().store.clone();
    for _ in 0..600 {
        let head = h.chain.provider.get_block_number().await.unwrap();
        let cursor = pactum::store::chain::cursor(store.reader()).await.unwrap();
        if let Some(cursor) = cursor.filter(|c| c.block_number == head) {
            return cursor.block_number;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the watcher did not reach the chain's head");
}

/// The calls made between two counts, by method (methods not called left out).
fn made(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(method, n)| (method.clone(), n - before.get(method).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Relayer transactions the watcher confirmed.
async fn confirmed_attempts(h: &Harness) -> i64 {
    let store = h.service.as_ref().unwrap().state().store.clone();
    sqlx::query("SELECT COUNT(*) AS n FROM relayer_attempts WHERE status = 'confirmed'")
        .fetch_one(store.reader())
        .await
        .unwrap()
        .get::<i64, _>("n")
}

/// Three activations and a sponsored claim, each mined in its own block, and the empty blocks
/// mined while waiting for their confirmations: the watcher reads each block with one
/// `eth_getBlockReceipts` (a header read at most besides), and never asks for a transaction's
/// receipt or for logs.
#[tokio::test]
async fn each_block_is_read_with_one_receipts_call_and_no_per_transaction_reads() {
    let (h, proxy) = proxied(&[]).await;
    let (buyer, seller) = h.parties().await;
    let from = caught_up(&h).await;
    let before = proxy.counts();

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.active(&buyer, &seller).await);
    }
    record(&h, &seller, &ids[0], 25, "usage-1").await;
    sign_voucher(&h, &buyer, &ids[0]).await;
    let (status, queued) = sponsor(&h, &seller, &h.chain.seller, &ids[0], "seller_claim").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let done = action_final(&h, &seller.key, &ids[0], queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");

    let to = caught_up(&h).await;
    let calls = made(&before, &proxy.counts());
    let blocks = to - from;
    eprintln!("{blocks} blocks read; calls made meanwhile: {calls:?}");
    assert!(confirmed_attempts(&h).await >= 4, "four relayer transactions confirmed");
    let count = |method: &str| calls.get(method).copied().unwrap_or(0);
    assert_eq!(count(RECEIPTS), blocks, "one receipts call per block: {calls:?}");
    assert!(count(HEADER_BY_NUMBER) <= blocks, "a header read per block at most: {calls:?}");
    assert_eq!(count("eth_getTransactionReceipt"), 0, "{calls:?}");
    assert_eq!(count("eth_getLogs"), 0, "{calls:?}");
}

/// A node without `eth_getBlockReceipts`: the watcher asks once, is refused, and from then on
/// reads each block's header, the escrow's logs and the receipts of Pactum's own transactions;
/// an activation and a sponsored claim are confirmed as on any node.
#[tokio::test]
async fn without_block_receipts_the_watcher_reads_per_transaction_and_still_confirms() {
    let (h, proxy) = proxied(&[RECEIPTS]).await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let path = format!("/usage-agreements/{id}");
    let active = h.wait_path(&buyer.key, &path, |a| a["activation_status"] == "confirmed").await;
    assert_eq!(active["status"], "active", "{active}");

    record(&h, &seller, &id, 40, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;
    let (status, queued) = sponsor(&h, &seller, &h.chain.seller, &id, "seller_claim").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let done = action_final(&h, &seller.key, &id, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    let escrow = h
        .wait_path(&seller.key, &format!("{path}/escrow-status"), |e| {
            e["escrow"]["claimed_units"] == 40
        })
        .await;
    assert_eq!(escrow["escrow"]["claimed_units"], 40, "{escrow}");

    let calls = proxy.counts();
    eprintln!("calls made: {calls:?}");
    let count = |method: &str| calls.get(method).copied().unwrap_or(0);
    assert_eq!(count(RECEIPTS), 1, "asked once, then never again: {calls:?}");
    assert!(count("eth_getLogs") > 0, "the escrow's logs read per block: {calls:?}");
    assert!(count("eth_getTransactionReceipt") >= 2, "receipts read per transaction: {calls:?}");
    let (status, _) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::OK);
}
