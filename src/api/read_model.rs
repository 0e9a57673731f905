//! The read model: agreements and the chain watcher's position as last read from the store,
//! kept in memory so `GET …/escrow-status` (the route platforms poll) answers without a store
//! read once warm (its credential comes from [`super::credentials_seen`]).
//!
//! A kept read is used only while both hold:
//! - **no write of this process has committed since it was read** ([`Store::commits`] has not
//!   moved): whatever this instance wrote — the writes a client just made through it, the
//!   watcher's and the relayer's — is never answered from older memory;
//! - **it is younger than [`FRESH`]**: what another instance on the same Postgres (or a command
//!   run beside the service) wrote is seen within that time.
//!
//! The first rule is coarse on purpose: any commit makes every kept read stale, so a busy
//! instance reads the store more often, and an idle one (the usual state of a polled agreement)
//! almost never. Misses are counted in `pactum_read_model_reads_total{view,source}`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::agreements::{self, AgreementRecord};
use crate::store::chain::{self, Cursor};
use crate::store::{Store, StoreError};

/// How long a kept read is trusted when nothing in this process wrote since.
pub const FRESH: Duration = Duration::from_secs(1);

/// Entries kept per view at most; past this the stale ones are dropped (all, if none is).
const CAPACITY: usize = 65_536;

/// One read kept: when, at which commit count, and what it found.
#[derive(Debug, Clone)]
struct Entry<V> {
    commits: u64,
    read_at: Instant,
    value: V,
}

/// Reads of one kind, by key.
#[derive(Debug)]
struct Kept<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Kept<K, V> {
    /// The value kept for `key` if it is still the store's by both rules.
    fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q, commits: u64) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(key)
            .filter(|e| e.commits == commits && e.read_at.elapsed() < FRESH)
            .map(|e| e.value.clone())
    }

    /// Keeps `value`, read from the store when the commit count was `commits`.
    fn keep(&self, key: K, commits: u64, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.retain(|_, e| e.commits == commits && e.read_at.elapsed() < FRESH);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, Entry { commits, read_at: Instant::now(), value });
    }
}

/// What the API serves from memory.
#[derive(Debug, Default)]
pub struct ReadModel {
    agreements: Kept<String, Arc<AgreementRecord>>,
    cursor: Kept<(), Option<Cursor>>,
}

/// Where a read was answered from, for the metric.
fn counted(view: &'static str, memory: bool) {
    let source = if memory { "memory" } else { "store" };
    crate::metrics::read_model_read(view, source);
}

impl ReadModel {
    /// The agreement `id` (`None` when the store has none; an unknown id is not kept).
    pub async fn agreement(
        &self,
        store: &Store,
        id: &str,
    ) -> Result<Option<Arc<AgreementRecord>>, StoreError> {
        // Counted before the read: a commit during it leaves the entry already stale.
        let commits = store.commits();
        if let Some(record) = self.agreements.get(id, commits) {
            counted("agreement", true);
            return Ok(Some(record));
        }
        counted("agreement", false);
        let Some(record) = agreements::get(store.reader(), id).await?.map(Arc::new) else {
            return Ok(None);
        };
        self.agreements.keep(id.to_owned(), commits, record.clone());
        Ok(Some(record))
    }

    /// The chain watcher's position.
    pub async fn cursor(&self, store: &Store) -> Result<Option<Cursor>, StoreError> {
        let commits = store.commits();
        if let Some(cursor) = self.cursor.get(&(), commits) {
            counted("cursor", true);
            return Ok(cursor);
        }
        counted("cursor", false);
        let cursor = chain::cursor(store.reader()).await?;
        self.cursor.keep((), commits, cursor);
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_read_serves_until_a_commit_or_the_bound() {
        let kept: Kept<u8, &str> = Kept::default();
        assert_eq!(kept.get(&1, 0), None);
        kept.keep(1, 7, "read at 7");
        assert_eq!(kept.get(&1, 7), Some("read at 7"));
        assert_eq!(kept.get(&1, 8), None, "a commit since the read makes it stale");
        assert_eq!(kept.get(&2, 7), None);
        let mut entries = kept.entries.lock().unwrap();
        entries.get_mut(&1).unwrap().read_at = Instant::now() - FRESH;
        drop(entries);
        assert_eq!(kept.get(&1, 7), None, "past the bound, another instance may have written");
    }

    #[test]
    fn a_full_model_drops_stale_reads_first() {
        let kept: Kept<usize, usize> = Kept::default();
        for key in 0..CAPACITY {
            kept.keep(key, 1, key);
        }
        kept.keep(CAPACITY, 2, CAPACITY);
        assert_eq!(kept.get(&CAPACITY, 2), Some(CAPACITY));
        assert_eq!(kept.entries.lock().unwrap().len(), 1, "the reads of commit 1 were stale");
    }
}
