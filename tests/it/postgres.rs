//! The same service on Postgres: migrations apply and the activation flow runs end to end.
//! Runs when `PACTUM_TEST_DATABASE_URL` names a Postgres server (the test command sets it when
//! one answers on 127.0.0.1:5432); each test gets a database of its own.

use crate::support::USDC;
use crate::support::databases::{drop_postgres, fresh_postgres};
use crate::support::service::{Harness, sign_package};
use crate::support::settlement::{action_final, options, record, sign_voucher, sponsored_body};
use alloy::primitives::U256;
use reqwest::{Method, StatusCode};

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
    let escrowed = U256::from(10 * USDC) + h.chain.accrued_fees().await;
    assert_eq!(h.chain.balance(*h.chain.escrow.address()).await, escrowed);
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

    record(&h, &seller, &id, 40, "pg-usage").await;
    let kept = sign_voucher(&h, &buyer, &id).await;
    assert_eq!(kept["voucher_units"], 40);

    let offered = options(&h, &seller, &id, "initiate_close").await;
    let sponsored = &offered["paths"]["sponsored"];
    let body = sponsored_body(&h.chain.seller, sponsored);
    let submit = sponsored["submit_to"].as_str().unwrap();
    let (status, action) = h.call(Method::POST, submit, Some(&seller.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{action}");
    let (status, replayed) = h.call(Method::POST, submit, Some(&seller.key), Some(&body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{replayed}");
    h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;
    let done = action_final(&h, &seller.key, &id, action["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    assert!(done["tx_hash"].is_string());
    assert_eq!(
        h.chain.balance(h.chain.seller.address()).await - seller_before,
        U256::from(4 * USDC)
    );
    h.stop().await;
    drop_postgres(&database_url).await;
}
