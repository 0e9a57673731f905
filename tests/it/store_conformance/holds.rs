//! Spend-guard holds and leases on both engines: a hold round-trips with its events, capture,
//! release and expiry are conditional on `reserved` with one winner among racers, what a
//! lease or a budget counts is the sum of counted cents, and a child holds one active lease.

use super::{Store, now, parties};
use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};
use pactum::agreement::ids::{AgentId, BudgetLeaseId, ReservationId};
use pactum::store::agents;
use pactum::store::governance::holds::{self, Hold, HoldEvent, HoldSource, HoldStatus};
use pactum::store::governance::leases::{self, Lease, LeaseStatus};
use pactum::store::governance::{self as rows};

conformance!(
    holds_round_trip_with_their_events_and_page_newest_first,
    holds_resolve_once_under_racing_captures_and_releases,
    what_budgets_and_leases_count_is_the_sum_of_counted_holds,
    a_child_holds_one_active_lease,
    quarter_hour_totals_follow_every_change_of_a_hold,
);

async fn account_of(store: &Store, agent: &AgentId) -> String {
    let agent = agents::get_agent(store.reader(), agent.as_str()).await.unwrap().unwrap();
    agent.account_id.to_string()
}

fn hold(account: &str, agent: &AgentId, cents: u64, at: i64) -> Hold {
    Hold {
        id: ReservationId::generate(),
        account_id: account.to_owned(),
        agent_id: agent.to_string(),
        source: HoldSource::Api,
        subject_id: None,
        status: HoldStatus::Reserved,
        amount_cents: cents,
        captured_cents: None,
        counted_cents: cents,
        action_type: "spend".into(),
        currency: "USD".into(),
        counterparty: Some(super::TRICKY.into()),
        category: Some("compute".into()),
        metadata: Some(serde_json::json!({ "note": super::TRICKY })),
        mandate_id: None,
        lease_id: None,
        approval_id: None,
        check_id: None,
        ttl_seconds: Some(60),
        expires_at: Some(at + 60),
        counted_at: at,
        created_at: at,
        updated_at: at,
    }
}

async fn insert(store: &Store, hold: &Hold) {
    let mut tx = store.begin().await.unwrap();
    holds::insert(&mut tx, hold, "agent").await.unwrap();
    tx.commit().await.unwrap();
}

async fn holds_round_trip_with_their_events_and_page_newest_first(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let at = now();
    let (first, second) =
        (hold(&account, &buyer, 100, at), hold(&account, &buyer, u32::MAX as u64 * 4, at + 1));
    insert(store, &first).await;
    insert(store, &second).await;
    assert_eq!(holds::get(store.reader(), first.id.as_str()).await.unwrap().unwrap(), first);
    let page =
        holds::list(store.reader(), &account, Some(buyer.as_str()), None, 1, None).await.unwrap();
    assert_eq!(page, vec![second.clone()]);
    let next = holds::list(
        store.reader(),
        &account,
        None,
        Some(HoldStatus::Reserved),
        10,
        Some((second.created_at, second.id.as_str())),
    )
    .await
    .unwrap();
    assert_eq!(next, vec![first.clone()]);
    let mut conn = store.reader().acquire().await.unwrap();
    let events = holds::events_of(&mut conn, first.id.as_str()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].event, events[0].amount_cents), (HoldEvent::Reserved, 100));
}

async fn holds_resolve_once_under_racing_captures_and_releases(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let at = now();
    let raced = hold(&account, &buyer, 500, at);
    insert(store, &raced).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (store, id) = (store.clone(), raced.id.to_string());
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let won = if i % 2 == 0 {
                    holds::capture(&mut tx, &id, 200, "agent", at).await.unwrap().is_some()
                } else {
                    let to = HoldStatus::Released;
                    holds::end(&mut tx, &id, to, "done", "agent", at).await.unwrap().is_some()
                };
                tx.commit().await.unwrap();
                won
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one change wins");
    let resolved = holds::get(store.reader(), raced.id.as_str()).await.unwrap().unwrap();
    match resolved.status {
        HoldStatus::Captured => assert_eq!(resolved.counted_cents, 200),
        HoldStatus::Released => assert_eq!(resolved.counted_cents, 0),
        other => panic!("left {other:?}"),
    }
    // An expired hold is never captured, even before the sweeper reaches it.
    let late = hold(&account, &buyer, 100, at - 120);
    insert(store, &late).await;
    let mut tx = store.begin().await.unwrap();
    assert!(holds::capture(&mut tx, late.id.as_str(), 100, "agent", at).await.unwrap().is_none());
    let due = holds::due(&mut tx, at, 10).await.unwrap();
    assert_eq!(due.iter().map(|h| h.id.clone()).collect::<Vec<_>>(), vec![late.id.clone()]);
    tx.commit().await.unwrap();
}

