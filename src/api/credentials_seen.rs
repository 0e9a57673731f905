//! Credentials recently read from the store, so a request's API key or owner credential costs
//! no store read on the hot routes (`POST /v1/checks`, escrow status, every agent route).
//!
//! An entry lives at most [`FRESH`]: a key revoked or rotated through another instance (or
//! behind the service's back) is refused everywhere within that time. On this instance the
//! routes that change an agent's standing forget every entry at once ([`CredentialsSeen::forget`]),
//! so a revoked key is refused by the very next request here. Unknown keys are never kept: a key
//! issued by another instance works at its first use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::agents::{self, Account, Agent};

/// How long an entry is trusted without reading the store again.
pub const FRESH: Duration = Duration::from_secs(1);

/// Entries kept at most; past this the stale ones are dropped (all, if none is stale).
const CAPACITY: usize = 65_536;

/// What a credential's hash was found to be.
#[derive(Debug, Clone)]
enum Known {
    Agent(Agent),
    Owner(Account),
}

/// The recently seen credentials, by the hash of the key.
#[derive(Debug, Default)]
pub struct CredentialsSeen {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// Counts [`CredentialsSeen::forget`]s: a store read that began before one is not kept.
    generation: u64,
    by_hash: HashMap<String, (Instant, Known)>,
}

impl CredentialsSeen {
    /// The active agent whose API key hashes to `hash`.
    pub async fn agent(
        &self,
        pool: &sqlx::AnyPool,
        hash: &str,
    ) -> Result<Option<Agent>, crate::store::StoreError> {
        let pick = |known| match known {
            Known::Agent(agent) => Some(agent),
            Known::Owner(_) => None,
        };
        self.find(hash, pick, agents::agent_by_key(pool, hash), Known::Agent).await
    }

    /// The account whose owner credential hashes to `hash`.
    pub async fn owner(
        &self,
        pool: &sqlx::AnyPool,
        hash: &str,
    ) -> Result<Option<Account>, crate::store::StoreError> {
        let pick = |known| match known {
            Known::Owner(account) => Some(account),
            Known::Agent(_) => None,
        };
        self.find(hash, pick, agents::account_by_owner_key(pool, hash), Known::Owner).await
    }

    /// What `hash` is known as (`pick` takes the kind asked for), from memory while fresh,
    /// else from `read` (kept if found).
    async fn find<T: Clone>(
        &self,
        hash: &str,
        pick: impl Fn(Known) -> Option<T>,
        read: impl std::future::Future<Output = Result<Option<T>, crate::store::StoreError>>,
        wrap: impl Fn(T) -> Known,
    ) -> Result<Option<T>, crate::store::StoreError> {
        let generation = match self.fresh(hash) {
            Ok(known) => return Ok(pick(known)),
            Err(generation) => generation,
        };
        let found = read.await?;
        if let Some(found) = &found {
            self.keep(hash, wrap(found.clone()), generation);
        }
        Ok(found)
    }

    /// Forgets every entry: called when an agent is revoked, its key rotated or it is halted,
    /// so this instance never answers from the agent as it was.
    pub fn forget(&self) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.by_hash.clear();
    }

    /// The fresh entry for `hash`, or the generation a store read for it starts in.
    fn fresh(&self, hash: &str) -> Result<Known, u64> {
        let entries = self.lock();
        match entries.by_hash.get(hash) {
            Some((seen, known)) if seen.elapsed() < FRESH => Ok(known.clone()),
            _ => Err(entries.generation),
        }
    }

    /// Keeps what a store read begun in `generation` found, unless a forget came since.
    fn keep(&self, hash: &str, known: Known, generation: u64) {
        let mut entries = self.lock();
        if entries.generation != generation {
            return;
        }
        if entries.by_hash.len() >= CAPACITY {
            let now = Instant::now();
            entries.by_hash.retain(|_, (seen, _)| now.duration_since(*seen) < FRESH);
            if entries.by_hash.len() >= CAPACITY {
                entries.by_hash.clear();
            }
        }
        entries.by_hash.insert(hash.to_owned(), (Instant::now(), known));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves a map that is still whole.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
