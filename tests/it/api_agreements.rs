//! The agreement state machine over real HTTP: what a proposal must hold, who may accept or
//! reject it and when, paging through an agent's agreements, and idempotent writes.

use std::collections::HashSet;

use crate::support::service::{Harness, OWNER_KEY, TestAgent};
use alloy::primitives::Address;
use pactum::agreement::ids::{Environment, SecretKey};
use pactum::store::agents::ensure_account;
use pactum::store::now;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn propose_body(seller: &TestAgent, wallet: Address) -> Value {
    crate::support::service::propose_body(&seller.id, wallet)
}

/// The status and code of an error answer.
fn code(response: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (response.0, response.1["error"]["code"].as_str())
}

/// A request that also returns the response headers, for `idempotent-replayed`.
async fn send(
    h: &Harness,
    method: Method,
    path: &str,
    key: &str,
    body: &Value,
    idempotency_key: &str,
) -> (StatusCode, Value, Option<String>) {
    let response = h
        .http
        .request(method, format!("{}{path}", h.base))
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency_key)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|value| value.to_str().unwrap().to_owned());
    (response.status(), response.json().await.unwrap(), replayed)
}

/// Every page of `agent`'s agreements, `limit` at a time, following `next_cursor` to the end.
async fn pages(h: &Harness, agent: &TestAgent, limit: u32) -> Vec<Vec<Value>> {
    let base = format!("/usage-agreements/agents/{}/agreements?limit={limit}", agent.id);
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("{base}&cursor={cursor}"),
            None => base.clone(),
        };
        let (status, page) = h.call(Method::GET, &path, Some(&agent.key), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let agreements = page["agreements"].as_array().unwrap().clone();
        assert!(agreements.len() <= limit as usize, "{page}");
        pages.push(agreements);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages.len() <= 20, "paging does not end");
    }
    pages
}

async fn agreement(h: &Harness, key: &str, id: &str) -> Value {
    let (status, body) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn list_len(h: &Harness, agent: &TestAgent) -> usize {
    let path = format!("/usage-agreements/agents/{}/agreements", agent.id);
    let (status, list) = h.call(Method::GET, &path, Some(&agent.key), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["agreements"].as_array().unwrap().len()
}

#[tokio::test]
async fn proposals_are_validated_before_anything_is_stored() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let wallet = h.chain.buyer.address();
    let cases: [(&str, &str, Value, &str); 10] = [
        ("quantity", "quantity", json!(0), "validation_error"),
        ("price_per_unit_cents", "price_per_unit_cents", json!(0), "validation_error"),
        ("buyer_wallet_address", "buyer_wallet_address", json!("0x1234"), "validation_error"),
        ("buyer_wallet_address", "buyer_wallet_address", json!("not a wallet"), "validation_error"),
        ("buyer_wallet_address", "buyer_wallet_address", json!(Address::ZERO), "validation_error"),
        ("activation_version", "activation_version", json!("v1"), "validation_error"),
        ("settlement_model", "settlement_model", json!("direct"), "validation_error"),
        (
            "payment_method",
            "payment_method.rail",
            json!({ "rail": "card", "provider": "x402" }),
            "validation_error",
        ),
        (
            "seller_agent_id",
            "seller_agent_id",
            json!("agt_000000000000000000000000"),
            "unknown_agent",
        ),
        ("seller_agent_id", "seller_agent_id", json!(buyer.id), "validation_error"),
    ];
    for (field, detail, value, expected) in cases {
        let mut body = propose_body(&seller, wallet);
        body[field] = value.clone();
        let response =
            h.call(Method::POST, "/usage-agreements", Some(&buyer.key), Some(&body)).await;
        let context = format!("{field} = {value}: {}", response.1);
        assert_eq!(
            code(&response),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(expected)),
            "{context}"
        );
        assert_eq!(response.1["error"]["details"]["field"], detail, "{context}");
    }
    assert_eq!(list_len(&h, &buyer).await, 0, "nothing stored");
    assert_eq!(list_len(&h, &seller).await, 0, "nothing stored");

    // And the valid one is stored as proposed, with its totals.
    let proposed = h.propose(&buyer, &seller, wallet).await;
    assert_eq!(proposed["status"], "proposed");
    assert_eq!(proposed["activation_status"], "not_started");
    assert_eq!(proposed["buyer_agent_id"], buyer.id.as_str());
    assert_eq!(proposed["seller_agent_id"], seller.id.as_str());
    assert_eq!(proposed["buyer_wallet_address"], wallet.to_checksum(None));
    assert_eq!(proposed["total_cents"], 1000);
    assert_eq!(proposed["terms"], Value::Null);
    assert_eq!(proposed["seller_wallet_address"], Value::Null);
    assert_eq!(list_len(&h, &buyer).await, 1);
}

