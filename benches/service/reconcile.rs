//! `pactum reconcile` at scale: a store of active agreements against escrows that really are
//! on anvil, reconciled whole, with the time and the JSON-RPC requests it took.
//!
//! Seeding that many real activations would take hours, so the store is filled through the
//! store functions ([`crate::seed`]) and each escrow's storage word is written straight into
//! the contract with `anvil_setStorageAt`: `_escrows` is the mapping at slot 2 of
//! `UsageEscrow` (after EIP712's two fallback strings; `forge inspect UsageEscrow
//! storageLayout`), so `escrowOf(key)` is the word at `keccak256(key ‖ 2)`, `status` in its
//! lowest byte. The escrow is minted exactly the deposits, so the balance check adds up too,
//! and every round must come out clean.

use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::client::BatchRequest;
use pactum::reconcile::{self, Options, ReadSettings};

use crate::support::service::Harness;
use crate::{Rates, Settings, seed, thousands};

/// `UsageEscrow`'s storage slot of `_escrows`.
const ESCROWS_SLOT: u8 = 2;
/// `anvil_setStorageAt` calls per batch request while seeding.
const SEED_BATCH: usize = 1_000;

/// Seeds, reconciles `settings.rounds` times (at most 3 unless quick) and prints the table.
pub(crate) async fn run(settings: &Settings) {
    let rows = settings.rows;
    let h = Harness::start().await;
    let state = h.service.as_ref().expect("the service runs").state();
    let parties = seed::parties(state).await;
    let (escrows, stored) = seed::active_agreements(state, &parties, rows).await;
    let started = Instant::now();
    put_on_chain(&h, &escrows).await;
    let on_chain = started.elapsed();
    println!("\n## Reconcile: {} active agreements against anvil\n", thousands(rows as f64));
    println!(
        "Seeded in {:.1} s (store) and {:.1} s (`anvil_setStorageAt`, {} words per batch).\n",
        stored.as_secs_f64(),
        on_chain.as_secs_f64(),
        thousands(SEED_BATCH as f64)
    );

    let read = ReadSettings::default();
    let options = Options { account: None, at_block: None, confirmations: 1, from_block: 0, read };
    let rounds = if settings.quick { settings.rounds } else { settings.rounds.min(3) };
    let mut times = Vec::new();
    let mut rpc = None;
    for _ in 0..rounds {
        let started = Instant::now();
        let report =
            reconcile::run(&state.store, &state.chain, &options).await.expect("reconciled");
        times.push(started.elapsed());
        assert!(
            report.clean,
            "the seeded store and chain agree: {:?}",
            &report.mismatches[..report.mismatches.len().min(3)]
        );
        assert_eq!(report.agreements_checked, rows as u64);
        rpc = Some(report.rpc);
    }
    let rpc = rpc.expect("at least one round");
    let seconds = Rates::of(times.iter().map(Duration::as_secs_f64).collect());
    println!(
        "| agreements | rounds | seconds, median (min–max) | agreements/s | RPC requests | RPC calls | calls per batch | batches in flight |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.2} ({:.2}–{:.2}) | {} | {} | {} | {} | {} |",
        thousands(rows as f64),
        rounds,
        seconds.median,
        seconds.min,
        seconds.max,
        thousands(rows as f64 / seconds.median),
        thousands(rpc.requests as f64),
        thousands(rpc.calls as f64),
        read.batch_size,
        read.concurrency,
    );
}

/// Writes an active escrow word for each key and mints the escrow the sum of the deposits.
async fn put_on_chain(h: &Harness, escrows: &[(B256, pactum::money::TokenAmount)]) {
    let provider = &h.chain.provider;
    let escrow = *h.chain.escrow.address();
    let active = B256::from(U256::from(1u8));
    for chunk in escrows.chunks(SEED_BATCH) {
        let mut batch = BatchRequest::new(provider.client());
        let waiters: Vec<_> = chunk
            .iter()
            .map(|(key, _)| {
                let mut preimage = [0u8; 64];
                preimage[..32].copy_from_slice(key.as_slice());
                preimage[63] = ESCROWS_SLOT;
                let slot = keccak256(preimage);
                batch
                    .add_call::<_, bool>("anvil_setStorageAt", &(escrow, slot, active))
                    .expect("serializable")
            })
            .collect();
        batch.send().await.expect("storage batch sent");
        for waiter in waiters {
            waiter.await.expect("storage written");
        }
    }
    let total = escrows.iter().fold(U256::ZERO, |sum, (_, deposit)| sum + deposit.base_units());
    h.chain.mint(escrow, total.to::<u64>()).await;
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.expect("mined");
}
