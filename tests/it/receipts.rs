//! Signed receipts end to end on anvil, over HTTP against the real server: the activation and the
//! settlement each leave receipts with the chain's own facts, listed per agent and verified
//! against the signature and the chain; a tampered row or a transaction that left the chain
//! fails verification; the signature checks out with nothing but the documented EIP-712 type.

use crate::support::service::{Harness, OWNER_KEY, RECEIPT_KEY, TestAgent, sign_package};
use crate::support::settlement::{UNIT, action_final, record, sign_voucher, sponsor};
use alloy::primitives::{Address, B256, Bytes, Signature, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolEvent, SolStruct, eip712_domain};
use pactum::agreement::ids::{Environment, ReceiptId, SecretKey};
use pactum::escrow::bindings::UsageEscrow;
use pactum::store::{agents, now};
use reqwest::{Method, StatusCode};
use serde_json::Value;

alloy::sol! {
    /// The receipt type exactly as docs/receipts.md gives it.
    struct Receipt {
        string receiptId;
        string kind;
        string agreementId;
        bytes32 agreementKey;
        string buyerAgentId;
        string sellerAgentId;
        address buyer;
        address seller;
        uint256 amount;
        uint256 infraFee;
        address token;
        address escrow;
        bytes32 txHash;
        uint256 blockNumber;
        bytes32 blockHash;
        uint256 logIndex;
        uint256 issuedAt;
    }
}

fn text<T: std::str::FromStr>(value: &Value) -> T
where
    T::Err: std::fmt::Debug,
{
    value.as_str().unwrap_or_else(|| panic!("not a string: {value}")).parse().unwrap()
}

/// The signer of a receipt as any verifier finds it: the documented struct filled from the
/// JSON fields, hashed in the documented domain, and the signature recovered.
fn recover_independently(receipt: &Value) -> Address {
    let message = Receipt {
        receiptId: receipt["id"].as_str().unwrap().to_owned(),
        kind: receipt["kind"].as_str().unwrap().to_owned(),
        agreementId: receipt["agreement_id"].as_str().unwrap().to_owned(),
        agreementKey: text(&receipt["agreement_key"]),
        buyerAgentId: receipt["buyer_agent_id"].as_str().unwrap().to_owned(),
        sellerAgentId: receipt["seller_agent_id"].as_str().unwrap().to_owned(),
        buyer: text(&receipt["buyer_wallet_address"]),
        seller: text(&receipt["seller_wallet_address"]),
        amount: text(&receipt["amount"]),
        infraFee: text(&receipt["infra_fee_amount"]),
        token: text(&receipt["token"]),
        escrow: text(&receipt["escrow_contract"]),
        txHash: text(&receipt["tx_hash"]),
        blockNumber: U256::from(receipt["block_number"].as_u64().unwrap()),
        blockHash: text(&receipt["block_hash"]),
        logIndex: U256::from(receipt["log_index"].as_u64().unwrap()),
        issuedAt: text(&receipt["typed_data"]["message"]["issuedAt"]),
    };
    let domain = eip712_domain! {
        name: "Pactum Receipts",
        version: "1",
        chain_id: receipt["chain_id"].as_u64().unwrap(),
    };
    let hash = message.eip712_signing_hash(&domain);
    // A wallet library hashing the served typed-data document reaches the same digest.
    assert_eq!(pactum::escrow::package::digest_of(&receipt["typed_data"]).unwrap(), hash);
    let signature: Bytes = text(&receipt["signature"]);
    Signature::try_from(signature.as_ref()).unwrap().recover_address_from_prehash(&hash).unwrap()
}

fn receipt_signer() -> Address {
    RECEIPT_KEY.parse::<PrivateKeySigner>().unwrap().address()
}

async fn list(h: &Harness, key: &str, query: &str) -> (StatusCode, Value) {
    h.call(Method::GET, &format!("/receipts{query}"), Some(key), None).await
}

/// Waits (mining) until `agent` has `count` receipts; returns them, newest first.
async fn receipts_of(h: &Harness, agent: &TestAgent, count: usize) -> Vec<Value> {
    let path = format!("/receipts?agent_id={}", agent.id);
    let body = h
        .wait_path(&agent.key, &path, |b| {
            b["receipts"].as_array().is_some_and(|r| r.len() >= count)
        })
        .await;
    let receipts = body["receipts"].as_array().unwrap().clone();
    assert_eq!(receipts.len(), count, "{body}");
    receipts
}

async fn verify(h: &Harness, key: &str, id: &str) -> (StatusCode, Value) {
    h.call(Method::GET, &format!("/receipts/verify/{id}"), Some(key), None).await
}

