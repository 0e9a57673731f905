//! The signer actors of one worker run, supervised together: they live in a [`JoinSet`] the run
//! owns, so an actor that dies ends the run with [`RelayError::SignerDied`], the supervisor's
//! restart starts fresh actors, and no handle to a dead actor outlives its run.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use tokio::task::{self, JoinSet};

use super::RelayError;
use super::market::MarketSource;
use super::signer::{self, Limits, SignerHandle};
use crate::store::Store;

/// One actor per relayer account, and the tasks they run in.
#[derive(Debug)]
pub struct Actors {
    /// A handle per account, in the order of the keys.
    pub handles: Vec<SignerHandle>,
    tasks: JoinSet<()>,
    accounts: HashMap<task::Id, Address>,
}

impl Actors {
    /// Starts an actor for each of `keys`.
    pub fn spawn(
        keys: &[PrivateKeySigner],
        provider: &DynProvider,
        market: &MarketSource,
        store: &Store,
        limits: Limits,
        faults: &SignerFaults,
    ) -> Actors {
        let mut tasks = JoinSet::new();
        let mut accounts = HashMap::new();
        let handles = keys
            .iter()
            .map(|key| {
                let (handle, task) = signer::spawn(
                    key.clone(),
                    provider.clone(),
                    market.clone(),
                    store.clone(),
                    limits,
                    faults.clone(),
                    &mut tasks,
                );
                accounts.insert(task.id(), handle.address());
                handle
            })
            .collect();
        Actors { handles, tasks, accounts }
    }

    /// Waits until an actor ends (it panicked, or stopped while the run still holds its
    /// handle) and says which; never completes while every actor runs.
    pub async fn died(&mut self) -> RelayError {
        match self.tasks.join_next_with_id().await {
            Some(Ok((id, ()))) => RelayError::SignerDied {
                address: self.accounts.get(&id).copied().unwrap_or_default(),
                reason: "stopped".into(),
            },
            Some(Err(error)) => RelayError::SignerDied {
                address: self.accounts.get(&error.id()).copied().unwrap_or_default(),
                reason: error.to_string(),
            },
            None => std::future::pending().await,
        }
    }
}

/// A test-only fault hook: makes the actor of an account panic on its next request, to show
/// that the worker's supervision re-creates it. Nothing in `pactum serve` sets it (no flag,
/// variable or file reaches it); only code holding the running service can
/// ([`crate::service::Service::signer_faults`]).
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct SignerFaults(Arc<Mutex<HashSet<Address>>>);

impl SignerFaults {
    /// Makes the actor of `address` panic on its next request.
    pub fn panic_next(&self, address: Address) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(address);
    }

    /// Whether a panic is still armed for `address` (its actor has had no request since).
    pub fn is_armed(&self, address: Address) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains(&address)
    }

    pub(super) fn take(&self, address: Address) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&address)
    }
}
