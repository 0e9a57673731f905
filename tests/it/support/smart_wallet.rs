//! Buyers that pay from a contract wallet: a `MockSmartWallet` owned by the chain's buyer key,
//! funded with USDC, and agreements activated from it over HTTP.

use alloy::primitives::Address;
use reqwest::{Method, StatusCode};

use super::USDC;
use super::service::{Harness, TestAgent, sign_package};
use pactum::escrow::bindings::MockSmartWallet;

/// Deploys a `MockSmartWallet` that accepts the chain's buyer key (ERC-1271) and mints it
/// 1,000 USDC; returns its address.
pub async fn smart_wallet(h: &Harness) -> Address {
    let owner = h.chain.buyer.address();
    let wallet = *MockSmartWallet::deploy(h.chain.provider.clone(), owner).await.unwrap().address();
    h.chain.mint(wallet, 1_000 * USDC).await;
    wallet
}

/// Proposes, accepts and activates an agreement paid from the smart wallet `wallet` (its owner,
/// the chain's buyer key, signs the package) to the chain's seller wallet; returns its id once
/// it is `active`.
pub async fn active_from_wallet(
    h: &Harness,
    buyer: &TestAgent,
    seller: &TestAgent,
    wallet: Address,
) -> String {
    let id = h.accepted(buyer, seller, wallet, h.chain.seller.address()).await;
    let package = h.package(&buyer.key, &id).await;
    let body = sign_package(&h.chain.buyer, &package);
    let path = format!("/usage-agreements/{id}/activate-escrow");
    let (status, queued) = h.call(Method::POST, &path, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    h.wait_for(&buyer.key, &id, |a| a["status"] == "active").await;
    id
}