/// The escrow log a receipt names, read from the chain's transaction receipt.
async fn log_of(
    h: &Harness,
    receipt: &Value,
) -> (alloy::rpc::types::TransactionReceipt, alloy::rpc::types::Log) {
    let tx_hash: B256 = text(&receipt["tx_hash"]);
    let found = h.chain.provider.get_transaction_receipt(tx_hash).await.unwrap().unwrap();
    let index = receipt["log_index"].as_u64().unwrap();
    let log = found.inner.logs().iter().find(|l| l.log_index == Some(index)).unwrap().clone();
    (found, log)
}

/// An account other than the harness's, with its owner credential and one agent's key.
async fn other_account(h: &Harness) -> (String, String) {
    let store = h.service.as_ref().unwrap().state().store.clone();
    let owner = SecretKey::generate("ok", Environment::Test);
    let mut tx = store.begin().await.unwrap();
    let account = agents::ensure_account(&mut tx, "other", &owner.hash(), now()).await.unwrap();
    let (agent, key) =
        agents::new_agent(account.id, "stranger", None, vec![], Environment::Test, now());
    agents::insert_agent(&mut tx, &agent, &key.hash()).await.unwrap();
    tx.commit().await.unwrap();
    (owner.reveal().to_owned(), key.reveal().to_owned())
}

