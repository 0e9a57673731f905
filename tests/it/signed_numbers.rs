//! Integers copied from a signed document (`chain_id`, `cumulative_units`, `deadline`, `units`)
//! are accepted as the decimal strings the typed-data documents carry, as well as JSON numbers;
//! anything else is a 422 `validation_error` naming the field. Real server, real anvil.

use crate::support::service::{Harness, sign_document, sign_package};
use crate::support::settlement::{action_final, options, record, sponsored_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Asserts a 422 `validation_error` whose `details.field` is `field`.
#[track_caller]
fn names_the_field(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "validation_error", "{body}");
    assert_eq!(body["error"]["details"]["field"], field, "{body}");
}

/// `value` as a JSON string of its decimal digits (`"40"` for `40` or `"40"`).
fn as_decimal_string(value: &Value) -> Value {
    match value {
        Value::String(text) => json!(text),
        other => json!(other.as_u64().unwrap().to_string()),
    }
}

#[tokio::test]
async fn signed_document_numbers_are_taken_as_decimal_strings_and_bad_ones_name_their_field() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let id = h.accepted(&buyer, &seller, buyer_wallet, seller_wallet).await;
    let package = h.package(&buyer.key, &id).await;
    let activate = format!("/usage-agreements/{id}/activate-escrow");

    // `chain_id` as a decimal string; first wrong ones, refused by name.
    let mut body = sign_package(&h.chain.buyer, &package);
    for bad in [json!("base"), json!("-1"), json!("18446744073709551616")] {
        body["chain_id"] = bad;
        let (status, refused) =
            h.call(Method::POST, &activate, Some(&buyer.key), Some(&body)).await;
        names_the_field(status, &refused, "chain_id");
    }
    body["chain_id"] = json!(h.chain.chain_id.to_string());
    let (status, queued) = h.call(Method::POST, &activate, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    h.wait_for(&buyer.key, &id, |a| a["status"] == "active").await;

    // `cumulative_units` as the voucher's own `cumulativeUnits` string.
    record(&h, &seller, &id, 40, "usage-1").await;
    let (_, usage) =
        h.call(Method::GET, &format!("/usage-agreements/{id}/usage"), Some(&buyer.key), None).await;
    let document = &usage["voucher_to_sign"];
    let vouchers = format!("/usage-agreements/{id}/usage-vouchers");
    let signature = sign_document(&h.chain.buyer, document);
    for bad in [json!("forty"), json!("-40"), json!(""), json!(40.5)] {
        let body = json!({ "cumulative_units": bad, "signature": signature });
        let (status, refused) =
            h.call(Method::POST, &vouchers, Some(&buyer.key), Some(&body)).await;
        names_the_field(status, &refused, "cumulative_units");
    }
    let cumulative = document["message"]["cumulativeUnits"].clone();
    assert_eq!(cumulative, json!("40"));
    let body = json!({ "cumulative_units": cumulative, "signature": signature });
    let (status, kept) = h.call(Method::POST, &vouchers, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["voucher_units"], 40);

    // A sponsored claim with `deadline` and `units` as the authorization's own strings.
    let offered = options(&h, &seller, &id, "seller_claim").await;
    let sponsored = &offered["paths"]["sponsored"];
    let submit_to = sponsored["submit_to"].as_str().unwrap();
    let mut body = sponsored_body(&h.chain.seller, sponsored);
    let good_deadline = as_decimal_string(&sponsored["typed_data"]["message"]["deadline"]);
    for (field, bad) in [("deadline", json!("tomorrow")), ("units", json!("-40"))] {
        let mut wrong = body.clone();
        wrong[field] = bad;
        let (status, refused) =
            h.call(Method::POST, submit_to, Some(&seller.key), Some(&wrong)).await;
        names_the_field(status, &refused, field);
    }
    body["deadline"] = good_deadline;
    body["units"] = json!("40");
    let (status, action) = h.call(Method::POST, submit_to, Some(&seller.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{action}");
    assert_eq!(action["deadline"], sponsored["deadline"], "stored as the number it signs");
    let done = action_final(&h, &seller.key, &id, action["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
}
