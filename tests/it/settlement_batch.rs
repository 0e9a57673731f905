//! Sponsored seller claims batched by the relayer, end to end on anvil over HTTP: many claims
//! queued at once go out as a few `sellerClaimBatch` transactions, every seller payment arrives,
//! and the gas per claim is measured from the receipts against the same claims sent one
//! transaction each (`relayer_batch_max = 1`). docs/benchmarks.md quotes the printed figures.
//! Sponsored closes batch too, in one non-atomic `batch`, where a close the chain refuses fails
//! alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::support::USDC;
use crate::support::service::{Harness, TestAgent};
use crate::support::settlement::{
    UNIT, action_final, options, record, send_direct, sign_voucher, sponsor, sponsored_body,
};
use alloy::consensus::Transaction as _;
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use pactum::escrow::bindings::UsageEscrow;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Agreements, hence sponsored claims, per run.
const AGREEMENTS: usize = 20;
/// What one run of [`claims`] measured.
struct Run {
    /// Settlement actions confirmed.
    actions: usize,
    /// Actions carried by each distinct transaction, in hash order.
    per_transaction: BTreeMap<B256, usize>,
    /// Sum of `gasUsed` over those transactions' receipts.
    gas_used: u64,
}

impl Run {
    fn gas_per_action(&self) -> u64 {
        self.gas_used / self.actions as u64
    }
}

/// The seller's sponsored claim on `id` for `units`: where to submit it and the body, the
/// authorization `settlement-action-options` offers signed with the seller's key.
async fn claim_request(h: &Harness, seller: &TestAgent, id: &str, units: u64) -> (String, Value) {
    let offered = options(h, seller, id, "seller_claim").await;
    assert_eq!(offered["possible"], true, "{offered}");
    assert_eq!(offered["units"], units, "{offered}");
    assert_eq!(offered["amount"], (units * UNIT).to_string(), "{offered}");
    let sponsored = &offered["paths"]["sponsored"];
    let body = sponsored_body(&h.chain.seller, sponsored);
    (sponsored["submit_to"].as_str().unwrap().to_owned(), body)
}

