//! A buyer EOA delegated under EIP-7702 (code `0xef0100 ‖ delegate`, set here with
//! `anvil_setCode`): USDC checks the funding authorization of an account with code through
//! ERC-1271 alone, so `activate-escrow` does the same and refuses, before anything is stored or
//! queued, a buyer whose delegate does not vouch for the signature. On anvil, over HTTP.

use crate::support::service::{Harness, TestAgent, sign_package};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use pactum::escrow::bindings::MockSmartWallet;
use pactum::escrow::wallet::DELEGATION_PREFIX;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Gives `account` the code `code` (anvil's cheat code).
async fn set_code(h: &Harness, account: Address, code: Bytes) {
    let _: Value =
        h.chain.provider.raw_request("anvil_setCode".into(), (account, code)).await.unwrap();
}

/// Delegates `account` to `delegate`: the EIP-7702 designator as its code.
async fn delegate(h: &Harness, account: Address, delegate: Address) {
    let mut designator = DELEGATION_PREFIX.to_vec();
    designator.extend_from_slice(delegate.as_slice());
    set_code(h, account, designator.into()).await;
}

/// An accepted agreement paid from the chain's buyer key, its package, and the activation body
/// the buyer key signed.
async fn signed_activation(
    h: &Harness,
    buyer: &TestAgent,
    seller: &TestAgent,
) -> (String, Value, Value) {
    let id = h.accepted(buyer, seller, h.chain.buyer.address(), h.chain.seller.address()).await;
    let package = h.package(&buyer.key, &id).await;
    let body = sign_package(&h.chain.buyer, &package);
    (id, package, body)
}

async fn activate(h: &Harness, buyer: &TestAgent, id: &str, body: &Value) -> (StatusCode, Value) {
    let path = format!("/usage-agreements/{id}/activate-escrow");
    h.call(Method::POST, &path, Some(&buyer.key), Some(body)).await
}

#[tokio::test]
async fn a_buyer_delegated_to_a_contract_without_erc1271_is_refused_and_nothing_is_queued() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let wallet = h.chain.buyer.address();
    let (id, package, body) = signed_activation(&h, &buyer, &seller).await;
    // The sanctions oracle has no `isValidSignature` (nor a fallback): a call to it reverts.
    let oracle = *h.chain.oracle.address();
    delegate(&h, wallet, oracle).await;
    assert_eq!(h.chain.provider.get_code_at(wallet).await.unwrap().len(), 23);

    let (status, error) = activate(&h, &buyer, &id, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "buyer_wallet_unsupported", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("EIP-7702 delegated account"), "{message}");
    assert!(message.contains("does not implement ERC-1271"), "{message}");
    let details = &error["error"]["details"];
    assert_eq!(details["document"], "funding");
    assert_eq!(details["wallet"], wallet.to_checksum(None));
    assert_eq!(details["delegate"], oracle.to_checksum(None));

    // A funding signature by another key is a bad signature, whatever the wallet.
    let mut other_key = body.clone();
    other_key["funding_signature"] =
        sign_package(&h.chain.seller, &package)["funding_signature"].clone();
    let (status, error) = activate(&h, &buyer, &id, &other_key).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "invalid_signature", "{error}");
    assert_eq!(error["error"]["details"]["document"], "funding", "{error}");

    // Nothing stored, nothing queued.
    assert_eq!(h.job_count().await, 0);
    let path = format!("/usage-agreements/{id}");
    let (_, agreement) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(agreement["status"], "accepted", "{agreement}");
    assert_eq!(agreement["activation_status"], "not_started", "{agreement}");
    assert!(agreement["screening"].is_null(), "{agreement}");

    // A delegate that implements ERC-1271 for another key refuses the buyer's own signature
    // just the same.
    let strangers =
        MockSmartWallet::deploy(h.chain.provider.clone(), h.chain.seller.address()).await.unwrap();
    delegate(&h, wallet, *strangers.address()).await;
    let (status, error) = activate(&h, &buyer, &id, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "buyer_wallet_unsupported", "{error}");
    assert_eq!(h.job_count().await, 0);

    // Undelegated, the same signatures are an EOA's again and go through.
    set_code(&h, wallet, Bytes::new()).await;
    let (status, queued) = activate(&h, &buyer, &id, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
}

#[tokio::test]
async fn a_buyer_delegated_to_an_erc1271_wallet_that_accepts_its_key_activates() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let wallet = h.chain.buyer.address();
    let (id, _, body) = signed_activation(&h, &buyer, &seller).await;
    // MockSmartWallet's owner is immutable, in its code: run as the delegate of the buyer's
    // account, it accepts the buyer key's signatures through ERC-1271.
    let delegate_code = MockSmartWallet::deploy(h.chain.provider.clone(), wallet).await.unwrap();
    delegate(&h, wallet, *delegate_code.address()).await;
    let before = h.chain.balance(wallet).await;

    let (status, queued) = activate(&h, &buyer, &id, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    // USDC agrees: the activation mines and the deposit leaves the delegated account.
    let done = h.wait_for(&buyer.key, &id, |a| a["activation_status"] == "confirmed").await;
    assert_eq!(done["status"], "active", "{done}");
    let amount = |field: &str| done["terms"][field].as_str().unwrap().parse::<U256>().unwrap();
    let paid = amount("deposit_amount") + amount("infra_fee_amount");
    assert_eq!(before - h.chain.balance(wallet).await, paid, "{done}");
}
