//! Mandates on both engines: they round-trip and page newest first within their account, they
//! change only while active and are revoked once, an agent's revocation revokes only its own
//! active mandates, and what a mandate spent is the sum of its holds' counted cents, exactly.

use super::{Store, now, parties};
use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};
use pactum::agreement::ids::{AgentId, MandateId};
use pactum::governance::{ActionType, Mandate, MandateStatus};
use pactum::store::agents;
use pactum::store::governance::mandates;

conformance!(
    mandates_round_trip_and_page_newest_first,
    mandates_change_only_while_active,
    revoking_an_agents_mandates_leaves_the_rest,
    a_mandates_spend_is_the_sum_of_its_counted_holds,
);

async fn account_of(store: &Store, agent: &AgentId) -> String {
    let agent = agents::get_agent(store.reader(), agent.as_str()).await.unwrap().unwrap();
    agent.account_id.to_string()
}

fn mandate(account: &str, agent: &AgentId, created_at: i64) -> Mandate {
    Mandate {
        id: MandateId::generate(),
        account_id: account.to_owned(),
        agent_id: agent.to_string(),
        status: MandateStatus::Active,
        max_total_cents: 50_000,
        per_tx_max_cents: Some(5_000),
        valid_from: Some(created_at),
        valid_until: Some(created_at + 86_400),
        action_types: vec![ActionType::Spend, ActionType::Refund],
        counterparties: vec!["vendor_42".into(), super::TRICKY.into()],
        categories: vec![],
        purpose: Some(super::TRICKY.into()),
        revoked_at: None,
        revoke_reason: None,
        created_at,
        updated_at: created_at,
    }
}

