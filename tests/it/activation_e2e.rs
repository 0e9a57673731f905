//! One activation end to end on a real anvil: the buyer signs locally with alloy's signer, the
//! relayer submits, and the tokens move on-chain exactly as the terms say.

use crate::support::DevChain;
use alloy::primitives::U256;
use pactum::escrow::bindings::UsageEscrow;

#[tokio::test]
async fn relayer_activates_a_buyer_signed_agreement() {
    let chain = DevChain::start().await;
    let terms = chain.terms("e2e").await;
    let buyer_before = chain.balance(chain.buyer.address()).await;
    let (key, receipt) = chain.activate(&terms).await;
    assert_eq!(receipt.from, chain.relayer.address());

    // The key the contract derives is the one Rust computed, and the escrow is active.
    assert_eq!(chain.escrow.agreementKey(terms.clone()).call().await.unwrap(), key);
    let state = chain.escrow.escrowOf(key).call().await.unwrap();
    assert_eq!(state.status, 1, "status should be Active");

    // Deposit (100 × 0.10 USDC) and fee (0.10 USDC) into escrow, the fee accrued.
    let deposit = U256::from(10_000_000u64);
    let fee = U256::from(100_000u64);
    assert_eq!(chain.balance(*chain.escrow.address()).await, deposit + fee);
    assert_eq!(chain.accrued_fees().await, fee);
    assert_eq!(chain.balance(chain.buyer.address()).await, buyer_before - deposit - fee);

    // The activation event carries the terms the chain watcher needs.
    let event = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<UsageEscrow::EscrowActivated>().ok())
        .expect("EscrowActivated emitted");
    assert_eq!(event.inner.agreementKey, key);
    assert_eq!(event.inner.deposit, deposit);
    assert_eq!(event.inner.seller, chain.seller.address());
}