#[tokio::test]
async fn activation_and_settlement_leave_signed_receipts_that_verify() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;

    // The activation: one receipt, with the deposit and fee the chain's event carries.
    let activation = receipts_of(&h, &buyer, 1).await.remove(0);
    assert_eq!(activation["kind"], "activation");
    assert!(activation["id"].as_str().unwrap().starts_with("rcpt_"));
    assert_eq!(activation["agreement_id"], id.as_str());
    assert_eq!(activation["buyer_agent_id"], buyer.id.as_str());
    assert_eq!(activation["seller_agent_id"], seller.id.as_str());
    assert_eq!(text::<Address>(&activation["buyer_wallet_address"]), h.chain.buyer.address());
    assert_eq!(text::<Address>(&activation["seller_wallet_address"]), h.chain.seller.address());
    assert_eq!(activation["amount"], (100 * UNIT).to_string());
    assert_eq!(activation["amount_cents"], 1_000);
    assert_eq!(activation["chain_id"], h.chain.chain_id);
    assert_eq!(text::<Address>(&activation["token"]), *h.chain.usdc.address());
    assert_eq!(text::<Address>(&activation["escrow_contract"]), *h.chain.escrow.address());
    assert_eq!(text::<Address>(&activation["signer"]), receipt_signer());
    let (_, agreement) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&buyer.key), None).await;
    assert_eq!(activation["agreement_key"], agreement["agreement_key"]);
    let (tx, log) = log_of(&h, &activation).await;
    assert_eq!(Some(text::<B256>(&activation["block_hash"])), tx.block_hash);
    assert_eq!(activation["block_number"].as_u64(), tx.block_number);
    let event = UsageEscrow::EscrowActivated::decode_log(&log.inner).unwrap().data;
    assert_eq!(event.agreementKey, text::<B256>(&activation["agreement_key"]));
    assert_eq!(event.deposit, U256::from(100 * UNIT));
    assert_eq!(event.infraFee, text::<U256>(&activation["infra_fee_amount"]));
    assert!(!event.infraFee.is_zero());
    assert_eq!(recover_independently(&activation), receipt_signer());

    // Settlement: the seller closes with the final voucher for 30 units (paid at once), then
    // the buyer withdraws the other 70.
    record(&h, &seller, &id, 30, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;
    let (status, close) = sponsor(&h, &seller, &h.chain.seller, &id, "initiate_close").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{close}");
    let closed = action_final(&h, &seller.key, &id, close["id"].as_str().unwrap()).await;
    assert_eq!(closed["status"], "confirmed", "{closed}");
    h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;
    let (status, withdraw) = sponsor(&h, &buyer, &h.chain.buyer, &id, "buyer_withdraw").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{withdraw}");
    let withdrew = action_final(&h, &buyer.key, &id, withdraw["id"].as_str().unwrap()).await;
    assert_eq!(withdrew["status"], "confirmed", "{withdrew}");

    // Newest first: the withdraw, the claim the close made, the activation. The close and the
    // settlement summary move nothing themselves, so they have no receipt of their own.
    let receipts = receipts_of(&h, &buyer, 3).await;
    let kinds: Vec<&str> = receipts.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["buyer_withdraw", "seller_claim", "activation"]);
    let (withdrawn, claimed) = (&receipts[0], &receipts[1]);
    assert_eq!(claimed["amount"], (30 * UNIT).to_string());
    assert_eq!(claimed["amount_cents"], 300);
    assert_eq!(claimed["infra_fee_amount"], "0");
    assert_eq!(withdrawn["amount"], (70 * UNIT).to_string());
    let (_, log) = log_of(&h, claimed).await;
    let event = UsageEscrow::UsageClaimed::decode_log(&log.inner).unwrap().data;
    assert_eq!(event.amount, U256::from(30 * UNIT));
    // The close paid the seller: its transaction carries the claim.
    assert_eq!(claimed["tx_hash"], closed["tx_hash"]);
    assert_eq!(withdrawn["tx_hash"], withdrew["tx_hash"]);
    let (_, log) = log_of(&h, withdrawn).await;
    let event = UsageEscrow::BuyerWithdrawn::decode_log(&log.inner).unwrap().data;
    assert_eq!(event.amount, U256::from(70 * UNIT));

    // Every receipt verifies, for either party and for the owner of their account.
    for receipt in &receipts {
        assert_eq!(recover_independently(receipt), receipt_signer());
        let id = receipt["id"].as_str().unwrap();
        for key in [buyer.key.as_str(), seller.key.as_str(), OWNER_KEY] {
            let (status, verified) = verify(&h, key, id).await;
            assert_eq!(status, StatusCode::OK, "{verified}");
            assert_eq!(verified["valid"], true, "{verified}");
            assert_eq!(verified["receipt_id"], id);
            for check in ["signature", "transaction", "block", "log"] {
                assert_eq!(verified["checks"][check]["valid"], true, "{check}: {verified}");
            }
            assert_eq!(verified["receipt"], *receipt);
        }
    }

    // The seller sees the same receipts; listing another agent, or another account's, is 404.
    let (status, mine) = list(&h, &seller.key, &format!("?agent_id={}", seller.id)).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["receipts"].as_array().unwrap().len(), 3);
    let (status, body) = list(&h, &buyer.key, &format!("?agent_id={}", seller.id)).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &"not_found".into()));
    // An agent key may leave `agent_id` out; the owner names an agent of its account.
    let (_, own) = list(&h, &buyer.key, "").await;
    assert_eq!(own["receipts"].as_array().unwrap().len(), 3);
    let (status, owned) = list(&h, OWNER_KEY, &format!("?agent_id={}", seller.id)).await;
    assert_eq!(status, StatusCode::OK, "{owned}");
    assert_eq!(owned["receipts"].as_array().unwrap().len(), 3);
    let (status, body) = list(&h, OWNER_KEY, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for bad in ["0", "101", "x"] {
        let (status, body) =
            list(&h, &buyer.key, &format!("?agent_id={}&limit={bad}", buyer.id)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "validation_error");
    }
    // Pages of one, newest first, following the cursor to the end.
    let mut seen = Vec::new();
    let mut query = format!("?agent_id={}&limit=1", buyer.id);
    loop {
        let (status, page) = list(&h, &buyer.key, &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["receipts"].as_array().unwrap().len(), 1);
        seen.push(page["receipts"][0]["id"].clone());
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?agent_id={}&limit=1&cursor={cursor}", buyer.id),
            None => break,
        }
    }
    assert_eq!(seen, receipts.iter().map(|r| r["id"].clone()).collect::<Vec<_>>());

    // Another account sees none of it.
    let (stranger_owner, stranger_key) = other_account(&h).await;
    let receipt_id = receipts[0]["id"].as_str().unwrap();
    for key in [&stranger_owner, &stranger_key] {
        let (status, body) = verify(&h, key, receipt_id).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = list(&h, key, &format!("?agent_id={}", buyer.id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (status, _) = verify(&h, &buyer.key, "rcpt_unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) =
        h.call(Method::GET, &format!("/receipts/verify/{receipt_id}"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = verify(&h, "pk_test_not_a_key", receipt_id).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &"invalid_credential".into())
    );

    // One receipt per (transaction, log index): storing the same event's receipt again is a
    // no-op.
    let store = h.service.as_ref().unwrap().state().store.clone();
    let stored = pactum::store::receipts::get(store.reader(), receipt_id).await.unwrap().unwrap();
    let mut again = stored.clone();
    again.id = ReceiptId::generate();
    let mut tx = store.begin().await.unwrap();
    assert!(!pactum::store::receipts::insert(&mut tx, &again).await.unwrap());
    tx.commit().await.unwrap();
    // The watcher applying the activation event again (as after a crash between its commit and
    // its next pass) keeps the one receipt.
    sqlx::query("UPDATE escrow_events SET applied = 0 WHERE event = 'EscrowActivated'")
        .execute(store.reader())
        .await
        .unwrap();
    let mut reapplied = false;
    for _ in 0..100 {
        let row = sqlx::query("SELECT applied FROM escrow_events WHERE event = 'EscrowActivated'")
            .fetch_one(store.reader())
            .await
            .unwrap();
        if sqlx::Row::get::<i64, _>(&row, "applied") == 1 {
            reapplied = true;
            break;
        }
        let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reapplied, "the watcher did not apply the event again");
    let count = sqlx::query("SELECT COUNT(*) AS n FROM receipts").fetch_one(store.reader()).await;
    assert_eq!(sqlx::Row::get::<i64, _>(&count.unwrap(), "n"), 3);

    // A stored amount changed behind the service's back no longer matches its signature (nor
    // the chain's log).
    let claim_id = claimed["id"].as_str().unwrap();
    sqlx::query("UPDATE receipts SET amount = $1 WHERE id = $2")
        .bind((31 * UNIT).to_string())
        .bind(claim_id)
        .execute(store.reader())
        .await
        .unwrap();
    let (status, verified) = verify(&h, &seller.key, claim_id).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["valid"], false, "{verified}");
    assert_eq!(verified["checks"]["signature"]["valid"], false, "{verified}");
    assert!(verified["checks"]["signature"]["reason"].is_string());
    assert_eq!(verified["checks"]["transaction"]["valid"], true, "{verified}");
    assert_eq!(verified["checks"]["log"]["valid"], false, "{verified}");
    assert_eq!(verified["receipt"]["amount"], (31 * UNIT).to_string());
}

#[tokio::test]
async fn a_receipt_whose_transaction_left_the_chain_does_not_verify() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let id = h.accepted(&buyer, &seller, buyer_wallet, seller_wallet).await;
    let package = h.package(&buyer.key, &id).await;
    let body = sign_package(&h.chain.buyer, &package);
    // Everything from here on (the activation and its confirmations) can be undone.
    let snapshot: Value = h.chain.provider.raw_request("evm_snapshot".into(), ()).await.unwrap();
    let path = format!("/usage-agreements/{id}/activate-escrow");
    let (status, queued) = h.call(Method::POST, &path, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    h.wait_for(&buyer.key, &id, |a| a["status"] == "active").await;
    let receipt = receipts_of(&h, &buyer, 1).await.remove(0);
    let receipt_id = receipt["id"].as_str().unwrap();
    let (_, verified) = verify(&h, &buyer.key, receipt_id).await;
    assert_eq!(verified["valid"], true, "{verified}");

    let reverted: bool =
        h.chain.provider.raw_request("evm_revert".into(), (snapshot,)).await.unwrap();
    assert!(reverted);
    let tx_hash: B256 = text(&receipt["tx_hash"]);
    assert!(h.chain.provider.get_transaction_receipt(tx_hash).await.unwrap().is_none());

    let (status, verified) = verify(&h, &buyer.key, receipt_id).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["valid"], false, "{verified}");
    // What Pactum signed is intact; the chain no longer holds it.
    assert_eq!(verified["checks"]["signature"]["valid"], true, "{verified}");
    for check in ["transaction", "block", "log"] {
        assert_eq!(verified["checks"][check]["valid"], false, "{check}: {verified}");
    }
    assert_eq!(verified["checks"]["transaction"]["reason"], "the transaction is not on the chain");
}

#[tokio::test]
async fn receipts_work_the_same_on_postgres() {
    let Some(database_url) = crate::support::databases::fresh_postgres().await else { return };
    let mut h = Harness::start_with(|config| config.database_url = database_url.clone()).await;
    let (buyer, seller) = h.parties().await;
    h.active(&buyer, &seller).await;
    let second = h.active(&buyer, &seller).await;
    let receipts = receipts_of(&h, &buyer, 2).await;
    assert_eq!(receipts[0]["agreement_id"], second.as_str(), "newest first");
    for receipt in &receipts {
        let (status, verified) = verify(&h, &seller.key, receipt["id"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{verified}");
        assert_eq!(verified["valid"], true, "{verified}");
        assert_eq!(recover_independently(receipt), receipt_signer());
    }
    let (_, page) = list(&h, &buyer.key, "?limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = list(&h, &buyer.key, &format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(rest["receipts"][0]["id"], receipts[1]["id"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    let store = h.service.as_ref().unwrap().state().store.clone();
    let id = receipts[0]["id"].as_str().unwrap();
    let mut again = pactum::store::receipts::get(store.reader(), id).await.unwrap().unwrap();
    again.id = ReceiptId::generate();
    let mut tx = store.begin().await.unwrap();
    assert!(!pactum::store::receipts::insert(&mut tx, &again).await.unwrap());
    tx.commit().await.unwrap();
    h.stop().await;
    drop(h);
    crate::support::databases::drop_postgres(&database_url).await;
}
