//! The relayer under injected faults on a real anvil: transactions dropped from the node's pool,
//! a base-fee spike that leaves a pending transaction underpriced, and a fee cap below the
//! market. Each test ends with every job final and correct on-chain.

use std::time::Duration;

use crate::support::service::{Harness, TestAgent};
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use pactum::money::TokenAmount;
use reqwest::Method;
use serde_json::Value;
use sqlx::Row;

/// One stored attempt, as the test reads it.
#[derive(Debug, Clone)]
struct Attempt {
    tx_hash: B256,
    job_id: String,
    nonce: u64,
    max_fee: u128,
    tip: u128,
    status: String,
}

async fn attempts(h: &Harness) -> Vec<Attempt> {
    let store = h.service.as_ref().unwrap().state().store.clone();
    let rows = sqlx::query(
        "SELECT tx_hash, job_id, nonce, max_fee_per_gas, max_priority_fee_per_gas, status \
         FROM relayer_attempts ORDER BY nonce, created_at",
    )
    .fetch_all(store.reader())
    .await
    .unwrap();
    let mut all: Vec<Attempt> = rows
        .iter()
        .map(|row| Attempt {
            tx_hash: row.get::<String, _>("tx_hash").parse().unwrap(),
            job_id: row.get("job_id"),
            nonce: row.get::<i64, _>("nonce") as u64,
            max_fee: row.get::<String, _>("max_fee_per_gas").parse().unwrap(),
            tip: row.get::<String, _>("max_priority_fee_per_gas").parse().unwrap(),
            status: row.get("status"),
        })
        .collect();
    all.sort_by_key(|a| (a.nonce, a.max_fee));
    all
}

async fn job_statuses(h: &Harness) -> Vec<(String, String)> {
    let store = h.service.as_ref().unwrap().state().store.clone();
    sqlx::query("SELECT id, status FROM relayer_jobs ORDER BY id")
        .fetch_all(store.reader())
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("id"), row.get("status")))
        .collect()
}

/// An accepted agreement whose activation was just queued (HTTP 202).
async fn queue_activation(h: &Harness) -> (TestAgent, String) {
    let (buyer, seller) = h.parties().await;
    let id = h.queued(&buyer, &seller).await;
    (buyer, id)
}

/// A harness without an infra fee: the buyer's EIP-2612 permit nonce would otherwise tie
/// concurrent activations of one buyer wallet together (only the first could use it before it
/// is mined).
async fn feeless() -> Harness {
    Harness::start_with(|config| {
        config.infra_fee_bps = 0;
        config.infra_fee_fixed = TokenAmount::from_base_units(0);
        config.infra_fee_minimum = TokenAmount::from_base_units(0);
    })
    .await
}

/// With automine off, queues `n` activations and waits until each is `submitted`.
async fn submitted_activations(h: &Harness, n: usize) -> Vec<(TestAgent, String)> {
    h.automine(false).await;
    let mut queued = Vec::new();
    for _ in 0..n {
        queued.push(queue_activation(h).await);
    }
    for (buyer, id) in &queued {
        h.poll_until(&buyer.key, id, submitted).await;
    }
    queued
}

fn submitted(agreement: &Value) -> bool {
    agreement["activation_status"] == "submitted"
}

fn confirmed(agreement: &Value) -> bool {
    agreement["status"] == "active" && agreement["activation_status"] == "confirmed"
}

async fn mine(h: &Harness) {
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
}

async fn set_next_base_fee(h: &Harness, wei: u128) {
    let _: Value = h
        .chain
        .provider
        .raw_request("anvil_setNextBlockBaseFeePerGas".into(), (wei.to_string(),))
        .await
        .unwrap();
}

async fn nonce_of(h: &Harness, who: Address) -> u64 {
    h.chain.provider.get_transaction_count(who).await.unwrap()
}

/// Every job's attempts share one nonce, and the jobs' nonces are distinct.
fn one_nonce_per_job(all: &[Attempt]) -> Vec<u64> {
    let mut by_job = std::collections::BTreeMap::<&str, Vec<u64>>::new();
    for a in all {
        by_job.entry(&a.job_id).or_default().push(a.nonce);
    }
    let mut nonces = Vec::new();
    for (job, ns) in by_job {
        assert!(ns.iter().all(|n| *n == ns[0]), "job {job} sent with several nonces: {ns:?}");
        nonces.push(ns[0]);
    }
    nonces.sort_unstable();
    nonces
}

