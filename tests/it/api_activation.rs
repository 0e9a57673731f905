//! The activation flow over real HTTP against a real server, SQLite file and anvil chain:
//! propose → accept → package → sign locally → activate-escrow → confirmed, and every way the
//! server must refuse a bad activation before anything is queued.

use crate::support::USDC;
use crate::support::service::{Harness, TestAgent, sign_package};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use pactum::escrow::bindings::MockSmartWallet;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn activate(h: &Harness, buyer: &TestAgent, id: &str, body: &Value) -> (StatusCode, Value) {
    let path = format!("/usage-agreements/{id}/activate-escrow");
    h.call(Method::POST, &path, Some(&buyer.key), Some(body)).await
}

fn confirmed(agreement: &Value) -> bool {
    agreement["status"] == "active" && agreement["activation_status"] == "confirmed"
}

#[tokio::test]
async fn activation_runs_from_proposal_to_confirmed_and_moves_the_money() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let id = h.accepted(&buyer, &seller, buyer_wallet, seller_wallet).await;

    let package = h.package(&buyer.key, &id).await;
    assert_eq!(package["deposit_amount"], "10000000");
    assert_eq!(package["infra_fee"]["status"], "pending");
    // 2% of $10 + $0.003.
    assert_eq!(package["infra_fee"]["amount"], "203000");
    assert_eq!(package["activation"]["primaryType"], "Activation");
    assert_eq!(package["funding"]["primaryType"], "ReceiveWithAuthorization");
    assert_eq!(package["infra_fee"]["permit"]["primaryType"], "ReceiveWithAuthorization");
    // The fee authorization's nonce is the one the escrow derives from the agreement key.
    let key: B256 = package["agreement_key"].as_str().unwrap().parse().unwrap();
    let fee_nonce = h.chain.escrow.infraFeeNonce(key).call().await.unwrap();
    assert_eq!(package["infra_fee"]["permit"]["message"]["nonce"], fee_nonce.to_string());
    let recipient_before = h.chain.balance(h.chain.fee_recipient).await;

    let before = h.chain.balance(buyer_wallet).await;
    let (status, queued) = activate(&h, &buyer, &id, &sign_package(&h.chain.buyer, &package)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "activating");
    assert_eq!(queued["activation_status"], "pending");

    let done = h.wait_for(&buyer.key, &id, confirmed).await;
    assert_eq!(done["infra_fee"]["status"], "collected");
    let tx_hash = done["activation_tx_hash"].as_str().unwrap();
    assert_eq!(tx_hash.len(), 66);
    assert_eq!(done["screening"]["oracle"], "checked");

    // Token balances on-chain: deposit and fee into the escrow, the fee accrued for its recipient.
    let escrow_balance = h.chain.balance(*h.chain.escrow.address()).await;
    assert_eq!(escrow_balance, U256::from(10 * USDC + 203_000));
    assert_eq!(h.chain.accrued_fees().await, U256::from(203_000));
    assert_eq!(h.chain.balance(h.chain.fee_recipient).await, recipient_before);
    assert_eq!(before - h.chain.balance(buyer_wallet).await, U256::from(10 * USDC + 203_000));

    let path = format!("/usage-agreements/{id}/escrow-status");
    let (status, escrow) = h.call(Method::GET, &path, Some(&seller.key), None).await;
    assert_eq!(status, StatusCode::OK, "{escrow}");
    assert_eq!(escrow["status"], "active");
    assert_eq!(escrow["activation_status"], "confirmed");
    assert_eq!(escrow["activation_tx_hash"], tx_hash);
    assert_eq!(escrow["escrow"]["status"], "active");
    assert_eq!(escrow["escrow"]["deposit_amount"], "10000000");
    assert_eq!(escrow["escrow"]["claimed_units"], 0);
    assert_eq!(escrow["escrow"]["remaining_amount"], "10000000");
    assert!(escrow["escrow"]["confirmations"].as_u64().unwrap() >= 2, "{escrow}");
    assert_eq!(escrow["agreement_key"], package["agreement_key"]);

    // The contract agrees: the key the server derived is the one activated.
    let key: B256 = package["agreement_key"].as_str().unwrap().parse().unwrap();
    let on_chain = h.chain.escrow.escrowOf(key).call().await.unwrap();
    assert_eq!(on_chain.status, 1, "Active");
}

