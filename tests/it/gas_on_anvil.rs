//! Full transaction gas (base cost and calldata included) of each escrow action, measured from
//! anvil receipts, against the targets in docs/gas.md. Conditions are those of a running service:
//! the escrow already holds deposits, and the seller and the fee recipient already hold USDC. The
//! token is the mock USDC behind its proxy, priced like USDC on Base (docs/gas.md).

use crate::support::{DevChain, USDC, sign_typed};
use alloy::primitives::{B256, Bytes, U256};
use alloy::sol_types::SolCall;
use pactum::escrow::bindings::UsageEscrow;
use pactum::escrow::typed_data::{Activation, BuyerWithdraw, SellerClaim};

/// The goals on USDC on Base set for contract v3, which this token is priced like. docs/gas.md
/// says which are met, and why the others cannot be with the contract's current duties.
const GOAL_ACTIVATE_FEE: u64 = 140_000;
const GOAL_ACTIVATE: u64 = 110_000;
const GOAL_CLAIM: u64 = 60_000;
const GOAL_WITHDRAW: u64 = 55_000;
/// `sellerClaimBatch` of 20 against 20 single sponsored claims, in percent.
const GOAL_BATCH_RATIO: f64 = 35.0;
/// Ceilings just above today's figures (runs vary by some 25 gas): what the test guards, so that
/// no figure grows unnoticed.
const CEILING_ACTIVATE_FEE: u64 = 187_000;
const CEILING_ACTIVATE: u64 = 142_500;
const CEILING_CLAIM: u64 = 67_000;
const CEILING_WITHDRAW: u64 = 63_000;
const CEILING_BATCH_RATIO: f64 = 41.0;
const BATCH: usize = 20;

async fn sponsored_claim(
    chain: &DevChain,
    terms: &Activation,
    key: B256,
    units: u64,
) -> UsageEscrow::SponsoredClaim {
    let deadline = U256::from(chain.now().await + 3600);
    let claim = SellerClaim { agreementKey: key, cumulativeUnits: U256::from(units), deadline };
    UsageEscrow::SponsoredClaim {
        terms: terms.clone(),
        cumulativeUnits: U256::from(units),
        voucherSignature: chain.voucher(key, units),
        deadline,
        authorization: sign_typed(&chain.seller, &claim, &chain.escrow_domain()),
    }
}

async fn sponsored_claim_call(
    chain: &DevChain,
    terms: &Activation,
    key: B256,
    units: u64,
) -> UsageEscrow::sellerClaimWithAuthorizationCall {
    let claim = sponsored_claim(chain, terms, key, units).await;
    UsageEscrow::sellerClaimWithAuthorizationCall {
        terms: claim.terms,
        cumulativeUnits: claim.cumulativeUnits,
        voucherSignature: claim.voucherSignature,
        deadline: claim.deadline,
        authorization: claim.authorization,
    }
}

