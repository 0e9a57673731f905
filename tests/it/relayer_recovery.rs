//! The relayer and the watcher against what a real chain does: a transaction that passes
//! simulation but reverts in its block, and a process that dies after saving a signed
//! transaction whose broadcast was lost.

use crate::support::service::{Harness, TestAgent};
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use reqwest::Method;
use serde_json::{Value, json};

/// An accepted agreement whose activation was just queued (HTTP 202).
async fn queue_activation(h: &Harness) -> (TestAgent, String) {
    let (buyer, seller) = h.parties().await;
    let id = h.queued(&buyer, &seller).await;
    (buyer, id)
}

fn submitted(agreement: &Value) -> bool {
    agreement["activation_status"] == "submitted"
}

#[tokio::test]
async fn a_revert_in_the_block_fails_the_activation_with_its_decoded_reason() {
    let h = Harness::start().await;
    h.automine(false).await;
    let (buyer, id) = queue_activation(&h).await;
    let agreement = h.poll_until(&buyer.key, &id, submitted).await;
    let tx_hash: B256 = agreement["activation_tx_hash"].as_str().unwrap().parse().unwrap();

    // The buyer empties its wallet in the same block, ahead of the activation (higher tip).
    let balance = h.chain.balance(h.chain.buyer.address()).await;
    let transfer = h
        .chain
        .usdc
        .transfer(h.chain.seller.address(), balance)
        .from(h.chain.buyer.address())
        .gas(100_000)
        .max_priority_fee_per_gas(50_000_000_000)
        .max_fee_per_gas(100_000_000_000);
    let pending = transfer.send().await.unwrap();
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
    assert!(pending.get_receipt().await.unwrap().status());
    h.automine(true).await;

    let failed = h.wait_for(&buyer.key, &id, |a| a["status"] == "failed").await;
    assert_eq!(failed["activation_status"], "failed");
    assert_eq!(failed["infra_fee"]["status"], "failed");
    let reason = failed["activation_error"].as_str().unwrap();
    assert!(reason.starts_with("InsufficientBalance("), "{reason}");
    let receipt = h.chain.provider.get_transaction_receipt(tx_hash).await.unwrap().unwrap();
    assert!(!receipt.status(), "the activation itself reverted on-chain");
    assert_eq!(h.chain.balance(*h.chain.escrow.address()).await, U256::ZERO);
    // What it held of the buyer's budgets is given back.
    let (_, holds) =
        h.call(Method::GET, "/v1/spend-guard/reservations", Some(&buyer.key), None).await;
    let hold = &holds["data"][0];
    assert_eq!(
        (hold["source"].as_str(), hold["subject_id"].as_str()),
        (Some("activation"), Some(id.as_str()))
    );
    assert_eq!(
        (hold["status"].as_str(), hold["counted_cents"].as_u64()),
        (Some("released"), Some(0)),
        "{hold}"
    );
}

#[tokio::test]
async fn a_signed_transaction_lost_in_a_crash_is_rebroadcast_from_the_store() {
    let mut h = Harness::start().await;
    h.automine(false).await;
    let (buyer, id) = queue_activation(&h).await;
    let agreement = h.poll_until(&buyer.key, &id, submitted).await;
    let tx_hash: B256 = agreement["activation_tx_hash"].as_str().unwrap().parse().unwrap();

    // The process stops and the node loses the transaction from its pool.
    h.stop().await;
    let _: Value =
        h.chain.provider.raw_request("anvil_dropTransaction".into(), (tx_hash,)).await.unwrap();
    assert!(h.chain.provider.get_transaction_by_hash(tx_hash).await.unwrap().is_none());

    // On start-up the saved transaction goes out again, byte for byte, and is confirmed.
    h.automine(true).await;
    h.restart().await;
    let done = h
        .wait_for(&buyer.key, &id, |a| {
            a["status"] == "active" && a["activation_status"] == "confirmed"
        })
        .await;
    assert_eq!(done["activation_tx_hash"], json!(tx_hash));
    let receipt = h.chain.provider.get_transaction_receipt(tx_hash).await.unwrap().unwrap();
    assert!(receipt.status());
    assert_eq!(h.job_count().await, 1);
}

#[tokio::test]
async fn an_activation_is_confirmed_only_at_the_configured_depth() {
    let h = Harness::start().await;
    h.automine(false).await;
    let (buyer, id) = queue_activation(&h).await;
    h.poll_until(&buyer.key, &id, submitted).await;

    // Mined in the head block: one confirmation of the two configured.
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let path = format!("/usage-agreements/{id}/escrow-status");
    let head = h.chain.provider.get_block_number().await.unwrap();
    for _ in 0..40 {
        let (_, status) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
        if status["head_block_number"] == json!(head) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Several watcher passes (50 ms each) later, still one deep.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (_, status) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(status["head_block_number"], json!(head), "{status}");
    assert_eq!(status["activation_status"], "submitted", "{status}");
    assert_eq!(status["escrow"], Value::Null);

    // The next block makes it two deep.
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let done = h
        .poll_until(&buyer.key, &id, |a| {
            a["status"] == "active" && a["activation_status"] == "confirmed"
        })
        .await;
    let (_, status) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(status["escrow"]["block_number"], json!(head), "{done}");
    assert_eq!(status["escrow"]["confirmations"], 2);
}
