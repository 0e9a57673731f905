//! The relayer queue's claim on SQLite and on Postgres: workers racing for jobs each get
//! distinct jobs, every job is claimed exactly once, and an expired lease frees its job.

mod support;

use std::collections::HashSet;

use alloy::primitives::{Address, Bytes};
use pactum::agreement::ids::JobId;
use pactum::store::jobs::{self, Job, KIND_ACTIVATE};
use pactum::store::{Store, now};
use support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};

async fn claims_are_exclusive(url: &str) {
    let store = Store::connect(url).await.unwrap();
    let mut queued = HashSet::new();
    let mut tx = store.begin().await.unwrap();
    for _ in 0..60 {
        let job = Job {
            id: JobId::generate(),
            kind: KIND_ACTIVATE.into(),
            agreement_id: None,
            to: Address::repeat_byte(1),
            calldata: Bytes::from_static(&[1, 2, 3]),
            status: "queued".into(),
            error: None,
        };
        jobs::enqueue(&mut tx, &job, now()).await.unwrap();
        queued.insert(job.id);
    }
    tx.commit().await.unwrap();

    let workers = (0..4).map(|worker| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut tx = store.begin().await.unwrap();
                let owner = format!("worker-{worker}");
                let job = jobs::claim_next(&mut tx, &owner, now() + 60, now()).await.unwrap();
                tx.commit().await.unwrap();
                match job {
                    Some(job) => mine.push(job.id),
                    None => return mine,
                }
            }
        })
    });
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    let distinct: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), distinct.len(), "a job was claimed twice");
    assert_eq!(distinct, queued, "every job claimed");

    // A lease that ran out (its holder died before signing) frees the job again.
    let mut tx = store.begin().await.unwrap();
    let later = now() + 120;
    let again = jobs::claim_next(&mut tx, "successor", later + 60, later).await.unwrap();
    tx.commit().await.unwrap();
    assert!(again.is_some_and(|job| queued.contains(&job.id)));
    store.close().await;
}

#[tokio::test]
async fn claims_are_exclusive_on_sqlite() {
    claims_are_exclusive(&fresh_sqlite()).await;
}

#[tokio::test]
async fn claims_are_exclusive_on_postgres() {
    let Some(url) = fresh_postgres().await else { return };
    claims_are_exclusive(&url).await;
    drop_postgres(&url).await;
}
