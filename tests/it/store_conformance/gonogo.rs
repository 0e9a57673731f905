//! Go/no-go runs and readiness samples on both engines: a run goes from `running` to
//! `complete` and is the latest, readiness samples come back newest first and are pruned to a
//! bound, the schema version and row counts read, and an account's active webhook endpoints
//! are found through its agents.

use super::{Store, now, parties};
use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};
use pactum::gonogo::evidence::ReadinessSample;
use pactum::store::gonogo as rows;
use pactum::store::{agents, webhooks};

conformance!(
    go_no_go_runs_complete_and_the_latest_is_served,
    readiness_samples_are_newest_first_and_bounded,
    schema_version_counts_and_an_accounts_endpoints_read,
);

async fn go_no_go_runs_complete_and_the_latest_is_served(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = agents::get_agent(store.reader(), buyer.as_str()).await.unwrap().unwrap();
    let account = account.account_id.to_string();
    assert_eq!(rows::latest_run(store.reader()).await.unwrap(), None);
    let mut tx = store.begin().await.unwrap();
    rows::insert_run(&mut tx, "gng_1", &account, now() - 100).await.unwrap();
    rows::insert_run(&mut tx, "gng_2", &account, now()).await.unwrap();
    let running = rows::running_since(&mut tx, now() - 10).await.unwrap().unwrap();
    assert_eq!((running.id.as_str(), running.status.as_str()), ("gng_2", rows::RUNNING));
    rows::finish_run(&mut tx, "gng_2", "go", r#"{"p":1}"#, now()).await.unwrap();
    assert_eq!(rows::running_since(&mut tx, now() - 10).await.unwrap(), None);
    tx.commit().await.unwrap();
    let latest = rows::latest_run(store.reader()).await.unwrap().unwrap();
    assert_eq!(latest.id, "gng_2");
    assert_eq!(latest.status, rows::COMPLETE);
    assert_eq!(latest.verdict.as_deref(), Some("go"));
    assert_eq!(latest.packet.as_deref(), Some(r#"{"p":1}"#));
    assert!(latest.finished_at.is_some());
    let first = rows::get_run(store.reader(), "gng_1").await.unwrap().unwrap();
    assert_eq!((first.status.as_str(), first.packet), (rows::RUNNING, None));
    assert_eq!(rows::get_run(store.reader(), "gng_none").await.unwrap(), None);
}

async fn readiness_samples_are_newest_first_and_bounded(store: &Store) {
    let total = rows::SAMPLES_KEPT + 5;
    let mut tx = store.begin().await.unwrap();
    for i in 0..total {
        let sample = ReadinessSample {
            checked_at_ms: 1_000 + i,
            instance: "i-1".into(),
            ready: i % 2 == 0,
            checks: serde_json::json!({ "store": "ok", "n": i }),
        };
        rows::insert_sample(&mut tx, &format!("rdy_{i:05}"), &sample).await.unwrap();
    }
    tx.commit().await.unwrap();
    let recent = rows::recent_samples(store.reader(), 3).await.unwrap();
    let times: Vec<i64> = recent.iter().map(|s| s.checked_at_ms).collect();
    assert_eq!(times, [1_000 + total - 1, 1_000 + total - 2, 1_000 + total - 3]);
    assert_eq!(recent[0].ready, (total - 1) % 2 == 0);
    assert_eq!(recent[0].checks["n"], total - 1);
    let kept = rows::recent_samples(store.reader(), total).await.unwrap();
    assert_eq!(kept.len() as i64, rows::SAMPLES_KEPT, "older samples are pruned");
}

async fn schema_version_counts_and_an_accounts_endpoints_read(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let (last, applied) = rows::schema_version(store.reader()).await.unwrap();
    let (version, _) = last.unwrap();
    assert!(version >= 16 && applied >= 16, "{version} {applied}");
    assert_eq!(rows::count_rows(store.reader(), "agents").await.unwrap(), 2);
    assert!(rows::count_rows(store.reader(), "agents; DROP TABLE agents").await.is_err());

    let mut tx = store.begin().await.unwrap();
    for (id, agent, status) in
        [("whk_a", &buyer, webhooks::ACTIVE), ("whk_b", &seller, webhooks::PAUSED)]
    {
        let endpoint = webhooks::Endpoint {
            id: id.into(),
            agent_id: agent.to_string(),
            url: "https://example.com/hook".into(),
            description: None,
            event_types: vec![],
            status: status.into(),
            status_reason: None,
            created_at: now(),
            updated_at: now(),
        };
        webhooks::insert_endpoint(&mut tx, &endpoint, "whsec_x").await.unwrap();
    }
    tx.commit().await.unwrap();
    let account = agents::get_agent(store.reader(), buyer.as_str()).await.unwrap().unwrap();
    let ids =
        rows::account_endpoint_ids(store.reader(), account.account_id.as_str()).await.unwrap();
    assert_eq!(ids, ["whk_a"], "only active endpoints of the account's agents");
    assert!(rows::account_endpoint_ids(store.reader(), "acct_other").await.unwrap().is_empty());
}