#[tokio::test]
async fn only_the_seller_answers_a_proposal_and_only_once() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let accept_body = json!({ "seller_wallet_address": seller_wallet.to_string() });
    let accept = |key: String, id: String| {
        let (h, body) = (&h, &accept_body);
        async move {
            let path = format!("/usage-agreements/{id}/accept");
            h.call(Method::PUT, &path, Some(&key), Some(body)).await
        }
    };
    let reject = |key: String, id: String, body: Option<Value>| {
        let h = &h;
        async move {
            let path = format!("/usage-agreements/{id}/reject");
            h.call(Method::PUT, &path, Some(&key), body.as_ref()).await
        }
    };
    let conflict = (StatusCode::CONFLICT, Some("invalid_state"));

    // The buyer may not accept or reject its own proposal.
    let id = h.propose(&buyer, &seller, buyer_wallet).await["id"].as_str().unwrap().to_owned();
    let response = accept(buyer.key.clone(), id.clone()).await;
    assert_eq!(code(&response), (StatusCode::FORBIDDEN, Some("forbidden")), "{}", response.1);
    let response = reject(buyer.key.clone(), id.clone(), None).await;
    assert_eq!(code(&response), (StatusCode::FORBIDDEN, Some("forbidden")), "{}", response.1);
    assert_eq!(agreement(&h, &buyer.key, &id).await["status"], "proposed");

    // No package before the seller accepts.
    let path = format!("/usage-agreements/{id}/activation-package");
    let response = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(code(&response), conflict, "{}", response.1);
    assert_eq!(response.1["error"]["details"]["status"], "proposed");

    // A seller paid into the buyer's own wallet is refused.
    let same = json!({ "seller_wallet_address": buyer_wallet.to_string() });
    let path = format!("/usage-agreements/{id}/accept");
    let response = h.call(Method::PUT, &path, Some(&seller.key), Some(&same)).await;
    assert_eq!(code(&response), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error")));

    // Accepted once; then neither accepted again nor rejected.
    let (status, accepted) = accept(seller.key.clone(), id.clone()).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["seller_wallet_address"], seller_wallet.to_checksum(None));
    assert!(accepted["terms"]["deposit_amount"].is_string(), "{accepted}");
    assert!(accepted["agreement_key"].is_string(), "{accepted}");
    let response = accept(seller.key.clone(), id.clone()).await;
    assert_eq!(code(&response), conflict, "{}", response.1);
    assert_eq!(response.1["error"]["details"]["status"], "accepted");
    let response = reject(seller.key.clone(), id.clone(), Some(json!({ "reason": "late" }))).await;
    assert_eq!(code(&response), conflict, "{}", response.1);
    let after = agreement(&h, &seller.key, &id).await;
    assert_eq!(after["status"], "accepted");
    assert_eq!(after["rejection_reason"], Value::Null);
    assert_eq!(after["agreement_key"], accepted["agreement_key"], "the terms stay fixed");
    // Now the package exists.
    h.package(&buyer.key, &id).await;

    // Rejected with a reason, which is kept; then neither accepted nor rejected again.
    let id = h.propose(&buyer, &seller, buyer_wallet).await["id"].as_str().unwrap().to_owned();
    let reason = json!({ "reason": "capacity is booked this month" });
    let (status, rejected) = reject(seller.key.clone(), id.clone(), Some(reason)).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejection_reason"], "capacity is booked this month");
    let response = accept(seller.key.clone(), id.clone()).await;
    assert_eq!(code(&response), conflict, "{}", response.1);
    assert_eq!(response.1["error"]["details"]["status"], "rejected");
    let response = reject(seller.key.clone(), id.clone(), None).await;
    assert_eq!(code(&response), conflict, "{}", response.1);
    let path = format!("/usage-agreements/{id}/activation-package");
    let response = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(code(&response), conflict, "{}", response.1);
    let seen_by_buyer = agreement(&h, &buyer.key, &id).await;
    assert_eq!(seen_by_buyer["status"], "rejected");
    assert_eq!(seen_by_buyer["rejection_reason"], "capacity is booked this month");
    assert_eq!(seen_by_buyer["seller_wallet_address"], Value::Null);

    // Rejected with no body at all, and with an empty object.
    for body in [None, Some(json!({}))] {
        let id = h.propose(&buyer, &seller, buyer_wallet).await["id"].as_str().unwrap().to_owned();
        let (status, rejected) = reject(seller.key.clone(), id.clone(), body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body:?}: {rejected}");
        assert_eq!(rejected["status"], "rejected");
        assert_eq!(rejected["rejection_reason"], Value::Null);
    }

    // A reason over 1,000 characters is refused and the proposal stays open.
    let id = h.propose(&buyer, &seller, buyer_wallet).await["id"].as_str().unwrap().to_owned();
    let long = json!({ "reason": "x".repeat(1_001) });
    let response = reject(seller.key.clone(), id.clone(), Some(long)).await;
    assert_eq!(code(&response), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error")));
    assert_eq!(agreement(&h, &buyer.key, &id).await["status"], "proposed");

    // A stranger sees none of it.
    let stranger = h.agent("stranger").await;
    let response = accept(stranger.key.clone(), id.clone()).await;
    assert_eq!(code(&response), (StatusCode::NOT_FOUND, Some("not_found")));
    let response = reject(stranger.key.clone(), id.clone(), None).await;
    assert_eq!(code(&response), (StatusCode::NOT_FOUND, Some("not_found")));
    assert_eq!(h.job_count().await, 0);
}

