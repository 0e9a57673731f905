//! Settlement end to end on anvil, over HTTP against the real server: usage and vouchers, each
//! action on the direct path (the party's own wallet sends the returned calldata) and the
//! sponsored path (Pactum relays the party's signed authorization), with token balances checked
//! on-chain and status read back over HTTP.

use crate::support::service::{Harness, TestAgent};
use crate::support::settlement::{
    UNIT, action_final, options, record, send_direct, sign_voucher, sponsor,
};
use alloy::primitives::{Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn escrow_status(h: &Harness, key: &str, id: &str) -> Value {
    let (status, body) = h
        .call(Method::GET, &format!("/usage-agreements/{id}/escrow-status"), Some(key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_seller_closing_with_the_final_voucher_settles_at_once_and_the_buyer_withdraws_the_rest()
{
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let (buyer_before, seller_before) =
        (h.chain.balance(buyer_wallet).await, h.chain.balance(seller_wallet).await);

    let recorded = record(&h, &seller, &id, 20, "usage-1").await;
    assert_eq!(recorded["recorded_units"], 20);
    record(&h, &seller, &id, 10, "usage-2").await;
    let kept = sign_voucher(&h, &buyer, &id).await;
    assert_eq!(kept["voucher_units"], 30);

    // The seller closes through the relayer with the buyer's voucher for 30 units.
    let (status, queued) = sponsor(&h, &seller, &h.chain.seller, &id, "initiate_close").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "pending");
    assert_eq!(queued["amount"], (30 * UNIT).to_string());
    let done = action_final(&h, &seller.key, &id, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    assert!(done["tx_hash"].is_string());

    let settled = h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;
    assert_eq!(settled["status"], "settled");
    assert_eq!(h.chain.balance(seller_wallet).await - seller_before, U256::from(30 * UNIT));

    // The buyer's part is withdrawable at once; the sponsored withdraw pays it back.
    let (status, queued) = sponsor(&h, &buyer, &h.chain.buyer, &id, "buyer_withdraw").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let done = action_final(&h, &buyer.key, &id, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    let escrow = h
        .wait_path(&buyer.key, &format!("/usage-agreements/{id}/escrow-status"), |s| {
            s["escrow"]["buyer_withdrawn"] == true
        })
        .await;
    assert_eq!(escrow["escrow"]["claimed_amount"], (30 * UNIT).to_string());
    assert_eq!(escrow["escrow"]["withdrawn_amount"], (70 * UNIT).to_string());
    assert_eq!(escrow["escrow"]["remaining_amount"], "0");
    assert_eq!(h.chain.balance(buyer_wallet).await - buyer_before, U256::from(70 * UNIT));
    // The buyer's budgets count what was paid: the $10.21 held at activation less the $7 that
    // came back.
    let (_, holds) =
        h.call(Method::GET, "/v1/spend-guard/reservations", Some(&buyer.key), None).await;
    let hold = &holds["data"][0];
    assert_eq!(
        (hold["subject_id"].as_str(), hold["status"].as_str()),
        (Some(id.as_str()), Some("captured"))
    );
    assert_eq!(
        (hold["captured_cents"].as_u64(), hold["counted_cents"].as_u64()),
        (Some(1_021), Some(321))
    );
    let last = hold["events"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["amount_cents"].as_u64()),
        (Some("credited"), Some(700))
    );
    // Only the accrued infra fee stays in the escrow.
    let fees = h.chain.accrued_fees().await;
    assert!(!fees.is_zero());
    assert_eq!(h.chain.balance(*h.chain.escrow.address()).await, fees);

    // Every change is in the outbox, in order.
    let (_, events) = h
        .call(Method::GET, &format!("/usage-agreements/{id}/events"), Some(&buyer.key), None)
        .await;
    let types: Vec<&str> =
        events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    for expected in [
        "agreement.proposed",
        "agreement.accepted",
        "activation.queued",
        "activation.confirmed",
        "usage.recorded",
        "usage.voucher_accepted",
        "settlement_action.queued",
        "settlement.close_initiated",
        "settlement.claimed",
        "agreement.settled",
        "settlement.withdrawn",
    ] {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }
}

#[tokio::test]
async fn a_buyer_closes_from_its_wallet_the_seller_claims_in_the_window_and_the_buyer_withdraws_after()
 {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let (buyer_before, seller_before) =
        (h.chain.balance(buyer_wallet).await, h.chain.balance(seller_wallet).await);
    record(&h, &seller, &id, 45, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;

    // Direct path: the buyer's own wallet sends the close Pactum prepared.
    let (status, close) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{id}/initiate-close-calldata"),
            Some(&buyer.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{close}");
    assert_eq!(close["party"], "buyer");
    assert_eq!(close["value"], "0");
    send_direct(&h, buyer_wallet, &close).await;
    let closing = h.wait_for(&buyer.key, &id, |a| a["status"] == "closing").await;
    assert_eq!(closing["status"], "closing");

    // Withdraw is not open until the window ends, and the options say when it opens.
    let early = options(&h, &buyer, &id, "buyer_withdraw").await;
    assert_eq!(early["possible"], false);
    assert_eq!(early["reason"]["code"], "withdraw_not_open");
    let opens_at = early["available_at_unix"].as_u64().unwrap();
    let escrow = escrow_status(&h, &buyer.key, &id).await;
    assert_eq!(escrow["escrow"]["status"], "closing");
    assert!(escrow["escrow"]["withdraw_opens_at"].is_string());

    // Inside the window the seller claims through the relayer.
    let (status, claim) = sponsor(&h, &seller, &h.chain.seller, &id, "seller_claim").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{claim}");
    assert_eq!(claim["amount"], (45 * UNIT).to_string());
    let done = action_final(&h, &seller.key, &id, claim["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    h.wait_path(&seller.key, &format!("/usage-agreements/{id}/escrow-status"), |s| {
        s["escrow"]["claimed_units"] == 45
    })
    .await;
    assert_eq!(h.chain.balance(seller_wallet).await - seller_before, U256::from(45 * UNIT));

    // After the window the buyer withdraws the rest, sponsored.
    let now = h.chain.now().await;
    h.chain.advance(opens_at.saturating_sub(now) + 1).await;
    let (status, withdraw) = sponsor(&h, &buyer, &h.chain.buyer, &id, "buyer_withdraw").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{withdraw}");
    let done = action_final(&h, &buyer.key, &id, withdraw["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    let settled = h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;
    assert_eq!(settled["status"], "settled");
    // The deposit was taken at activation; the buyer gets back the 55 units not used.
    assert_eq!(h.chain.balance(buyer_wallet).await - buyer_before, U256::from(55 * UNIT));
    // Only the accrued infra fee stays in the escrow.
    let fees = h.chain.accrued_fees().await;
    assert!(!fees.is_zero());
    assert_eq!(h.chain.balance(*h.chain.escrow.address()).await, fees);
}

#[tokio::test]
async fn after_expiry_with_no_close_the_buyer_withdraws_with_cast_and_status_follows_the_chain() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let seller_before = h.chain.balance(seller_wallet).await;
    record(&h, &seller, &id, 12, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;

    // Direct path: the seller's own wallet sends the claim Pactum prepared.
    let (status, claim) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{id}/claim-instructions"),
            Some(&seller.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claim}");
    assert_eq!(claim["amount"], (12 * UNIT).to_string());
    send_direct(&h, seller_wallet, &claim).await;
    h.wait_path(&seller.key, &format!("/usage-agreements/{id}/escrow-status"), |s| {
        s["escrow"]["claimed_units"] == 12
    })
    .await;
    assert_eq!(h.chain.balance(seller_wallet).await - seller_before, U256::from(12 * UNIT));

    // Before expiry plus the window, withdraw is refused, saying when it opens.
    let (status, refused) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{id}/withdraw-instructions"),
            Some(&buyer.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "withdraw_not_open");
    let opens_at = refused["error"]["details"]["available_at_unix"].as_u64().unwrap();
    let (_, agreement) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&buyer.key), None).await;
    assert_eq!(agreement["status"], "active");

    // Past expiry (and its window), nobody having closed: status shows it, withdraw opens.
    let now = h.chain.now().await;
    h.chain.advance(opens_at - now + 1).await;
    let expired = h
        .wait_path(&buyer.key, &format!("/usage-agreements/{id}/escrow-status"), |s| {
            s["past_expiry"] == true
        })
        .await;
    assert_eq!(expired["status"], "active");
    let (status, withdraw) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{id}/withdraw-instructions"),
            Some(&buyer.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{withdraw}");
    assert_eq!(withdraw["amount"], (88 * UNIT).to_string());

    // The buyer sends it with `cast send`, with no call to Pactum; status follows the chain.
    let buyer_before = h.chain.balance(buyer_wallet).await;
    let output = std::process::Command::new(pactum::chain::toolchain::binary("cast"))
        .args([
            "send",
            "--rpc-url",
            &h.chain.anvil.endpoint(),
            "--private-key",
            &h.chain.buyer.to_bytes().to_string(),
            withdraw["to"].as_str().unwrap(),
            "--data",
            withdraw["data"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let settled = h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;
    assert_eq!(settled["status"], "settled");
    let escrow = escrow_status(&h, &buyer.key, &id).await;
    assert_eq!(escrow["escrow"]["buyer_withdrawn"], true);
    assert_eq!(escrow["escrow"]["withdrawn_amount"], (88 * UNIT).to_string());
    assert_eq!(h.chain.balance(buyer_wallet).await - buyer_before, U256::from(88 * UNIT));
    let (_, actions) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{id}/settlement-actions"),
            Some(&buyer.key),
            None,
        )
        .await;
    assert_eq!(actions["data"], json!([]), "nothing was relayed");
}

/// Asserts that a request was refused with `expected` and `code`.
#[track_caller]
fn refused(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!((status, body["error"]["code"].as_str()), (expected, Some(code)), "{body}");
}

/// A sponsored-action body for `action` signed by `signer` over the given fields, whatever the
/// options would offer (to show what the service refuses).
fn signed_authorization(
    h: &Harness,
    signer: &PrivateKeySigner,
    key: alloy::primitives::B256,
    action: &str,
    units: u64,
    deadline: u64,
) -> Value {
    use pactum::escrow::typed_data::{BuyerWithdraw, SellerClaim};
    let domain = h.chain.escrow_domain();
    let signature = match action {
        "seller_claim" => crate::support::sign_typed(
            signer,
            &SellerClaim {
                agreementKey: key,
                cumulativeUnits: U256::from(units),
                deadline: U256::from(deadline),
            },
            &domain,
        ),
        "buyer_withdraw" => crate::support::sign_typed(
            signer,
            &BuyerWithdraw { agreementKey: key, deadline: U256::from(deadline) },
            &domain,
        ),
        other => panic!("no authorization for {other}"),
    };
    json!({ "deadline": deadline, "authorization_signature": signature, "units": units })
}

#[tokio::test]
async fn bad_settlement_input_is_refused_with_clear_codes_and_queues_nothing() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let key: alloy::primitives::B256 = {
        let (_, a) =
            h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&buyer.key), None).await;
        a["agreement_key"].as_str().unwrap().parse().unwrap()
    };
    let jobs = h.job_count().await;
    let post = |path: String, agent: &TestAgent, body: Value| {
        let key = agent.key.clone();
        let h = &h;
        async move { h.call(Method::POST, &path, Some(&key), Some(&body)).await }
    };
    let voucher_path = format!("/usage-agreements/{id}/usage-vouchers");
    let usage_path = format!("/usage-agreements/{id}/record-usage");
    let claim_path = format!("/usage-agreements/{id}/sponsored-actions/seller-claim");
    let withdraw_path = format!("/usage-agreements/{id}/sponsored-actions/buyer-withdraw");

    // Usage: a key is required (units add up), and usage cannot pass the quantity.
    let (status, body) = post(usage_path.clone(), &seller, json!({ "units": 5 })).await;
    refused(status, &body, StatusCode::BAD_REQUEST, "idempotency_key_required");
    let (status, body) = h
        .call_with(
            Method::POST,
            &usage_path,
            Some(&seller.key),
            Some(&json!({ "units": 101 })),
            &[("Idempotency-Key", "too-much")],
        )
        .await;
    refused(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "usage_exceeds_quantity");
    let (status, body) = h
        .call_with(
            Method::POST,
            &usage_path,
            Some(&buyer.key),
            Some(&json!({ "units": 1 })),
            &[("Idempotency-Key", "buyer")],
        )
        .await;
    refused(status, &body, StatusCode::FORBIDDEN, "wrong_party");
    // The same key and body replays the first answer instead of counting twice.
    let first = record(&h, &seller, &id, 30, "usage-30").await;
    let again = record(&h, &seller, &id, 30, "usage-30").await;
    assert_eq!(first, again);
    assert_eq!(again["recorded_units"], 30);

    // Vouchers: over the quantity, signed by someone else, or lower than one kept.
    let (status, body) = post(
        voucher_path.clone(),
        &buyer,
        json!({ "cumulative_units": 101, "signature": h.chain.voucher(key, 101).to_string() }),
    )
    .await;
    refused(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "units_exceed_quantity");
    let by_seller = crate::support::sign_typed(
        &h.chain.seller,
        &pactum::escrow::typed_data::UsageVoucher {
            agreementKey: key,
            cumulativeUnits: U256::from(30),
        },
        &h.chain.escrow_domain(),
    );
    let (status, body) = post(
        voucher_path.clone(),
        &buyer,
        json!({ "cumulative_units": 30, "signature": by_seller.to_string() }),
    )
    .await;
    refused(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_signature");
    let (status, _) = post(
        voucher_path.clone(),
        &buyer,
        json!({ "cumulative_units": 30, "signature": h.chain.voucher(key, 30).to_string() }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(
        voucher_path.clone(),
        &buyer,
        json!({ "cumulative_units": 20, "signature": h.chain.voucher(key, 20).to_string() }),
    )
    .await;
    refused(status, &body, StatusCode::CONFLICT, "voucher_regression");

    let deadline = h.chain.now().await + 600;
    let past = h.chain.now().await - 1;
    let (chain, claim, withdraw) = (&h.chain, "seller_claim", "buyer_withdraw");
    for (case, path, agent, signer, action, units, deadline, status, code) in [
        (
            "a claim signed by the buyer",
            &claim_path,
            &seller,
            &chain.buyer,
            claim,
            30,
            deadline,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_signature",
        ),
        (
            "the buyer's agent claiming",
            &claim_path,
            &buyer,
            &chain.seller,
            claim,
            30,
            deadline,
            StatusCode::FORBIDDEN,
            "wrong_party",
        ),
        (
            "an expired deadline",
            &claim_path,
            &seller,
            &chain.seller,
            claim,
            30,
            past,
            StatusCode::UNPROCESSABLE_ENTITY,
            "authorization_expired",
        ),
        (
            "units other than the voucher held",
            &claim_path,
            &seller,
            &chain.seller,
            claim,
            29,
            deadline,
            StatusCode::UNPROCESSABLE_ENTITY,
            "units_mismatch",
        ),
        (
            "a withdraw before expiry plus the window",
            &withdraw_path,
            &buyer,
            &chain.buyer,
            withdraw,
            0,
            deadline,
            StatusCode::CONFLICT,
            "withdraw_not_open",
        ),
    ] {
        let body = signed_authorization(&h, signer, key, action, units, deadline);
        let (got, answer) = post(path.clone(), agent, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{case}: {answer}"
        );
        if code == "withdraw_not_open" {
            assert!(answer["error"]["details"]["available_at"].is_string(), "{answer}");
        }
    }
    assert_eq!(h.job_count().await, jobs, "nothing was queued");

    // A good claim is taken once; the same signed authorization again is a replay.
    let good = signed_authorization(&h, &h.chain.seller, key, "seller_claim", 30, deadline);
    let (status, first) = h
        .call_with(
            Method::POST,
            &claim_path,
            Some(&seller.key),
            Some(&good),
            &[("Idempotency-Key", "claim-1")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, retried) = h
        .call_with(
            Method::POST,
            &claim_path,
            Some(&seller.key),
            Some(&good),
            &[("Idempotency-Key", "claim-1")],
        )
        .await;
    assert_eq!(
        (status, &retried),
        (StatusCode::ACCEPTED, &first),
        "the same key replays the answer"
    );
    let (status, body) = h
        .call_with(
            Method::POST,
            &claim_path,
            Some(&seller.key),
            Some(&good),
            &[("Idempotency-Key", "claim-2")],
        )
        .await;
    refused(status, &body, StatusCode::CONFLICT, "authorization_replayed");
    assert_eq!(h.job_count().await, jobs + 1, "one job for the one claim");
    let done = action_final(&h, &seller.key, &id, first["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");

    // The buyer closes, the window passes with no further claim, the buyer withdraws; a claim
    // after that is refused (the seller's old authorization included).
    let (status, close) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{id}/initiate-close-calldata"),
            Some(&buyer.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{close}");
    send_direct(&h, h.chain.buyer.address(), &close).await;
    h.wait_for(&buyer.key, &id, |a| a["status"] == "closing").await;
    h.chain.advance(3_601).await;
    // A withdraw signed by the seller, and the seller's agent asking for one.
    let deadline = h.chain.now().await + 600;
    let by_seller = signed_authorization(&h, &h.chain.seller, key, "buyer_withdraw", 0, deadline);
    let (status, body) = post(withdraw_path.clone(), &buyer, by_seller.clone()).await;
    refused(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_signature");
    let (status, body) = post(withdraw_path.clone(), &seller, by_seller).await;
    refused(status, &body, StatusCode::FORBIDDEN, "wrong_party");
    let (status, withdraw) = sponsor(&h, &buyer, &h.chain.buyer, &id, "buyer_withdraw").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{withdraw}");
    action_final(&h, &buyer.key, &id, withdraw["id"].as_str().unwrap()).await;
    h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;
    let jobs = h.job_count().await;
    let late = options(&h, &seller, &id, "seller_claim").await;
    assert_eq!(
        (late["possible"].as_bool(), late["reason"]["code"].as_str()),
        (Some(false), Some("buyer_withdrawn"))
    );
    let deadline = h.chain.now().await + 600;
    let (status, body) = post(
        claim_path.clone(),
        &seller,
        signed_authorization(&h, &h.chain.seller, key, "seller_claim", 30, deadline),
    )
    .await;
    refused(status, &body, StatusCode::CONFLICT, "buyer_withdrawn");
    let (status, body) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{id}/claim-instructions"),
            Some(&seller.key),
            None,
        )
        .await;
    refused(status, &body, StatusCode::CONFLICT, "buyer_withdrawn");
    let (status, body) = post(
        withdraw_path,
        &buyer,
        signed_authorization(&h, &h.chain.buyer, key, "buyer_withdraw", 0, deadline),
    )
    .await;
    refused(status, &body, StatusCode::CONFLICT, "already_withdrawn");
    assert_eq!(h.job_count().await, jobs, "nothing was queued");

    // Unknown actions and other agents' agreements.
    let (status, body) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{id}/settlement-action-options?action=steal"),
            Some(&buyer.key),
            None,
        )
        .await;
    refused(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    let stranger = h.agent("stranger").await;
    for path in [
        "usage",
        "settlement-action-options?action=seller_claim",
        "claim-instructions",
        "settlement-actions",
        "events",
    ] {
        let (status, _) = h
            .call(Method::GET, &format!("/usage-agreements/{id}/{path}"), Some(&stranger.key), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn settlement_sent_while_pactum_is_down_is_applied_in_order_after_a_restart() {
    let mut h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    record(&h, &seller, &id, 25, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;
    let get = |path: &str| format!("/usage-agreements/{id}/{path}");
    let (_, close) =
        h.call(Method::GET, &get("initiate-close-calldata"), Some(&buyer.key), None).await;
    let (_, claim) = h.call(Method::GET, &get("claim-instructions"), Some(&seller.key), None).await;

    // Pactum is down while the buyer closes and the seller claims from their own wallets, and
    // the window passes and the buyer withdraws: four events in three blocks.
    h.stop().await;
    send_direct(&h, h.chain.buyer.address(), &close).await;
    send_direct(&h, h.chain.seller.address(), &claim).await;
    h.chain.advance(3_601).await;
    // The withdraw's terms are the close's (every escrow call carries them).
    use alloy::sol_types::SolCall;
    use pactum::escrow::bindings::UsageEscrow;
    let close_data: Bytes = close["data"].as_str().unwrap().parse().unwrap();
    let terms = UsageEscrow::initiateCloseCall::abi_decode(&close_data).unwrap().terms;
    let withdraw = UsageEscrow::buyerWithdrawCall { terms };
    h.chain.send(h.chain.buyer.address(), withdraw).await;

    h.restart().await;
    let settled = h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;
    assert_eq!(settled["usage"]["voucher_units"], 25);
    let escrow = escrow_status(&h, &buyer.key, &id).await;
    assert_eq!(escrow["escrow"]["claimed_units"], 25);
    assert_eq!(escrow["escrow"]["buyer_withdrawn"], true);
    assert_eq!(escrow["escrow"]["withdrawn_amount"], (75 * UNIT).to_string());
    let (_, events) = h.call(Method::GET, &get("events"), Some(&buyer.key), None).await;
    let chain_events: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|t| t.starts_with("settlement.") || *t == "agreement.settled")
        .collect();
    assert_eq!(
        chain_events,
        [
            "settlement.close_initiated",
            "settlement.claimed",
            "settlement.withdrawn",
            "agreement.settled"
        ],
        "each event once, in chain order"
    );
}

#[tokio::test]
async fn a_relayed_claim_overtaken_by_the_sellers_own_wallet_fails_saying_why() {
    // A long batch wait leaves time for the seller's own claim to land first.
    let h = Harness::start_with(|config| config.relayer_batch_wait_ms = Some(1_500)).await;
    let (buyer, seller) = h.parties().await;
    let (alone, batched, other) = (
        h.active(&buyer, &seller).await,
        h.active(&buyer, &seller).await,
        h.active(&buyer, &seller).await,
    );
    let mut direct = Vec::new();
    for (n, id) in [&alone, &batched, &other].into_iter().enumerate() {
        record(&h, &seller, id, 10 + n as u64, &format!("usage-{n}")).await;
        sign_voucher(&h, &buyer, id).await;
        let (_, claim) = h
            .call(
                Method::GET,
                &format!("/usage-agreements/{id}/claim-instructions"),
                Some(&seller.key),
                None,
            )
            .await;
        direct.push(claim);
    }

    // Alone: the relayed claim would revert once the direct one is mined, so it fails in
    // simulation, before any gas is spent, with the contract's reason.
    let (status, relayed) = sponsor(&h, &seller, &h.chain.seller, &alone, "seller_claim").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{relayed}");
    send_direct(&h, h.chain.seller.address(), &direct[0]).await;
    let done = action_final(&h, &seller.key, &alone, relayed["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["error"].as_str().unwrap().starts_with("NothingToClaim"), "{done}");
    assert!(done["tx_hash"].is_null(), "never broadcast");

    // In a batch: the contract skips the overtaken claim and pays the other.
    let (_, first) = sponsor(&h, &seller, &h.chain.seller, &batched, "seller_claim").await;
    let (_, second) = sponsor(&h, &seller, &h.chain.seller, &other, "seller_claim").await;
    send_direct(&h, h.chain.seller.address(), &direct[1]).await;
    let skipped = action_final(&h, &seller.key, &batched, first["id"].as_str().unwrap()).await;
    let paid = action_final(&h, &seller.key, &other, second["id"].as_str().unwrap()).await;
    assert_eq!(skipped["status"], "failed", "{skipped}");
    assert!(skipped["error"].as_str().unwrap().starts_with("ClaimSkipped"), "{skipped}");
    assert_eq!(paid["status"], "confirmed", "{paid}");
    assert_eq!(skipped["tx_hash"], paid["tx_hash"], "one batch transaction");
    h.wait_path(&seller.key, &format!("/usage-agreements/{other}/escrow-status"), |s| {
        s["escrow"]["claimed_units"] == 12
    })
    .await;
    let (_, events) = h
        .call(Method::GET, &format!("/usage-agreements/{batched}/events"), Some(&seller.key), None)
        .await;
    assert!(
        events["data"].as_array().unwrap().iter().any(|e| e["type"] == "settlement_action.failed"),
        "{events}"
    );
}
