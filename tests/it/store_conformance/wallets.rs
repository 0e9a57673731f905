//! Wallets on both engines: they round-trip and page newest first within their account, an
//! address is registered once per account (in any case, and by one of racing inserts), and an
//! agent has one primary wallet at a time.

use std::sync::Arc;

use super::{Store, now, parties};
use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};
use alloy::primitives::Address;
use pactum::agreement::ids::{AccountId, AgentId, WalletId};
use pactum::store::{StoreError, agents, wallets};
use pactum::wallets::{OwnershipProof, Wallet};

conformance!(
    wallets_round_trip_and_page_newest_first,
    an_address_is_registered_once_per_account,
    an_agent_has_one_primary_wallet,
);

async fn account_of(store: &Store, agent: &AgentId) -> AccountId {
    agents::get_agent(store.reader(), agent.as_str()).await.unwrap().unwrap().account_id
}

fn wallet(account: &AccountId, agent: &AgentId, address: Address, created_at: i64) -> Wallet {
    Wallet {
        id: WalletId::generate(),
        account_id: account.clone(),
        agent_id: agent.clone(),
        address,
        label: Some(super::TRICKY.into()),
        primary: false,
        ownership_proof: OwnershipProof::Ecdsa,
        ownership_issued_at: Some(created_at - 5),
        created_at,
        updated_at: created_at,
    }
}

async fn insert(store: &Store, wallet: &Wallet) -> Result<(), StoreError> {
    let mut tx = store.begin().await.unwrap();
    wallets::insert(&mut tx, wallet).await?;
    tx.commit().await.unwrap();
    Ok(())
}

async fn wallets_round_trip_and_page_newest_first(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let first = wallet(&account, &buyer, Address::repeat_byte(0xa1), 100);
    let second = Wallet {
        label: None,
        ownership_proof: OwnershipProof::None,
        ownership_issued_at: None,
        ..wallet(&account, &buyer, Address::repeat_byte(0xb2), 200)
    };
    let sellers = wallet(&account, &seller, Address::repeat_byte(0xc3), 200);
    for w in [&first, &second, &sellers] {
        insert(store, w).await.unwrap();
    }

    let read = wallets::get(store.reader(), &account, first.id.as_str()).await.unwrap();
    assert_eq!(read.as_ref(), Some(&first));
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        wallets::get_in(&mut tx, &account, second.id.as_str()).await.unwrap().as_ref(),
        Some(&second)
    );
    let by_address = wallets::by_address_in(&mut tx, &account, &sellers.address).await;
    assert_eq!(by_address.unwrap().as_ref(), Some(&sellers));
    drop(tx);
    let other = AccountId("acct_other".into());
    assert!(wallets::get(store.reader(), &other, first.id.as_str()).await.unwrap().is_none());
    assert!(wallets::get(store.reader(), &account, "wal_none").await.unwrap().is_none());

    let ids = |page: &[Wallet]| page.iter().map(|w| w.id.clone()).collect::<Vec<_>>();
    let all = wallets::list(store.reader(), &account, None, 10, None).await.unwrap();
    let mut newest = vec![second.id.clone(), sellers.id.clone()];
    newest.sort_by(|a, b| b.cmp(a));
    newest.push(first.id.clone());
    assert_eq!(ids(&all), newest);
    let buyers = wallets::list(store.reader(), &account, Some(buyer.as_str()), 1, None).await;
    let buyers = buyers.unwrap();
    assert_eq!(ids(&buyers), vec![second.id.clone()]);
    let rest = wallets::list(
        store.reader(),
        &account,
        Some(buyer.as_str()),
        10,
        Some((second.created_at, second.id.as_str())),
    )
    .await
    .unwrap();
    assert_eq!(ids(&rest), vec![first.id.clone()]);
    assert!(wallets::list(store.reader(), &other, None, 10, None).await.unwrap().is_empty());
}

