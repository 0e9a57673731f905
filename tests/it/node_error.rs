//! Node errors provoked on a real anvil, classified.

use crate::support::DevChain;
use alloy::network::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use pactum::chain::node_error::{NodeError, classify};
use pactum::escrow::bindings::UsageEscrow;

const GWEI: u128 = 1_000_000_000;

/// A signed EIP-1559 transfer of `value` wei from `signer` with `nonce`.
async fn transfer(chain: &DevChain, signer: &PrivateKeySigner, nonce: u64, value: u64) -> Bytes {
    let tx = TransactionRequest::default()
        .with_from(signer.address())
        .with_to(Address::repeat_byte(0x42))
        .with_value(U256::from(value))
        .with_nonce(nonce)
        .with_chain_id(chain.chain_id)
        .with_gas_limit(21_000)
        .with_max_fee_per_gas(10 * GWEI)
        .with_max_priority_fee_per_gas(GWEI);
    let envelope = tx.build(&EthereumWallet::from(signer.clone())).await.unwrap();
    envelope.encoded_2718().into()
}

async fn set_automine(chain: &DevChain, on: bool) {
    let _: serde_json::Value =
        chain.provider.raw_request("evm_setAutomine".into(), (on,)).await.unwrap();
}

async fn nonce_of(chain: &DevChain, signer: &PrivateKeySigner) -> u64 {
    chain.provider.get_transaction_count(signer.address()).await.unwrap()
}

async fn send_raw(chain: &DevChain, raw: &Bytes) -> Result<(), NodeError> {
    chain.provider.send_raw_transaction(raw).await.map(drop).map_err(|err| classify(&err))
}

/// Sends `raw` and waits until it is mined: anvil's automine answers the send before it mines, so
/// a second send straight after would still find the first one pending.
async fn mine_raw(chain: &DevChain, raw: &Bytes) {
    let receipt =
        chain.provider.send_raw_transaction(raw).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
}

/// anvil answers a second copy of a pending transaction with -32003 "transaction already
/// imported" (geth and reth say "already known").
#[tokio::test]
async fn the_same_raw_transaction_twice_while_pending_is_already_known() {
    let chain = DevChain::start().await;
    set_automine(&chain, false).await;
    let raw = transfer(&chain, &chain.relayer, nonce_of(&chain, &chain.relayer).await, 1).await;
    send_raw(&chain, &raw).await.unwrap();
    let err = send_raw(&chain, &raw).await.unwrap_err();
    assert_eq!(err, NodeError::AlreadyKnown);
    assert!(!err.is_retryable() && !err.is_nonce_error());
}

/// Once the transaction is mined, anvil (like geth) no longer knows it by hash: a second copy is
/// -32003 "nonce too low". A relayer re-broadcasting after a crash must therefore look up the
/// receipts of its hashes rather than take "nonce too low" for a failure.
#[tokio::test]
async fn the_same_raw_transaction_after_it_is_mined_is_nonce_too_low() {
    let chain = DevChain::start().await;
    let raw = transfer(&chain, &chain.relayer, nonce_of(&chain, &chain.relayer).await, 1).await;
    mine_raw(&chain, &raw).await;
    let err = send_raw(&chain, &raw).await.unwrap_err();
    assert_eq!(err, NodeError::NonceTooLow);
}

#[tokio::test]
async fn another_transaction_with_a_used_nonce_is_nonce_too_low() {
    let chain = DevChain::start().await;
    let nonce = nonce_of(&chain, &chain.relayer).await;
    mine_raw(&chain, &transfer(&chain, &chain.relayer, nonce, 1).await).await;
    let err =
        send_raw(&chain, &transfer(&chain, &chain.relayer, nonce, 2).await).await.unwrap_err();
    assert_eq!(err, NodeError::NonceTooLow);
    assert!(err.is_nonce_error() && !err.is_retryable());
}

#[tokio::test]
async fn a_replacement_at_the_same_fees_is_underpriced() {
    let chain = DevChain::start().await;
    set_automine(&chain, false).await;
    let nonce = nonce_of(&chain, &chain.relayer).await;
    send_raw(&chain, &transfer(&chain, &chain.relayer, nonce, 1).await).await.unwrap();
    let err =
        send_raw(&chain, &transfer(&chain, &chain.relayer, nonce, 2).await).await.unwrap_err();
    assert_eq!(err, NodeError::ReplacementUnderpriced);
}

#[tokio::test]
async fn a_sender_without_eth_has_insufficient_funds() {
    let chain = DevChain::start().await;
    let pauper = PrivateKeySigner::random();
    let err = send_raw(&chain, &transfer(&chain, &pauper, 0, 1).await).await.unwrap_err();
    assert_eq!(err, NodeError::InsufficientFunds);
}

/// `eth_call` and `eth_estimateGas` both answer code 3 with the revert data.
#[tokio::test]
async fn a_revert_is_classified_with_its_decoded_reason() {
    let chain = DevChain::start().await;
    let terms = chain.terms("late").await;
    let (_, buyer_signature, funding_signature, fee_permit_signature) =
        chain.sign_activation(&chain.buyer, &terms).await;
    chain.advance(3601).await;
    let call = UsageEscrow::activateCall {
        terms: terms.clone(),
        buyerSignature: buyer_signature,
        fundingSignature: funding_signature,
        feeSignature: fee_permit_signature,
    };
    let request = TransactionRequest::default()
        .from(chain.relayer.address())
        .to(*chain.escrow.address())
        .input(call.abi_encode().into());
    let expected = format!("ActivationExpired(activateBy={})", terms.activateBy);

    let err = classify(&chain.provider.call(request.clone()).await.unwrap_err());
    assert!(
        matches!(&err, NodeError::Reverted { data: Some(_), reason } if *reason == expected),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let err = classify(&chain.provider.estimate_gas(request).await.unwrap_err());
    assert!(
        matches!(&err, NodeError::Reverted { data: Some(_), reason } if *reason == expected),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_closed_port_is_unavailable_and_retryable() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let provider = ProviderBuilder::new().connect_http(url.parse().unwrap());
    let err = classify(&provider.get_block_number().await.unwrap_err());
    assert!(matches!(err, NodeError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable() && !err.is_nonce_error());
}
