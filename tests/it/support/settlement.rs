//! Settlement over HTTP as the parties drive it: record usage, sign the offered voucher, read
//! the settlement options, sign and submit a sponsored authorization, wait for an action.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::service::{Harness, TestAgent, sign_document};

/// 0.10 USDC, the unit price of the harness's agreements, in base units.
pub const UNIT: u64 = 100_000;

/// Records `units` of usage as the seller (with an idempotency key) and returns the body.
pub async fn record(h: &Harness, seller: &TestAgent, id: &str, units: u64, key: &str) -> Value {
    let path = format!("/usage-agreements/{id}/record-usage");
    let (status, body) = h
        .call_with(
            Method::POST,
            &path,
            Some(&seller.key),
            Some(&json!({ "units": units })),
            &[("Idempotency-Key", key)],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The buyer signs the voucher Pactum offers for the recorded usage and submits it.
pub async fn sign_voucher(h: &Harness, buyer: &TestAgent, id: &str) -> Value {
    let (_, usage) =
        h.call(Method::GET, &format!("/usage-agreements/{id}/usage"), Some(&buyer.key), None).await;
    let document = &usage["voucher_to_sign"];
    let body = json!({
        "cumulative_units": document["message"]["cumulativeUnits"].as_str().unwrap().parse::<u64>().unwrap(),
        "signature": sign_document(&h.chain.buyer, document),
    });
    let path = format!("/usage-agreements/{id}/usage-vouchers");
    let (status, kept) = h.call(Method::POST, &path, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    kept
}

/// `settlement-action-options` for `action` as `agent`.
pub async fn options(h: &Harness, agent: &TestAgent, id: &str, action: &str) -> Value {
    let path = format!("/usage-agreements/{id}/settlement-action-options?action={action}");
    let (status, body) = h.call(Method::GET, &path, Some(&agent.key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Signs the sponsored authorization the options offer and submits it; returns the status and
/// the body of the answer.
pub async fn sponsor(
    h: &Harness,
    agent: &TestAgent,
    signer: &PrivateKeySigner,
    id: &str,
    action: &str,
) -> (StatusCode, Value) {
    let offered = options(h, agent, id, action).await;
    assert_eq!(offered["possible"], true, "{offered}");
    let sponsored = &offered["paths"]["sponsored"];
    let body = sponsored_body(signer, sponsored);
    h.call(Method::POST, sponsored["submit_to"].as_str().unwrap(), Some(&agent.key), Some(&body))
        .await
}

/// The body of a sponsored action signing the offered typed data with `signer`.
pub fn sponsored_body(signer: &PrivateKeySigner, sponsored: &Value) -> Value {
    let message = &sponsored["typed_data"]["message"];
    let units = message
        .get("finalUnits")
        .or_else(|| message.get("cumulativeUnits"))
        .and_then(Value::as_str)
        .map(|u| u.parse::<u64>().unwrap());
    let mut body = json!({
        "deadline": sponsored["deadline"],
        "authorization_signature": sign_document(signer, &sponsored["typed_data"]),
    });
    if let Some(units) = units {
        body["units"] = json!(units);
    }
    body
}

/// Waits until the settlement action is final; returns it.
pub async fn action_final(h: &Harness, key: &str, id: &str, action_id: &str) -> Value {
    let path = format!("/usage-agreements/{id}/settlement-actions/{action_id}");
    h.wait_path(key, &path, |a| a["status"] == "confirmed" || a["status"] == "failed").await
}

/// Sends the unsigned transaction Pactum returned from `from`'s own wallet.
pub async fn send_direct(h: &Harness, from: Address, transaction: &Value) {
    let data: Bytes = transaction["data"].as_str().unwrap().parse().unwrap();
    let to: Address = transaction["to"].as_str().unwrap().parse().unwrap();
    assert_eq!(transaction["from"].as_str().unwrap().parse::<Address>().unwrap(), from);
    assert_eq!(transaction["chain_id"], h.chain.chain_id);
    let gas: u64 = transaction["gas"].as_str().unwrap().parse().unwrap();
    let tx = TransactionRequest::default().from(from).to(to).with_input(data).with_gas_limit(gas);
    let receipt = h.chain.provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "direct transaction reverted: {transaction}");
}
