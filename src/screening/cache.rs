//! The verdicts of `POST /risk/check`, kept briefly in memory: an agent screening the same
//! counterparty before each of a burst of actions costs one oracle call, not one each.
//!
//! Only verdicts every configured list gave are kept (a verdict made while the oracle was down
//! is never kept), each for the cache's time to live, and at most its capacity of addresses:
//! past it, expired entries go first, then the oldest. An address added to the denylist or the
//! oracle's list is therefore seen by the risk check within one time to live; activation
//! screening does not use this cache and always asks the lists.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::primitives::Address;

use super::{OracleStatus, ScreeningSource};

/// How long a verdict is kept by [`VerdictCache::default`].
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Addresses kept by [`VerdictCache::default`].
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The screening verdict on one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The address screened.
    pub address: Address,
    /// Whether a list has it.
    pub sanctioned: bool,
    /// The list that has it (the denylist when both do); `None` when none does.
    pub source: Option<ScreeningSource>,
    /// The lists consulted, in order.
    pub sources: Vec<ScreeningSource>,
    /// What became of the oracle check.
    pub oracle: OracleStatus,
    /// When the lists were asked, unix seconds.
    pub checked_at: u64,
}

/// Verdicts by address, each kept for a time to live.
#[derive(Debug)]
pub struct VerdictCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Address, (Instant, Verdict)>>,
}

impl Default for VerdictCache {
    fn default() -> Self {
        Self::new(DEFAULT_TTL, DEFAULT_CAPACITY)
    }
}

impl VerdictCache {
    /// An empty cache keeping verdicts for `ttl`, at most `capacity` (at least one) of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// The verdict on `address` kept less than the time to live before `now`.
    pub fn get(&self, address: Address, now: Instant) -> Option<Verdict> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (at, verdict) = entries.get(&address)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| verdict.clone())
    }

    /// Keeps `verdict` from `now`, unless the oracle did not answer for it.
    pub fn put(&self, verdict: Verdict, now: Instant) {
        if verdict.oracle == OracleStatus::Unavailable {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&verdict.address) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
            if entries.len() >= self.capacity
                && let Some(oldest) =
                    entries.iter().min_by_key(|(_, (at, _))| *at).map(|(address, _)| *address)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(verdict.address, (now, verdict));
    }

    /// How many verdicts are kept (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(byte: u8, oracle: OracleStatus) -> Verdict {
        Verdict {
            address: Address::repeat_byte(byte),
            sanctioned: false,
            source: None,
            sources: vec![ScreeningSource::Oracle],
            oracle,
            checked_at: 1,
        }
    }

    #[test]
    fn keeps_a_verdict_for_its_time_to_live() {
        let cache = VerdictCache::new(Duration::from_secs(30), 10);
        let start = Instant::now();
        let v = verdict(1, OracleStatus::Checked);
        cache.put(v.clone(), start);
        assert_eq!(cache.get(v.address, start + Duration::from_secs(29)), Some(v.clone()));
        assert_eq!(cache.get(v.address, start + Duration::from_secs(30)), None);
        assert_eq!(cache.get(Address::repeat_byte(2), start), None);
    }

    #[test]
    fn never_keeps_a_verdict_made_without_the_oracle() {
        let cache = VerdictCache::default();
        cache.put(verdict(1, OracleStatus::Unavailable), Instant::now());
        assert!(cache.is_empty());
    }

    #[test]
    fn stays_within_its_capacity_evicting_expired_then_oldest() {
        let cache = VerdictCache::new(Duration::from_secs(30), 2);
        let start = Instant::now();
        cache.put(verdict(1, OracleStatus::Checked), start);
        cache.put(verdict(2, OracleStatus::Checked), start + Duration::from_secs(10));
        cache.put(verdict(3, OracleStatus::Checked), start + Duration::from_secs(20));
        assert_eq!(cache.len(), 2);
        let at = start + Duration::from_secs(21);
        assert_eq!(cache.get(Address::repeat_byte(1), at), None, "the oldest went");
        assert!(cache.get(Address::repeat_byte(2), at).is_some());
        // Past the first one's time to live, an expired entry makes the room.
        cache.put(verdict(4, OracleStatus::Checked), start + Duration::from_secs(45));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(Address::repeat_byte(4), start + Duration::from_secs(45)).is_some());
    }
}
