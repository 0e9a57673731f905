//! Reorganisations after confirmation, injected with `anvil_reorg` on a real anvil: the blocks
//! holding a confirmed activation or settlement are replaced by empty ones. The watcher takes
//! the effects back (the agreement `activating` and its activation `submitted`, a settlement
//! action `submitted` and the agreement `active` again, receipts withdrawn, an
//! `agreement.reorged` event), the relayer sends the transaction again, and once it is mined
//! again everything re-confirms with the money moved exactly once.
//!
//! The confirmation depth is 1 here, so a reorg of any depth 1–5 reaches a confirmed block:
//! the transaction is mined, `depth - 1` blocks go on top, the watcher confirms it, then the
//! last `depth` blocks are replaced.

use crate::support::databases::{drop_postgres, fresh_postgres};
use crate::support::service::{Harness, TestAgent, config_for};
use crate::support::settlement::{UNIT, record, sign_voucher, sponsor};
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A harness with confirmation depth 1, on SQLite or on the Postgres database `postgres`.
async fn reorg_harness(postgres: Option<&str>) -> Harness {
    Harness::start_with(|config| {
        config.confirmations = 1;
        if let Some(url) = postgres {
            config.database_url = url.to_owned();
        }
    })
    .await
}

async fn mine(h: &Harness, blocks: u64) {
    for _ in 0..blocks {
        let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
    }
}

/// Replaces the last `depth` blocks with empty ones (the chain keeps its height).
async fn reorg(h: &Harness, depth: u64) {
    let _: Value = h
        .chain
        .provider
        .raw_request("anvil_reorg".into(), (depth, Vec::<Value>::new()))
        .await
        .unwrap();
}

async fn head(h: &Harness) -> u64 {
    h.chain.provider.get_block_number().await.unwrap()
}

async fn mined_in(h: &Harness, tx_hash: &str) -> Option<u64> {
    let hash: B256 = tx_hash.parse().unwrap();
    h.chain.provider.get_transaction_receipt(hash).await.unwrap().and_then(|r| r.block_number)
}

async fn event_types(h: &Harness, key: &str, id: &str) -> Vec<String> {
    let path = format!("/usage-agreements/{id}/events?limit=100");
    let (status, events) = h.call(Method::GET, &path, Some(key), None).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().into()).collect()
}

