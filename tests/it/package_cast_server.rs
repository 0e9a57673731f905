//! "A test signs the package with a third-party tool (`cast wallet sign --data`) and the server
//! accepts it": the activation package served over HTTP is signed, document by document and
//! unchanged, by the pinned `cast`, and the server verifies those signatures, relays the
//! activation and the escrow ends up funded on-chain.

use std::process::Command;

use crate::support::service::Harness;
use alloy::primitives::{B256, U256};
use pactum::chain::toolchain;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `cast wallet sign --data --private-key <key> '<document>'`: the signature cast prints.
fn cast_sign(label: &str, private_key: &str, document: &Value) -> String {
    let cast = toolchain::binary("cast");
    let output = Command::new(&cast)
        .args(["wallet", "sign", "--data", "--private-key", private_key])
        .arg(document.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (run anvil/ensure.sh): {e}", cast.display()));
    assert!(
        output.status.success(),
        "cast refused the {label} document: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signature = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(
        signature.starts_with("0x") && signature.len() == 2 + 130,
        "cast printed no 65-byte signature for {label}: {signature}"
    );
    signature
}

#[tokio::test]
async fn the_server_activates_a_package_signed_by_cast() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let id = h.accepted(&buyer, &seller, buyer_wallet, seller_wallet).await;
    let package = h.package(&buyer.key, &id).await;
    let fee = package["infra_fee"]["amount"].as_str().expect("the harness charges a fee");

    let private_key = h.chain.buyer.to_bytes().to_string();
    let body = json!({
        "activation_signature": cast_sign("activation", &private_key, &package["activation"]),
        "funding_signature": cast_sign("funding", &private_key, &package["funding"]),
        "infra_fee_permit_signature":
            cast_sign("infra_fee.permit", &private_key, &package["infra_fee"]["permit"]),
        "agreement_key": package["agreement_key"],
        "chain_id": package["chain_id"],
    });
    let escrow_before = h.chain.balance(*h.chain.escrow.address()).await;
    let buyer_before = h.chain.balance(buyer_wallet).await;

    let path = format!("/usage-agreements/{id}/activate-escrow");
    let (status, queued) = h.call(Method::POST, &path, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "activating");

    let done = h
        .wait_for(&buyer.key, &id, |a| {
            a["status"] == "active" && a["activation_status"] == "confirmed"
        })
        .await;
    assert_eq!(done["infra_fee"]["status"], "collected", "{done}");

    // The money moved as the package said: the deposit into the escrow, the fee out as well.
    let deposit: U256 = package["deposit_amount"].as_str().unwrap().parse().unwrap();
    let fee: U256 = fee.parse().unwrap();
    assert_eq!(deposit, U256::from(10_000_000u64), "100 calls at 10 cents");
    let escrow_after = h.chain.balance(*h.chain.escrow.address()).await;
    assert_eq!(escrow_after - escrow_before, deposit + fee);
    assert_eq!(buyer_before - h.chain.balance(buyer_wallet).await, deposit + fee);
    assert_eq!(h.chain.accrued_fees().await, fee);

    // And the escrow the contract holds is the one cast signed for.
    let key: B256 = package["agreement_key"].as_str().unwrap().parse().unwrap();
    let on_chain = h.chain.escrow.escrowOf(key).call().await.unwrap();
    assert_eq!(on_chain.status, 1, "Active");
}
