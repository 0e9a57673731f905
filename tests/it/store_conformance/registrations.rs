//! Self-registered agents on both engines: an unclaimed agent authenticates from its holding
//! account, a claim code is claimed once (by one of racing claims), moves the agent and its
//! wallets into the claimer's account and deletes the holding account; an unknown, used or
//! expired code, or one whose agent has an address the claimer's account holds, changes
//! nothing.

use std::sync::Arc;

use super::{Store, now, parties};
use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};
use alloy::primitives::Address;
use pactum::agreement::ids::{AccountId, AgentId, Environment, WalletId};
use pactum::store::agents::{self, Agent, AgentStatus};
use pactum::store::registrations::{self, Claim};
use pactum::store::wallets;
use pactum::wallets::{OwnershipProof, Wallet};

conformance!(
    a_claim_code_is_claimed_once_and_moves_the_agent,
    an_unknown_or_expired_code_claims_nothing,
    a_claim_into_an_account_holding_the_agents_address_changes_nothing,
);

/// Registers an unclaimed agent whose code expires at `expires_at`; the agent, its API key's
/// hash and its code's hash.
async fn register(store: &Store, expires_at: i64) -> (Agent, String, String) {
    let (agent, key, code) =
        registrations::new_unclaimed("self", None, vec![], Environment::Test, now());
    let mut tx = store.begin().await.unwrap();
    registrations::insert(&mut tx, &agent, &key.hash(), &code.hash(), expires_at).await.unwrap();
    tx.commit().await.unwrap();
    (agent, key.hash(), code.hash())
}

/// Claims in a transaction of its own, committed only when the agent was claimed.
async fn claim(store: &Store, hash: &str, account: &AccountId, at: i64) -> Claim {
    let mut tx = store.begin().await.unwrap();
    let claim = registrations::claim(&mut tx, hash, account, at).await.unwrap();
    if matches!(claim, Claim::Claimed(_)) {
        tx.commit().await.unwrap();
    }
    claim
}

async fn account_of(store: &Store, agent: &AgentId) -> AccountId {
    agents::get_agent(store.reader(), agent.as_str()).await.unwrap().unwrap().account_id
}

async fn add_wallet(store: &Store, account: &AccountId, agent: &AgentId, address: Address) {
    let wallet = Wallet {
        id: WalletId::generate(),
        account_id: account.clone(),
        agent_id: agent.clone(),
        address,
        label: None,
        primary: false,
        ownership_proof: OwnershipProof::None,
        ownership_issued_at: None,
        created_at: now(),
        updated_at: now(),
    };
    let mut tx = store.begin().await.unwrap();
    wallets::insert(&mut tx, &wallet).await.unwrap();
    tx.commit().await.unwrap();
}

/// Whether `agent`'s holding account still exists (read through the owner hash no credential
/// has).
async fn holding_exists(store: &Store, agent: &AgentId) -> bool {
    let hash = format!("unclaimed:{agent}");
    agents::account_by_owner_key(store.reader(), &hash).await.unwrap().is_some()
}

async fn a_claim_code_is_claimed_once_and_moves_the_agent(store: &Store) {
    let (owned, _) = parties(store).await;
    let owner = account_of(store, &owned).await;
    let (agent, key_hash, hash) = register(store, now() + 600).await;
    assert_eq!(agent.status, AgentStatus::Unclaimed);
    assert_ne!(agent.account_id, owner);
    // Its key authenticates it, unclaimed, from its holding account.
    let by_key = agents::agent_by_key(store.reader(), &key_hash).await.unwrap();
    assert_eq!(by_key.as_ref(), Some(&agent));
    assert!(holding_exists(store, &agent.id).await);
    add_wallet(store, &agent.account_id, &agent.id, Address::repeat_byte(0x42)).await;

    // Racing claims from two accounts: exactly one claims, the other finds the code used.
    let mut tx = store.begin().await.unwrap();
    let other = agents::ensure_account(&mut tx, "other", "other-owner-hash", now()).await.unwrap();
    tx.commit().await.unwrap();
    let shared = Arc::new(store.clone());
    let mut racers = Vec::new();
    for account in [owner.clone(), other.id.clone(), owner.clone(), other.id.clone()] {
        let (store, hash) = (shared.clone(), hash.clone());
        racers.push(tokio::spawn(async move {
            (account.clone(), claim(&store, &hash, &account, now()).await)
        }));
    }
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            (account, Claim::Claimed(id)) => winners.push((account, id)),
            (_, lost) => assert_eq!(lost, Claim::Used),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, id) = winners.pop().unwrap();
    assert_eq!(id, agent.id);

    let claimed = agents::get_agent(store.reader(), agent.id.as_str()).await.unwrap().unwrap();
    assert_eq!(claimed.status, AgentStatus::Active);
    assert_eq!(claimed.account_id, winner);
    let moved = wallets::list(store.reader(), &winner, Some(agent.id.as_str()), 10, None);
    assert_eq!(moved.await.unwrap().len(), 1);
    let left = wallets::list(store.reader(), &agent.account_id, None, 10, None).await.unwrap();
    assert!(left.is_empty());
    assert!(!holding_exists(store, &agent.id).await);
    assert_eq!(claim(store, &hash, &winner, now()).await, Claim::Used);
}

async fn an_unknown_or_expired_code_claims_nothing(store: &Store) {
    let (owned, _) = parties(store).await;
    let owner = account_of(store, &owned).await;
    assert_eq!(claim(store, "no-such-hash", &owner, now()).await, Claim::Unknown);
    let expires_at = now() + 60;
    let (agent, _, hash) = register(store, expires_at).await;
    // Claimable up to the second before `expires_at`, not at it.
    assert_eq!(claim(store, &hash, &owner, expires_at).await, Claim::Expired);
    assert_eq!(claim(store, &hash, &owner, expires_at + 1).await, Claim::Expired);
    let unchanged = agents::get_agent(store.reader(), agent.id.as_str()).await.unwrap().unwrap();
    assert_eq!(unchanged, agent);
    assert!(holding_exists(store, &agent.id).await);
    assert_eq!(claim(store, &hash, &owner, expires_at - 1).await, Claim::Claimed(agent.id));
}

async fn a_claim_into_an_account_holding_the_agents_address_changes_nothing(store: &Store) {
    let (owned, _) = parties(store).await;
    let owner = account_of(store, &owned).await;
    let (agent, _, hash) = register(store, now() + 600).await;
    let address = Address::repeat_byte(0x7a);
    add_wallet(store, &agent.account_id, &agent.id, Address::repeat_byte(0x01)).await;
    add_wallet(store, &agent.account_id, &agent.id, address).await;
    add_wallet(store, &owner, &owned, address).await;
    let theirs = wallets::list(store.reader(), &owner, Some(owned.as_str()), 10, None);
    let theirs = theirs.await.unwrap().pop().unwrap();
    assert_eq!(claim(store, &hash, &owner, now()).await, Claim::AddressTaken(theirs.id));
    let unchanged = agents::get_agent(store.reader(), agent.id.as_str()).await.unwrap().unwrap();
    assert_eq!(unchanged, agent);
    let kept = wallets::list(store.reader(), &agent.account_id, None, 10, None).await.unwrap();
    assert_eq!(kept.len(), 2);
    // Another account has no such address: the same code claims the agent there.
    let mut tx = store.begin().await.unwrap();
    let other = agents::ensure_account(&mut tx, "other", "other-owner-hash", now()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claim(store, &hash, &other.id, now()).await, Claim::Claimed(agent.id));
}