#[tokio::test]
async fn dropped_transactions_are_sent_again_and_leave_no_nonce_gap() {
    let h = feeless().await;
    let relayer = h.chain.relayer.address();
    let before = nonce_of(&h, relayer).await;
    let queued = submitted_activations(&h, 3).await;
    let sent = attempts(&h).await;
    assert_eq!(sent.len(), 3, "{sent:?}");

    // The node loses every one of them from its pool.
    let _: Value =
        h.chain.provider.raw_request("anvil_dropAllTransactions".into(), ()).await.unwrap();
    for a in &sent {
        assert!(h.chain.provider.get_transaction_by_hash(a.tx_hash).await.unwrap().is_none());
    }

    // Without a restart, the relayer notices and sends them again; all are confirmed.
    h.automine(true).await;
    for (buyer, id) in &queued {
        let done = h.wait_for(&buyer.key, id, confirmed).await;
        let hash: B256 = done["activation_tx_hash"].as_str().unwrap().parse().unwrap();
        let receipt = h.chain.provider.get_transaction_receipt(hash).await.unwrap().unwrap();
        assert!(receipt.status());
    }

    // No nonce gap: the account's nonce moved by exactly the three jobs, each with one nonce.
    let all = attempts(&h).await;
    let nonces = one_nonce_per_job(&all);
    assert_eq!(nonces, vec![before, before + 1, before + 2]);
    assert_eq!(nonce_of(&h, relayer).await, before + 3);
    assert!(all.iter().all(|a| a.status == "confirmed"), "{all:?}");
    assert!(job_statuses(&h).await.iter().all(|(_, s)| s == "confirmed"));
    let rebroadcasts =
        pactum::metrics::registry().counter("pactum_relayer_dropped_rebroadcasts_total", &[]);
    assert!(rebroadcasts >= 3, "{rebroadcasts}");
}

#[tokio::test]
async fn a_base_fee_spike_gets_the_pending_transaction_replaced_with_bumped_fees() {
    let h = Harness::start_with(|config| config.relayer_replace_after_blocks = 2).await;
    h.automine(false).await;
    let (buyer, id) = queue_activation(&h).await;
    h.poll_until(&buyer.key, &id, submitted).await;
    let original = attempts(&h).await.remove(0);

    // The base fee jumps to ten times what the transaction offers: blocks go by without it.
    let spike = original.max_fee * 10;
    set_next_base_fee(&h, spike).await;
    mine(&h).await;
    mine(&h).await;
    assert!(h.chain.provider.get_transaction_receipt(original.tx_hash).await.unwrap().is_none());

    // A replacement appears: same nonce, both fee fields at least 10% up, above the base fee.
    let mut replacement = None;
    for _ in 0..200 {
        let all = attempts(&h).await;
        if all.len() >= 2 {
            replacement = Some(all);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = replacement.expect("a replacement attempt");
    let new = all.last().unwrap().clone();
    assert_eq!(new.nonce, original.nonce);
    assert!(new.max_fee * 10 >= original.max_fee * 11, "{all:?}");
    assert!(new.tip * 10 >= original.tip * 11, "{all:?}");
    assert!(new.max_fee > spike * 7 / 8, "pays the market: {all:?}");
    assert_eq!(all[0].status, "replaced", "{all:?}");

    // It is mined and confirmed; every attempt is kept.
    let done = h.wait_for(&buyer.key, &id, confirmed).await;
    let mined: B256 = done["activation_tx_hash"].as_str().unwrap().parse().unwrap();
    assert!(all.iter().any(|a| a.tx_hash == mined), "{mined} is one of the job's hashes");
    let receipt = h.chain.provider.get_transaction_receipt(mined).await.unwrap().unwrap();
    assert!(receipt.status());
    let kept = attempts(&h).await;
    assert!(kept.len() >= 2, "{kept:?}");
    assert_eq!(kept.iter().filter(|a| a.status == "confirmed").count(), 1, "{kept:?}");
    assert!(kept.iter().all(|a| a.nonce == original.nonce));
    assert_eq!(job_statuses(&h).await, vec![(original.job_id.clone(), "confirmed".into())]);
    assert!(
        pactum::metrics::registry()
            .counter("pactum_relayer_attempts_total", &[("kind", "replacement")])
            >= 1
    );
}

#[tokio::test]
async fn above_the_fee_cap_a_job_waits_with_its_reason_then_goes_through() {
    let h = Harness::start_with(|config| config.relayer_max_fee_per_gas_gwei = 40).await;
    h.automine(false).await;
    // The market: about 87 gwei, over the 40 gwei cap.
    set_next_base_fee(&h, 100_000_000_000).await;
    mine(&h).await;
    let (buyer, id) = queue_activation(&h).await;

    let waiting = h
        .poll_until(&buyer.key, &id, |a| {
            a["activation_error"].as_str().is_some_and(|e| e.starts_with("waiting for fees"))
        })
        .await;
    let reason = waiting["activation_error"].as_str().unwrap();
    assert!(reason.contains("above the cap 40 gwei"), "{reason}");
    assert_eq!(waiting["status"], "activating", "{waiting}");
    assert_ne!(waiting["activation_status"], "failed", "{waiting}");
    assert!(attempts(&h).await.is_empty(), "nothing signed above the cap");
    // Still waiting a while later, never failed.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let path = format!("/usage-agreements/{id}");
    let (_, still) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(still["status"], "activating", "{still}");
    assert!(attempts(&h).await.is_empty());

    // Empty blocks bring the base fee down under the cap: the job goes through.
    let _: Value = h.chain.provider.raw_request("anvil_mine".into(), (12u64,)).await.unwrap();
    h.automine(true).await;
    let done = h.wait_for(&buyer.key, &id, confirmed).await;
    assert_eq!(done["activation_error"], Value::Null, "{done}");
    let sent = attempts(&h).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].max_fee <= 40_000_000_000, "{sent:?}");
    assert_eq!(
        done["activation_tx_hash"].as_str().unwrap().parse::<B256>().unwrap(),
        sent[0].tx_hash
    );
}

