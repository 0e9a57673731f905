//! Governed payments against the real server on a real anvil: a payment signed as a wallet
//! library signs the document confirms and moves exactly the amount, with a receipt that
//! verifies; a blocked one moves nothing; an escalated one moves only after approval; a
//! tampered, foreign or reused signature and a short balance are refused before anything is
//! sent; a transfer someone else submits confirms the payment all the same; an unsigned one
//! expires and gives its hold back; concurrent payments against a mandate take exactly what it
//! allows; and a reorganisation that removes a confirmed transfer takes the confirmation back
//! until it is mined again.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::service::{Harness, OWNER_KEY, TestAgent, daily_budget, sign_document};

/// A dollar of USDC in base units.
const DOLLAR: u64 = 1_000_000;

/// An agent with its own wallet (registered as its primary with `POST /activate`) holding
/// `dollars` of USDC and no ether: Pactum's relayer pays the gas.
struct Payer {
    agent: TestAgent,
    wallet: PrivateKeySigner,
}

async fn payer(h: &Harness, name: &str, dollars: u64) -> Payer {
    let agent = h.agent(name).await;
    let wallet = PrivateKeySigner::random();
    activate(h, &agent, wallet.address()).await;
    if dollars > 0 {
        h.chain.mint(wallet.address(), dollars * DOLLAR).await;
    }
    Payer { agent, wallet }
}

