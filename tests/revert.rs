//! Revert data from a real node: an `eth_call` of `activate` past `activateBy` comes back with
//! data that reads as the escrow's `ActivationExpired`.

mod support;

use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use pactum::chain::revert::{decode_revert, escrow_error, revert_data};
use pactum::escrow::bindings::UsageEscrow;
use support::DevChain;

#[tokio::test]
async fn an_expired_activation_reverts_with_a_readable_reason() {
    let chain = DevChain::start().await;
    let terms = chain.terms("late").await;
    let (_, buyer_signature, funding_signature, fee_permit_signature) =
        chain.sign_activation(&chain.buyer, &terms).await;
    chain.advance(3601).await;

    let call = UsageEscrow::activateCall {
        terms: terms.clone(),
        buyerSignature: buyer_signature,
        fundingSignature: funding_signature,
        feePermitSignature: fee_permit_signature,
    };
    let request = TransactionRequest::default()
        .from(chain.relayer.address())
        .to(*chain.escrow.address())
        .input(call.abi_encode().into());
    let err = chain.provider.call(request).await.unwrap_err();

    let data = revert_data(&err).expect("the node returns the revert data");
    assert_eq!(decode_revert(&data), format!("ActivationExpired(activateBy={})", terms.activateBy));
    assert!(matches!(
        escrow_error(&data),
        Some(UsageEscrow::UsageEscrowErrors::ActivationExpired(e)) if e.activateBy == terms.activateBy
    ));
}
