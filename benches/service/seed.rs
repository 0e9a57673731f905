//! Fills a service's store directly through the repository functions (no HTTP, no chain):
//! buyer and seller agents, and agreements proposed, accepted with fixed terms and, one in two,
//! marked active with the applied `EscrowActivated` event, as the chain watcher leaves them.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, keccak256};
use pactum::agreement::ids::{AgentId, Environment, SecretKey};
use pactum::agreement::status::InfraFeeStatus;
use pactum::agreement::terms::{Agreed, Terms};
use pactum::api::AppState;
use pactum::escrow::typed_data;
use pactum::money::TokenAmount;
use pactum::store::agreements::{self, AgreementRecord, Proposal};
use pactum::store::chain::{self, EscrowEvent};
use pactum::store::{agents, now};
use serde_json::json;

use crate::support::service::OWNER_KEY;

/// Agreements written per transaction.
pub(crate) const BATCH: usize = 1_000;
/// Buyer/seller pairs the agreements are spread over.
const PAIRS: usize = 50;

/// A stored agreement and the API key of one of its parties, to read it with.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) id: String,
    pub(crate) path: String,
    pub(crate) bearer: String,
}

/// The seeded parties.
#[derive(Debug)]
pub(crate) struct Parties {
    pairs: Vec<(Party, Party)>,
}

#[derive(Debug)]
struct Party {
    id: AgentId,
    key: String,
}

/// Creates `PAIRS` buyer/seller pairs under the operator account.
pub(crate) async fn parties(state: &AppState) -> Parties {
    let at = now();
    let mut tx = state.store.begin().await.expect("a write transaction");
    let owner = SecretKey::from_presented(OWNER_KEY).hash();
    let account = agents::ensure_account(&mut tx, "operator", &owner, at).await.expect("account");
    let mut parties = Vec::with_capacity(2 * PAIRS);
    for i in 0..2 * PAIRS {
        let name = if i % 2 == 0 { format!("buyer {i}") } else { format!("seller {i}") };
        let (agent, key) =
            agents::new_agent(account.id.clone(), &name, None, vec![], Environment::Test, at);
        agents::insert_agent(&mut tx, &agent, &key.hash()).await.expect("agent stored");
        parties.push(Party { id: agent.id, key: key.reveal().to_owned() });
    }
    tx.commit().await.expect("agents committed");
    let mut parties = parties.into_iter();
    let pairs = std::iter::from_fn(|| Some((parties.next()?, parties.next()?))).collect();
    Parties { pairs }
}

/// Adds `count` agreements to the store, one in two active; returns them (read by the buyer for
/// even ones, by the seller for odd ones) and how long the writes took.
pub(crate) async fn agreements(
    state: &AppState,
    parties: &Parties,
    count: usize,
) -> (Vec<Target>, Duration) {
    let (targets, _, took) = seed(state, parties, count, |i| i % 2 == 0).await;
    (targets, took)
}

/// Adds `count` agreements to the store, every one active; returns each one's agreement key
/// and deposit, and how long the writes took.
pub(crate) async fn active_agreements(
    state: &AppState,
    parties: &Parties,
    count: usize,
) -> (Vec<(B256, TokenAmount)>, Duration) {
    let (_, escrows, took) = seed(state, parties, count, |_| true).await;
    (escrows, took)
}

/// Adds `count` agreements, those for whose index `active` holds marked active.
async fn seed(
    state: &AppState,
    parties: &Parties,
    count: usize,
    active: impl Fn(usize) -> bool,
) -> (Vec<Target>, Vec<(B256, TokenAmount)>, Duration) {
    let started = Instant::now();
    let mut escrows = Vec::new();
    let escrow_domain = state.chain.escrow_domain();
    let mut targets = Vec::with_capacity(count);
    for first in (0..count).step_by(BATCH) {
        let mut tx = state.store.begin().await.expect("a write transaction");
        for i in first..count.min(first + BATCH) {
            let (buyer, seller) = &parties.pairs[i % PAIRS];
            let at = now();
            let record = proposal(i, buyer, seller, at);
            agreements::insert(&mut tx, &record).await.expect("agreement stored");
            let seller_wallet = wallet(i, "seller");
            let agreed = Agreed {
                id: &record.id,
                buyer: record.buyer_wallet,
                seller: seller_wallet,
                quantity: record.quantity,
                price_per_unit_cents: record.price_per_unit_cents,
            };
            let salt = keccak256(format!("salt {i}"));
            let terms = Terms::fix(agreed, &state.policy, at as u64, salt).expect("terms fit");
            let key = typed_data::agreement_key(&terms.activation(), &escrow_domain);
            agreements::accept(
                &mut tx,
                &record.id,
                seller_wallet,
                &terms,
                key,
                InfraFeeStatus::Pending,
                at,
            )
            .await
            .expect("agreement accepted");
            if active(i) {
                escrows.push((key, terms.deposit()));
                let block = keccak256(format!("block {i}"));
                let tx_hash = keccak256(format!("tx {i}"));
                let active =
                    agreements::escrow_activated(&mut tx, key, tx_hash, 1, block, at).await;
                assert_eq!(active.ok(), Some(true), "agreement {i} activated");
                // The event the watcher would have stored and applied on the way.
                let event = EscrowEvent {
                    block_hash: block,
                    log_index: 0,
                    block_number: 1,
                    tx_hash,
                    agreement_key: key,
                    event: "EscrowActivated".into(),
                    data: json!({}),
                };
                chain::insert_event(&mut tx, &event).await.expect("event stored");
                chain::mark_applied(&mut tx, &event).await.expect("event applied");
            }
            let bearer = if i % 2 == 0 { &buyer.key } else { &seller.key };
            targets.push(Target {
                id: record.id.to_string(),
                path: format!("/usage-agreements/{}/escrow-status", record.id),
                bearer: bearer.clone(),
            });
        }
        tx.commit().await.expect("batch committed");
    }
    (targets, escrows, started.elapsed())
}

/// A deterministic, distinct wallet per agreement and role.
fn wallet(i: usize, role: &str) -> Address {
    Address::from_word(keccak256(format!("{role} wallet {i}")))
}

/// A fresh proposal of 100 API calls at 10 cents, as `POST /usage-agreements` builds it.
fn proposal(i: usize, buyer: &Party, seller: &Party, at: i64) -> AgreementRecord {
    let proposal = Proposal {
        buyer_agent_id: buyer.id.clone(),
        seller_agent_id: seller.id.clone(),
        service_id: "svc_search".into(),
        quantity: 100,
        unit: "api_calls".into(),
        price_per_unit_cents: 10,
        payment_method: json!({ "rail": "stablecoin", "provider": "x402" }),
        buyer_wallet: wallet(i, "buyer"),
    };
    AgreementRecord::proposed(proposal, at)
}
