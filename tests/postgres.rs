//! The same service on Postgres: migrations apply and the activation flow runs end to end.
//! Runs when `PACTUM_TEST_DATABASE_URL` names a Postgres server (the test command sets it when
//! one answers on 127.0.0.1:5432); each test gets a database of its own.

mod support;

use alloy::primitives::U256;
use reqwest::{Method, StatusCode};
use support::USDC;
use support::databases::{drop_postgres, fresh_postgres};
use support::service::{Harness, sign_document, sign_package};

#[tokio::test]
async fn activation_runs_end_to_end_on_postgres() {
    let Some(database_url) = fresh_postgres().await else { return };
    let mut h = Harness::start_with(|config| config.database_url = database_url.clone()).await;
    let (buyer, seller) = h.parties().await;
    let id = h.accepted(&buyer, &seller, h.chain.buyer.address(), h.chain.seller.address()).await;
    let package = h.package(&buyer.key, &id).await;
    let body = sign_package(&h.chain.buyer, &package);
    let path = format!("/usage-agreements/{id}/activate-escrow");
    let key = [("Idempotency-Key", "pg-activate")];
    let first = h.call_with(Method::POST, &path, Some(&buyer.key), Some(&body), &key).await;
    let again = h.call_with(Method::POST, &path, Some(&buyer.key), Some(&body), &key).await;
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(first, again);
    h.wait_for(&buyer.key, &id, |a| {
        a["status"] == "active" && a["activation_status"] == "confirmed"
    })
    .await;
    assert_eq!(h.chain.balance(*h.chain.escrow.address()).await, U256::from(10 * USDC));
    assert_eq!(h.job_count().await, 1);
    let list = format!("/usage-agreements/agents/{}/agreements?limit=1", seller.id);
    let (status, page) = h.call(Method::GET, &list, Some(&seller.key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["agreements"][0]["id"], id.as_str());
    h.stop().await;
    drop_postgres(&database_url).await;
}

#[tokio::test]
async fn settlement_runs_end_to_end_on_postgres() {
    let Some(database_url) = fresh_postgres().await else { return };
    let mut h = Harness::start_with(|config| config.database_url = database_url.clone()).await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let seller_before = h.chain.balance(h.chain.seller.address()).await;

    let path = format!("/usage-agreements/{id}/record-usage");
    let body = serde_json::json!({ "units": 40 });
    let key = [("Idempotency-Key", "pg-usage")];
    let (status, usage) =
        h.call_with(Method::POST, &path, Some(&seller.key), Some(&body), &key).await;
    assert_eq!(status, StatusCode::CREATED, "{usage}");
    let voucher = serde_json::json!({
        "cumulative_units": 40,
        "signature": sign_document(&h.chain.buyer, &usage["voucher_to_sign"]),
    });
    let path = format!("/usage-agreements/{id}/usage-vouchers");
    let (status, kept) = h.call(Method::POST, &path, Some(&buyer.key), Some(&voucher)).await;
    assert_eq!(status, StatusCode::OK, "{kept}");

    let path = format!("/usage-agreements/{id}/settlement-action-options?action=initiate_close");
    let (_, options) = h.call(Method::GET, &path, Some(&seller.key), None).await;
    let sponsored = &options["paths"]["sponsored"];
    let body = serde_json::json!({
        "deadline": sponsored["deadline"],
        "authorization_signature": sign_document(&h.chain.seller, &sponsored["typed_data"]),
        "units": 40,
    });
    let submit = sponsored["submit_to"].as_str().unwrap();
    let (status, action) = h.call(Method::POST, submit, Some(&seller.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{action}");
    let (status, replayed) = h.call(Method::POST, submit, Some(&seller.key), Some(&body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{replayed}");
    h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;
    let path =
        format!("/usage-agreements/{id}/settlement-actions/{}", action["id"].as_str().unwrap());
    let done = h.wait_path(&seller.key, &path, |a| a["status"] == "confirmed").await;
    assert!(done["tx_hash"].is_string());
    assert_eq!(
        h.chain.balance(h.chain.seller.address()).await - seller_before,
        U256::from(4 * USDC)
    );
    h.stop().await;
    drop_postgres(&database_url).await;
}
