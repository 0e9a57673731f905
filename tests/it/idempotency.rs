//! `Idempotency-Key` on writes, beyond the replays the agreement and activation suites show: a
//! duplicate arriving while the first request still runs, a refused request that stores nothing,
//! a key reused on another endpoint, and keys expiring.

use std::time::Duration;

use crate::support::service::{Harness, TestAgent, propose_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Sends `body` to `path` as `agent` with `idempotency_key`; the status, the body and whether it
/// was a replay.
async fn send(
    h: &Harness,
    method: Method,
    path: &str,
    agent: &TestAgent,
    body: &Value,
    idempotency_key: &str,
) -> (StatusCode, Value, bool) {
    let response = h
        .http
        .request(method, format!("{}{path}", h.base))
        .bearer_auth(&agent.key)
        .header("Idempotency-Key", idempotency_key)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (response.status(), response.json().await.unwrap(), replayed)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Stops or resumes the anvil process, so a request waiting on the chain stays in flight.
fn signal(h: &Harness, signal: &str) {
    let pid = h.chain.anvil.child().id().to_string();
    let status = std::process::Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_duplicate_while_the_first_is_in_flight_is_refused_and_the_first_still_answers() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let agreement = h.propose(&buyer, &seller, h.chain.buyer.address()).await;
    let path = format!("/usage-agreements/{}/accept", agreement["id"].as_str().unwrap());
    let accept = json!({ "seller_wallet_address": h.chain.seller.address().to_string() });

    // Accepting reads the chain's clock; with anvil stopped the first request waits on it.
    signal(&h, "-STOP");
    let first = {
        let (h_http, base, key, path, accept) =
            (h.http.clone(), h.base.clone(), seller.key.clone(), path.clone(), accept.clone());
        tokio::spawn(async move {
            let response = h_http
                .put(format!("{base}{path}"))
                .bearer_auth(key)
                .header("Idempotency-Key", "accept-1")
                .json(&accept)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body, _) = send(&h, Method::PUT, &path, &seller, &accept, "accept-1").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "idempotency_key_in_flight"),
        "{body}"
    );
    // A different body under the key in flight is a reuse, not a wait.
    let other = json!({ "seller_wallet_address": h.chain.deployer.address().to_string() });
    let (status, body, _) = send(&h, Method::PUT, &path, &seller, &other, "accept-1").await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    signal(&h, "-CONT");

    let (status, accepted) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    let (status, again, replayed) =
        send(&h, Method::PUT, &path, &seller, &accept, "accept-1").await;
    assert_eq!((status, replayed), (StatusCode::OK, true));
    assert_eq!(again, accepted);
}

#[tokio::test]
async fn a_refused_request_stores_nothing_and_a_key_belongs_to_one_endpoint() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let agreement = h.propose(&buyer, &seller, h.chain.buyer.address()).await;
    let id = agreement["id"].as_str().unwrap();
    let path = format!("/usage-agreements/{id}/accept");

    // Refused (the seller's wallet may not be the buyer's): nothing is kept under the key ...
    let same_wallet = json!({ "seller_wallet_address": h.chain.buyer.address().to_string() });
    let (status, body, _) = send(&h, Method::PUT, &path, &seller, &same_wallet, "k-1").await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"));
    // ... so the corrected request goes through under the same key.
    let accept = json!({ "seller_wallet_address": h.chain.seller.address().to_string() });
    let (status, accepted, replayed) = send(&h, Method::PUT, &path, &seller, &accept, "k-1").await;
    assert_eq!((status, replayed), (StatusCode::OK, false), "{accepted}");

    // The same key on another endpoint is another request: refused, and nothing happens there.
    let reject = format!("/usage-agreements/{id}/reject");
    let no = json!({ "reason": "changed my mind" });
    let (status, body, _) = send(&h, Method::PUT, &reject, &seller, &no, "k-1").await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    let (_, now) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&seller.key), None).await;
    assert_eq!(now["status"], "accepted");
}

#[tokio::test]
async fn a_key_expires_after_its_time_to_live() {
    let h = Harness::start_with(|config| config.idempotency_ttl_secs = 1).await;
    let (buyer, seller) = h.parties().await;
    let body = propose_body(&seller.id, h.chain.buyer.address());
    let (status, first, _) =
        send(&h, Method::POST, "/usage-agreements", &buyer, &body, "p-1").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (_, again, replayed) =
        send(&h, Method::POST, "/usage-agreements", &buyer, &body, "p-1").await;
    assert!(replayed);
    assert_eq!(again["id"], first["id"]);

    // Stored responses are kept by the second; two seconds later the key is new again.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (status, fresh, replayed) =
        send(&h, Method::POST, "/usage-agreements", &buyer, &body, "p-1").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{fresh}");
    assert_ne!(fresh["id"], first["id"]);
}
