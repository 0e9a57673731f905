//! A seller the token refuses to pay, inside a relayer batch: the escrow skips its claims with
//! `ClaimSkipped(payout_refused)` instead of sinking the batch, the claim actions fail saying so,
//! nothing changes on-chain, and once the token pays the seller again the same claims go through.

use std::sync::Arc;

use crate::support::service::{Harness, TestAgent};
use crate::support::settlement::{UNIT, options, record, sign_voucher, sponsored_body};
use alloy::primitives::U256;
use alloy::providers::Provider;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Claims queued together, so the relayer sends them as one `sellerClaimBatch`.
const CLAIMS: u64 = 3;

/// An agreement id, where to submit its claim, and the signed body.
type Request = (String, String, Value);

/// The seller's sponsored claim on each agreement: where to submit it and the signed body.
async fn claim_requests(h: &Harness, seller: &TestAgent, ids: &[String]) -> Vec<Request> {
    let mut requests = Vec::new();
    for id in ids {
        let offered = options(h, seller, id, "seller_claim").await;
        assert_eq!(offered["possible"], true, "{offered}");
        let sponsored = &offered["paths"]["sponsored"];
        let body = sponsored_body(&h.chain.seller, sponsored);
        requests.push((id.clone(), sponsored["submit_to"].as_str().unwrap().to_owned(), body));
    }
    requests
}

/// Submits every request at once; returns each action's path, in the order of `requests`.
async fn submit_all(h: &Arc<Harness>, seller: &TestAgent, requests: Vec<Request>) -> Vec<String> {
    let mut submitted = tokio::task::JoinSet::new();
    for (index, (id, path, body)) in requests.into_iter().enumerate() {
        let (h, key) = (h.clone(), seller.key.clone());
        submitted.spawn(async move {
            let (status, queued) = h.call(Method::POST, &path, Some(&key), Some(&body)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
            let action = queued["id"].as_str().unwrap().to_owned();
            (index, format!("/usage-agreements/{id}/settlement-actions/{action}"))
        });
    }
    let mut actions = submitted.join_all().await;
    actions.sort();
    actions.into_iter().map(|(_, path)| path).collect()
}

fn ended(action: &Value) -> bool {
    action["status"] == "confirmed" || action["status"] == "failed"
}

#[tokio::test]
async fn a_blacklisted_seller_in_a_batch_is_skipped_and_claims_again_later() {
    // A batch wait long enough that the concurrent claims meet in one batch on a busy machine.
    let h =
        Arc::new(Harness::start_with(|config| config.relayer_batch_wait_ms = Some(5_000)).await);
    let (buyer, seller) = h.parties().await;
    let mut ids = Vec::new();
    for units in 1..=CLAIMS {
        let id = h.active(&buyer, &seller).await;
        record(&h, &seller, &id, units, &format!("usage-{id}")).await;
        sign_voucher(&h, &buyer, &id).await;
        ids.push(id);
    }
    let seller_wallet = h.chain.seller.address();
    let seller_before = h.chain.balance(seller_wallet).await;
    let requests = claim_requests(&h, &seller, &ids).await;

    // The token blacklists the seller in the block that carries the batch, ahead of it: the
    // service's checks (against the latest block) pass and the refusal meets the batch on-chain.
    h.automine(false).await;
    let usdc = &h.chain.usdc;
    let blacklisting = usdc
        .blacklist(seller_wallet)
        .max_priority_fee_per_gas(100_000_000_000)
        .max_fee_per_gas(200_000_000_000)
        .send()
        .await
        .unwrap();
    let actions = submit_all(&h, &seller, requests).await;
    for path in &actions {
        h.poll_path(&seller.key, path, |a| a["tx_hash"].is_string()).await;
    }
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
    h.automine(true).await;
    assert!(blacklisting.get_receipt().await.unwrap().status());

    let mut refused = Vec::new();
    for path in &actions {
        refused.push(h.wait_path(&seller.key, path, ended).await);
    }
    for action in &refused {
        assert_eq!(action["status"], "failed", "{action}");
        let error = action["error"].as_str().unwrap();
        assert!(error.starts_with("ClaimSkipped (payout_refused)"), "{action}");
    }
    // One transaction carried them all, and it did not revert: nothing moved, nothing changed.
    let tx = &refused[0]["tx_hash"];
    assert!(refused.iter().all(|a| &a["tx_hash"] == tx), "{refused:?}");
    for id in &ids {
        let path = format!("/usage-agreements/{id}/escrow-status");
        let (_, status) = h.call(Method::GET, &path, Some(&seller.key), None).await;
        assert_eq!(status["escrow"]["claimed_units"], 0, "{status}");
    }
    assert_eq!(h.chain.balance(seller_wallet).await, seller_before);

    // Paid again by the token, the seller claims the same units.
    usdc.unBlacklist(seller_wallet).send().await.unwrap().get_receipt().await.unwrap();
    // A later claim carries a new authorization (a later deadline): each is relayed once.
    h.chain.advance(60).await;
    let requests = claim_requests(&h, &seller, &ids).await;
    for path in submit_all(&h, &seller, requests).await {
        let action = h.wait_path(&seller.key, &path, ended).await;
        assert_eq!(action["status"], "confirmed", "{action}");
    }
    let claimed: u64 = (1..=CLAIMS).map(|units| units * UNIT).sum();
    assert_eq!(h.chain.balance(seller_wallet).await - seller_before, U256::from(claimed));
}
