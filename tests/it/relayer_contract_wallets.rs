//! Sponsored seller claims whose buyer or seller has code never share a `sellerClaimBatch`: a
//! claim of a smart-wallet buyer queued with claims of key-only parties is sent alone, and the
//! others still go out together. On anvil, over HTTP; checked on the chain and in the job records.
//! The parties' code is read in one `eth_call` with a state override, and one by one from a node
//! that refuses overrides (a proxy standing in for one); both reads agree with `eth_getCode`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::support::DevChain;
use crate::support::faulty_rpc::FaultyRpc;
use crate::support::service::{Harness, TestAgent};
use crate::support::settlement::{options, record, sign_voucher, sponsored_body};
use crate::support::smart_wallet::{active_from_wallet, smart_wallet};
use alloy::consensus::Transaction as _;
use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use pactum::escrow::bindings::UsageEscrow;
use pactum::escrow::wallet::{account_kind, have_code};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Row;

/// The seller's sponsored claim on `id`: where to submit it and the signed body.
async fn claim_request(h: &Harness, seller: &TestAgent, id: &str) -> (String, Value) {
    let offered = options(h, seller, id, "seller_claim").await;
    assert_eq!(offered["possible"], true, "{offered}");
    let sponsored = &offered["paths"]["sponsored"];
    let body = sponsored_body(&h.chain.seller, sponsored);
    (sponsored["submit_to"].as_str().unwrap().to_owned(), body)
}

