//! Agents' wallets: registration (by the owner or the agent itself), the proof of control with
//! a real EIP-712 signature (ECDSA and ERC-1271) and a wrong one refused, one registration of an
//! address per account, 404 across accounts and agents, `POST /activate` for the primary
//! wallet, balances read from the chain and cached per block, and demo funding that mints
//! exactly the amount on a test deployment and nothing on a live one.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use pactum::agreement::ids::{Environment, SecretKey};
use pactum::config::Secret;
use pactum::wallets::ownership;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::router::{Api, Client, other_account};
use crate::support::service::{Harness, OWNER_KEY, TestAgent, sign_document};
use crate::support::smart_wallet::smart_wallet;

fn random_address() -> Address {
    PrivateKeySigner::random().address()
}

async fn register(api: &impl Client, key: &str, body: &Value) -> (StatusCode, Value) {
    api.call(Method::POST, "/v1/wallets", Some(key), Some(body)).await
}

/// The `wallet.registered` events of `agent`, oldest first.
async fn registered_events(api: &impl Client, agent: &TestAgent) -> Vec<Value> {
    let rows = sqlx::query(
        "SELECT data FROM outbox_events WHERE agent_id = $1 AND event_type = 'wallet.registered' \
         ORDER BY id",
    )
    .bind(&agent.id)
    .fetch_all(api.store().reader())
    .await
    .unwrap();
    rows.iter().map(|row| serde_json::from_str(&row.get::<String, _>("data")).unwrap()).collect()
}

/// A registration body for `agent` proving control of `signer`'s wallet, signed at `issued_at`
/// with the document unchanged, as a wallet library signs it.
fn proven(
    chain_id: u64,
    signer: &PrivateKeySigner,
    wallet: Address,
    agent: &str,
    at: i64,
) -> Value {
    let document = ownership::document(chain_id, wallet, agent, at);
    json!({
        "agent_id": agent,
        "address": wallet.to_string(),
        "ownership_signature": sign_document(signer, &document),
        "ownership_issued_at": at,
    })
}