#[tokio::test]
async fn a_pending_transaction_whose_replacement_is_above_the_cap_waits_then_is_mined() {
    let h = Harness::start_with(|config| {
        config.relayer_max_fee_per_gas_gwei = 40;
        config.relayer_replace_after_blocks = 2;
    })
    .await;
    h.automine(false).await;
    let (buyer, id) = queue_activation(&h).await;
    h.poll_until(&buyer.key, &id, submitted).await;
    let original = attempts(&h).await.remove(0);

    // The base fee spikes to 100 gwei, over the 40 gwei cap: no replacement, a clear reason,
    // and the activation stays `submitted`.
    set_next_base_fee(&h, 100_000_000_000).await;
    mine(&h).await;
    mine(&h).await;
    let waiting = h
        .poll_until(&buyer.key, &id, |a| {
            a["activation_error"].as_str().is_some_and(|e| e.starts_with("waiting for fees"))
        })
        .await;
    assert_eq!(waiting["activation_status"], "submitted", "{waiting}");
    assert_eq!(waiting["status"], "activating", "{waiting}");
    let reason = waiting["activation_error"].as_str().unwrap();
    assert!(reason.contains("above the cap 40 gwei"), "{reason}");
    let all = attempts(&h).await;
    assert_eq!(all.len(), 1, "nothing signed above the cap: {all:?}");
    assert_eq!(all[0].status, "broadcast");

    // Fees fall back: the transaction (or a capped replacement) is mined and confirmed.
    let _: Value = h.chain.provider.raw_request("anvil_mine".into(), (40u64,)).await.unwrap();
    h.automine(true).await;
    let done = h.wait_for(&buyer.key, &id, confirmed).await;
    assert_eq!(done["activation_error"], Value::Null, "{done}");
    let kept = attempts(&h).await;
    assert!(kept.iter().all(|a| a.nonce == original.nonce && a.max_fee <= 40_000_000_000));
    assert_eq!(kept.iter().filter(|a| a.status == "confirmed").count(), 1, "{kept:?}");
}

