//! Rate limits against the real server: the headers on every kind of answer, the refusal past
//! the limit (429, `Retry-After`, the one error shape), counted per credential and per route
//! group, and the limit coming back after the window.

use std::time::Duration;

use crate::support::service::{Harness, OWNER_KEY};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// Writes per window in these tests.
const WRITES: u32 = 3;
/// Reads per window.
const READS: u32 = 10;
/// The window, in seconds.
const WINDOW: u64 = 6;

async fn start() -> Harness {
    Harness::start_with(|config| {
        config.rate_limit_window_secs = WINDOW;
        config.rate_limit_read = READS;
        config.rate_limit_write = WRITES;
        config.rate_limit_sponsored = 2;
        config.rate_limit_management = 100;
    })
    .await
}

async fn send(h: &Harness, method: Method, path: &str, key: Option<&str>) -> Response {
    let mut request = h.http.request(method.clone(), format!("{}{path}", h.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if method == Method::POST {
        // An empty object: refused by validation (422), which still counts as a write.
        request = request.json(&json!({}));
    }
    request.send().await.expect("request sent")
}

fn header(response: &Response, name: &str) -> Option<u64> {
    response.headers().get(name).map(|v| v.to_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn every_limited_response_carries_the_headers() {
    let h = start().await;
    let agent = h.agent("reader").await;
    let reads = format!("/usage-agreements/agents/{}/agreements", agent.id);

    // 2xx, 4xx and 404 (an unknown route) all carry them, counting down in the read group.
    let ok = send(&h, Method::GET, &reads, Some(&agent.key)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(header(&ok, "x-ratelimit-limit"), Some(READS as u64));
    assert_eq!(header(&ok, "x-ratelimit-remaining"), Some(READS as u64 - 1));
    assert!(header(&ok, "x-ratelimit-reset").is_some_and(|s| (1..=WINDOW).contains(&s)));
    assert_eq!(header(&ok, "retry-after"), None);
    let missing = send(&h, Method::GET, "/no-such-route", Some(&agent.key)).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&missing, "x-ratelimit-limit"), Some(READS as u64));
    assert_eq!(header(&missing, "x-ratelimit-remaining"), Some(READS as u64 - 2));
    let unknown = send(&h, Method::GET, "/usage-agreements/ua_nope", Some(&agent.key)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&unknown, "x-ratelimit-remaining"), Some(READS as u64 - 3));

    // A refused write (422) counts in the write group, with its own limit.
    let invalid = send(&h, Method::POST, "/usage-agreements", Some(&agent.key)).await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(header(&invalid, "x-ratelimit-limit"), Some(WRITES as u64));
    assert_eq!(header(&invalid, "x-ratelimit-remaining"), Some(WRITES as u64 - 1));

    // Without a credential (401) the client's address is the key.
    let anonymous = send(&h, Method::GET, &reads, None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&anonymous, "x-ratelimit-remaining"), Some(READS as u64 - 1));

    // Management has its own group; `/health` is exempt.
    let management =
        send(&h, Method::GET, &format!("/v1/agents/{}", agent.id), Some(OWNER_KEY)).await;
    assert_eq!(management.status(), StatusCode::OK);
    assert_eq!(header(&management, "x-ratelimit-limit"), Some(100));
    let health = send(&h, Method::GET, "/health", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(header(&health, "x-ratelimit-limit"), None);
}

#[tokio::test]
async fn past_the_limit_a_credential_is_refused_until_the_window_has_passed() {
    let h = start().await;
    let (first, second) = h.parties().await;
    let reads = format!("/usage-agreements/agents/{}/agreements", first.id);

    for n in 1..=WRITES {
        let response = send(&h, Method::POST, "/usage-agreements", Some(&first.key)).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "write {n}");
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some((WRITES - n) as u64));
    }
    let refused = send(&h, Method::POST, "/usage-agreements", Some(&first.key)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = header(&refused, "retry-after").expect("Retry-After on a 429");
    assert!((1..=WINDOW).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&refused, "x-ratelimit-limit"), Some(WRITES as u64));
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert!(body["error"]["message"].is_string());
    assert_eq!(body["error"]["details"]["group"], "write");
    assert_eq!(body["error"]["details"]["retry_after_secs"], retry_after);

    // Another agent's key has its own bucket.
    let other = send(&h, Method::POST, "/usage-agreements", Some(&second.key)).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(header(&other, "x-ratelimit-remaining"), Some(WRITES as u64 - 1));
    // The limited key still reads: reads are another group.
    let read = send(&h, Method::GET, &reads, Some(&first.key)).await;
    assert_eq!(read.status(), StatusCode::OK);
    // Still refused within the window.
    let again = send(&h, Method::POST, "/usage-agreements", Some(&first.key)).await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);

    // After the window the whole limit is back.
    tokio::time::sleep(Duration::from_secs(WINDOW) + Duration::from_millis(100)).await;
    let back = send(&h, Method::POST, "/usage-agreements", Some(&first.key)).await;
    assert_eq!(back.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(header(&back, "x-ratelimit-remaining"), Some(WRITES as u64 - 1));
}

#[tokio::test]
async fn sponsored_actions_have_their_own_limit() {
    let h = start().await;
    let agent = h.agent("sponsor").await;
    let path = "/usage-agreements/ua_nope/sponsored-actions/seller_claim";
    for _ in 0..2 {
        let response = send(&h, Method::POST, path, Some(&agent.key)).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "x-ratelimit-limit"), Some(2));
    }
    let refused = send(&h, Method::POST, path, Some(&agent.key)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["details"]["group"], "sponsored");
    // Ordinary writes of the same key are untouched.
    let write = send(&h, Method::POST, "/usage-agreements", Some(&agent.key)).await;
    assert_eq!(write.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