async fn an_address_is_registered_once_per_account(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let account = account_of(store, &buyer).await;
    let address: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse().unwrap();
    insert(store, &wallet(&account, &buyer, address, now())).await.unwrap();
    // The same address for another agent of the account: refused.
    let again = insert(store, &wallet(&account, &seller, address, now())).await;
    assert!(again.is_err_and(|e| e.is_unique_violation()));

    // Racing registrations of one new address: exactly one wins.
    let store = Arc::new(store.clone());
    let contested = Address::repeat_byte(0x5e);
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (store, account, buyer) = (store.clone(), account.clone(), buyer.clone());
        racers.push(tokio::spawn(async move {
            insert(&store, &wallet(&account, &buyer, contested, now())).await.is_ok()
        }));
    }
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.unwrap());
    }
    assert_eq!(won, 1);
    let listed = wallets::list(store.reader(), &account, None, 100, None).await.unwrap();
    assert_eq!(listed.iter().filter(|w| w.address == contested).count(), 1);
}

async fn an_agent_has_one_primary_wallet(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let account = account_of(store, &buyer).await;
    assert!(wallets::primary_of(store.reader(), &buyer).await.unwrap().is_none());
    let first = Wallet { primary: true, ..wallet(&account, &buyer, Address::repeat_byte(1), 100) };
    insert(store, &first).await.unwrap();
    let second = Wallet { primary: true, ..wallet(&account, &buyer, Address::repeat_byte(2), 200) };
    insert(store, &second).await.unwrap();
    let sellers =
        Wallet { primary: true, ..wallet(&account, &seller, Address::repeat_byte(3), 200) };
    insert(store, &sellers).await.unwrap();
    // The newer primary demoted the older; the seller's is its own.
    let primary = wallets::primary_of(store.reader(), &buyer).await.unwrap().unwrap();
    assert_eq!(primary.id, second.id);
    let demoted = wallets::get(store.reader(), &account, first.id.as_str()).await.unwrap();
    assert!(!demoted.unwrap().primary);
    let seller_primary = wallets::primary_of(store.reader(), &seller).await.unwrap().unwrap();
    assert_eq!(seller_primary.id, sellers.id);

    let mut tx = store.begin().await.unwrap();
    assert!(wallets::make_primary(&mut tx, &buyer, &first.id, now()).await.unwrap());
    assert!(!wallets::make_primary(&mut tx, &buyer, &first.id, now()).await.unwrap());
    // Another agent's wallet is not the buyer's to promote.
    let refused = wallets::make_primary(&mut tx, &buyer, &sellers.id, now()).await;
    assert!(matches!(refused, Err(StoreError::Conflict)));
    tx.commit().await.unwrap();
    let primary = wallets::primary_of(store.reader(), &buyer).await.unwrap().unwrap();
    assert_eq!(primary.id, first.id);
    let listed = wallets::list(store.reader(), &account, Some(buyer.as_str()), 10, None).await;
    assert_eq!(listed.unwrap().iter().filter(|w| w.primary).count(), 1);

    // Primaries set at once: each either demotes the one before (writers in turn) or is
    // refused by the one-primary index, named so the API can tell it from a duplicate address.
    let store = Arc::new(store.clone());
    let mut racers = Vec::new();
    for byte in 10..18u8 {
        let (store, account, buyer) = (store.clone(), account.clone(), buyer.clone());
        racers.push(tokio::spawn(async move {
            let racer = Wallet {
                primary: true,
                ..wallet(&account, &buyer, Address::repeat_byte(byte), now())
            };
            insert(&store, &racer).await
        }));
    }
    for racer in racers {
        if let Err(error) = racer.await.unwrap() {
            assert_eq!(error.constraint(), Some(wallets::ONE_PRIMARY_INDEX), "{error}");
        }
    }
    let listed = wallets::list(store.reader(), &account, Some(buyer.as_str()), 100, None).await;
    assert_eq!(listed.unwrap().iter().filter(|w| w.primary).count(), 1);
}