async fn receipts_of(h: &Harness, agent: &TestAgent) -> Vec<Value> {
    let path = format!("/receipts?agent_id={}&limit=50", agent.id);
    let (status, body) = h.call(Method::GET, &path, Some(&agent.key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["receipts"].as_array().unwrap().clone()
}

/// Mines the pending transaction, then `depth - 1` blocks on top, so that it sits exactly
/// `depth` blocks below the new head; returns its block.
async fn mine_to_depth(h: &Harness, tx_hash: &str, depth: u64) -> u64 {
    mine(h, 1).await;
    let block = mined_in(h, tx_hash).await.expect("mined by the first block");
    mine(h, depth - 1).await;
    assert_eq!(head(h).await - block + 1, depth);
    block
}

/// Queues an activation with automine off, mines it `depth` blocks deep and waits until the
/// agreement is active; returns its id, activation transaction, block and the agreement.
async fn activated_at_depth(
    h: &Harness,
    buyer: &TestAgent,
    seller: &TestAgent,
    depth: u64,
) -> (String, String, u64, Value) {
    h.automine(false).await;
    let id = h.queued(buyer, seller).await;
    let path = format!("/usage-agreements/{id}");
    let submitted = h.poll_path(&buyer.key, &path, |a| a["activation_status"] == "submitted").await;
    let tx_hash = submitted["activation_tx_hash"].as_str().unwrap().to_owned();
    let block = mine_to_depth(h, &tx_hash, depth).await;
    let active = h.poll_path(&buyer.key, &path, |a| a["status"] == "active").await;
    (id, tx_hash, block, active)
}

#[tokio::test]
async fn a_confirmed_activation_reorganised_away_goes_back_and_confirms_again() {
    activation_reorgs(&reorg_harness(None).await).await;
}

#[tokio::test]
async fn a_confirmed_settlement_reorganised_away_goes_back_and_settles_once() {
    settlement_reorgs(&reorg_harness(None).await).await;
}

#[tokio::test]
async fn reorgs_roll_back_and_reconfirm_on_postgres() {
    let Some(url) = fresh_postgres().await else { return };
    let mut h = reorg_harness(Some(&url)).await;
    activation_reorgs(&h).await;
    settlement_reorgs(&h).await;
    h.stop().await;
    drop_postgres(&url).await;
}

/// Two full instances (each with its own watcher) on one Postgres database see each
/// reorganisation at about the same moment: it is rolled back once (one `agreement.reorged`),
/// and the activation confirms once before and once after it.
#[tokio::test]
async fn two_watchers_roll_a_reorganisation_back_once() {
    let Some(url) = fresh_postgres().await else { return };
    let mut h = reorg_harness(Some(&url)).await;
    let mut config = config_for(&h.chain, &h.db_dir);
    config.confirmations = 1;
    config.database_url = url.clone();
    let second = pactum::service::Service::start(config).await.expect("the second instance");
    let (buyer, seller) = h.parties().await;
    for depth in [1u64, 2, 3, 3, 5] {
        let (id, _, _, _) = activated_at_depth(&h, &buyer, &seller, depth).await;
        let path = format!("/usage-agreements/{id}");

        reorg(&h, depth).await;
        h.poll_path(&buyer.key, &path, |a| a["status"] == "activating").await;
        h.automine(true).await;
        mine(&h, 1).await;
        h.wait_for(&buyer.key, &id, |a| a["status"] == "active").await;
        // Both watchers have read past the re-mined block before the events are counted.
        mine(&h, 2).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let types = event_types(&h, &buyer.key, &id).await;
        let count = |wanted: &str| types.iter().filter(|t| *t == wanted).count();
        assert_eq!(count("agreement.reorged"), 1, "depth {depth}: {types:?}");
        assert_eq!(count("activation.confirmed"), 2, "depth {depth}: {types:?}");
    }
    second.shutdown().await;
    h.stop().await;
    drop_postgres(&url).await;
}

/// The spend-guard hold of the activation of agreement `id`, as its buyer reads it.
async fn activation_hold(h: &Harness, buyer: &TestAgent, id: &str) -> Value {
    let (status, list) =
        h.call(Method::GET, "/v1/spend-guard/reservations?limit=100", Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "activation" && r["subject_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no hold for {id}: {list}"))
}

async fn activation_reorgs(h: &Harness) {
    let (buyer, seller) = h.parties().await;
    for depth in 1..=5u64 {
        let (id, tx_hash, block, confirmed) = activated_at_depth(h, &buyer, &seller, depth).await;
        let path = format!("/usage-agreements/{id}");
        assert_eq!(confirmed["activation_status"], "confirmed");
        let receipts_before = receipts_of(h, &buyer).await.len();

        reorg(h, depth).await;
        assert_eq!(mined_in(h, &tx_hash).await, None, "depth {depth}: still on the chain");
        let back = h.poll_path(&buyer.key, &path, |a| a["status"] == "activating").await;
        assert_eq!(back["activation_status"], "submitted", "depth {depth}: {back}");
        assert_eq!(back["activation_tx_hash"], tx_hash.as_str());
        let escrow = h
            .poll_path(&buyer.key, &format!("/usage-agreements/{id}/escrow-status"), |_| true)
            .await;
        assert_ne!(escrow["escrow"]["status"], "active", "depth {depth}: {escrow}");
        assert_eq!(receipts_of(h, &buyer).await.len(), receipts_before - 1, "receipt withdrawn");
        assert!(event_types(h, &buyer.key, &id).await.contains(&"agreement.reorged".to_owned()));
        // The budget hold of a reorganised activation is held again, not spent.
        assert_eq!(activation_hold(h, &buyer, &id).await["status"], "reserved", "depth {depth}");

        // The relayer sends it again; mined in a new block, it confirms again.
        h.automine(true).await;
        mine(h, 1).await;
        let again = h.wait_for(&buyer.key, &id, |a| a["status"] == "active").await;
        assert_eq!(again["activation_status"], "confirmed", "depth {depth}: {again}");
        let reblock = mined_in(h, &tx_hash).await.expect("the same transaction mined again");
        assert!(reblock > block, "depth {depth}: re-mined in {reblock}, first in {block}");
        assert_eq!(receipts_of(h, &buyer).await.len(), receipts_before, "receipt issued again");
        let confirmations = event_types(h, &buyer.key, &id)
            .await
            .into_iter()
            .filter(|t| t == "activation.confirmed")
            .count();
        assert_eq!(confirmations, 2, "depth {depth}: confirmed, reorged, confirmed again");
        let hold = activation_hold(h, &buyer, &id).await;
        assert_eq!(hold["status"], "captured", "depth {depth}: {hold}");
        let events: Vec<&str> =
            hold["events"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
        assert_eq!(events, ["reserved", "captured", "reheld", "captured"], "depth {depth}");
    }
    // Each activation's deposit and fee are in the escrow exactly once.
    let escrowed = h.chain.balance(*h.chain.escrow.address()).await;
    let fees = h.chain.accrued_fees().await;
    assert_eq!(escrowed, U256::from(5 * 100 * UNIT) + fees);
}

async fn settlement_reorgs(h: &Harness) {
    let (buyer, seller) = h.parties().await;
    let seller_wallet = h.chain.seller.address();
    for depth in 1..=5u64 {
        let id = h.active(&buyer, &seller).await;
        record(h, &seller, &id, 30, &format!("usage-{depth}")).await;
        sign_voucher(h, &buyer, &id).await;
        let seller_before = h.chain.balance(seller_wallet).await;

        h.automine(false).await;
        let (status, queued) = sponsor(h, &seller, &h.chain.seller, &id, "initiate_close").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        let action_path =
            format!("/usage-agreements/{id}/settlement-actions/{}", queued["id"].as_str().unwrap());
        let submitted =
            h.poll_path(&seller.key, &action_path, |a| a["status"] == "submitted").await;
        let tx_hash = submitted["tx_hash"].as_str().unwrap().to_owned();
        mine_to_depth(h, &tx_hash, depth).await;
        h.poll_path(&seller.key, &action_path, |a| a["status"] == "confirmed").await;
        h.poll_until(&seller.key, &id, |a| a["status"] == "settled").await;
        assert_eq!(h.chain.balance(seller_wallet).await - seller_before, U256::from(30 * UNIT));

        reorg(h, depth).await;
        let back = h.poll_until(&seller.key, &id, |a| a["status"] == "active").await;
        assert_eq!(back["activation_status"], "confirmed", "the activation is deeper: {back}");
        let action = h.poll_path(&seller.key, &action_path, |a| a["status"] == "submitted").await;
        assert!(action["error"].is_null(), "{action}");
        assert_eq!(h.chain.balance(seller_wallet).await, seller_before, "depth {depth}");

        h.automine(true).await;
        mine(h, 1).await;
        let settled = h.wait_for(&seller.key, &id, |a| a["status"] == "settled").await;
        assert_eq!(settled["status"], "settled", "depth {depth}");
        let action = h.poll_path(&seller.key, &action_path, |a| a["status"] == "confirmed").await;
        assert_eq!(action["tx_hash"], tx_hash.as_str(), "the same transaction, sent again");
        assert_eq!(h.chain.balance(seller_wallet).await - seller_before, U256::from(30 * UNIT));
        let types = event_types(h, &seller.key, &id).await;
        let settled_events = types.iter().filter(|t| *t == "agreement.settled").count();
        assert_eq!(settled_events, 2, "settled, reorged, settled again: {types:?}");
        assert!(types.contains(&"agreement.reorged".to_owned()));
    }
    // No relayer job is left in flight, and none failed.
    let store = h.service.as_ref().unwrap().state().store.clone();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM relayer_jobs")
        .fetch_all(store.reader())
        .await
        .unwrap();
    assert!(rows.iter().all(|(_, s)| s == "confirmed" || s == "batched"), "{rows:?}");
}

/// Confirmation depth 1, and seller claims wait 3 s for company before they are simulated: a
/// test has that long to reorganise the chain under a claim it just had accepted.
async fn claims_wait_harness() -> Harness {
    Harness::start_with(|config| {
        config.confirmations = 1;
        config.relayer_batch_wait_ms = Some(3_000);
    })
    .await
}

#[tokio::test]
async fn a_claim_whose_escrow_a_reorg_takes_out_before_it_is_sent_is_paid_once_remined() {
    // The reorganisation below lands between the claim's 202 and its simulation, deeper than
    // the confirmation depth.
    let h = claims_wait_harness().await;
    let (buyer, seller) = h.parties().await;
    let (id, activation, _, _) = activated_at_depth(&h, &buyer, &seller, 2).await;
    record(&h, &seller, &id, 30, "before-the-reorg").await;
    sign_voucher(&h, &buyer, &id).await;
    let seller_before = h.chain.balance(h.chain.seller.address()).await;

    let (status, queued) = sponsor(&h, &seller, &h.chain.seller, &id, "seller_claim").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    reorg(&h, 2).await;
    assert_eq!(mined_in(&h, &activation).await, None, "the activation is out of the chain");

    // The claim is refused by the chain while the escrow is out; it waits instead of failing.
    // Once the activation is mined again the claim goes through, paid exactly once.
    let path = format!("/usage-agreements/{id}");
    h.poll_path(&buyer.key, &path, |a| a["status"] == "activating").await;
    h.automine(true).await;
    mine(&h, 1).await;
    let action_path =
        format!("/usage-agreements/{id}/settlement-actions/{}", queued["id"].as_str().unwrap());
    let action = h
        .poll_path(&seller.key, &action_path, |a| {
            a["status"] == "confirmed" || a["status"] == "failed"
        })
        .await;
    assert_eq!(action["status"], "confirmed", "{action}");
    assert!(action["error"].is_null(), "{action}");
    let paid = h.chain.balance(h.chain.seller.address()).await - seller_before;
    assert_eq!(paid, U256::from(30 * UNIT), "paid exactly once");
    let again = h.wait_for(&buyer.key, &id, |a| a["status"] == "active").await;
    assert_eq!(again["activation_status"], "confirmed");
}

#[tokio::test]
async fn a_claim_batch_estimated_while_its_escrows_are_out_pays_every_claim_once() {
    // Two claims batch after a 3 s window; a reorg takes both escrows out before the batch is
    // estimated, so the estimate meets claims the contract would skip. The activations are
    // sent again with their old nonces, below the batch's, so they are mined first and every
    // claim in the batch pays: the batch must carry gas for that.
    let h = claims_wait_harness().await;
    let (buyer, seller) = h.parties().await;
    let (first, first_tx, _, _) = activated_at_depth(&h, &buyer, &seller, 2).await;
    let (second, second_tx, _, _) = activated_at_depth(&h, &buyer, &seller, 2).await;
    for (id, usage) in [(&first, "first"), (&second, "second")] {
        record(&h, &seller, id, 30, usage).await;
        sign_voucher(&h, &buyer, id).await;
    }
    let seller_before = h.chain.balance(h.chain.seller.address()).await;
    let mut actions = Vec::new();
    for id in [&first, &second] {
        let (status, queued) = sponsor(&h, &seller, &h.chain.seller, id, "seller_claim").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        actions.push(format!(
            "/usage-agreements/{id}/settlement-actions/{}",
            queued["id"].as_str().unwrap()
        ));
    }
    reorg(&h, 4).await;
    for tx in [&first_tx, &second_tx] {
        assert_eq!(mined_in(&h, tx).await, None, "the activations are out of the chain");
    }

    // The batch is sent while nothing is mined; then one block takes everything in nonce order.
    let submitted = h.poll_path(&seller.key, &actions[0], |a| a["status"] != "pending").await;
    assert_eq!(submitted["status"], "submitted", "{submitted}");
    h.automine(true).await;
    mine(&h, 1).await;
    for path in &actions {
        let action = h
            .poll_path(&seller.key, path, |a| a["status"] == "confirmed" || a["status"] == "failed")
            .await;
        assert_eq!(action["status"], "confirmed", "{action}");
    }
    let paid = h.chain.balance(h.chain.seller.address()).await - seller_before;
    assert_eq!(paid, U256::from(60 * UNIT), "each claim paid exactly once");
}