#[tokio::test]
async fn registration_reads_lists_and_one_address_per_account() {
    let api = Api::start().await;
    let (alice, bob) = (api.agent("alice").await, api.agent("bob").await);
    let address = random_address();

    // The owner registers for any agent of its account; nothing was proven.
    let body = json!({ "agent_id": alice.id, "address": address.to_string(), "label": "hot" });
    let (status, wallet) = register(&api, OWNER_KEY, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{wallet}");
    assert!(wallet["id"].as_str().unwrap().starts_with("wal_"));
    assert_eq!(wallet["agent_id"], alice.id.as_str());
    assert_eq!(wallet["address"], address.to_checksum(None));
    assert_eq!(wallet["custody"], "self");
    assert_eq!(wallet["ownership_proven"], false);
    assert_eq!(wallet["ownership_proof"], "none");
    assert_eq!(wallet["primary"], false);
    let id = wallet["id"].as_str().unwrap().to_owned();

    // An address is registered once per account, in any case, by any agent of it.
    let lower = json!({ "agent_id": alice.id, "address": format!("{address:#x}") });
    let (status, again) = register(&api, OWNER_KEY, &lower).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["error"]["code"], "wallet_already_registered");
    assert_eq!(again["error"]["details"]["wallet_id"], id.as_str());
    let (status, by_bob) =
        register(&api, &bob.key, &json!({ "address": address.to_string() })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{by_bob}");

    // An agent registers for itself, never for another agent.
    let own = json!({ "address": random_address().to_string() });
    let (status, bobs) = register(&api, &bob.key, &own).await;
    assert_eq!(status, StatusCode::CREATED, "{bobs}");
    assert_eq!(bobs["agent_id"], bob.id.as_str());
    let other = json!({ "agent_id": alice.id, "address": random_address().to_string() });
    let (status, refused) = register(&api, &bob.key, &other).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");

    // Malformed input names its field.
    for (body, field) in [
        (json!({ "agent_id": alice.id, "address": "0x1234" }), "address"),
        (json!({ "agent_id": alice.id, "address": Address::ZERO.to_string() }), "address"),
        (json!({ "address": random_address().to_string() }), "agent_id"),
        (
            json!({ "agent_id": alice.id, "address": random_address().to_string(),
                    "ownership_signature": "0x00" }),
            "ownership_issued_at",
        ),
        (
            json!({ "agent_id": alice.id, "address": random_address().to_string(), "label": "" }),
            "label",
        ),
    ] {
        let (status, error) = register(&api, OWNER_KEY, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{error}");
    }

    // Reads: the owner sees every wallet; an agent its own only.
    let path = format!("/v1/wallets/{id}");
    let (status, read) = api.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!((status, &read), (StatusCode::OK, &wallet));
    let (status, read) = api.call(Method::GET, &path, Some(&alice.key), None).await;
    assert_eq!((status, &read), (StatusCode::OK, &wallet));
    let (status, _) = api.call(Method::GET, &path, Some(&bob.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, all) = api.call(Method::GET, "/v1/wallets", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let query = format!("/v1/wallets?agent_id={}", alice.id);
    let (_, alices) = api.call(Method::GET, &query, Some(OWNER_KEY), None).await;
    assert_eq!(alices["data"], json!([wallet]));
    let (_, mine) = api.call(Method::GET, "/v1/wallets", Some(&bob.key), None).await;
    assert_eq!(mine["data"], json!([bobs]));
    let (status, _) = api.call(Method::GET, &query, Some(&bob.key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, page) = api.call(Method::GET, "/v1/wallets?limit=1", Some(OWNER_KEY), None).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_string());

    // Another account: registers the same address for itself, and finds none of these.
    let (foreign_owner, foreign) = other_account(&api).await;
    let body = json!({ "agent_id": foreign.id, "address": address.to_string() });
    let (status, theirs) = register(&api, &foreign_owner, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (status, _) = api.call(Method::GET, &path, Some(&foreign_owner), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.call(Method::GET, &path, Some(&foreign.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        api.call(Method::GET, &format!("{path}/balance"), Some(&foreign_owner), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body = json!({ "agent_id": alice.id, "address": random_address().to_string() });
    let (status, _) = register(&api, &foreign_owner, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another account's agent is unknown");

    // Each registration told its agent's webhooks.
    let events = registered_events(&api, &alice).await;
    assert_eq!(events, vec![wallet]);
    assert_eq!(registered_events(&api, &bob).await.len(), 1);
}

#[tokio::test]
async fn a_registration_replays_under_its_idempotency_key() {
    let api = Api::start().await;
    let alice = api.agent("alice").await;
    let body = json!({ "address": random_address().to_string() });
    let headers = [("Idempotency-Key", "register-1")];
    let first =
        api.call_with(Method::POST, "/v1/wallets", Some(&alice.key), Some(&body), &headers).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let again =
        api.call_with(Method::POST, "/v1/wallets", Some(&alice.key), Some(&body), &headers).await;
    assert_eq!(again, first);
    assert_eq!(registered_events(&api, &alice).await.len(), 1);
}

#[tokio::test]
async fn activate_sets_the_agents_primary_wallet() {
    let api = Api::start().await;
    let alice = api.agent("alice").await;
    let (first, second) = (random_address(), random_address());
    let activate = |address: Address| {
        let api = &api;
        let key = alice.key.clone();
        async move {
            let body = json!({ "address": address.to_string() });
            api.call(Method::POST, "/activate", Some(&key), Some(&body)).await
        }
    };
    let (status, one) = activate(first).await;
    assert_eq!(status, StatusCode::CREATED, "{one}");
    assert_eq!(one["primary"], true);
    assert_eq!(one["agent_id"], alice.id.as_str());
    let (status, two) = activate(second).await;
    assert_eq!(status, StatusCode::CREATED, "{two}");
    assert_eq!(two["primary"], true);
    let path = format!("/v1/wallets/{}", one["id"].as_str().unwrap());
    let (_, demoted) = api.call(Method::GET, &path, Some(&alice.key), None).await;
    assert_eq!(demoted["primary"], false);

    // Setting an address the agent has already makes it primary again.
    let (status, back) = activate(first).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!((&back["id"], &back["primary"]), (&one["id"], &json!(true)));
    let (_, list) = api.call(Method::GET, "/v1/wallets", Some(&alice.key), None).await;
    let primaries = list["data"].as_array().unwrap().iter().filter(|w| w["primary"] == true);
    assert_eq!(primaries.count(), 1);

    // Agents only: the owner credential is not an agent key.
    let body = json!({ "address": random_address().to_string() });
    let (status, _) = api.call(Method::POST, "/activate", Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn funding_is_refused_on_a_live_deployment() {
    let owner = SecretKey::generate("ok", Environment::Live);
    let owner_key = owner.reveal().to_owned();
    let api = Api::start_with(|config| {
        config.environment = Some(Environment::Live);
        config.owner_key = Some(Secret::new(owner_key.clone()));
    })
    .await;
    let body = json!({ "name": "live-agent" });
    let (status, agent) = api.call(Method::POST, "/v1/agents", Some(&owner_key), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    assert!(agent["api_key"].as_str().unwrap().starts_with("pk_live_"));
    let body = json!({ "agent_id": agent["id"], "address": random_address().to_string() });
    let (status, wallet) = register(&api, &owner_key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{wallet}");
    let path = format!("/v1/wallets/{}/fund", wallet["id"].as_str().unwrap());
    let body = json!({ "amount_cents": 10_000 });
    let (status, refused) = api.call(Method::POST, &path, Some(&owner_key), Some(&body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "funding_unavailable");
}

#[tokio::test]
async fn ownership_is_proven_by_the_wallets_signature() {
    let h = Harness::start().await;
    let chain_id = h.chain.chain_id;
    let alice = h.agent("alice").await;
    let now = pactum::store::now();

    // An externally owned account signs the document unchanged.
    let key = PrivateKeySigner::random();
    let body = proven(chain_id, &key, key.address(), &alice.id, now);
    let (status, wallet) = register(&h, &alice.key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{wallet}");
    assert_eq!(wallet["ownership_proven"], true);
    assert_eq!(wallet["ownership_proof"], "ecdsa");
    assert_eq!(wallet["ownership_issued_at"], pactum::time::rfc3339(now));

    // A signature by another key, for another agent, on another chain, or stale: refused.
    let target = PrivateKeySigner::random();
    let impostor = PrivateKeySigner::random();
    for (body, code, field) in [
        (
            proven(chain_id, &impostor, target.address(), &alice.id, now),
            "invalid_signature",
            "ownership_signature",
        ),
        (
            proven(chain_id, &target, target.address(), "agt_someone_else", now),
            "invalid_signature",
            "ownership_signature",
        ),
        (
            proven(chain_id + 1, &target, target.address(), &alice.id, now),
            "invalid_signature",
            "ownership_signature",
        ),
        (
            proven(chain_id, &target, target.address(), &alice.id, now - 3_600),
            "validation_error",
            "ownership_issued_at",
        ),
    ] {
        let mut body = body;
        body["agent_id"] = json!(alice.id);
        let (status, error) = register(&h, &alice.key, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert_eq!(error["error"]["code"], code, "{error}");
        assert_eq!(error["error"]["details"]["field"], field, "{error}");
    }
    // Nothing was registered by the refusals.
    let (_, list) = h.call(Method::GET, "/v1/wallets", Some(&alice.key), None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // A smart wallet proves control through ERC-1271 (its owner key signs).
    let contract = smart_wallet(&h).await;
    let body = proven(chain_id, &h.chain.buyer, contract, &alice.id, now);
    let (status, wallet) = register(&h, &alice.key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{wallet}");
    assert_eq!(wallet["ownership_proof"], "erc1271");
    let stranger = proven(chain_id, &impostor, smart_wallet(&h).await, &alice.id, now);
    let (status, error) = register(&h, &alice.key, &stranger).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "invalid_signature");
}

async fn balance(h: &Harness, key: &str, id: &str) -> Value {
    let (status, balance) =
        h.call(Method::GET, &format!("/v1/wallets/{id}/balance"), Some(key), None).await;
    assert_eq!(status, StatusCode::OK, "{balance}");
    balance
}

#[tokio::test]
async fn balances_match_the_chain_and_are_read_once_per_block() {
    let h = Harness::start().await;
    let alice = h.agent("alice").await;
    let buyer = h.chain.buyer.address();
    let body = json!({ "address": buyer.to_string() });
    let (_, wallet) = register(&h, &alice.key, &body).await;
    let id = wallet["id"].as_str().unwrap();

    let read = balance(&h, &alice.key, id).await;
    let head = h.chain.provider.get_block_number().await.unwrap();
    assert_eq!(read["block_number"], head);
    assert_eq!(read["chain_id"], h.chain.chain_id);
    assert_eq!(read["usdc_amount"], h.chain.balance(buyer).await.to_string());
    let eth = h.chain.provider.get_balance(buyer).await.unwrap();
    assert_eq!(read["eth_amount"], eth.to_string());

    // The node's state changes without a new block: within the block, the balance is not
    // read again.
    let changed = U256::from(123_456_789u64);
    let _: Value =
        h.chain.provider.raw_request("anvil_setBalance".into(), (buyer, changed)).await.unwrap();
    assert_eq!(h.chain.provider.get_block_number().await.unwrap(), head);
    assert_eq!(balance(&h, &alice.key, id).await, read);

    // A new block: read again.
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let fresh = balance(&h, &alice.key, id).await;
    assert_eq!(fresh["block_number"], head + 1);
    assert_eq!(fresh["eth_amount"], changed.to_string());
    assert_eq!(fresh["usdc_amount"], read["usdc_amount"]);
}

#[tokio::test]
async fn funding_mints_exactly_the_amount_on_a_test_chain() {
    let h = Harness::start().await;
    let alice = h.agent("alice").await;
    let address = random_address();
    let body = json!({ "address": address.to_string() });
    let (_, wallet) = register(&h, &alice.key, &body).await;
    let id = wallet["id"].as_str().unwrap();
    let path = format!("/v1/wallets/{id}/fund");

    let (status, error) =
        h.call(Method::POST, &path, Some(&alice.key), Some(&json!({ "amount_cents": 0 }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["details"]["field"], "amount_cents");

    let body = json!({ "amount_cents": 12_345 });
    let headers = [("Idempotency-Key", "fund-1")];
    let funded = h.call_with(Method::POST, &path, Some(&alice.key), Some(&body), &headers).await;
    assert_eq!(funded.0, StatusCode::OK, "{}", funded.1);
    assert_eq!(funded.1["amount_cents"], 12_345);
    assert_eq!(funded.1["usdc_amount"], "123450000");
    assert_eq!(h.chain.balance(address).await, U256::from(123_450_000u64));
    // A retry with the same key replays the answer and mints nothing more.
    let again = h.call_with(Method::POST, &path, Some(&alice.key), Some(&body), &headers).await;
    assert_eq!(again, funded);
    assert_eq!(h.chain.balance(address).await, U256::from(123_450_000u64));
    let read = balance(&h, &alice.key, id).await;
    assert_eq!(read["usdc_amount"], "123450000");

    // The owner may fund it too; another agent of the account finds no such wallet.
    let (status, _) = h.call(Method::POST, &path, Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.chain.balance(address).await, U256::from(246_900_000u64));
    let bob = h.agent("bob").await;
    let (status, _) = h.call(Method::POST, &path, Some(&bob.key), Some(&body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_configured_faucet_wallet_funds_by_transfer_and_never_mints() {
    let h = Harness::start_with_chain(|chain, config| {
        config.faucet_private_key = Some(Secret::new(chain.seller.to_bytes().to_string()));
    })
    .await;
    let faucet = h.chain.seller.address();
    h.chain.mint(faucet, 50_000_000).await;
    let supply = h.chain.usdc.totalSupply().call().await.unwrap();
    let alice = h.agent("alice").await;
    let address = random_address();
    let (_, wallet) = register(&h, &alice.key, &json!({ "address": address.to_string() })).await;
    let path = format!("/v1/wallets/{}/fund", wallet["id"].as_str().unwrap());

    let body = json!({ "amount_cents": 1_000 });
    let (status, funded) = h.call(Method::POST, &path, Some(&alice.key), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{funded}");
    assert_eq!(h.chain.balance(address).await, U256::from(10_000_000u64));
    assert_eq!(h.chain.balance(faucet).await, U256::from(40_000_000u64));
    assert_eq!(h.chain.usdc.totalSupply().call().await.unwrap(), supply, "moved, not minted");

    // More than the faucet holds: refused, nothing sent.
    let body = json!({ "amount_cents": 4_001 });
    let (status, refused) = h.call(Method::POST, &path, Some(&alice.key), Some(&body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "funding_unavailable");
    assert_eq!(h.chain.balance(faucet).await, U256::from(40_000_000u64));
    assert_eq!(h.chain.balance(address).await, U256::from(10_000_000u64));
}