/// Two pending activations of one buyer, each with an infra fee, submitted in the reverse of the
/// order their packages were built: both confirm. (With contract v2's EIP-2612 fee permits both
/// packages carried the buyer's same permit nonce, so the second to run reverted.)
#[tokio::test]
async fn two_pending_activations_of_one_buyer_confirm_in_reverse_order() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let first = h.accepted(&buyer, &seller, buyer_wallet, seller_wallet).await;
    let second = h.accepted(&buyer, &seller, buyer_wallet, seller_wallet).await;
    let first_package = h.package(&buyer.key, &first).await;
    let second_package = h.package(&buyer.key, &second).await;
    let first_body = sign_package(&h.chain.buyer, &first_package);
    let second_body = sign_package(&h.chain.buyer, &second_package);
    assert_ne!(
        first_package["infra_fee"]["permit"]["message"]["nonce"],
        second_package["infra_fee"]["permit"]["message"]["nonce"],
        "each fee authorization has its agreement's own nonce"
    );
    let fees_before = h.chain.accrued_fees().await;

    let (status, body) = activate(&h, &buyer, &second, &second_body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = activate(&h, &buyer, &first, &first_body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let second_done = h.wait_for(&buyer.key, &second, settled_activation).await;
    let first_done = h.wait_for(&buyer.key, &first, settled_activation).await;
    assert!(confirmed(&second_done), "{second_done}");
    assert!(confirmed(&first_done), "{first_done}");
    assert_eq!(first_done["infra_fee"]["status"], "collected");
    assert_eq!(second_done["infra_fee"]["status"], "collected");
    assert_eq!(h.chain.accrued_fees().await - fees_before, U256::from(2 * 203_000));
}

/// The activation reached an end: confirmed, or failed.
fn settled_activation(agreement: &Value) -> bool {
    confirmed(agreement) || agreement["activation_status"] == "failed"
}

#[tokio::test]
async fn a_smart_wallet_buyer_activates_with_its_owners_erc1271_signatures() {
    let h = Harness::start().await;
    let owner = &h.chain.buyer;
    let wallet = MockSmartWallet::deploy(h.chain.provider.clone(), owner.address()).await.unwrap();
    let wallet_address = *wallet.address();
    h.chain.mint(wallet_address, 50 * USDC).await;
    let (buyer, seller) = h.parties().await;
    let id = h.accepted(&buyer, &seller, wallet_address, h.chain.seller.address()).await;

    let package = h.package(&buyer.key, &id).await;
    let (status, body) = activate(&h, &buyer, &id, &sign_package(owner, &package)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    h.wait_for(&buyer.key, &id, confirmed).await;
    assert_eq!(h.chain.balance(wallet_address).await, U256::from(50 * USDC - 10 * USDC - 203_000));

    // Another key cannot speak for the wallet.
    let id = h.accepted(&buyer, &seller, wallet_address, h.chain.seller.address()).await;
    let package = h.package(&buyer.key, &id).await;
    let (status, body) = activate(&h, &buyer, &id, &sign_package(&h.chain.seller, &package)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_signature");
}

async fn sanction(h: &Harness, who: Address) {
    let call = h.chain.oracle.addToSanctionsList(vec![who]);
    call.send().await.unwrap().get_receipt().await.unwrap();
}

#[tokio::test]
async fn sanctioned_buyers_and_sellers_are_refused_before_anything_is_queued() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let sanctioned_seller = PrivateKeySigner::random().address();
    let clean = h.accepted(&buyer, &seller, h.chain.buyer.address(), sanctioned_seller).await;
    sanction(&h, sanctioned_seller).await;
    let package = h.package(&buyer.key, &clean).await;
    let (status, body) =
        activate(&h, &buyer, &clean, &sign_package(&h.chain.buyer, &package)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "wallet_sanctioned");
    assert_eq!(body["error"]["details"]["wallets"][0], sanctioned_seller.to_checksum(None));

    let id = h.accepted(&buyer, &seller, h.chain.buyer.address(), h.chain.seller.address()).await;
    sanction(&h, h.chain.buyer.address()).await;
    let package = h.package(&buyer.key, &id).await;
    let (status, body) = activate(&h, &buyer, &id, &sign_package(&h.chain.buyer, &package)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "wallet_sanctioned");

    assert_eq!(h.job_count().await, 0, "nothing queued");
    let (_, agreement) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&buyer.key), None).await;
    assert_eq!(agreement["status"], "accepted");
    assert_eq!(agreement["activation_status"], "not_started");
    assert_eq!(agreement["screening"]["wallets"][0]["sanctioned"], true, "{agreement}");
}

#[tokio::test]
async fn an_unreachable_oracle_fails_closed() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.accepted(&buyer, &seller, h.chain.buyer.address(), h.chain.seller.address()).await;
    h.chain.oracle.setReverting(true).send().await.unwrap().get_receipt().await.unwrap();
    let package = h.package(&buyer.key, &id).await;
    let (status, body) = activate(&h, &buyer, &id, &sign_package(&h.chain.buyer, &package)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "screening_unavailable");
    assert_eq!(h.job_count().await, 0);
}