/// The calldata of the transaction `hash`.
async fn input_of(h: &Harness, hash: B256) -> alloy::primitives::Bytes {
    let tx = h.chain.provider.get_transaction_by_hash(hash).await.unwrap().unwrap();
    tx.into_request().input.input().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_claim_with_a_smart_wallet_party_goes_alone_while_key_only_claims_batch() {
    // A batch window long enough that the three claims submitted at once are taken together.
    let h = Harness::start_with(|config| config.relayer_batch_wait_ms = Some(5_000)).await;
    smart_wallet_claim_goes_alone(Arc::new(h)).await;
}

#[tokio::test]
async fn without_state_overrides_the_parties_code_is_read_one_by_one_with_the_same_outcome() {
    let chain = DevChain::start().await;
    let proxy = FaultyRpc::start(&chain.anvil.endpoint()).await;
    proxy.refuse_state_overrides();
    let url = proxy.url.clone();
    let h = Harness::start_on(chain, |_, config| {
        config.rpc_url = url;
        config.relayer_batch_wait_ms = Some(5_000);
    })
    .await;
    smart_wallet_claim_goes_alone(Arc::new(h)).await;
}

#[tokio::test]
async fn one_call_reads_the_code_of_many_accounts_as_get_code_does() {
    let chain = DevChain::start().await;
    let delegated = alloy::primitives::Address::repeat_byte(0x77);
    let mut designator = pactum::escrow::wallet::DELEGATION_PREFIX.to_vec();
    designator.extend_from_slice(chain.escrow.address().as_slice());
    let _: Value = chain
        .provider
        .raw_request(
            "anvil_setCode".into(),
            (delegated, alloy::primitives::Bytes::from(designator)),
        )
        .await
        .unwrap();
    let accounts = [
        chain.buyer.address(),
        *chain.escrow.address(),
        delegated,
        alloy::primitives::Address::repeat_byte(0x11),
        chain.seller.address(),
    ];
    let read = have_code(&chain.provider, &accounts).await.expect("anvil takes state overrides");
    let mut each = Vec::new();
    for account in accounts {
        each.push(account_kind(&chain.provider, account).await.unwrap().has_code());
    }
    assert_eq!(read, each);
    assert_eq!(read, [false, true, true, false, false]);
    assert_eq!(have_code(&chain.provider, &[]).await, Some(vec![]));
}

async fn smart_wallet_claim_goes_alone(h: Arc<Harness>) {
    let (buyer, seller) = h.parties().await;
    let eoa_a = h.active(&buyer, &seller).await;
    let eoa_b = h.active(&buyer, &seller).await;
    let wallet = smart_wallet(&h).await;
    let smart = active_from_wallet(&h, &buyer, &seller, wallet).await;
    let agreements = [eoa_a.clone(), eoa_b.clone(), smart.clone()];
    let mut requests = Vec::new();
    for (i, id) in agreements.iter().enumerate() {
        record(&h, &seller, id, 10 + i as u64, &format!("usage-{id}")).await;
        sign_voucher(&h, &buyer, id).await;
        requests.push(claim_request(&h, &seller, id).await);
    }

    let mut submitted = tokio::task::JoinSet::new();
    for ((path, body), id) in requests.into_iter().zip(agreements.clone()) {
        let (h, key) = (h.clone(), seller.key.clone());
        submitted.spawn(async move {
            let (status, queued) = h.call(Method::POST, &path, Some(&key), Some(&body)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
            (id, queued["id"].as_str().unwrap().to_owned())
        });
    }
    let mut hashes: HashMap<String, B256> = HashMap::new();
    for (id, action_id) in submitted.join_all().await {
        let path = format!("/usage-agreements/{id}/settlement-actions/{action_id}");
        let done = h
            .wait_path(&seller.key, &path, |a| {
                a["status"] == "confirmed" || a["status"] == "failed"
            })
            .await;
        assert_eq!(done["status"], "confirmed", "{done}");
        hashes.insert(id, done["tx_hash"].as_str().unwrap().parse().unwrap());
    }

    // On the chain: the key-only claims share one `sellerClaimBatch`; the smart wallet's claim
    // is a `sellerClaimWithAuthorization` of its own.
    assert_eq!(hashes[&eoa_a], hashes[&eoa_b], "{hashes:?}");
    assert_ne!(hashes[&smart], hashes[&eoa_a], "{hashes:?}");
    // Sent with gas for both claims paying, whatever the estimate met.
    let sent = h.chain.provider.get_transaction_by_hash(hashes[&eoa_a]).await.unwrap().unwrap();
    let input = input_of(&h, hashes[&eoa_a]).await;
    assert!(
        sent.gas_limit() >= pactum::chain::gas::batch_gas_floor(2, input.len()),
        "batch gas limit {} under the floor",
        sent.gas_limit()
    );
    let batch = UsageEscrow::sellerClaimBatchCall::abi_decode(&input_of(&h, hashes[&eoa_a]).await)
        .expect("the key-only claims went out as a batch");
    assert_eq!(batch.claims.len(), 2);
    assert!(batch.claims.iter().all(|claim| claim.terms.buyer == h.chain.buyer.address()));
    let alone = UsageEscrow::sellerClaimWithAuthorizationCall::abi_decode(
        &input_of(&h, hashes[&smart]).await,
    )
    .expect("the smart wallet's claim went out alone");
    assert_eq!(alone.terms.buyer, wallet);

    // In the job records: the key-only claims' jobs moved into the batch job; the smart
    // wallet's claim job was sent itself.
    let store = h.service.as_ref().unwrap().state().store.clone();
    let rows = sqlx::query(
        "SELECT agreement_id, kind, status FROM relayer_jobs WHERE kind LIKE 'seller_claim%'",
    )
    .fetch_all(store.reader())
    .await
    .unwrap();
    let jobs: Vec<(Option<String>, String, String)> = rows
        .iter()
        .map(|row| (row.get("agreement_id"), row.get("kind"), row.get("status")))
        .collect();
    let of = |id: &str| jobs.iter().find(|(a, ..)| a.as_deref() == Some(id)).unwrap();
    assert_eq!(of(&eoa_a).2, "batched", "{jobs:?}");
    assert_eq!(of(&eoa_b).2, "batched", "{jobs:?}");
    assert_eq!((of(&smart).1.as_str(), of(&smart).2 == "batched"), ("seller_claim", false));
    let batches = jobs.iter().filter(|(_, kind, _)| kind == "seller_claim_batch").count();
    assert_eq!(batches, 1, "{jobs:?}");
}
