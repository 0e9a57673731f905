//! Several relayer keys on one instance: jobs spread over every signer, each signer's nonces are
//! contiguous from its start, and a signer never has more unmined transactions than its window
//! (with every window full, jobs stay queued until blocks free them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::USDC;
use crate::support::service::{Harness, relayer_keys, without_infra_fee};
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use sqlx::Row;

/// Activations relayed in the test.
const JOBS: usize = 24;
/// The window each signer gets.
const WINDOW: u64 = 2;
/// Relayer keys.
const SIGNERS: usize = 3;

/// Every attempt the store holds: `(job, signer, nonce, status)`.
async fn attempts(h: &Harness) -> Vec<(String, Address, u64, String)> {
    let store = &h.service.as_ref().unwrap().state().store;
    sqlx::query("SELECT job_id, signer, nonce, status FROM relayer_attempts")
        .fetch_all(store.reader())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get::<String, _>("job_id"),
                row.get::<String, _>("signer").parse().unwrap(),
                row.get::<i64, _>("nonce") as u64,
                row.get::<String, _>("status"),
            )
        })
        .collect()
}

/// How many relayer jobs are in each status.
async fn job_statuses(h: &Harness) -> BTreeMap<String, usize> {
    let store = &h.service.as_ref().unwrap().state().store;
    let rows = sqlx::query("SELECT status FROM relayer_jobs").fetch_all(store.reader()).await;
    let mut counts = BTreeMap::new();
    for row in rows.unwrap() {
        *counts.entry(row.get::<String, _>("status")).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn jobs_spread_over_signers_within_their_windows() {
    let h = Harness::start_with_chain(|chain, config| {
        config.relayer_private_keys = relayer_keys(chain, SIGNERS);
        config.relayer_max_in_flight = WINDOW;
        without_infra_fee(config);
    })
    .await;
    let signers: Vec<Address> = h.chain.anvil.addresses()[3..3 + SIGNERS].to_vec();
    let (buyer, seller) = h.parties().await;

    // Blocks stop: every signer fills its window and the rest of the jobs stay queued.
    h.automine(false).await;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(h.queued(&buyer, &seller).await);
    }
    let full = SIGNERS * WINDOW as usize;
    for _ in 0..600 {
        if attempts(&h).await.len() >= full {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several more worker passes (50 ms each) give it every chance to overfill a window.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let saved = attempts(&h).await;
    assert_eq!(saved.len(), full, "{saved:?}");
    for signer in &signers {
        let unmined = saved.iter().filter(|(_, s, _, _)| s == signer).count();
        assert_eq!(unmined as u64, WINDOW, "signer {signer}: {saved:?}");
        let latest = h.chain.provider.get_transaction_count(*signer).latest().await.unwrap();
        let pending = h.chain.provider.get_transaction_count(*signer).pending().await.unwrap();
        assert_eq!((latest, pending), (0, WINDOW), "the node holds {signer}'s window");
    }
    let statuses = job_statuses(&h).await;
    assert_eq!(statuses.get("queued"), Some(&(JOBS - full)), "{statuses:?}");

    // Blocks again: windows free as transactions are mined, and every job goes through.
    h.automine(true).await;
    for id in &ids {
        h.wait_for(&buyer.key, id, |a| {
            a["status"] == "active" && a["activation_status"] == "confirmed"
        })
        .await;
    }
    let statuses = job_statuses(&h).await;
    assert_eq!(statuses.get("confirmed"), Some(&JOBS), "{statuses:?}");

    // One mined transaction per job; each signer's nonces 0, 1, 2, … with no gap or repeat,
    // matching the chain's count; every signer took part.
    let saved = attempts(&h).await;
    let mined: Vec<_> = saved.iter().filter(|(_, _, _, status)| status == "confirmed").collect();
    let jobs: BTreeSet<&String> = mined.iter().map(|(job, _, _, _)| job).collect();
    assert_eq!((mined.len(), jobs.len()), (JOBS, JOBS), "{saved:?}");
    for signer in &signers {
        let mut nonces: Vec<u64> =
            mined.iter().filter(|(_, s, _, _)| s == signer).map(|(_, _, n, _)| *n).collect();
        nonces.sort_unstable();
        assert!(!nonces.is_empty(), "signer {signer} sent nothing");
        assert_eq!(nonces, (0..nonces.len() as u64).collect::<Vec<_>>(), "signer {signer}");
        let count = h.chain.provider.get_transaction_count(*signer).latest().await.unwrap();
        assert_eq!(count, nonces.len() as u64, "signer {signer}: the chain agrees");
    }
    let escrowed = h.chain.balance(*h.chain.escrow.address()).await;
    assert_eq!(escrowed, U256::from(JOBS as u64 * 10 * USDC));
}