async fn insert(store: &Store, mandates: &[&Mandate]) {
    let mut tx = store.begin().await.unwrap();
    for mandate in mandates {
        mandates::insert(&mut tx, mandate).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn mandates_round_trip_and_page_newest_first(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let first = mandate(&account, &buyer, 100);
    let second = mandate(&account, &buyer, 200);
    let sellers =
        Mandate { per_tx_max_cents: None, valid_until: None, ..mandate(&account, &seller, 200) };
    insert(store, &[&first, &second, &sellers]).await;

    let read = mandates::get(store.reader(), &account, first.id.as_str()).await.unwrap();
    assert_eq!(read.as_ref(), Some(&first));
    let mut tx = store.begin().await.unwrap();
    let read = mandates::get_in(&mut tx, &account, sellers.id.as_str()).await.unwrap();
    assert_eq!(read.as_ref(), Some(&sellers));
    drop(tx);
    // Another account's id reads as nothing.
    assert!(
        mandates::get(store.reader(), "acct_other", first.id.as_str()).await.unwrap().is_none()
    );
    assert!(mandates::get(store.reader(), &account, "mdt_none").await.unwrap().is_none());

    let ids = |page: &[Mandate]| page.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    let all = mandates::list(store.reader(), &account, None, None, 10, None).await.unwrap();
    let mut newest = vec![second.id.clone(), sellers.id.clone()];
    newest.sort_by(|a, b| b.cmp(a));
    newest.push(first.id.clone());
    assert_eq!(ids(&all), newest);
    let buyers = mandates::list(store.reader(), &account, Some(buyer.as_str()), None, 1, None)
        .await
        .unwrap();
    assert_eq!(ids(&buyers), std::slice::from_ref(&second.id));
    let cursor = (buyers[0].created_at, buyers[0].id.as_str());
    let next =
        mandates::list(store.reader(), &account, Some(buyer.as_str()), None, 1, Some(cursor))
            .await
            .unwrap();
    assert_eq!(ids(&next), std::slice::from_ref(&first.id));
    let revoked =
        mandates::list(store.reader(), &account, None, Some(MandateStatus::Revoked), 10, None)
            .await
            .unwrap();
    assert!(revoked.is_empty());
    assert!(
        mandates::list(store.reader(), "acct_other", None, None, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn mandates_change_only_while_active(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let held = mandate(&account, &buyer, now());
    insert(store, &[&held]).await;

    let changed = Mandate {
        max_total_cents: 1,
        per_tx_max_cents: None,
        valid_from: None,
        valid_until: None,
        action_types: vec![],
        counterparties: vec![],
        categories: vec!["api_calls".into()],
        purpose: None,
        updated_at: held.updated_at + 5,
        // Neither the agent, the status nor the creation time is editable.
        agent_id: "agt_else".into(),
        status: MandateStatus::Revoked,
        created_at: 1,
        ..held.clone()
    };
    let mut tx = store.begin().await.unwrap();
    let stored = mandates::update(&mut tx, &changed).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        stored,
        Mandate {
            agent_id: held.agent_id.clone(),
            status: MandateStatus::Active,
            created_at: held.created_at,
            ..changed.clone()
        }
    );
    // Another account cannot revoke it.
    let mut tx = store.begin().await.unwrap();
    assert!(
        mandates::revoke(&mut tx, "acct_other", held.id.as_str(), None, 7).await.unwrap().is_none()
    );
    let revoked = mandates::revoke(&mut tx, &account, held.id.as_str(), Some("done"), now())
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(revoked.status, MandateStatus::Revoked);
    assert_eq!(revoked.revoke_reason.as_deref(), Some("done"));
    assert_eq!(revoked.revoked_at, Some(revoked.updated_at));

    // Once revoked, neither a second revocation nor an update changes anything.
    let mut tx = store.begin().await.unwrap();
    assert!(
        mandates::revoke(&mut tx, &account, held.id.as_str(), None, 9).await.unwrap().is_none()
    );
    assert!(mandates::update(&mut tx, &changed).await.unwrap().is_none());
    tx.commit().await.unwrap();
    let stored = mandates::get(store.reader(), &account, held.id.as_str()).await.unwrap();
    assert_eq!(stored, Some(revoked));

    // Of many revocations racing, one wins.
    let raced = mandate(&account, &buyer, now());
    insert(store, &[&raced]).await;
    let racers = (0..10).map(|i| {
        let (store, account, id) = (store.clone(), account.clone(), raced.id.to_string());
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let reason = format!("racer {i}");
            let won = mandates::revoke(&mut tx, &account, &id, Some(&reason), now()).await.unwrap();
            tx.commit().await.unwrap();
            won.is_some()
        })
    });
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn revoking_an_agents_mandates_leaves_the_rest(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let older = mandate(&account, &buyer, 100);
    let newer = mandate(&account, &buyer, 200);
    let done = Mandate {
        status: MandateStatus::Revoked,
        revoked_at: Some(150),
        revoke_reason: Some("owner".into()),
        ..mandate(&account, &buyer, 150)
    };
    let sellers = mandate(&account, &seller, 100);
    insert(store, &[&newer, &done, &older, &sellers]).await;

    let mut tx = store.begin().await.unwrap();
    let revoked =
        mandates::revoke_all_of_agent(&mut tx, buyer.as_str(), "agent_halted", 500).await.unwrap();
    tx.commit().await.unwrap();
    let ids: Vec<_> = revoked.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, [older.id.clone(), newer.id.clone()], "oldest first, only the active");
    for m in &revoked {
        assert_eq!(m.status, MandateStatus::Revoked);
        assert_eq!((m.revoked_at, m.revoke_reason.as_deref()), (Some(500), Some("agent_halted")));
    }
    let kept = mandates::get(store.reader(), &account, done.id.as_str()).await.unwrap();
    assert_eq!(kept, Some(done), "an earlier revocation keeps its time and reason");
    let other = mandates::get(store.reader(), &account, sellers.id.as_str()).await.unwrap();
    assert_eq!(other.unwrap().status, MandateStatus::Active);

    let mut tx = store.begin().await.unwrap();
    let again =
        mandates::revoke_all_of_agent(&mut tx, buyer.as_str(), "agent_revoked", 600).await.unwrap();
    assert!(again.is_empty());
}

/// Stores a hold of `agent` under `mandate` that counts `counted` cents now.
async fn hold(store: &Store, account: &str, agent: &AgentId, mandate: Option<&str>, counted: i64) {
    let mut tx = store.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO reservations (id, account_id, agent_id, source, status, amount_cents, \
         counted_cents, action_type, currency, mandate_id, counted_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'api', $4, $5, $6, 'spend', 'USD', $7, 1, 1, 1)",
    )
    .bind(format!("rsv_{}", MandateId::generate()))
    .bind(account)
    .bind(agent.as_str())
    .bind(if counted == 0 { "released" } else { "reserved" })
    .bind(counted.max(1))
    .bind(counted)
    .bind(mandate)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn a_mandates_spend_is_the_sum_of_its_counted_holds(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let (a, b, idle) =
        (mandate(&account, &buyer, 1), mandate(&account, &buyer, 2), mandate(&account, &buyer, 3));
    insert(store, &[&a, &b, &idle]).await;
    // Past 2^32 and 2^53, so a narrowing or float sum on either engine would show.
    let big = (1_i64 << 53) + 1;
    hold(store, &account, &buyer, Some(a.id.as_str()), big).await;
    hold(store, &account, &buyer, Some(a.id.as_str()), 1_021).await;
    hold(store, &account, &buyer, Some(a.id.as_str()), 0).await;
    hold(store, &account, &buyer, Some(b.id.as_str()), 7).await;
    hold(store, &account, &buyer, None, 99).await;

    let mut tx = store.begin().await.unwrap();
    let spent_a = mandates::spent(&mut tx, a.id.as_str()).await.unwrap();
    assert_eq!(spent_a, big as u64 + 1_021);
    assert_eq!(mandates::spent(&mut tx, b.id.as_str()).await.unwrap(), 7);
    assert_eq!(mandates::spent(&mut tx, idle.id.as_str()).await.unwrap(), 0);
    drop(tx);
    let ids = [a.id.as_str(), b.id.as_str(), idle.id.as_str()];
    let spent = mandates::spent_of(store.reader(), &ids).await.unwrap();
    assert_eq!(spent.get(a.id.as_str()), Some(&spent_a));
    assert_eq!(spent.get(b.id.as_str()), Some(&7));
    assert_eq!(spent.get(idle.id.as_str()), None);
    assert!(mandates::spent_of(store.reader(), &[]).await.unwrap().is_empty());
}
