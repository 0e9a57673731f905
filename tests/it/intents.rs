//! Intents against the real server on a real anvil: `POST /validate` holds the amount, the
//! agent pays from its own wallet with a real USDC transfer and posts the hash, and the watcher
//! resolves the intent: a matching transfer confirms (the hold captured); another amount,
//! another recipient, another wallet, a hash another intent used, a reverted transaction or no
//! transaction at all end `mismatched`, `failed` or `expired` with the hold released; a
//! reorganisation that takes a confirmed transfer away moves it back to `broadcast`, held again,
//! until the transfer is mined again.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::USDC;
use crate::support::databases::{drop_postgres, fresh_postgres};
use crate::support::service::{Harness, OWNER_KEY, TestAgent};

/// Base units in a cent.
const CENT: u64 = USDC / 100;

/// An agent whose primary wallet (`POST /activate`) is `wallet`.
async fn agent_paying_from(h: &Harness, name: &str, wallet: Address) -> TestAgent {
    let agent = h.agent(name).await;
    let body = json!({ "address": wallet.to_string() });
    let (status, answer) = h.call(Method::POST, "/activate", Some(&agent.key), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    agent
}

async fn validate(h: &Harness, agent: &TestAgent, body: Value) -> (StatusCode, Value) {
    h.call(Method::POST, "/validate", Some(&agent.key), Some(&body)).await
}

/// Validates a transfer of `cents` to `to`, waiting `ttl` seconds; returns the answer.
async fn allowed(h: &Harness, agent: &TestAgent, to: Address, cents: u64, ttl: u64) -> Value {
    let body = json!({ "action": "transfer", "to": to.to_string(), "amount_cents": cents,
                       "ttl_seconds": ttl });
    let (status, answer) = validate(h, agent, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["status"], "validated");
    answer
}

/// Sends `base_units` of USDC from `from` (a dev account the chain's provider signs for) to
/// `to`; returns the transaction hash once mined (automine).
async fn pay(h: &Harness, from: Address, to: Address, base_units: u64) -> B256 {
    let pending =
        h.chain.usdc.transfer(to, U256::from(base_units)).from(from).send().await.unwrap();
    let receipt = pending.get_receipt().await.unwrap();
    assert!(receipt.status());
    receipt.transaction_hash
}

async fn post_hash(
    h: &Harness,
    agent: &TestAgent,
    intent: &str,
    hash: B256,
) -> (StatusCode, Value) {
    let path = format!("/intents/{intent}/events");
    let body = json!({ "tx_hash": hash.to_string() });
    h.call(Method::POST, &path, Some(&agent.key), Some(&body)).await
}

fn status_path(intent: &Value) -> String {
    format!("/intents/{}/status", intent["intent_id"].as_str().unwrap())
}

/// Polls the intent (mining a block each round, so confirmations accrue) until it is `status`.
async fn until(h: &Harness, agent: &TestAgent, intent: &Value, status: &str) -> Value {
    h.wait_path(&agent.key, &status_path(intent), |i| i["status"] == status).await
}

/// The intent's hold as the reservations route shows it.
async fn hold(h: &Harness, agent: &TestAgent, intent: &Value) -> Value {
    let path =
        format!("/v1/spend-guard/reservations/{}", intent["reservation_id"].as_str().unwrap());
    let (status, hold) = h.call(Method::GET, &path, Some(&agent.key), None).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!((&hold["source"], &hold["subject_id"]), (&json!("intent"), &intent["intent_id"]));
    hold
}

fn recipient() -> Address {
    PrivateKeySigner::random().address()
}

#[tokio::test]
async fn a_matching_transfer_confirms_and_its_hold_is_captured() {
    let h = Harness::start().await;
    let agent = agent_paying_from(&h, "payer", h.chain.buyer.address()).await;
    matching_transfer_confirms(&h, &agent).await;
}

#[tokio::test]
async fn a_matching_transfer_confirms_on_postgres() {
    let Some(url) = fresh_postgres().await else { return };
    let mut h = Harness::start_with(|config| config.database_url = url.clone()).await;
    let agent = agent_paying_from(&h, "payer", h.chain.buyer.address()).await;
    matching_transfer_confirms(&h, &agent).await;
    mismatches_and_expiry_release_the_hold(&h, &agent).await;
    h.stop().await;
    drop_postgres(&url).await;
}

/// `agent` pays from the chain's buyer wallet.
async fn matching_transfer_confirms(h: &Harness, agent: &TestAgent) {
    let wallet = h.chain.buyer.address();
    let to = recipient();
    let intent = allowed(h, agent, to, 1_250, 900).await;
    assert!(intent["intent_id"].as_str().unwrap().starts_with("int_"));
    assert_eq!(
        (&intent["blockReason"], &intent["blockDetail"], &intent["declineMessage"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let held = hold(h, agent, &intent).await;
    assert_eq!((&held["status"], &held["counted_cents"]), (&json!("reserved"), &json!(1_250)));

    let hash = pay(h, wallet, to, 1_250 * CENT).await;
    let (status, posted) = post_hash(h, agent, intent["intent_id"].as_str().unwrap(), hash).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{posted}");
    assert_eq!((&posted["status"], &posted["tx_hash"]), (&json!("broadcast"), &json!(hash)));
    // The same hash again answers the intent as it stands.
    let (status, again) = post_hash(h, agent, intent["intent_id"].as_str().unwrap(), hash).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");

    let confirmed = until(h, agent, &intent, "confirmed").await;
    assert_eq!(confirmed["verdict"], "matched");
    assert_eq!(confirmed["amount"], (1_250 * CENT).to_string());
    assert!(confirmed["block_number"].is_u64() && confirmed["resolved_at"].is_string());
    let held = hold(h, agent, &intent).await;
    assert_eq!((&held["status"], &held["captured_cents"]), (&json!("captured"), &json!(1_250)));

    // A transaction pays one intent: another intent cannot claim the same hash, and keeps
    // waiting for its own until it expires, its hold with it.
    let other = allowed(h, agent, to, 1_250, 2).await;
    let other_id = other["intent_id"].as_str().unwrap();
    let (status, refused) = post_hash(h, agent, other_id, hash).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "tx_hash_already_used");
    let (_, unchanged) = h.call(Method::GET, &status_path(&other), Some(&agent.key), None).await;
    assert_eq!((&unchanged["status"], &unchanged["tx_hash"]), (&json!("validated"), &Value::Null));
    h.poll_path(&agent.key, &status_path(&other), |i| i["status"] == "expired").await;
    assert_eq!(hold(h, agent, &other).await["status"], "expired");
    // A hash posted after expiry meets the expiry.
    let (status, late) = post_hash(h, agent, other_id, B256::repeat_byte(7)).await;
    assert_eq!((status, &late["error"]["code"]), (StatusCode::GONE, &json!("intent_expired")));

    // The owner reads it too; another agent does not see it.
    let (status, _) = h.call(Method::GET, &status_path(&intent), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let stranger = h.agent("stranger").await;
    let (status, _) = h.call(Method::GET, &status_path(&intent), Some(&stranger.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post_hash(h, &stranger, intent["intent_id"].as_str().unwrap(), hash).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_eq!(
        h.agent_event_types(agent, "intent.").await,
        [
            "intent.validated",
            "intent.broadcast",
            "intent.confirmed",
            "intent.validated",
            "intent.expired"
        ]
    );
}

#[tokio::test]
async fn mismatched_reverted_and_unsent_transfers_release_the_hold() {
    let h = Harness::start().await;
    let agent = agent_paying_from(&h, "careless", h.chain.buyer.address()).await;
    mismatches_and_expiry_release_the_hold(&h, &agent).await;
}

/// `agent` pays from the chain's buyer wallet.
async fn mismatches_and_expiry_release_the_hold(h: &Harness, agent: &TestAgent) {
    let (wallet, foreign) = (h.chain.buyer.address(), h.chain.seller.address());
    h.chain.mint(foreign, 100 * USDC).await;
    let to = recipient();

    // (what the agent sends, the verdict, the status) for a validated $10 to `to`.
    let cases: [(Address, Address, u64, &str); 3] = [
        (wallet, to, 999 * CENT, "wrong_amount"),
        (wallet, recipient(), 1_000 * CENT, "wrong_recipient"),
        (foreign, to, 1_000 * CENT, "wrong_sender"),
    ];
    for (from, paid_to, amount, verdict) in cases {
        let intent = allowed(h, agent, to, 1_000, 900).await;
        let hash = pay(h, from, paid_to, amount).await;
        let (status, posted) =
            post_hash(h, agent, intent["intent_id"].as_str().unwrap(), hash).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{posted}");
        let resolved = until(h, agent, &intent, "mismatched").await;
        assert_eq!(resolved["verdict"], verdict, "{resolved}");
        let held = hold(h, agent, &intent).await;
        assert_eq!((&held["status"], &held["counted_cents"]), (&json!("released"), &json!(0)));
    }

    // A transaction that moves no USDC at all.
    let intent = allowed(h, agent, to, 1_000, 900).await;
    let tx =
        alloy::rpc::types::TransactionRequest::default().from(wallet).to(to).value(U256::from(1));
    let receipt = h.chain.provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    post_hash(h, agent, intent["intent_id"].as_str().unwrap(), receipt.transaction_hash).await;
    let resolved = until(h, agent, &intent, "mismatched").await;
    assert_eq!(resolved["verdict"], "no_transfer");

    // Never sent: validated and no hash, or a hash that is never mined, expires with its hold.
    let unsent = allowed(h, agent, to, 1_000, 1).await;
    let never_mined = allowed(h, agent, to, 1_000, 1).await;
    let (status, _) =
        post_hash(h, agent, never_mined["intent_id"].as_str().unwrap(), B256::repeat_byte(0x42))
            .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for intent in [&unsent, &never_mined] {
        h.poll_path(&agent.key, &status_path(intent), |i| i["status"] == "expired").await;
        let held = hold(h, agent, intent).await;
        assert_eq!((&held["status"], &held["counted_cents"]), (&json!("expired"), &json!(0)));
    }
}

#[tokio::test]
async fn a_reverted_transfer_fails_and_releases_the_hold() {
    let h = Harness::start().await;
    let wallet = h.chain.buyer.address();
    let agent = agent_paying_from(&h, "overdrawn", wallet).await;
    let to = recipient();
    let intent = allowed(&h, &agent, to, 500, 900).await;
    // More than the wallet holds: the token reverts, and the transaction is mined reverted.
    let balance = h.chain.balance(wallet).await;
    let call =
        pactum::escrow::bindings::MockUSDC::transferCall { to, value: balance + U256::from(1) };
    let tx = alloy::rpc::types::TransactionRequest::default()
        .from(wallet)
        .to(*h.chain.usdc.address())
        .input(alloy::sol_types::SolCall::abi_encode(&call).into())
        .gas_limit(200_000);
    let receipt = h.chain.provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(!receipt.status());
    post_hash(&h, &agent, intent["intent_id"].as_str().unwrap(), receipt.transaction_hash).await;
    let failed = until(&h, &agent, &intent, "failed").await;
    assert_eq!(failed["verdict"], "reverted");
    assert_eq!(hold(&h, &agent, &intent).await["status"], "released");
}

#[tokio::test]
async fn validate_refuses_what_the_policy_blocks_and_bad_input_with_nothing_held() {
    let h = Harness::start().await;
    let wallet = h.chain.buyer.address();
    let agent = agent_paying_from(&h, "governed", wallet).await;
    let path = format!("/agents/{}/policies", agent.id);
    let rules = json!({ "rules": [
        { "id": "cap", "type": "per_tx_limit", "max_cents": 10_000, "description": "At most $100" },
        { "id": "big", "type": "escalation_threshold", "above_cents": 5_000 },
    ] });
    let (status, body) = h.call(Method::PUT, &path, Some(OWNER_KEY), Some(&rules)).await;
    assert!(status.is_success(), "{body}");
    let to = recipient();
    let body =
        |cents: u64| json!({ "action": "transfer", "to": to.to_string(), "amount_cents": cents });

    let (status, blocked) = validate(&h, &agent, body(50_000)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{blocked}");
    assert_eq!((&blocked["allowed"], &blocked["intent_id"]), (&json!(false), &Value::Null));
    assert_eq!(blocked["blockReason"], "per_tx_limit_exceeded");
    assert!(blocked["blockDetail"].is_string() && blocked["declineMessage"].is_string());
    assert!(!blocked["declineMessage"].as_str().unwrap().contains(&to.to_string()));
    assert_eq!(blocked["error"]["code"], "policy_blocked");

    // An escalation cannot wait for an owner: refused like a block, nothing held.
    let (status, escalated) = validate(&h, &agent, body(6_000)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{escalated}");
    assert_eq!(escalated["allowed"], false);
    assert_eq!(escalated["error"]["details"]["escalated"], true);

    // A halted agent: 403 with the seed's fields.
    let halt = format!("/agents/{}/circuit-break", agent.id);
    let (status, _) =
        h.call(Method::POST, &halt, Some(OWNER_KEY), Some(&json!({ "halted": true }))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, halted) = validate(&h, &agent, body(100)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{halted}");
    assert_eq!(
        (&halted["allowed"], &halted["blockReason"]),
        (&json!(false), &json!("agent_halted"))
    );
    assert_eq!(halted["error"]["code"], "agent_halted");
    h.call(Method::POST, &halt, Some(OWNER_KEY), Some(&json!({ "halted": false }))).await;

    // Bad input: a stable code, and nothing held.
    let token = h.chain.usdc.address().to_string();
    let refusals = [
        (
            json!({ "action": "swap", "to": to.to_string(), "amount_cents": 1 }),
            "validation_error",
            "action",
        ),
        (
            json!({ "action": "transfer", "to": "0x12", "amount_cents": 1 }),
            "validation_error",
            "to",
        ),
        (
            json!({ "action": "transfer", "to": to.to_string(), "amount_cents": 0 }),
            "validation_error",
            "amount_cents",
        ),
        (
            json!({ "action": "transfer", "to": to.to_string(), "amount_cents": 1, "token": wallet.to_string() }),
            "validation_error",
            "token",
        ),
        (
            json!({ "action": "transfer", "to": to.to_string(), "amount_cents": 1, "chain_id": 1 }),
            "wrong_chain_id",
            "chain_id",
        ),
        (
            json!({ "action": "transfer", "to": to.to_string(), "amount_cents": 1, "ttl_seconds": 0 }),
            "validation_error",
            "ttl_seconds",
        ),
    ];
    for (body, code, field) in refusals {
        let (status, refused) = validate(&h, &agent, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(
            (&refused["error"]["code"], &refused["error"]["details"]["field"]),
            (&json!(code), &json!(field))
        );
    }
    let (status, refused) = h
        .call(Method::POST, "/validate", Some(&agent.key), Some(&json!({ "action": "transfer" })))
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("validation_error"))
    );
    // The token and chain named exactly are fine.
    let exact = json!({ "action": "transfer", "to": to.to_string(), "amount_cents": 100,
                        "token": token, "chain_id": h.chain.chain_id });
    let (status, ok) = validate(&h, &agent, exact).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let (status, refused) =
        post_hash(&h, &agent, ok["intent_id"].as_str().unwrap(), B256::ZERO).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a hash is a hash: {refused}");
    let path = format!("/intents/{}/events", ok["intent_id"].as_str().unwrap());
    let (status, refused) =
        h.call(Method::POST, &path, Some(&agent.key), Some(&json!({ "tx_hash": "0x1234" }))).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("validation_error"))
    );
    let (status, refused) =
        post_hash(&h, &agent, ok["intent_id"].as_str().unwrap(), B256::repeat_byte(1)).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (StatusCode::CONFLICT, &json!("intent_already_broadcast"))
    );
    let (status, _) = post_hash(&h, &agent, "int_nope", B256::repeat_byte(1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An agent with no wallet has nothing to pay from.
    let walletless = h.agent("walletless").await;
    let (status, refused) = validate(&h, &walletless, body(100)).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("no_registered_wallet"))
    );

    // Only the one allowed validate holds anything.
    let (status, holds) =
        h.call(Method::GET, "/v1/spend-guard/reservations", Some(&agent.key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(holds["data"].as_array().unwrap().len(), 1, "{holds}");
}

#[tokio::test]
async fn a_reorg_that_removes_a_confirmed_transfer_moves_the_intent_back_to_broadcast() {
    let h = Harness::start_with(|config| config.confirmations = 1).await;
    let wallet = h.chain.buyer.address();
    let agent = agent_paying_from(&h, "reorged", wallet).await;
    let to = recipient();
    let intent = allowed(&h, &agent, to, 2_000, 900).await;
    let id = intent["intent_id"].as_str().unwrap();

    let hash = pay(&h, wallet, to, 2_000 * CENT).await;
    let raw: Bytes =
        h.chain.provider.raw_request("eth_getRawTransactionByHash".into(), (hash,)).await.unwrap();
    let (status, _) = post_hash(&h, &agent, id, hash).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let first = until(&h, &agent, &intent, "confirmed").await;
    assert_eq!(hold(&h, &agent, &intent).await["status"], "captured");

    // Replace every block from the transfer's up with empty ones.
    let head = h.chain.provider.get_block_number().await.unwrap();
    let depth = head - first["block_number"].as_u64().unwrap() + 1;
    h.automine(false).await;
    let _: Value = h
        .chain
        .provider
        .raw_request("anvil_reorg".into(), (depth, Vec::<Value>::new()))
        .await
        .unwrap();
    let back = h.poll_path(&agent.key, &status_path(&intent), |i| i["status"] == "broadcast").await;
    assert_eq!((&back["block_number"], &back["verdict"]), (&Value::Null, &Value::Null));
    let held = hold(&h, &agent, &intent).await;
    assert_eq!((&held["status"], &held["counted_cents"]), (&json!("reserved"), &json!(2_000)));
    let events: Vec<String> = held["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().into())
        .collect();
    assert_eq!(events, ["reserved", "captured", "reheld"]);

    // The same signed transfer mined again confirms again.
    let _: Result<B256, _> =
        h.chain.provider.raw_request("eth_sendRawTransaction".into(), (raw,)).await;
    h.automine(true).await;
    let again = until(&h, &agent, &intent, "confirmed").await;
    assert_eq!(again["tx_hash"], json!(hash));
    assert_eq!(hold(&h, &agent, &intent).await["status"], "captured");
    let reorged = h.agent_event_types(&agent, "intent.").await;
    assert_eq!(
        reorged,
        [
            "intent.validated",
            "intent.broadcast",
            "intent.confirmed",
            "intent.reorged",
            "intent.confirmed"
        ]
    );
}