/// [`AGREEMENTS`] active agreements with usage and a voucher each, whose seller then submits a
/// sponsored claim on every one at once, on a service whose relayer batches at most
/// `batch_max` claims; checks every claim is paid and returns what the transactions cost.
async fn claims(batch_max: usize) -> Run {
    let h = Arc::new(Harness::start_with(|config| config.relayer_batch_max = batch_max).await);
    let (buyer, seller) = h.parties().await;
    // As in tests/it/gas_on_anvil.rs, the seller already holds USDC (a running deployment's
    // condition), so no claim pays for a first balance slot.
    let seller_wallet = h.chain.seller.address();
    h.chain.mint(seller_wallet, USDC).await;

    // Claims of 1, 2, … units, so a payment booked to the wrong agreement shows in its checks.
    let mut agreements = Vec::with_capacity(AGREEMENTS);
    for i in 0..AGREEMENTS {
        let id = h.active(&buyer, &seller).await;
        let units = i as u64 + 1;
        record(&h, &seller, &id, units, &format!("usage-{id}")).await;
        sign_voucher(&h, &buyer, &id).await;
        agreements.push((id, units));
    }
    let mut requests = Vec::with_capacity(AGREEMENTS);
    for (id, units) in &agreements {
        requests.push(claim_request(&h, &seller, id, *units).await);
    }
    let seller_before = h.chain.balance(seller_wallet).await;

    // Every claim at once, as many agents settling at the same moment would.
    let mut submitted = tokio::task::JoinSet::new();
    for (index, (path, body)) in requests.into_iter().enumerate() {
        let (h, key) = (h.clone(), seller.key.clone());
        submitted.spawn(async move {
            let (status, queued) = h.call(Method::POST, &path, Some(&key), Some(&body)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
            assert_eq!(queued["status"], "pending", "{queued}");
            (index, queued["id"].as_str().unwrap().to_owned())
        });
    }
    let mut action_ids = vec![String::new(); AGREEMENTS];
    for (index, action_id) in submitted.join_all().await {
        action_ids[index] = action_id;
    }

    let mut per_transaction = BTreeMap::new();
    for ((id, units), action_id) in agreements.iter().zip(&action_ids) {
        let path = format!("/usage-agreements/{id}/settlement-actions/{action_id}");
        let done = h
            .wait_path(&seller.key, &path, |a| {
                a["status"] == "confirmed" || a["status"] == "failed"
            })
            .await;
        assert_eq!(done["status"], "confirmed", "{done}");
        assert_eq!(done["amount"], (units * UNIT).to_string(), "{done}");
        let tx_hash: B256 = done["tx_hash"].as_str().unwrap().parse().unwrap();
        *per_transaction.entry(tx_hash).or_insert(0) += 1;
    }

    let claimed: u64 = agreements.iter().map(|(_, units)| units * UNIT).sum();
    let seller_after = h.chain.balance(seller_wallet).await;
    assert_eq!(seller_after - seller_before, U256::from(claimed));

    for (id, units) in &agreements {
        let path = format!("/usage-agreements/{id}/escrow-status");
        let expected = (units * UNIT).to_string();
        let status =
            h.wait_path(&seller.key, &path, |s| s["escrow"]["claimed_amount"] == expected).await;
        assert_eq!(status["escrow"]["claimed_units"], *units, "{status}");
    }

    let mut gas_used = 0;
    for tx_hash in per_transaction.keys() {
        let receipt = h.chain.provider.get_transaction_receipt(*tx_hash).await.unwrap().unwrap();
        assert!(receipt.status(), "{tx_hash} reverted");
        assert_eq!(receipt.from, h.chain.relayer.address(), "{tx_hash} not sent by the relayer");
        gas_used += receipt.gas_used;
    }
    Run { actions: AGREEMENTS, per_transaction, gas_used }
}

#[tokio::test]
async fn sponsored_claims_queued_together_go_out_in_fewer_transactions_for_less_gas_each() {
    let (batched, single) = tokio::join!(claims(50), claims(1));

    let sizes: Vec<usize> = batched.per_transaction.values().copied().collect();
    assert!(
        batched.per_transaction.len() < batched.actions,
        "{} claims went out in {} transactions: {sizes:?}",
        batched.actions,
        batched.per_transaction.len(),
    );
    assert_eq!(single.per_transaction.len(), single.actions, "relayer_batch_max = 1 batched");

    let (batched_gas, single_gas) = (batched.gas_per_action(), single.gas_per_action());
    println!(
        "batched (relayer_batch_max = 50): {} claims in {} transactions {sizes:?}, {} gas, \
         {batched_gas} gas per claim",
        batched.actions,
        batched.per_transaction.len(),
        batched.gas_used,
    );
    println!(
        "single (relayer_batch_max = 1): {} claims in {} transactions, {} gas, {single_gas} gas \
         per claim",
        single.actions,
        single.per_transaction.len(),
        single.gas_used,
    );
    println!("batched / single: {:.3}", batched_gas as f64 / single_gas as f64);
    assert!(batched_gas < single_gas, "batched {batched_gas} ≥ single {single_gas} gas per claim");
}

#[tokio::test]
async fn sponsored_closes_queued_together_go_in_one_batch_and_a_refused_one_fails_alone() {
    // Closes wait 5 s for company, so the test can move one escrow on meanwhile.
    let h = Harness::start_with(|config| config.relayer_batch_wait_ms = Some(5_000)).await;
    let (buyer, seller) = h.parties().await;
    let (by_buyer, by_seller, stale) = (
        h.active(&buyer, &seller).await,
        h.active(&buyer, &seller).await,
        h.active(&buyer, &seller).await,
    );
    // The seller closes with the buyer's final voucher: it settles at once, paying both
    // parties (the dearest call a settlement batch carries).
    record(&h, &seller, &by_seller, 40, "usage-40").await;
    sign_voucher(&h, &buyer, &by_seller).await;
    let path = format!("/usage-agreements/{stale}/initiate-close-calldata");
    let (status, direct_close) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::OK, "{direct_close}");
    let seller_before = h.chain.balance(h.chain.seller.address()).await;

    let mut actions = Vec::new();
    for (id, agent, wallet) in [
        (&by_buyer, &buyer, &h.chain.buyer),
        (&by_seller, &seller, &h.chain.seller),
        (&stale, &buyer, &h.chain.buyer),
    ] {
        let (status, queued) = sponsor(&h, agent, wallet, id, "initiate_close").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        actions.push((id, agent, queued["id"].as_str().unwrap().to_owned()));
    }
    // While the closes wait for company, the buyer closes the third from its own wallet.
    send_direct(&h, h.chain.buyer.address(), &direct_close).await;

    let mut done = Vec::new();
    for (id, agent, action) in &actions {
        done.push(action_final(&h, &agent.key, id, action).await);
    }
    assert_eq!(done[0]["status"], "confirmed", "{}", done[0]);
    assert_eq!(done[1]["status"], "confirmed", "{}", done[1]);
    assert_eq!(done[0]["tx_hash"], done[1]["tx_hash"], "one transaction carried both");
    assert_eq!(done[2]["status"], "failed", "{}", done[2]);
    let error = done[2]["error"].as_str().unwrap();
    assert!(error.starts_with("BatchCallFailed"), "the failure says why: {error}");
    assert_eq!(done[2]["tx_hash"], done[0]["tx_hash"], "refused inside the same batch");

    let hash: B256 = done[0]["tx_hash"].as_str().unwrap().parse().unwrap();
    let sent = h.chain.provider.get_transaction_by_hash(hash).await.unwrap().unwrap();
    let call = UsageEscrow::batchCall::abi_decode(sent.inner.input()).expect("a settlement batch");
    assert_eq!((call.calls.len(), call.atomic), (3, false));
    let receipt = h.chain.provider.get_transaction_receipt(hash).await.unwrap().unwrap();
    assert!(receipt.status(), "the batch went through");
    assert!(receipt.gas_used < sent.inner.gas_limit(), "the batch's gas carried every call");

    for (id, status) in [(&by_buyer, "closing"), (&by_seller, "settled"), (&stale, "closing")] {
        h.wait_for(&buyer.key, id, |a| a["status"] == status).await;
    }
    let paid = h.chain.balance(h.chain.seller.address()).await - seller_before;
    assert_eq!(paid, U256::from(40 * UNIT), "the seller's close paid its voucher once");
}