#[tokio::test]
async fn agreement_lists_page_newest_first_and_show_each_once() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let other_buyer = h.agent("other buyer").await;
    let wallet = h.chain.buyer.address();
    // Seven proposals in a known order; lists show them newest first, exactly.
    let mut created = Vec::new();
    for proposer in [&buyer, &buyer, &buyer, &other_buyer, &buyer, &buyer, &other_buyer] {
        let id = h.propose(proposer, &seller, wallet).await["id"].as_str().unwrap().to_owned();
        created.push((proposer.id.clone(), id));
    }

    for (agent, expected, sizes) in
        [(&seller, 7, vec![3, 3, 1]), (&buyer, 5, vec![3, 2]), (&other_buyer, 2, vec![2])]
    {
        let pages = pages(&h, agent, 3).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), sizes, "{}", agent.id);
        let listed: Vec<&Value> = pages.iter().flatten().collect();
        let ids: Vec<&str> = listed.iter().map(|a| a["id"].as_str().unwrap()).collect();
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), expected, "every id exactly once: {ids:?}");
        assert_eq!(ids.len(), expected);
        for agreement in &listed {
            let party = [&agreement["buyer_agent_id"], &agreement["seller_agent_id"]];
            assert!(party.contains(&&json!(agent.id)), "{} lists {agreement}", agent.id);
        }
        // Newest first, in exactly the reverse order of creation.
        let newest_first: Vec<&str> = created
            .iter()
            .rev()
            .filter(|(proposer, _)| agent.id == seller.id || *proposer == agent.id)
            .map(|(_, id)| id.as_str())
            .collect();
        assert_eq!(ids, newest_first);
    }

    // The same list in one page, and a list that is an exact multiple of the page size ends
    // without an empty page.
    let one = pages(&h, &seller, 100).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].len(), 7);
    let exact = pages(&h, &buyer, 5).await;
    assert_eq!(exact.iter().map(Vec::len).collect::<Vec<_>>(), vec![5]);
    let default = h
        .call(
            Method::GET,
            &format!("/usage-agreements/agents/{}/agreements", seller.id),
            Some(&seller.key),
            None,
        )
        .await;
    assert_eq!(default.1["agreements"].as_array().unwrap().len(), 7);
    assert_eq!(default.1["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_proposal_retried_with_its_idempotency_key_is_stored_once() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let body = propose_body(&seller, h.chain.buyer.address());

    let (status, first, replayed) =
        send(&h, Method::POST, "/usage-agreements", &buyer.key, &body, "propose-1").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(replayed, None);
    let (status, second, replayed) =
        send(&h, Method::POST, "/usage-agreements", &buyer.key, &body, "propose-1").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(first, second, "the stored response, unchanged");
    assert_eq!(list_len(&h, &buyer).await, 1);

    // The same key with another body is refused and stores nothing.
    let mut changed = body.clone();
    changed["quantity"] = json!(101);
    let (status, error, _) =
        send(&h, Method::POST, "/usage-agreements", &buyer.key, &changed, "propose-1").await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")),
        "{error}"
    );
    assert_eq!(list_len(&h, &buyer).await, 1);

    // Keys belong to the caller: another agent's identical key is a new request.
    let other = h.agent("other buyer").await;
    let (status, theirs, replayed) =
        send(&h, Method::POST, "/usage-agreements", &other.key, &body, "propose-1").await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_eq!(replayed, None);
    assert_ne!(theirs["id"], first["id"]);

    // A new key is a new proposal.
    let (status, third, _) =
        send(&h, Method::POST, "/usage-agreements", &buyer.key, &body, "propose-2").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(third["id"], first["id"]);
    assert_eq!(list_len(&h, &buyer).await, 2);

    // Accept and reject replay the same way.
    let id = first["id"].as_str().unwrap();
    let path = format!("/usage-agreements/{id}/accept");
    let accept = json!({ "seller_wallet_address": h.chain.seller.address().to_string() });
    let (status, accepted, _) = send(&h, Method::PUT, &path, &seller.key, &accept, "a-1").await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let (status, again, replayed) = send(&h, Method::PUT, &path, &seller.key, &accept, "a-1").await;
    assert_eq!((status, replayed.as_deref()), (StatusCode::OK, Some("true")));
    assert_eq!(again, accepted);
    let id = third["id"].as_str().unwrap();
    let path = format!("/usage-agreements/{id}/reject");
    let reason = json!({ "reason": "no" });
    let (status, rejected, _) = send(&h, Method::PUT, &path, &seller.key, &reason, "r-1").await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    let (status, again, replayed) = send(&h, Method::PUT, &path, &seller.key, &reason, "r-1").await;
    assert_eq!((status, replayed.as_deref()), (StatusCode::OK, Some("true")));
    assert_eq!(again, rejected);
}

