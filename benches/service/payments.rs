//! Part 7, `payments`: governed payments relayed one transaction each through the real server,
//! against the same authorizations submitted in batches through `TransferBatch`.
//!
//! (a) Single: `n` payers (agents, each with its own wallet registered with `POST /activate` and
//! holding USDC) each create a payment to a payee of their own, sign the returned
//! `TransferWithAuthorization` document as a wallet library would, and authorize it, 16 requests
//! in flight. Pactum's relayer sends each as its own `transferWithAuthorization` (one relayer
//! key, the default window of 16 unmined transactions) and the chain watcher confirms it at depth
//! 2. Measured from the first request to the last confirmation: payments confirmed per second,
//! authorize (202) → `submitted` and → `confirmed` latency (p50/p99), and gas per payment from
//! the receipts.
//!
//! (b) Batched: the same payers sign `n` new authorizations to the same payees (fresh nonces),
//! and one key that is not the service's sends them with alloy straight to the chain: once as
//! `n` direct `transferWithAuthorization` transactions, and once per batch size `k` as `n / k`
//! `TransferBatch.transferAll` transactions. Measured from the first send to the last receipt:
//! transactions, blocks, gas per payment (receipt gas ÷ payments) and its ratio to (a), payments
//! per block, and the ceiling a block's gas limit puts on each.
//!
//! Set-up runs with automine; every measured phase mines a block a second, as the `relay` part
//! does. Payers and payees already hold USDC (a live token's steady state), so no payment pays
//! for a first write of a balance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use futures::StreamExt;
use pactum::chain::deploy;
use pactum::escrow::bindings::TransferBatch;
use pactum::payments::{AuthorizationUsed, Terms};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

use super::Settings;
use super::relay::{interval_mining, percentile, statuses};
use crate::support::service::{Harness, TestAgent, sign_document};
use crate::support::{USDC, sign_hash};

/// Requests in flight while setting up and paying.
const IN_FLIGHT: usize = 16;
/// Every payment is a dollar.
const AMOUNT_CENTS: u64 = 100;
/// The dev account that sends the batched path (the service's relayer is account 3).
const BATCH_SENDER: usize = 4;

/// A paying agent and its wallet's key.
struct Payer {
    agent: TestAgent,
    wallet: PrivateKeySigner,
}

/// What the single path measured.
struct Single {
    seconds: f64,
    to_submitted_ms: Vec<f64>,
    to_confirmed_ms: Vec<f64>,
    transactions: usize,
    blocks: usize,
    gas_used: u64,
}

/// What one way of sending the signed authorizations measured.
struct Sent {
    seconds: f64,
    transactions: usize,
    blocks: usize,
    gas_used: u64,
}

/// How the batched path sends its authorizations.
#[derive(Clone, Copy)]
enum Mode {
    /// Each its own `transferWithAuthorization` to the token.
    Direct,
    /// `k` per `TransferBatch.transferAll`.
    Batch(usize),
}