#[tokio::test]
async fn escrow_actions_meet_their_gas_targets() {
    let chain = DevChain::start().await;
    let (buyer, seller, relayer) =
        (chain.buyer.address(), chain.seller.address(), chain.relayer.address());
    chain.mint(seller, USDC).await;
    chain.mint(chain.fee_recipient, USDC).await;
    chain.activate(&chain.terms("warm-up").await).await;

    let mut no_fee = chain.terms("no-fee").await;
    no_fee.infraFee = U256::ZERO;
    let (key_a, receipt) = chain.activate(&no_fee).await;
    let activate_no_fee = receipt.gas_used;
    let terms_b = chain.terms("with-fee").await;
    let (key_b, receipt) = chain.activate(&terms_b).await;
    let activate_with_fee = receipt.gas_used;

    let claim = UsageEscrow::sellerClaimCall {
        terms: no_fee.clone(),
        cumulativeUnits: U256::from(40),
        voucherSignature: chain.voucher(key_a, 40),
    };
    let claim_direct = chain.send(seller, claim).await.gas_used;
    let claim = sponsored_claim_call(&chain, &terms_b, key_b, 40).await;
    let claim_sponsored = chain.send(relayer, claim).await.gas_used;

    let close = UsageEscrow::initiateCloseCall {
        terms: no_fee.clone(),
        finalUnits: U256::ZERO,
        voucherSignature: Bytes::new(),
    };
    let close_buyer = chain.send(buyer, close).await.gas_used;
    chain.advance(86_400 + 3600).await;
    let withdraw = UsageEscrow::buyerWithdrawCall { terms: no_fee.clone() };
    let withdraw_direct = chain.send(buyer, withdraw).await.gas_used;
    let deadline = U256::from(chain.now().await + 3600);
    let authorization = BuyerWithdraw { agreementKey: key_b, deadline };
    let withdraw = UsageEscrow::buyerWithdrawWithAuthorizationCall {
        terms: terms_b.clone(),
        deadline,
        authorization: sign_typed(&chain.buyer, &authorization, &chain.escrow_domain()),
    };
    let withdraw_sponsored = chain.send(relayer, withdraw).await.gas_used;

    // 20 sponsored claims one by one, against 20 in one generic `batch` and 20 in one
    // `sellerClaimBatch`, on 60 fresh agreements of one seller.
    let mut singles = Vec::new();
    let mut batched = Vec::new();
    let mut claim_batched = Vec::new();
    for i in 0..BATCH {
        for (set, name) in
            [(&mut singles, "single"), (&mut batched, "batched"), (&mut claim_batched, "claims")]
        {
            let terms = chain.terms(&format!("{name}-{i}")).await;
            let (key, _) = chain.activate(&terms).await;
            set.push((terms, key));
        }
    }
    let mut single_total = 0;
    for (terms, key) in &singles {
        let claim = sponsored_claim_call(&chain, terms, *key, 30).await;
        single_total += chain.send(relayer, claim).await.gas_used;
    }
    let mut calls = Vec::new();
    for (terms, key) in &batched {
        calls.push(sponsored_claim_call(&chain, terms, *key, 30).await.abi_encode().into());
    }
    let batch = UsageEscrow::batchCall { calls, atomic: true };
    let batch_total = chain.send(relayer, batch).await.gas_used;
    let mut claims = Vec::new();
    for (terms, key) in &claim_batched {
        claims.push(sponsored_claim(&chain, terms, *key, 30).await);
    }
    let claim_batch = UsageEscrow::sellerClaimBatchCall { claims };
    let claim_batch_total = chain.send(relayer, claim_batch).await.gas_used;
    for (_, key) in batched.iter().chain(&claim_batched) {
        let state = chain.escrow.escrowOf(*key).call().await.unwrap();
        assert_eq!(state.claimedUnits, 30, "batched claim not applied");
    }

    let ratio = batch_total as f64 / single_total as f64;
    let claim_ratio = claim_batch_total as f64 / single_total as f64;
    let verdict = |gas: u64, goal: u64| {
        if gas <= goal { "met".to_owned() } else { format!("missed by {}", gas - goal) }
    };
    println!("| action | gas (transaction) | goal on USDC | |");
    println!("| --- | ---: | ---: | --- |");
    let goals = [
        ("activate, with the infra-fee authorization", activate_with_fee, GOAL_ACTIVATE_FEE),
        ("activate, no fee", activate_no_fee, GOAL_ACTIVATE),
        ("sellerClaim (direct)", claim_direct, GOAL_CLAIM),
        ("buyerWithdraw (direct)", withdraw_direct, GOAL_WITHDRAW),
    ];
    for (action, gas, goal) in goals {
        println!("| {action} | {gas} | ≤ {goal} | {} |", verdict(gas, goal));
    }
    println!("| sellerClaimWithAuthorization (sponsored) | {claim_sponsored} | | |");
    println!("| initiateClose (buyer, direct) | {close_buyer} | | |");
    println!("| buyerWithdrawWithAuthorization (sponsored) | {withdraw_sponsored} | | |");
    println!("| {BATCH} sponsored claims, one transaction each | {single_total} | | |");
    println!("| {BATCH} sponsored claims, one generic `batch` | {batch_total} | | |");
    println!("| {BATCH} sponsored claims, one `sellerClaimBatch` | {claim_batch_total} | | |");
    println!("| generic `batch` / singles | {:.1}% | | |", ratio * 100.0);
    let claim_percent = claim_ratio * 100.0;
    let batch_verdict = if claim_percent <= GOAL_BATCH_RATIO { "met" } else { "missed" };
    println!(
        "| `sellerClaimBatch` / singles | {claim_percent:.1}% | ≤ {GOAL_BATCH_RATIO}% | {batch_verdict} |"
    );

    assert!(activate_with_fee <= CEILING_ACTIVATE_FEE, "activation with fee: {activate_with_fee}");
    assert!(activate_no_fee <= CEILING_ACTIVATE, "activation: {activate_no_fee} gas");
    assert!(claim_direct <= CEILING_CLAIM, "seller claim: {claim_direct} gas");
    assert!(withdraw_direct <= CEILING_WITHDRAW, "buyer withdraw: {withdraw_direct} gas");
    assert!(claim_percent <= CEILING_BATCH_RATIO, "claim batch: {claim_percent:.1}% of singles");
    assert!(batch_total < single_total, "a generic batch must cost less than its calls alone");
}
