//! `POST /risk/check` against the real screener: the operator's denylist and the mock sanctions
//! oracle on anvil. A clean address, a denylisted one, one on the oracle's list; the verdict
//! kept briefly; an oracle that is down answers 503 `screening_unavailable`, never clean, even
//! fail-open.

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::DevChain;
use crate::support::service::{Harness, OWNER_KEY, unique_dir};

fn random_address() -> Address {
    PrivateKeySigner::random().address()
}

async fn check(h: &Harness, key: Option<&str>, address: &str) -> (StatusCode, Value) {
    h.call(Method::POST, "/risk/check", key, Some(&json!({ "address": address }))).await
}

async fn set_reverting(chain: &DevChain, reverting: bool) {
    chain.oracle.setReverting(reverting).send().await.unwrap().get_receipt().await.unwrap();
}

/// A service whose denylist holds `listed`, failing open when `fail_open`.
async fn with_denylist(listed: Address, fail_open: bool) -> Harness {
    let file = unique_dir("pactum-risk").join("denylist.txt");
    std::fs::write(&file, format!("# operator list\n{listed}\n")).unwrap();
    Harness::start_with(|config| {
        config.denylist = Some(file);
        config.screening_fail_open = fail_open;
    })
    .await
}

#[tokio::test]
async fn clean_denylisted_and_sanctioned_addresses() {
    let listed = random_address();
    let h = with_denylist(listed, false).await;
    let agent = h.agent("screener").await;

    let clean = random_address();
    let (status, verdict) = check(&h, Some(&agent.key), &clean.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["address"], clean.to_checksum(None));
    assert_eq!(verdict["sanctioned"], false);
    assert_eq!(verdict["source"], Value::Null);
    assert_eq!(verdict["sources_checked"], json!(["denylist", "oracle"]));
    assert_eq!(verdict["oracle"], "checked");
    assert_eq!(verdict["cached"], false);
    assert!(verdict["checked_at"].as_str().unwrap().ends_with('Z'));
    // Asked again within the time to live: the kept verdict, as it was.
    let (status, again) = check(&h, Some(OWNER_KEY), &format!("{clean:#x}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["cached"], true);
    assert_eq!(again["checked_at"], verdict["checked_at"]);

    let (status, verdict) = check(&h, Some(&agent.key), &listed.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!((&verdict["sanctioned"], &verdict["source"]), (&json!(true), &json!("denylist")));

    let sanctioned = random_address();
    h.chain
        .oracle
        .addToSanctionsList(vec![sanctioned])
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let (status, verdict) = check(&h, Some(&agent.key), &sanctioned.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!((&verdict["sanctioned"], &verdict["source"]), (&json!(true), &json!("oracle")));

    // Malformed addresses name the field; a credential is required.
    for bad in ["0x1234", "not an address", "0x0000000000000000000000000000000000000000"] {
        let (status, error) = check(&h, Some(&agent.key), bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {error}");
        assert_eq!(error["error"]["code"], "validation_error");
        assert_eq!(error["error"]["details"]["field"], "address");
    }
    let (status, _) = check(&h, None, &clean.to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_oracle_that_is_down_is_503_never_clean() {
    // Fail-open for activations: the risk check still gives no clean verdict without the
    // oracle, though the denylist's own verdict stands.
    let listed = random_address();
    let h = with_denylist(listed, true).await;
    let agent = h.agent("screener").await;
    let before = random_address();
    let (status, _) = check(&h, Some(&agent.key), &before.to_string()).await;
    assert_eq!(status, StatusCode::OK);

    set_reverting(&h.chain, true).await;
    let (status, error) = check(&h, Some(&agent.key), &random_address().to_string()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"]["code"], "screening_unavailable");
    let (status, verdict) = check(&h, Some(&agent.key), &listed.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!((&verdict["sanctioned"], &verdict["source"]), (&json!(true), &json!("denylist")));
    assert_eq!(verdict["oracle"], "unavailable");

    set_reverting(&h.chain, false).await;
    let (status, verdict) = check(&h, Some(&agent.key), &random_address().to_string()).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["sanctioned"], false);
}

#[tokio::test]
async fn fail_closed_screening_answers_503_when_the_oracle_reverts() {
    let h = Harness::start().await;
    set_reverting(&h.chain, true).await;
    let (status, error) = check(&h, Some(OWNER_KEY), &random_address().to_string()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"]["code"], "screening_unavailable");
}