async fn what_budgets_and_leases_count_is_the_sum_of_counted_holds(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let at = 1_000_000;
    let lease_id = BudgetLeaseId::generate().to_string();
    for (cents, offset) in [(300u64, 0), (400, 10), (9_007_199_254_740_993, 20)] {
        let mut held = hold(&account, &buyer, cents, at + offset);
        held.lease_id = Some(lease_id.clone());
        insert(store, &held).await;
    }
    let mut outside = hold(&account, &buyer, 50, at - 10);
    outside.lease_id = Some(lease_id.clone());
    insert(store, &outside).await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(rows::committed_spend(&mut tx, buyer.as_str(), at, at + 15).await.unwrap(), 700);
    assert_eq!(
        holds::counted_under_lease(&mut tx, &lease_id).await.unwrap(),
        300 + 400 + 9_007_199_254_740_993 + 50
    );
    holds::end(&mut tx, outside.id.as_str(), HoldStatus::Released, "x", "agent", at).await.unwrap();
    assert_eq!(
        holds::counted_under_lease(&mut tx, &lease_id).await.unwrap(),
        300 + 400 + 9_007_199_254_740_993
    );
    tx.commit().await.unwrap();
}

async fn a_child_holds_one_active_lease(store: &Store) {
    let (parent, child) = parties(store).await;
    let account = account_of(store, &parent).await;
    let at = now();
    let lease = |expires_at| Lease {
        id: BudgetLeaseId::generate(),
        account_id: account.clone(),
        parent_agent_id: parent.to_string(),
        child_agent_id: child.to_string(),
        amount_cents: 1_000,
        depth: 1,
        status: LeaseStatus::Active,
        hold_id: ReservationId::generate().to_string(),
        expires_at,
        released_at: None,
        release_reason: None,
        created_at: at,
        updated_at: at,
    };
    let first = lease(Some(at - 1));
    let mut tx = store.begin().await.unwrap();
    leases::insert(&mut tx, &first).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(leases::insert(&mut tx, &lease(None)).await.is_err(), "a second active lease");
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert_eq!(leases::active_of(&mut tx, child.as_str()).await.unwrap(), Some(first.clone()));
    assert_eq!(leases::due(&mut tx, at, 10).await.unwrap(), vec![first.clone()]);
    let ended = leases::end(&mut tx, first.id.as_str(), LeaseStatus::Expired, "expired", at).await;
    assert_eq!(ended.unwrap().unwrap().status, LeaseStatus::Expired);
    assert!(
        leases::end(&mut tx, first.id.as_str(), LeaseStatus::Released, "x", at)
            .await
            .unwrap()
            .is_none()
    );
    leases::insert(&mut tx, &lease(None)).await.unwrap();
    tx.commit().await.unwrap();
}

/// The engine's triggers keep the quarter-hour totals a budget reads from equal to the sum over
/// the holds themselves, through inserts, captures, releases and an approval that counts a hold
/// anew in another quarter hour.
async fn quarter_hour_totals_follow_every_change_of_a_hold(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let base = 900 * 1_000_000; // a quarter hour's start
    // The same holds two ways: whole quarter hours (read from the totals) and a range one
    // second wider on each side (summed from the holds; no hold sits on those seconds).
    let both = |store: Store, buyer: AgentId| async move {
        let mut tx = store.begin().await.unwrap();
        let totals = rows::committed_spend(&mut tx, buyer.as_str(), base, base + 3 * 900).await;
        let holds = rows::committed_spend(&mut tx, buyer.as_str(), base - 1, base + 3 * 900 + 1);
        let pair = (totals.unwrap(), holds.await.unwrap());
        tx.commit().await.unwrap();
        pair
    };
    let mut made = Vec::new();
    for (cents, offset) in [(100u64, 10), (250, 899), (400, 900), (800, 2_000)] {
        let held = hold(&account, &buyer, cents, base + offset);
        insert(store, &held).await;
        made.push(held);
    }
    assert_eq!(both(store.clone(), buyer.clone()).await, (1_550, 1_550));
    let mut tx = store.begin().await.unwrap();
    holds::capture(&mut tx, made[1].id.as_str(), 50, "agent", base).await.unwrap().unwrap();
    holds::end(&mut tx, made[2].id.as_str(), HoldStatus::Released, "x", "agent", base)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(both(store.clone(), buyer.clone()).await, (950, 950));
    // An escalated hold counts nothing until approved, then counts at its approval's time.
    let mut waiting = hold(&account, &buyer, 60, base + 5);
    (waiting.status, waiting.counted_cents) = (HoldStatus::PendingApproval, 0);
    insert(store, &waiting).await;
    assert_eq!(both(store.clone(), buyer.clone()).await, (950, 950));
    let mut tx = store.begin().await.unwrap();
    holds::approve(&mut tx, waiting.id.as_str(), "apr_x", base + 1_950).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(both(store.clone(), buyer.clone()).await, (1_010, 1_010));
    let mut tx = store.begin().await.unwrap();
    let outside = rows::committed_spend(&mut tx, buyer.as_str(), base + 1_800, base + 2_700);
    assert_eq!(outside.await.unwrap(), 860, "the approved hold counts in its approval's quarter");
    tx.commit().await.unwrap();
}