pub(crate) async fn run(settings: &Settings) {
    let (n, sizes) = if settings.quick { (6, vec![2, 3]) } else { (200, vec![10, 25, 50]) };
    let h = Arc::new(
        Harness::start_with(|config| {
            config.poll_interval_ms = 250;
        })
        .await,
    );
    eprintln!("payments: {n} payers and payees…");
    let (payers, payees) = parties(&h, n).await;

    eprintln!("payments: {n} payments through the API, one transaction each…");
    let one_each = single(&h, &payers, &payees).await;

    eprintln!("payments: {n} payments through the API, batched by the relayer (TransferBatch)…");
    let chain = crate::support::DevChain::start().await;
    let relay_batcher =
        deploy::deploy_transfer_batch(&chain.provider).await.expect("TransferBatch deploys");
    let hb = Arc::new(
        Harness::start_on(chain, |_, config| {
            config.poll_interval_ms = 250;
            config.transfer_batch_address = Some(relay_batcher);
        })
        .await,
    );
    let (batch_payers, batch_payees) = parties(&hb, n).await;
    let relayed_batched = single(&hb, &batch_payers, &batch_payees).await;
    if let Ok(mut hb) = Arc::try_unwrap(hb) {
        hb.stop().await;
    }

    let latest = h.chain.provider.get_block_by_number(Default::default()).await.unwrap();
    let block_gas_limit = latest.expect("a latest block").header.gas_limit as f64;
    let single_gas = one_each.gas_used as f64 / n as f64;

    println!(
        "\n## payments: {n} governed payments through the real server (1 s blocks, 1 relayer key, \
         window 16), one transaction each and batched by the relayer through TransferBatch\n"
    );
    println!(
        "| relayed as | payments/s | authorize → submitted p50 | p99 | authorize → confirmed p50 | p99 | transactions | blocks | gas per payment |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, run) in [("one each", &one_each), ("batched", &relayed_batched)] {
        println!(
            "| {label} | {:.1} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} | {} |",
            n as f64 / run.seconds,
            percentile(&run.to_submitted_ms, 50.0),
            percentile(&run.to_submitted_ms, 99.0),
            percentile(&run.to_confirmed_ms, 50.0),
            percentile(&run.to_confirmed_ms, 99.0),
            run.transactions,
            run.blocks,
            super::thousands(run.gas_used as f64 / n as f64),
        );
    }

    let sender = PrivateKeySigner::from(h.chain.anvil.keys()[BATCH_SENDER].clone());
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(sender))
        .connect_http(h.chain.anvil.endpoint_url())
        .erased();
    let batcher = deploy::deploy_transfer_batch(&provider).await.expect("TransferBatch deploys");

    println!(
        "\n## payments: the same {n} payers' authorizations sent straight to the chain from one \
         key, one per transaction and batched through TransferBatch (1 s blocks)\n"
    );
    println!(
        "| sent as | transactions | blocks | payments per block | payments/s | gas per payment | ÷ single through Pactum | ceiling (payments per block at this gas) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let row = |label: String, sent: &Sent| {
        let per_payment = sent.gas_used as f64 / n as f64;
        println!(
            "| {label} | {} | {} | {:.1} | {:.1} | {} | {:.2} | {} |",
            sent.transactions,
            sent.blocks,
            n as f64 / sent.blocks.max(1) as f64,
            n as f64 / sent.seconds,
            super::thousands(per_payment),
            per_payment / single_gas,
            super::thousands(block_gas_limit / per_payment),
        );
    };
    row(
        "Pactum's relayer, one each (above)".into(),
        &Sent {
            seconds: one_each.seconds,
            transactions: one_each.transactions,
            blocks: one_each.blocks,
            gas_used: one_each.gas_used,
        },
    );
    let mut modes = vec![Mode::Direct];
    modes.extend(sizes.iter().map(|&k| Mode::Batch(k)));
    for mode in modes {
        let label = match mode {
            Mode::Direct => "`transferWithAuthorization`, one each".to_owned(),
            Mode::Batch(k) => format!("`transferAll`, {k} per batch"),
        };
        eprintln!("payments: {n} authorizations as {label}…");
        let sent = send_signed(&h, &provider, batcher, &payers, &payees, mode).await;
        row(label, &sent);
    }
    println!(
        "\nblock gas limit {}; payers and payees distinct, all already holding USDC",
        super::thousands(block_gas_limit)
    );
    if let Ok(mut h) = Arc::try_unwrap(h) {
        h.stop().await;
    }
}