#[tokio::test]
async fn agents_replay_without_their_key_and_stay_inside_their_account() {
    let h = Harness::start().await;
    let body = json!({ "name": "indexer", "description": "crawls", "capabilities": ["search"] });

    let (status, created, replayed) =
        send(&h, Method::POST, "/v1/agents", OWNER_KEY, &body, "agent-1").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(replayed, None);
    let api_key = created["api_key"].as_str().expect("the key, shown once");
    assert!(api_key.starts_with("pk_test_"), "{api_key}");
    let (status, again, replayed) =
        send(&h, Method::POST, "/v1/agents", OWNER_KEY, &body, "agent-1").await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again["id"], created["id"]);
    assert_eq!(again["api_key"], Value::Null, "stored only as a hash, never shown again");
    assert_eq!(again["api_key_hint"], created["api_key_hint"]);
    let mut changed = body.clone();
    changed["name"] = json!("crawler");
    let (status, error, _) =
        send(&h, Method::POST, "/v1/agents", OWNER_KEY, &changed, "agent-1").await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused"))
    );

    // The key works, and reading the agent back never shows it.
    let id = created["id"].as_str().unwrap();
    let path = format!("/usage-agreements/agents/{id}/agreements");
    let (status, _) = h.call(Method::GET, &path, Some(api_key), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, read) =
        h.call(Method::GET, &format!("/v1/agents/{id}"), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["name"], "indexer");
    assert!(read.get("api_key").is_none(), "{read}");

    // A second account, created the way an operator would, sees only its own agents.
    let other_key = SecretKey::generate("ok", Environment::Test);
    let store = &h.service.as_ref().unwrap().state().store;
    let mut tx = store.begin().await.unwrap();
    let other = ensure_account(&mut tx, "other", &other_key.hash(), now()).await.unwrap();
    tx.commit().await.unwrap();
    let (status, theirs) = h
        .call(Method::POST, "/v1/agents", Some(other_key.reveal()), Some(&json!({ "name": "x" })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_eq!(theirs["account_id"], other.id.as_str());
    assert_ne!(theirs["account_id"], created["account_id"]);
    let theirs_path = format!("/v1/agents/{}", theirs["id"].as_str().unwrap());
    let response = h.call(Method::GET, &theirs_path, Some(OWNER_KEY), None).await;
    assert_eq!(code(&response), (StatusCode::NOT_FOUND, Some("not_found")), "{}", response.1);
    let mine_path = format!("/v1/agents/{id}");
    let response = h.call(Method::GET, &mine_path, Some(other_key.reveal()), None).await;
    assert_eq!(code(&response), (StatusCode::NOT_FOUND, Some("not_found")), "{}", response.1);
    let (status, _) = h.call(Method::GET, &theirs_path, Some(other_key.reveal()), None).await;
    assert_eq!(status, StatusCode::OK);

    // Idempotency keys are per account too.
    let (status, fresh, replayed) =
        send(&h, Method::POST, "/v1/agents", other_key.reveal(), &body, "agent-1").await;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");
    assert_eq!(replayed, None);
    assert_ne!(fresh["id"], created["id"]);
    assert!(fresh["api_key"].is_string());
}
