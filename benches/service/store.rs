//! The store on its own, without HTTP: the three queries behind `GET …/escrow-status`
//! (the agent by API-key hash, the agreement by id, the watcher's cursor), and the chain
//! watcher's per-pass queries (once a poll interval, a second by default): the expiry sweep over
//! agreements and the read of unapplied escrow events. None of them may grow with the number of
//! agreements and events kept.

use std::future::Future;
use std::time::{Duration, Instant};

use pactum::agreement::ids::SecretKey;
use pactum::api::AppState;
use pactum::store::{agents, agreements, chain, now};

use crate::seed::Target;
use crate::{Rates, Settings, thousands};

/// A seeded store to measure.
pub(crate) struct Seeded<'a> {
    pub(crate) label: &'a str,
    pub(crate) state: &'a AppState,
    pub(crate) targets: &'a [Target],
}

/// What `escrow_status` asks the store, in its order.
async fn status_queries(state: &AppState, target: &Target) {
    let reader = state.store.reader();
    let key = SecretKey::from_presented(target.bearer.as_str()).hash();
    let agent = agents::agent_by_key(reader, &key).await.expect("agent query");
    let record = agreements::get(reader, &target.id).await.expect("agreement query");
    let cursor = chain::cursor(reader).await.expect("cursor query");
    assert!(agent.is_some() && record.is_some() && cursor.is_some());
}

/// Sequential calls per second of `op` for `length`, each on a random target.
async fn calls_per_second<F, Fut>(store: &Seeded<'_>, length: Duration, op: F) -> f64
where
    F: Fn(AppState, Target) -> Fut,
    Fut: Future<Output = ()>,
{
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < length {
        let target = &store.targets[rand::random_range(0..store.targets.len())];
        op(store.state.clone(), target.clone()).await;
        calls += 1;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

/// Milliseconds per call of each sweep, over `settings.rounds × 5` calls after a warm-up.
async fn sweep_ms(settings: &Settings, state: &AppState) -> (Rates, Rates) {
    let calls = settings.rounds * 5;
    let (mut expire, mut events) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for call in 0..=calls {
        let start = Instant::now();
        let mut tx = state.store.begin().await.expect("a write transaction");
        // Nothing is due (every deadline is an hour ahead), so this is the search alone.
        let expired = agreements::expire_due(&mut tx, now()).await.expect("expiry sweep");
        tx.rollback().await.expect("rolled back");
        assert!(expired.is_empty());
        let expire_ms = start.elapsed().as_secs_f64() * 1e3;

        let start = Instant::now();
        let unapplied =
            chain::unapplied_events(state.store.reader(), u64::MAX >> 1).await.expect("events");
        assert!(unapplied.is_empty());
        let events_ms = start.elapsed().as_secs_f64() * 1e3;
        if call > 0 {
            expire.push(expire_ms);
            events.push(events_ms);
        }
    }
    (Rates::of(expire), Rates::of(events))
}

/// Measures and prints the store figures of each store; the first is the reference of the
/// ratios.
pub(crate) async fn run(settings: &Settings, stores: &[Seeded<'_>]) {
    let queries = |state: AppState, target: Target| async move {
        status_queries(&state, &target).await;
    };
    let get = |state: AppState, target: Target| async move {
        let record = agreements::get(state.store.reader(), &target.id).await;
        assert!(record.expect("agreement query").is_some());
    };
    // Rounds alternate between the stores, so the machine's noise falls on both alike.
    let mut rates: Vec<[Vec<f64>; 2]> = vec![Default::default(); stores.len()];
    for round in 0..=settings.rounds {
        for (store, [three, one]) in stores.iter().zip(&mut rates) {
            let three_rate = calls_per_second(store, settings.pure_round, queries).await;
            let one_rate = calls_per_second(store, settings.pure_round, get).await;
            if round > 0 {
                three.push(three_rate);
                one.push(one_rate);
            }
        }
    }

    println!("\n## Store: sequential calls per second on random agreements (no HTTP)\n");
    println!(
        "| store | calls | median calls/s | min | max | median µs/call | ÷ first store, per round |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (i, store) in stores.iter().enumerate() {
        for (name, of) in [("escrow-status's 3 queries", 0), ("agreements::get alone", 1)] {
            let mine = rates[i][of].clone();
            let versus = if i == 0 {
                "—".to_owned()
            } else {
                let paired = mine.iter().zip(&rates[0][of]).map(|(x, y)| x / y).collect();
                let ratio = Rates::of(paired);
                format!("{:.2} ({:.2}–{:.2})", ratio.median, ratio.min, ratio.max)
            };
            let rate = Rates::of(mine);
            println!(
                "| {} | {name} | {} | {} | {} | {:.1} | {versus} |",
                store.label,
                thousands(rate.median),
                thousands(rate.min),
                thousands(rate.max),
                1e6 / rate.median,
            );
        }
    }

    println!("\n## Watcher sweeps: milliseconds per call (median, min–max)\n");
    println!("| store | agreements::expire_due | chain::unapplied_events |");
    println!("|---|---:|---:|");
    for store in stores {
        let (expire, events) = sweep_ms(settings, store.state).await;
        println!(
            "| {} | {:.3} ({:.3}–{:.3}) | {:.3} ({:.3}–{:.3}) |",
            store.label,
            expire.median,
            expire.min,
            expire.max,
            events.median,
            events.min,
            events.max,
        );
    }
}
