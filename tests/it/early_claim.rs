//! The seller's settlement options recommend an early claim when the buyer's wallet has code
//! (it could revoke its vouchers) and the unclaimed voucher value reaches
//! `PACTUM_EARLY_CLAIM_THRESHOLD`; never for a key-only buyer. On anvil, over HTTP.

use crate::support::USDC;
use crate::support::service::Harness;
use crate::support::settlement::{action_final, options, record, sign_voucher, sponsor};
use crate::support::smart_wallet::{active_from_wallet, smart_wallet};
use pactum::money::TokenAmount;
use reqwest::StatusCode;

/// 2 USDC: 20 units of the harness's agreements (0.10 USDC each).
const THRESHOLD: u64 = 2 * USDC;

async fn harness() -> Harness {
    Harness::start_with(|config| {
        config.early_claim_threshold = TokenAmount::from_base_units(THRESHOLD);
    })
    .await
}

#[tokio::test]
async fn a_smart_wallet_buyer_owing_the_threshold_or_more_gets_the_seller_an_early_claim() {
    let h = harness().await;
    let (buyer, seller) = h.parties().await;
    let wallet = smart_wallet(&h).await;
    let id = active_from_wallet(&h, &buyer, &seller, wallet).await;

    // 10 units: 1 USDC unclaimed, below the threshold.
    record(&h, &seller, &id, 10, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;
    let below = options(&h, &seller, &id, "seller_claim").await;
    assert_eq!(below["possible"], true, "{below}");
    assert!(below["recommendation"].is_null(), "{below}");

    // 20 units: 2 USDC, exactly the threshold.
    record(&h, &seller, &id, 10, "usage-2").await;
    sign_voucher(&h, &buyer, &id).await;
    let at = options(&h, &seller, &id, "seller_claim").await;
    let recommendation = &at["recommendation"];
    assert_eq!(recommendation["action"], "seller_claim", "{at}");
    assert_eq!(recommendation["reason"], "revocable_buyer_wallet");
    assert_eq!(recommendation["unclaimed_units"], 20);
    assert_eq!(recommendation["unclaimed_amount"], THRESHOLD.to_string());
    assert_eq!(recommendation["threshold_amount"], THRESHOLD.to_string());
    let message = recommendation["message"].as_str().unwrap();
    assert!(message.contains(&wallet.to_checksum(None)), "{message}");
    assert!(message.contains("contract wallet"), "{message}");

    // The seller sees it whatever action it asks about; the buyer never does.
    let close = options(&h, &seller, &id, "initiate_close").await;
    assert_eq!(close["recommendation"]["unclaimed_amount"], THRESHOLD.to_string(), "{close}");
    let buyers = options(&h, &buyer, &id, "initiate_close").await;
    assert!(buyers["recommendation"].is_null(), "{buyers}");

    // Once claimed, nothing is at risk.
    let (status, queued) = sponsor(&h, &seller, &h.chain.seller, &id, "seller_claim").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let done = action_final(&h, &seller.key, &id, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    let after = options(&h, &seller, &id, "initiate_close").await;
    assert_eq!(after["escrow"]["claimed_units"], 20, "{after}");
    assert!(after["recommendation"].is_null(), "{after}");
}

#[tokio::test]
async fn a_key_only_buyer_never_gets_the_seller_an_early_claim() {
    let h = harness().await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    // 50 units: 5 USDC unclaimed, well above the threshold.
    record(&h, &seller, &id, 50, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;
    for action in ["seller_claim", "initiate_close"] {
        let offered = options(&h, &seller, &id, action).await;
        assert_eq!(offered["possible"], true, "{offered}");
        assert!(offered["recommendation"].is_null(), "{offered}");
    }
}
