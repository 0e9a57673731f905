//! Intents on both engines: an intent round-trips and its hold follows each change of its
//! status (held, captured, held again after a reorganisation, expired), a transaction hash
//! pays one intent even among racing posts, and an intent takes one hash.

use alloy::primitives::{Address, B256};
use pactum::agreement::ids::{AgentId, IntentId, ReservationId};
use pactum::intents::{IntentAction, IntentStatus, Verdict};
use pactum::store::agents;
use pactum::store::governance::holds::{self, Hold, HoldSource, HoldStatus};
use pactum::store::governance::intent_holds;
use pactum::store::intents::{self, Intent, Mined};

use super::{Store, now, parties};
use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};

conformance!(
    an_intent_round_trips_and_its_hold_follows_it,
    a_hash_pays_one_intent_and_an_intent_takes_one_hash,
);

/// A validated intent of `agent` for `cents`, expiring `ttl` seconds after `at`, with its hold,
/// stored.
async fn validated(store: &Store, agent: &AgentId, cents: u64, at: i64, ttl: u64) -> Intent {
    let account = agents::get_agent(store.reader(), agent.as_str()).await.unwrap().unwrap();
    let (id, hold_id) = (IntentId::generate(), ReservationId::generate());
    let hold = Hold {
        id: hold_id.clone(),
        account_id: account.account_id.to_string(),
        agent_id: agent.to_string(),
        source: HoldSource::Intent,
        subject_id: Some(id.to_string()),
        status: HoldStatus::Reserved,
        amount_cents: cents,
        captured_cents: None,
        counted_cents: cents,
        action_type: "spend".into(),
        currency: "USDC".into(),
        counterparty: None,
        category: None,
        metadata: None,
        mandate_id: None,
        lease_id: None,
        approval_id: None,
        check_id: None,
        ttl_seconds: Some(ttl),
        expires_at: None,
        counted_at: at,
        created_at: at,
        updated_at: at,
    };
    let intent = Intent {
        id: id.to_string(),
        account_id: account.account_id.to_string(),
        agent_id: agent.to_string(),
        status: IntentStatus::Validated,
        action: IntentAction::Transfer,
        to: Address::repeat_byte(0x33),
        token: Address::repeat_byte(0x44),
        chain_id: 31_337,
        amount_cents: cents,
        metadata: Some(serde_json::json!({ "note": super::TRICKY })),
        reservation_id: hold_id.to_string(),
        check_id: "chk_test".into(),
        ttl_seconds: ttl,
        tx_hash: None,
        mined: None,
        looked_up: false,
        expires_at: at + ttl as i64,
        broadcast_at: None,
        resolved_at: None,
        created_at: at,
        updated_at: at,
    };
    let mut tx = store.begin().await.unwrap();
    intent_holds::hold(&mut tx, &hold, "agent").await.unwrap();
    intents::insert(&mut tx, &intent).await.unwrap();
    tx.commit().await.unwrap();
    intent
}

async fn hold_of(store: &Store, intent: &Intent) -> Hold {
    holds::get(store.reader(), &intent.reservation_id).await.unwrap().unwrap()
}

