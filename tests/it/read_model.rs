//! The API's read model against a real store (a SQLite file, a Postgres database) and a second
//! `Store` on the same database standing for another instance: a kept read is answered from
//! memory until this process commits anything, or until it is a second old, whichever comes
//! first; another instance's write is therefore seen within that second, and this instance's
//! own writes at once.

use std::time::{Duration, Instant};

use pactum::agreement::ids::AgreementId;
use pactum::api::read_model::{FRESH, ReadModel};
use pactum::store::{Store, agreements};

use crate::store_conformance::{parties, propose};
use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};

async fn usage(model: &ReadModel, store: &Store, id: &str) -> u64 {
    model.agreement(store, id).await.unwrap().expect("the agreement exists").usage_units
}

async fn record_usage(store: &Store, id: &AgreementId, units: u64) {
    let mut tx = store.begin().await.unwrap();
    agreements::record_usage(&mut tx, id, units, pactum::store::now()).await.unwrap();
    tx.commit().await.unwrap();
}

async fn kept_until_a_commit_or_a_second(url: &str) {
    let (this, other) = (Store::connect(url).await.unwrap(), Store::connect(url).await.unwrap());
    let (buyer, seller) = parties(&this).await;
    let agreement = propose(&this, &buyer, &seller, pactum::store::now()).await.id;
    let id = agreement.to_string();
    let model = ReadModel::default();
    assert!(model.agreement(&this, "ua_missing").await.unwrap().is_none());

    let read_at = Instant::now();
    assert_eq!(usage(&model, &this, &id).await, 0);
    // Another instance records usage: this one still answers what it kept.
    record_usage(&other, &agreement, 10).await;
    let kept = usage(&model, &this, &id).await;
    if read_at.elapsed() < FRESH {
        assert_eq!(kept, 0, "answered from memory within the second");
    }
    // Anything this instance commits makes the kept read stale: the store answers.
    record_usage(&this, &agreement, 5).await;
    assert_eq!(usage(&model, &this, &id).await, 15, "this instance's own write shows at once");
    // Another instance's write shows once the kept read is a second old.
    record_usage(&other, &agreement, 7).await;
    tokio::time::sleep(FRESH + Duration::from_millis(10)).await;
    assert_eq!(usage(&model, &this, &id).await, 22, "another instance's write within a second");

    // The watcher's position the same way.
    assert_eq!(model.cursor(&this).await.unwrap(), None);
    let cursor = pactum::store::chain::Cursor {
        block_number: 3,
        block_hash: alloy::primitives::B256::repeat_byte(3),
        head_number: 5,
        head_timestamp: 1_000,
    };
    let mut tx = this.begin().await.unwrap();
    assert!(pactum::store::chain::move_cursor(&mut tx, None, &cursor, 1).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(model.cursor(&this).await.unwrap(), Some(cursor));
    this.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_read_lasts_until_a_commit_or_a_second_on_sqlite() {
    kept_until_a_commit_or_a_second(&fresh_sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_read_lasts_until_a_commit_or_a_second_on_postgres() {
    let Some(url) = fresh_postgres().await else { return };
    kept_until_a_commit_or_a_second(&url).await;
    drop_postgres(&url).await;
}