async fn activate(h: &Harness, agent: &TestAgent, address: Address) {
    let body = json!({ "address": address.to_string() });
    let (status, wallet) = h.call(Method::POST, "/activate", Some(&agent.key), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{wallet}");
}

/// A payee agent with a primary wallet; returns it and the wallet's address.
async fn payee(h: &Harness, name: &str) -> (TestAgent, Address) {
    let agent = h.agent(name).await;
    let address = PrivateKeySigner::random().address();
    activate(h, &agent, address).await;
    (agent, address)
}

async fn pay(h: &Harness, key: &str, body: Value) -> (StatusCode, Value) {
    h.call(Method::POST, "/v1/payments", Some(key), Some(&body)).await
}

async fn authorize(h: &Harness, key: &str, id: &str, signature: &str) -> (StatusCode, Value) {
    let path = format!("/v1/payments/{id}/authorize");
    h.call(Method::POST, &path, Some(key), Some(&json!({ "signature": signature }))).await
}

async fn get(h: &Harness, key: &str, id: &str) -> Value {
    let (status, payment) =
        h.call(Method::GET, &format!("/v1/payments/{id}"), Some(key), None).await;
    assert_eq!(status, StatusCode::OK, "{payment}");
    payment
}

/// Waits (mining a block each round) until payment `id` is in `status`.
async fn wait_status(h: &Harness, key: &str, id: &str, status: &str) -> Value {
    h.wait_path(key, &format!("/v1/payments/{id}"), |p| p["status"] == status).await
}

async fn hold(h: &Harness, id: &str) -> Value {
    let path = format!("/v1/spend-guard/reservations/{id}");
    let (status, hold) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    hold
}

fn amount(p: &Value) -> U256 {
    p["amount"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_payment_confirms_moves_exactly_the_amount_and_its_receipt_verifies() {
    let mut h = Harness::start().await;
    let alice = payer(&h, "alice", 100).await;
    let (bob, bob_wallet) = payee(&h, "bob").await;
    h.set_policy(&alice.agent, daily_budget(10_000)).await;

    let body = json!({ "to": bob.id, "amount_cents": 1_234, "memo": "api calls, December" });
    let (status, created) = pay(&h, &alice.agent.key, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "awaiting_signature");
    assert_eq!(created["decision"]["decision"], "allow");
    assert_eq!(created["to"], bob_wallet.to_checksum(None));
    assert_eq!(created["to_agent_id"], bob.id.as_str());
    let id = created["id"].as_str().unwrap().to_owned();
    let document = &created["typed_data"];
    assert_eq!(document["primaryType"], "TransferWithAuthorization");
    assert_eq!(document["message"]["value"], "12340000");
    assert_eq!(document["message"]["nonce"], created["payment_key"]);
    assert_eq!(document["domain"]["verifyingContract"], h.chain.usdc.address().to_checksum(None));
    // The amount is held on the agent's budget from now on.
    let reservation = created["reservation_id"].as_str().unwrap().to_owned();
    let held = hold(&h, &reservation).await;
    assert_eq!(
        (held["status"].as_str(), held["source"].as_str()),
        (Some("reserved"), Some("payment"))
    );

    // Refused before anything is sent: another key's signature, a tampered one, garbage.
    let stranger = sign_document(&PrivateKeySigner::random(), document);
    let mut tampered = sign_document(&alice.wallet, document);
    tampered.replace_range(10..12, if &tampered[10..12] == "00" { "11" } else { "00" });
    for bad in [stranger.as_str(), tampered.as_str()] {
        let (status, refused) = authorize(&h, &alice.agent.key, &id, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["error"]["code"], "invalid_signature");
    }
    let (status, refused) = authorize(&h, &alice.agent.key, &id, "0xzz").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(h.job_count().await, 0, "nothing was queued");
    assert_eq!(get(&h, &alice.agent.key, &id).await["status"], "awaiting_signature");

    let signature = sign_document(&alice.wallet, document);
    let (status, queued) = authorize(&h, &alice.agent.key, &id, &signature).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "queued");
    let confirmed = wait_status(&h, &alice.agent.key, &id, "confirmed").await;
    assert_eq!(
        h.chain.balance(alice.wallet.address()).await,
        U256::from(100 * DOLLAR - 12_340_000)
    );
    assert_eq!(h.chain.balance(bob_wallet).await, U256::from(12_340_000u64));
    assert_eq!(amount(&confirmed), U256::from(12_340_000u64));
    assert!(confirmed["typed_data"].is_null());
    let captured = hold(&h, &reservation).await;
    assert_eq!(captured["status"], "captured");
    assert_eq!(captured["captured_cents"], 1_234);

    // The receipt is the escrow receipts' type, and checks out four ways.
    let receipt = &confirmed["receipt"];
    assert_eq!(receipt["kind"], "payment");
    assert_eq!(receipt["amount"], "12340000");
    assert_eq!(receipt["tx_hash"], confirmed["tx_hash"]);
    let path = format!("/receipts/verify/{}", receipt["id"].as_str().unwrap());
    let (status, verified) = h.call(Method::GET, &path, Some(&alice.agent.key), None).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["valid"], true, "{verified}");

    // The same signature again answers the payment as it stands and sends nothing more.
    let jobs = h.job_count().await;
    let (status, again) = authorize(&h, &alice.agent.key, &id, &signature).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["status"], "confirmed");
    assert_eq!(h.job_count().await, jobs);

    // A signature reused on another payment does not sign that one.
    let body = json!({ "to": bob.id, "amount_cents": 1_234 });
    let (_, second) = pay(&h, &alice.agent.key, body).await;
    let second_id = second["id"].as_str().unwrap();
    let (status, refused) = authorize(&h, &alice.agent.key, second_id, &signature).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_signature");

    // Listing: the agent sees its payments; filtered by status.
    let (_, list) =
        h.call(Method::GET, "/v1/payments?status=confirmed", Some(&alice.agent.key), None).await;
    let ids: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()]);
    // Bob's key sees neither.
    let (status, _) =
        h.call(Method::GET, &format!("/v1/payments/{id}"), Some(&bob.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let events = h.agent_event_types(&alice.agent, "payment.").await;
    for expected in ["payment.created", "payment.queued", "payment.submitted", "payment.confirmed"]
    {
        assert!(events.iter().any(|e| e == expected), "{expected} in {events:?}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_moves_nothing_escalated_moves_only_after_approval() {
    let mut h = Harness::start().await;
    let alice = payer(&h, "alice", 100).await;
    let (_, bob_wallet) = payee(&h, "bob").await;
    let mut rules = daily_budget(5_000);
    rules
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "big", "type": "escalation_threshold", "above_cents": 1_000 }));
    h.set_policy(&alice.agent, rules).await;
    let to = bob_wallet.to_string();

    // Over the day's budget: blocked, kept as such, nothing held or sent.
    let (status, blocked) =
        pay(&h, &alice.agent.key, json!({ "to": to, "amount_cents": 6_000 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{blocked}");
    assert_eq!(blocked["error"]["code"], "policy_blocked");
    let blocked_id = blocked["error"]["details"]["payment_id"].as_str().unwrap();
    let kept = get(&h, &alice.agent.key, blocked_id).await;
    assert_eq!(kept["status"], "blocked");
    assert!(kept["typed_data"].is_null());

    // Escalated: waits for the owner with no document to sign; approved, it is signed and moves.
    let (status, waiting) =
        pay(&h, &alice.agent.key, json!({ "to": to, "amount_cents": 2_000 })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{waiting}");
    assert_eq!(waiting["status"], "pending_approval");
    assert!(waiting["typed_data"].is_null());
    let id = waiting["id"].as_str().unwrap().to_owned();
    let (status, refused) =
        authorize(&h, &alice.agent.key, &id, &format!("0x{}", "11".repeat(65))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "payment_not_awaiting_signature");
    assert_eq!(h.chain.balance(bob_wallet).await, U256::ZERO);
    let approval = waiting["approval_id"].as_str().unwrap();
    let (status, decided) = h
        .call(
            Method::POST,
            &format!("/approvals/{approval}/decide"),
            Some(OWNER_KEY),
            Some(&json!({ "decision": "approve" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let approved = get(&h, &alice.agent.key, &id).await;
    assert_eq!(approved["status"], "awaiting_signature");
    assert_eq!(hold(&h, approved["reservation_id"].as_str().unwrap()).await["status"], "reserved");
    let signature = sign_document(&alice.wallet, &approved["typed_data"]);
    let (status, _) = authorize(&h, &alice.agent.key, &id, &signature).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_status(&h, &alice.agent.key, &id, "confirmed").await;
    assert_eq!(h.chain.balance(bob_wallet).await, U256::from(20 * DOLLAR));

    // Rejected: blocked, its hold rejected, nothing moves.
    let (_, second) = pay(&h, &alice.agent.key, json!({ "to": to, "amount_cents": 1_500 })).await;
    let approval = second["approval_id"].as_str().unwrap();
    h.call(
        Method::POST,
        &format!("/approvals/{approval}/decide"),
        Some(OWNER_KEY),
        Some(&json!({ "decision": "reject" })),
    )
    .await;
    let rejected = get(&h, &alice.agent.key, second["id"].as_str().unwrap()).await;
    assert_eq!(rejected["status"], "blocked");
    assert_eq!(hold(&h, rejected["reservation_id"].as_str().unwrap()).await["status"], "rejected");
    assert_eq!(h.chain.balance(bob_wallet).await, U256::from(20 * DOLLAR));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_sending_expiry_and_a_transfer_sent_by_someone_else() {
    let mut h = Harness::start().await;
    let alice = payer(&h, "alice", 5).await;
    let (_, bob_wallet) = payee(&h, "bob").await;
    let to = bob_wallet.to_string();

    // No wallet to pay from.
    let walletless = h.agent("walletless").await;
    let (status, refused) =
        pay(&h, &walletless.key, json!({ "to": to, "amount_cents": 100 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "wallet_required");

    // More than the wallet holds: refused at authorize, nothing queued, still signable.
    let (_, big) = pay(&h, &alice.agent.key, json!({ "to": to, "amount_cents": 600 })).await;
    let big_id = big["id"].as_str().unwrap();
    let signature = sign_document(&alice.wallet, &big["typed_data"]);
    let (status, refused) = authorize(&h, &alice.agent.key, big_id, &signature).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "insufficient_funds");
    assert_eq!(h.job_count().await, 0);
    assert_eq!(get(&h, &alice.agent.key, big_id).await["status"], "awaiting_signature");

    // Anyone may submit a signed authorization: a transfer sent from another account confirms
    // the payment all the same, and an authorize after it is refused as spent.
    let (_, direct) = pay(&h, &alice.agent.key, json!({ "to": to, "amount_cents": 250 })).await;
    let direct_id = direct["id"].as_str().unwrap();
    let document = &direct["typed_data"];
    let signature: Bytes = sign_document(&alice.wallet, document).parse().unwrap();
    let m = &document["message"];
    let number =
        |v: &Value| U256::from_str_radix(v.as_str().unwrap_or(&v.to_string()), 10).unwrap();
    let call = pactum::payments::Terms {
        from: alice.wallet.address(),
        to: bob_wallet,
        value: number(&m["value"]),
        valid_after: number(&m["validAfter"]).to::<u64>(),
        valid_before: number(&m["validBefore"]).to::<u64>(),
        nonce: m["nonce"].as_str().unwrap().parse::<B256>().unwrap(),
    }
    .call(&signature);
    let request = alloy::rpc::types::TransactionRequest::default()
        .from(h.chain.seller.address())
        .to(*h.chain.usdc.address())
        .input(call.into());
    h.chain.provider.send_transaction(request).await.unwrap().get_receipt().await.unwrap();
    let confirmed = wait_status(&h, &alice.agent.key, direct_id, "confirmed").await;
    assert_eq!(confirmed["receipt"]["kind"], "payment");
    assert_eq!(h.chain.balance(bob_wallet).await, U256::from(2_500_000u64));
    let (status, refused) =
        authorize(&h, &alice.agent.key, direct_id, &signature.to_string()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    // Never signed: expires once the chain's clock passes `valid_before`; its hold comes back.
    let body = json!({ "to": to, "amount_cents": 100, "valid_for_seconds": 60 });
    let (_, lapsing) = pay(&h, &alice.agent.key, body).await;
    let lapsing_id = lapsing["id"].as_str().unwrap();
    let _: Value =
        h.chain.provider.raw_request("evm_increaseTime".into(), (120u64,)).await.unwrap();
    let expired = wait_status(&h, &alice.agent.key, lapsing_id, "expired").await;
    assert_eq!(hold(&h, expired["reservation_id"].as_str().unwrap()).await["status"], "released");
    let late = sign_document(&alice.wallet, &lapsing["typed_data"]);
    let (status, refused) = authorize(&h, &alice.agent.key, lapsing_id, &late).await;
    assert_eq!(status, StatusCode::GONE, "{refused}");
    assert_eq!(refused["error"]["code"], "payment_expired");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_payments_take_exactly_what_the_mandate_allows_on_sqlite() {
    concurrent_payments_against_a_mandate(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_payments_take_exactly_what_the_mandate_allows_on_postgres() {
    let Some(url) = crate::support::databases::fresh_postgres().await else { return };
    concurrent_payments_against_a_mandate(Some(url.clone())).await;
    crate::support::databases::drop_postgres(&url).await;
}

async fn concurrent_payments_against_a_mandate(db: Option<String>) {
    let mut h = Harness::start_with(|config| {
        if let Some(url) = &db {
            config.database_url = url.clone();
        }
    })
    .await;
    let alice = payer(&h, "alice", 100).await;
    let (_, bob_wallet) = payee(&h, "bob").await;
    let body = json!({ "agent_id": alice.agent.id, "max_total_cents": 1_000 });
    let (status, mandate) =
        h.call(Method::POST, "/v1/mandates", Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{mandate}");
    let mandate = mandate["id"].as_str().unwrap().to_owned();
    let answers: Vec<(StatusCode, Value)> = futures::stream::iter(0..100)
        .map(|_| {
            let body = json!({ "to": bob_wallet.to_string(), "amount_cents": 100,
                               "mandate_id": mandate });
            pay(&h, &alice.agent.key, body)
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let made: Vec<&Value> =
        answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, p)| p).collect();
    assert_eq!(made.len(), 10, "ten $1 payments fit a $10 mandate");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "policy_blocked");
    }
    for payment in &made {
        let signature = sign_document(&alice.wallet, &payment["typed_data"]);
        let (status, body) =
            authorize(&h, &alice.agent.key, payment["id"].as_str().unwrap(), &signature).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    for payment in &made {
        wait_status(&h, &alice.agent.key, payment["id"].as_str().unwrap(), "confirmed").await;
    }
    assert_eq!(h.chain.balance(bob_wallet).await, U256::from(10 * DOLLAR));
    assert_eq!(h.chain.balance(alice.wallet.address()).await, U256::from(90 * DOLLAR));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorganisation_takes_a_confirmation_back_until_the_transfer_is_mined_again() {
    let mut h = Harness::start_with(|config| config.confirmations = 1).await;
    let alice = payer(&h, "alice", 10).await;
    let (_, bob_wallet) = payee(&h, "bob").await;
    let (_, created) =
        pay(&h, &alice.agent.key, json!({ "to": bob_wallet.to_string(), "amount_cents": 300 }))
            .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let signature = sign_document(&alice.wallet, &created["typed_data"]);
    authorize(&h, &alice.agent.key, &id, &signature).await;
    let confirmed = wait_status(&h, &alice.agent.key, &id, "confirmed").await;
    let receipt = confirmed["receipt"]["id"].as_str().unwrap().to_owned();
    // Replace the block with the transfer (and those above it) by empty blocks.
    let mined = confirmed["block_number"].as_u64().unwrap();
    let head = h.chain.provider.get_block_number().await.unwrap();
    let depth = head - mined + 1;
    let _: Value = h
        .chain
        .provider
        .raw_request("anvil_reorg".into(), (depth, Vec::<Value>::new()))
        .await
        .unwrap();
    let back = h
        .wait_path(&alice.agent.key, &format!("/v1/payments/{id}"), |p| {
            p["status"] != "confirmed" || p["receipt"]["id"].as_str() != Some(receipt.as_str())
        })
        .await;
    assert!(
        back["status"] == "submitted" || back["receipt"]["id"].as_str() != Some(&receipt),
        "{back}"
    );
    let again = wait_status(&h, &alice.agent.key, &id, "confirmed").await;
    assert_ne!(again["receipt"]["id"].as_str(), Some(receipt.as_str()), "a new receipt");
    assert_eq!(h.chain.balance(bob_wallet).await, U256::from(3_000_000u64), "moved once");
    let store = h.service.as_ref().unwrap().state().store.clone();
    let reorged: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM outbox_events WHERE event_type = 'payment.reorged'")
            .fetch_one(store.reader())
            .await
            .unwrap()
            .get("n");
    assert_eq!(reorged, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_spends_a_reservation_or_goes_under_a_payment_token() {
    let mut h = Harness::start().await;
    let alice = payer(&h, "alice", 100).await;
    let (bob, bob_wallet) = payee(&h, "bob").await;
    h.set_policy(&alice.agent, daily_budget(10_000)).await;

    // A reservation held for bob is spent by a smaller payment: no second decision; the
    // payment's amount is captured and the rest released.
    let body = json!({ "amount_cents": 500, "action_type": "spend", "counterparty": bob.id });
    let (status, reserved) = h
        .call(Method::POST, "/v1/spend-guard/reservations", Some(&alice.agent.key), Some(&body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reserved}");
    let reservation = reserved["id"].as_str().unwrap();
    // Not for another payee, nor for more than it holds.
    let stranger = PrivateKeySigner::random().address().to_string();
    let (status, refused) = pay(
        &h,
        &alice.agent.key,
        json!({ "to": stranger, "amount_cents": 300, "reservation_id": reservation }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, refused) = pay(
        &h,
        &alice.agent.key,
        json!({ "to": bob.id, "amount_cents": 501, "reservation_id": reservation }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, created) = pay(
        &h,
        &alice.agent.key,
        json!({ "to": bob.id, "amount_cents": 300, "reservation_id": reservation }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["reservation_id"], reservation);
    assert!(created["decision"].is_null());
    let adopted = hold(&h, reservation).await;
    assert_eq!(
        (adopted["source"].as_str(), adopted["expires_at"].as_str()),
        (Some("payment"), None)
    );
    // The reservation is the payment's now: it cannot be captured by hand, nor spent twice.
    let path = format!("/v1/spend-guard/reservations/{reservation}/capture");
    let (status, _) = h.call(Method::POST, &path, Some(&alice.agent.key), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = pay(
        &h,
        &alice.agent.key,
        json!({ "to": bob.id, "amount_cents": 100, "reservation_id": reservation }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let id = created["id"].as_str().unwrap();
    let signature = sign_document(&alice.wallet, &created["typed_data"]);
    authorize(&h, &alice.agent.key, id, &signature).await;
    wait_status(&h, &alice.agent.key, id, "confirmed").await;
    let spent = hold(&h, reservation).await;
    assert_eq!(
        (spent["status"].as_str(), spent["captured_cents"].as_u64()),
        (Some("captured"), Some(300))
    );
    assert_eq!(h.chain.balance(bob_wallet).await, U256::from(3 * DOLLAR));

    // An execution token of action `payment` pays only its audience, once.
    let mint = |audience: String| json!({ "action": "payment", "audience": audience });
    let path = format!("/v1/agents/{}/execution-tokens", alice.agent.id);
    let (status, token) =
        h.call(Method::POST, &path, Some(OWNER_KEY), Some(&mint(bob.id.clone()))).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();
    let (status, refused) = pay(&h, &token, json!({ "to": stranger, "amount_cents": 100 })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"]["code"], "execution_token_audience_mismatch");
    let (status, made) = pay(&h, &token, json!({ "to": bob.id, "amount_cents": 100 })).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, again) = pay(&h, &token, json!({ "to": bob.id, "amount_cents": 100 })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{again}");
    assert_eq!(again["error"]["code"], "execution_token_used");
    h.stop().await;
}

alloy::sol! {
    /// USDC's EIP-3009 cancellation: what a wallet signs to void an unused authorization.
    struct CancelAuthorization {
        address authorizer;
        bytes32 nonce;
    }

    function cancelAuthorization(address authorizer, bytes32 nonce, bytes signature) external;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_queued_together_go_in_one_batch_and_a_refused_one_fails_alone() {
    use alloy::sol_types::{SolCall, SolStruct};
    let chain = crate::support::DevChain::start().await;
    let batcher = pactum::chain::deploy::deploy_transfer_batch(&chain.provider).await.unwrap();
    let mut h = Harness::start_on(chain, |_, config| {
        config.transfer_batch_address = Some(batcher);
        // Long enough for every authorization below to queue before the batch is taken.
        config.relayer_batch_wait_ms = Some(4_000);
    })
    .await;
    let alice = payer(&h, "alice", 100).await;
    let (_, bob_wallet) = payee(&h, "bob").await;
    let mut made = Vec::new();
    for cents in [100u64, 200, 300, 400] {
        let (status, payment) = pay(
            &h,
            &alice.agent.key,
            json!({ "to": bob_wallet.to_string(), "amount_cents": cents }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        made.push(payment);
    }
    for payment in &made {
        let signature = sign_document(&alice.wallet, &payment["typed_data"]);
        let (status, body) =
            authorize(&h, &alice.agent.key, payment["id"].as_str().unwrap(), &signature).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    // The wallet voids the last payment's authorization before the relayer sends the batch.
    let last = &made[3];
    let nonce: B256 = last["payment_key"].as_str().unwrap().parse().unwrap();
    let domain = pactum::escrow::typed_data::token_domain(
        "USD Coin".into(),
        h.chain.chain_id,
        *h.chain.usdc.address(),
    );
    let digest = CancelAuthorization { authorizer: alice.wallet.address(), nonce }
        .eip712_signing_hash(&domain);
    let call = cancelAuthorizationCall {
        authorizer: alice.wallet.address(),
        nonce,
        signature: crate::support::sign_hash(&alice.wallet, digest),
    };
    let request = alloy::rpc::types::TransactionRequest::default()
        .from(h.chain.seller.address())
        .to(*h.chain.usdc.address())
        .input(call.abi_encode().into());
    let cancelled =
        h.chain.provider.send_transaction(request).await.unwrap().get_receipt().await.unwrap();

    let mut hashes = std::collections::BTreeSet::new();
    for payment in &made[..3] {
        let confirmed =
            wait_status(&h, &alice.agent.key, payment["id"].as_str().unwrap(), "confirmed").await;
        hashes.insert(confirmed["tx_hash"].as_str().unwrap().to_owned());
    }
    assert!(hashes.len() < 3, "payments queued together share a transaction: {hashes:?}");
    let last_id = last["id"].as_str().unwrap();
    eprintln!("cancel mined before the batch: {}", cancelled.status());
    if cancelled.status() {
        // Refused inside the batch: it alone fails and gives its hold back.
        let failed = wait_status(&h, &alice.agent.key, last_id, "failed").await;
        assert!(failed["error"].as_str().unwrap().contains("inside the batch"), "{failed}");
        assert_eq!(
            hold(&h, failed["reservation_id"].as_str().unwrap()).await["status"],
            "released"
        );
        assert_eq!(h.chain.balance(bob_wallet).await, U256::from(6 * DOLLAR));
    } else {
        // The batch went first (a very slow machine): then it paid, and the cancel was refused.
        wait_status(&h, &alice.agent.key, last_id, "confirmed").await;
        assert_eq!(h.chain.balance(bob_wallet).await, U256::from(10 * DOLLAR));
    }
    let store = h.service.as_ref().unwrap().state().store.clone();
    let batches: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM relayer_jobs WHERE kind = 'payment_batch'")
            .fetch_one(store.reader())
            .await
            .unwrap()
            .get("n");
    assert!(batches >= 1);
    h.stop().await;
}