/// `n` payers (agents with a USDC-holding wallet registered through the API) and `n` payee
/// addresses that already hold USDC.
async fn parties(h: &Arc<Harness>, n: usize) -> (Vec<Payer>, Vec<Address>) {
    interval_mining(h, false).await;
    let payers: Vec<Payer> = futures::stream::iter(0..n)
        .map(|i| {
            let h = h.clone();
            async move {
                let agent = h.agent(&format!("payer-{i}")).await;
                let wallet = PrivateKeySigner::random();
                let body = json!({ "address": wallet.address().to_string() });
                let (status, answer) =
                    h.call(Method::POST, "/activate", Some(&agent.key), Some(&body)).await;
                assert_eq!(status, StatusCode::CREATED, "{answer}");
                Payer { agent, wallet }
            }
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let payees: Vec<Address> = (0..n).map(|_| PrivateKeySigner::random().address()).collect();
    for payer in &payers {
        h.chain.mint(payer.wallet.address(), 1_000 * USDC).await;
    }
    for payee in &payees {
        h.chain.mint(*payee, USDC).await;
    }
    (payers, payees)
}

/// (a): every payer pays its payee through the API; followed to confirmation.
async fn single(h: &Arc<Harness>, payers: &[Payer], payees: &[Address]) -> Single {
    let n = payers.len();
    interval_mining(h, true).await;
    let started = Instant::now();
    // Each payment as the API accepted its authorization (202), shared with the watch below,
    // which runs from the first request.
    let accepted: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let paying = {
        let (h, accepted) = (h.clone(), accepted.clone());
        let work: Vec<(TestAgent, PrivateKeySigner, Address)> = payers
            .iter()
            .zip(payees)
            .map(|(p, to)| (p.agent.clone(), p.wallet.clone(), *to))
            .collect();
        tokio::spawn(async move {
            futures::stream::iter(work)
                .for_each_concurrent(IN_FLIGHT, |(agent, wallet, to)| {
                    let (h, accepted) = (h.clone(), accepted.clone());
                    async move {
                        let body = json!({ "to": to.to_string(), "amount_cents": AMOUNT_CENTS });
                        let (status, created) = h
                            .call(Method::POST, "/v1/payments", Some(&agent.key), Some(&body))
                            .await;
                        assert_eq!(status, StatusCode::CREATED, "{created}");
                        let id = created["id"].as_str().unwrap().to_owned();
                        let signature = sign_document(&wallet, &created["typed_data"]);
                        let path = format!("/v1/payments/{id}/authorize");
                        let body = json!({ "signature": signature });
                        let (status, queued) =
                            h.call(Method::POST, &path, Some(&agent.key), Some(&body)).await;
                        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
                        accepted.lock().unwrap().insert(id, Instant::now());
                    }
                })
                .await;
        })
    };

    let mut submitted_at: BTreeMap<String, Instant> = BTreeMap::new();
    let mut confirmed_at: BTreeMap<String, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let wanted: BTreeSet<String> = accepted.lock().unwrap().keys().cloned().collect();
        let now = statuses(h, "payments", &wanted).await;
        let seen = Instant::now();
        assert!(seen < deadline, "payments not all confirmed in 10 min: {now:?}");
        for (id, status) in &now {
            if status != "queued" {
                submitted_at.entry(id.clone()).or_insert(seen);
            }
            if status == "confirmed" {
                confirmed_at.entry(id.clone()).or_insert(seen);
            }
        }
        assert!(now.values().all(|s| s != "failed" && s != "expired"), "a payment failed: {now:?}");
        if wanted.len() == n && confirmed_at.len() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    paying.await.expect("every payment authorized");
    interval_mining(h, false).await;
    let accepted_at = std::mem::take(&mut *accepted.lock().unwrap());
    let since_accepted = |at: &BTreeMap<String, Instant>| {
        let mut ms: Vec<f64> = at
            .iter()
            .map(|(id, t)| t.duration_since(accepted_at[id]).as_secs_f64() * 1_000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    };

    let store = &h.service.as_ref().unwrap().state().store;
    let rows =
        sqlx::query("SELECT id, tx_hash FROM payments").fetch_all(store.reader()).await.unwrap();
    let hashes: BTreeSet<B256> = rows
        .iter()
        .filter(|row| accepted_at.contains_key(&row.get::<String, _>("id")))
        .map(|row| row.get::<String, _>("tx_hash").parse().unwrap())
        .collect();
    let (gas_used, blocks, _) = tally(&h.chain.provider, &hashes).await;
    Single {
        seconds,
        to_submitted_ms: since_accepted(&submitted_at),
        to_confirmed_ms: since_accepted(&confirmed_at),
        transactions: hashes.len(),
        blocks,
        gas_used,
    }
}

/// (b): every payer signs a new authorization to its payee, and `provider`'s key sends them all
/// as `mode` says, back to back; followed to the last receipt. Panics unless every one paid.
async fn send_signed(
    h: &Harness,
    provider: &DynProvider,
    batcher: Address,
    payers: &[Payer],
    payees: &[Address],
    mode: Mode,
) -> Sent {
    let now = h.chain.now().await;
    let domain = h.chain.usdc_domain();
    let token = *h.chain.usdc.address();
    let value = pactum::money::Cents(AMOUNT_CENTS).to_token_amount().base_units();
    let signed: Vec<(Terms, alloy::primitives::Bytes)> = payers
        .iter()
        .zip(payees)
        .map(|(payer, to)| {
            let terms = Terms {
                from: payer.wallet.address(),
                to: *to,
                value,
                valid_after: 0,
                valid_before: now + 3_600,
                nonce: pactum::payments::new_key(),
            };
            let signature = sign_hash(&payer.wallet, terms.digest(&domain));
            (terms, signature)
        })
        .collect();
    let calls: Vec<TransactionRequest> = match mode {
        Mode::Direct => signed
            .iter()
            .map(|(terms, signature)| {
                TransactionRequest::default().with_to(token).with_input(terms.call(signature))
            })
            .collect(),
        Mode::Batch(k) => signed
            .chunks(k)
            .map(|chunk| {
                let batch = chunk
                    .iter()
                    .map(|(t, signature)| TransferBatch::Authorization {
                        from: t.from,
                        to: t.to,
                        value: t.value,
                        validAfter: U256::from(t.valid_after),
                        validBefore: U256::from(t.valid_before),
                        nonce: t.nonce,
                        signature: signature.clone(),
                    })
                    .collect();
                let call = TransferBatch::transferAllCall { token, batch };
                TransactionRequest::default().with_to(batcher).with_input(call.abi_encode())
            })
            .collect(),
    };

    interval_mining(h, true).await;
    let started = Instant::now();
    let mut hashes = BTreeSet::new();
    for call in calls {
        let pending = provider.send_transaction(call).await.expect("sent");
        hashes.insert(*pending.tx_hash());
    }
    let (gas_used, blocks, receipts) = tally(provider, &hashes).await;
    let seconds = started.elapsed().as_secs_f64();
    interval_mining(h, false).await;

    let refused = TransferBatch::TransferRefused::SIGNATURE_HASH;
    let logs = receipts.iter().flat_map(|r| r.inner.logs());
    let (mut used, mut refusals) = (0, 0);
    for log in logs {
        match log.topics().first() {
            Some(t) if *t == AuthorizationUsed::SIGNATURE_HASH => used += 1,
            Some(t) if *t == refused => refusals += 1,
            _ => {}
        }
    }
    assert_eq!((used, refusals), (payers.len(), 0), "every authorization paid, none refused");
    Sent { seconds, transactions: hashes.len(), blocks, gas_used }
}

/// Waits for the receipt of each of `hashes` (none may revert); returns their gas, the number of
/// distinct blocks they were mined in, and the receipts.
async fn tally(
    provider: &DynProvider,
    hashes: &BTreeSet<B256>,
) -> (u64, usize, Vec<TransactionReceipt>) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut receipts = Vec::with_capacity(hashes.len());
    for hash in hashes {
        let receipt = loop {
            if let Some(receipt) = provider.get_transaction_receipt(*hash).await.unwrap() {
                break receipt;
            }
            assert!(Instant::now() < deadline, "{hash} not mined in 10 min");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(receipt.status(), "{hash} reverted");
        receipts.push(receipt);
    }
    let gas = receipts.iter().map(|r| r.gas_used).sum();
    let blocks: BTreeSet<Option<u64>> = receipts.iter().map(|r| r.block_number).collect();
    (gas, blocks.len(), receipts)
}