async fn an_intent_round_trips_and_its_hold_follows_it(store: &Store) {
    let (buyer, _) = parties(store).await;
    let at = now();
    let intent = validated(store, &buyer, 1_250, at, 60).await;
    assert_eq!(intents::get(store.reader(), &intent.id).await.unwrap().as_ref(), Some(&intent));

    let hash = B256::repeat_byte(0xab);
    let mut tx = store.begin().await.unwrap();
    let sent = intents::broadcast(&mut tx, &intent.id, hash, at + 120, at).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (sent.status, sent.tx_hash, sent.expires_at),
        (IntentStatus::Broadcast, Some(hash), at + 120)
    );
    assert_eq!(intents::watched(store.reader()).await.unwrap(), vec![sent.clone()]);

    let mined =
        Mined { block_number: 7, block_hash: B256::repeat_byte(7), verdict: Verdict::Matched };
    let mut tx = store.begin().await.unwrap();
    assert!(intents::found_mined(&mut tx, &intent.id, &mined, at).await.unwrap());
    assert!(!intents::found_mined(&mut tx, &intent.id, &mined, at).await.unwrap(), "found once");
    tx.commit().await.unwrap();
    assert!(intents::watched(store.reader()).await.unwrap().is_empty());
    assert!(intents::mined_up_to(store.reader(), 6).await.unwrap().is_empty());
    let deep = intents::mined_up_to(store.reader(), 7).await.unwrap();
    assert_eq!(deep.iter().map(|i| i.mined).collect::<Vec<_>>(), vec![Some(mined)]);

    let mut tx = store.begin().await.unwrap();
    let confirmed =
        intents::resolve(&mut tx, &intent.id, IntentStatus::Confirmed, at).await.unwrap().unwrap();
    assert!(
        intents::resolve(&mut tx, &intent.id, IntentStatus::Mismatched, at)
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    assert_eq!((confirmed.status, confirmed.resolved_at), (IntentStatus::Confirmed, Some(at)));
    let captured = hold_of(store, &intent).await;
    assert_eq!((captured.status, captured.captured_cents), (HoldStatus::Captured, Some(1_250)));

    // A reorganisation back below block 7: broadcast again, held again, waiting its TTL again.
    let mut tx = store.begin().await.unwrap();
    assert!(intents::mined_above(&mut tx, 7).await.unwrap().is_empty());
    assert_eq!(intents::mined_above(&mut tx, 6).await.unwrap(), vec![intent.id.clone()]);
    let back = intents::unmine(&mut tx, &intent.id, at + 100).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!((back.status, back.mined, back.looked_up), (IntentStatus::Broadcast, None, false));
    assert_eq!(back.expires_at, at + 160);
    let reheld = hold_of(store, &intent).await;
    assert_eq!((reheld.status, reheld.counted_cents), (HoldStatus::Reserved, 1_250));

    // Past its time with nothing mined, it expires with its hold; a validated one too.
    let unsent = validated(store, &buyer, 300, at, 1).await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(intents::expire_due(&mut tx, at + 159, 10).await.unwrap(), 1);
    assert_eq!(intents::expire_due(&mut tx, at + 160, 10).await.unwrap(), 1);
    assert_eq!(intents::expire_due(&mut tx, at + 160, 10).await.unwrap(), 0);
    tx.commit().await.unwrap();
    for expired in [&intent, &unsent] {
        let read = intents::get(store.reader(), &expired.id).await.unwrap().unwrap();
        assert_eq!(read.status, IntentStatus::Expired);
        let hold = hold_of(store, expired).await;
        assert_eq!((hold.status, hold.counted_cents), (HoldStatus::Expired, 0));
    }
}

async fn a_hash_pays_one_intent_and_an_intent_takes_one_hash(store: &Store) {
    let (buyer, _) = parties(store).await;
    let at = now();
    let hash = B256::repeat_byte(0xcd);
    let mut racers = Vec::new();
    for _ in 0..6 {
        racers.push(validated(store, &buyer, 100, at, 60).await);
    }
    // Six intents post the one hash at once: one takes it.
    let tasks: Vec<_> = racers
        .iter()
        .map(|intent| {
            let (store, id) = (store.clone(), intent.id.clone());
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                match intents::broadcast(&mut tx, &id, hash, at + 60, at).await {
                    Ok(Some(_)) => {
                        tx.commit().await.unwrap();
                        true
                    }
                    Ok(None) => false,
                    Err(error) => {
                        assert!(error.is_unique_violation(), "{error}");
                        false
                    }
                }
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1, "one intent holds the hash");
    let mut tx = store.begin().await.unwrap();
    let holder = intents::holding_hash(&mut tx, hash).await.unwrap().unwrap();
    assert!(racers.iter().any(|i| i.id == holder));
    // The holder takes no second hash.
    let again = intents::broadcast(&mut tx, &holder, B256::repeat_byte(1), at + 60, at).await;
    assert!(again.unwrap().is_none());
    drop(tx);
}