#[tokio::test]
async fn bad_activations_are_refused_with_a_clear_code_and_nothing_queued() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.accepted(&buyer, &seller, h.chain.buyer.address(), h.chain.seller.address()).await;
    let package = h.package(&buyer.key, &id).await;
    let good = sign_package(&h.chain.buyer, &package);

    // A tampered package: the buyer signed a larger quantity than the agreement's.
    let mut tampered = package.clone();
    tampered["activation"]["message"]["quantity"] = json!("1000");
    let mut body = sign_package(&h.chain.buyer, &tampered);
    body["agreement_key"] = good["agreement_key"].clone();
    let (status, error) = activate(&h, &buyer, &id, &body).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_signature")),
        "{error}"
    );
    assert_eq!(error["error"]["details"]["document"], "activation");

    // A package for another agreement key.
    let mut other_key = good.clone();
    other_key["agreement_key"] = json!(B256::repeat_byte(9));
    let (status, error) = activate(&h, &buyer, &id, &other_key).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("package_mismatch"))
    );

    // Signed by the wrong key.
    let wrong = sign_package(&h.chain.seller, &package);
    let (status, error) = activate(&h, &buyer, &id, &wrong).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_signature"))
    );

    // Signed for another chain: said so, or only in the signature.
    let mut other_chain = package.clone();
    for doc in ["activation", "funding"] {
        other_chain[doc]["domain"]["chainId"] = json!(1);
    }
    other_chain["infra_fee"]["permit"]["domain"]["chainId"] = json!(1);
    other_chain["chain_id"] = json!(1);
    let (status, error) =
        activate(&h, &buyer, &id, &sign_package(&h.chain.buyer, &other_chain)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("wrong_chain_id"))
    );
    let mut silent = sign_package(&h.chain.buyer, &other_chain);
    silent.as_object_mut().unwrap().remove("chain_id");
    let (status, error) = activate(&h, &buyer, &id, &silent).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_signature"))
    );

    // The funding and fee signatures are each checked, not only the activation's.
    let mut bad_funding = good.clone();
    bad_funding["funding_signature"] = wrong["funding_signature"].clone();
    let (_, error) = activate(&h, &buyer, &id, &bad_funding).await;
    assert_eq!(error["error"]["details"]["document"], "funding", "{error}");
    let mut no_fee = good.clone();
    no_fee.as_object_mut().unwrap().remove("infra_fee_permit_signature");
    let (status, error) = activate(&h, &buyer, &id, &no_fee).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error"))
    );

    // Only the buyer activates.
    let (status, error) = activate(&h, &seller, &id, &good).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    // Past the activation deadline (by the chain's clock).
    h.chain.advance(3_601).await;
    let (status, error) = activate(&h, &buyer, &id, &good).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("activation_expired")),
        "{error}"
    );

    // Once the watcher has marked it expired, the answer stays the same.
    let expired = h.wait_for(&buyer.key, &id, |a| a["status"] == "expired").await;
    assert_eq!(expired["activation_status"], "not_started");
    let (status, error) = activate(&h, &buyer, &id, &good).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("activation_expired"))
    );
    assert_eq!(h.job_count().await, 0, "nothing queued");
}

#[tokio::test]
async fn an_idempotent_retry_answers_the_same_and_queues_once() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.accepted(&buyer, &seller, h.chain.buyer.address(), h.chain.seller.address()).await;
    let package = h.package(&buyer.key, &id).await;
    let body = sign_package(&h.chain.buyer, &package);
    let path = format!("/usage-agreements/{id}/activate-escrow");
    let key = [("Idempotency-Key", "activate-1")];
    let first = h.call_with(Method::POST, &path, Some(&buyer.key), Some(&body), &key).await;
    let second = h.call_with(Method::POST, &path, Some(&buyer.key), Some(&body), &key).await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    assert_eq!(first, second);
    assert_eq!(h.job_count().await, 1);

    // The same key with another body is refused; no key at all meets the state machine.
    let mut changed = body.clone();
    changed["chain_id"] = json!(package["chain_id"]);
    changed.as_object_mut().unwrap().remove("agreement_key");
    let (status, error) =
        h.call_with(Method::POST, &path, Some(&buyer.key), Some(&changed), &key).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused"))
    );
    let (status, error) = activate(&h, &buyer, &id, &body).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_state"))
    );
    assert_eq!(h.job_count().await, 1);
    h.wait_for(&buyer.key, &id, confirmed).await;
}

#[tokio::test]
async fn agreements_are_visible_only_to_their_parties() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let stranger = h.agent("stranger").await;
    let id = h.accepted(&buyer, &seller, h.chain.buyer.address(), h.chain.seller.address()).await;
    for path in [
        format!("/usage-agreements/{id}"),
        format!("/usage-agreements/{id}/activation-package"),
        format!("/usage-agreements/{id}/escrow-status"),
    ] {
        let (status, body) = h.call(Method::GET, &path, Some(&stranger.key), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    let body = json!({ "activation_signature": "0x00", "funding_signature": "0x00" });
    let (status, _) = activate(&h, &stranger, &id, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let path = format!("/usage-agreements/agents/{}/agreements", buyer.id);
    let (status, _) = h.call(Method::GET, &path, Some(&stranger.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["agreements"][0]["id"], id.as_str());
}