#[tokio::test]
async fn a_nonce_gap_no_attempt_can_fill_is_used_up_by_a_no_op_self_send() {
    let h = feeless().await;
    let relayer = h.chain.relayer.address();
    let before = nonce_of(&h, relayer).await;
    let queued = submitted_activations(&h, 3).await;
    let sent = attempts(&h).await;
    assert_eq!(sent.iter().map(|a| a.nonce).collect::<Vec<_>>(), [before, before + 1, before + 2]);

    // The node refuses the middle transaction outright after the next nonce was taken (as
    // when another instance allocated it meanwhile): its attempt and its job are failed, and
    // the node no longer has it. No saved attempt can fill that nonce.
    let middle = sent[1].clone();
    let store = h.service.as_ref().unwrap().state().store.clone();
    sqlx::query("UPDATE relayer_attempts SET status = 'failed' WHERE tx_hash = $1")
        .bind(middle.tx_hash.to_string())
        .execute(store.reader())
        .await
        .unwrap();
    sqlx::query("UPDATE relayer_jobs SET status = 'failed', error = 'refused' WHERE id = $1")
        .bind(&middle.job_id)
        .execute(store.reader())
        .await
        .unwrap();
    let _: Value = h
        .chain
        .provider
        .raw_request("anvil_dropTransaction".into(), (middle.tx_hash,))
        .await
        .unwrap();

    // The first goes through; the third waits on the gap until the relayer uses the nonce up
    // with a no-op self-send, then goes through too.
    h.automine(true).await;
    for (buyer, id) in [&queued[0], &queued[2]] {
        h.wait_for(&buyer.key, id, confirmed).await;
    }
    let fills: Vec<(String, String)> =
        sqlx::query_as("SELECT id, status FROM relayer_jobs WHERE kind = 'nonce_fill'")
            .fetch_all(store.reader())
            .await
            .unwrap();
    if fills.len() != 1 {
        let refused = h.chain.provider.get_transaction_receipt(middle.tx_hash).await.unwrap();
        panic!(
            "fills {fills:?}; attempts {:?}; the refused transaction's receipt {refused:?}",
            attempts(&h).await
        );
    }
    let fill = attempts(&h).await.into_iter().find(|a| a.job_id == fills[0].0).unwrap();
    assert_eq!(fill.nonce, middle.nonce);
    let on_chain = h.chain.provider.get_transaction_by_hash(fill.tx_hash).await.unwrap().unwrap();
    let request = on_chain.into_request();
    assert_eq!(request.to, Some(relayer.into()), "a self-send");
    assert!(request.value.unwrap_or_default().is_zero());
    assert!(request.input.input().is_none_or(|data| data.is_empty()));
    let receipt = h.chain.provider.get_transaction_receipt(fill.tx_hash).await.unwrap().unwrap();
    assert!(receipt.status());
    assert_eq!(nonce_of(&h, relayer).await, before + 3);
    let mut status = String::new();
    for _ in 0..200 {
        status = job_statuses(&h).await.into_iter().find(|(id, _)| *id == fills[0].0).unwrap().1;
        if status == "confirmed" {
            break;
        }
        mine(&h).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "confirmed", "the fill is followed to confirmation like any job");
    let filled = pactum::metrics::registry().counter("pactum_relayer_nonce_fills_total", &[]);
    assert!(filled >= 1);
}

#[tokio::test]
async fn the_replacement_countdown_goes_on_across_a_restart() {
    let mut h = Harness::start_with(|config| config.relayer_replace_after_blocks = 3).await;
    h.automine(false).await;
    let (buyer, id) = queue_activation(&h).await;
    h.poll_until(&buyer.key, &id, submitted).await;
    let original = attempts(&h).await.remove(0);
    // The monitor has started the countdown (and saved where).
    let store = h.service.as_ref().unwrap().state().store.clone();
    let mut first_seen = None;
    for _ in 0..200 {
        first_seen = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT first_seen_block FROM relayer_attempts WHERE tx_hash = $1",
        )
        .bind(original.tx_hash.to_string())
        .fetch_one(store.reader())
        .await
        .unwrap();
        if first_seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_seen = first_seen.expect("the monitor saw the attempt") as u64;

    // Blocks get too small for it (it stays valid in the pool, unmined); two go by, then the
    // service restarts.
    let _: Value =
        h.chain.provider.raw_request("evm_setBlockGasLimit".into(), ("0x186a0",)).await.unwrap();
    mine(&h).await;
    mine(&h).await;
    assert_eq!(attempts(&h).await.len(), 1, "not replaced before its third block");
    h.restart().await;

    // One more block makes three since it was first seen: the restarted relayer replaces it
    // now, not three blocks after the restart.
    mine(&h).await;
    let head = h.chain.provider.get_block_number().await.unwrap();
    assert!(head >= first_seen + 3, "head {head}, first seen {first_seen}");
    let mut all = Vec::new();
    for _ in 0..200 {
        all = attempts(&h).await;
        if all.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(all.len() >= 2, "no replacement after the restart: {all:?}");
    assert!(all.iter().all(|a| a.nonce == original.nonce), "{all:?}");
    assert_eq!(h.chain.provider.get_block_number().await.unwrap(), head, "no block was needed");

    let _: Value =
        h.chain.provider.raw_request("evm_setBlockGasLimit".into(), ("0x1c9c380",)).await.unwrap();
    h.automine(true).await;
    h.wait_for(&buyer.key, &id, confirmed).await;
}
