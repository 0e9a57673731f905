//! Wallet balances as read from the chain, cached per block: within one block number a
//! balance cannot change, so a second read of the same wallet at the same head answers from
//! memory. Bounded: past its capacity, entries of older blocks go first (they would be read
//! again anyway), then arbitrary ones.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy::primitives::{Address, U256};

/// Entries kept by [`BalanceCache::default`].
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A wallet's balances at one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balances {
    /// The block they were read at.
    pub block_number: u64,
    /// USDC, in base units (6 decimals).
    pub usdc: U256,
    /// Ether, in wei.
    pub eth: U256,
}

/// A wallet's ether alone at one block: what the settlement options read to tell whether the
/// party can pay for the direct path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasBalance {
    /// The block it was read at.
    pub block_number: u64,
    /// Ether, in wei.
    pub eth: U256,
}

/// What a [`PerBlock`] cache keeps: a value read at one block.
pub trait AtBlock: Copy {
    /// The block it was read at.
    fn block_number(&self) -> u64;
}

impl AtBlock for Balances {
    fn block_number(&self) -> u64 {
        self.block_number
    }
}

impl AtBlock for GasBalance {
    fn block_number(&self) -> u64 {
        self.block_number
    }
}

/// Values per wallet, each valid for the one block it was read at.
#[derive(Debug)]
pub struct PerBlock<V> {
    capacity: usize,
    entries: Mutex<HashMap<Address, V>>,
}

/// Both balances per wallet (the wallet balance route).
pub type BalanceCache = PerBlock<Balances>;

/// Ether per wallet (the settlement options).
pub type GasBalanceCache = PerBlock<GasBalance>;

impl<V: AtBlock> Default for PerBlock<V> {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl<V: AtBlock> PerBlock<V> {
    /// An empty cache of at most `capacity` wallets (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// `wallet`'s value if it was read at `block_number`; `None` otherwise.
    pub fn get(&self, wallet: Address, block_number: u64) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(&wallet).copied().filter(|b| b.block_number() == block_number)
    }

    /// Keeps `value` of `wallet`, unless a value of a later block is kept already (a slower
    /// read finishing after a newer one).
    pub fn put(&self, wallet: Address, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let block = value.block_number();
        if let Some(kept) = entries.get(&wallet)
            && kept.block_number() > block
        {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(&wallet) {
            entries.retain(|_, kept| kept.block_number() >= block);
            if entries.len() >= self.capacity
                && let Some(evicted) = entries.keys().next().copied()
            {
                entries.remove(&evicted);
            }
        }
        entries.insert(wallet, value);
    }

    /// How many wallets are cached.
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

    fn at(block_number: u64, usdc: u64) -> Balances {
        Balances { block_number, usdc: U256::from(usdc), eth: U256::from(1) }
    }

    #[test]
    fn answers_only_for_the_block_read() {
        let cache = BalanceCache::default();
        let wallet = Address::repeat_byte(1);
        assert_eq!(cache.get(wallet, 5), None);
        cache.put(wallet, at(5, 10));
        assert_eq!(cache.get(wallet, 5), Some(at(5, 10)));
        assert_eq!(cache.get(wallet, 6), None);
        cache.put(wallet, at(6, 20));
        assert_eq!(cache.get(wallet, 6), Some(at(6, 20)));
        // A late read of an older block does not replace a newer one.
        cache.put(wallet, at(5, 10));
        assert_eq!(cache.get(wallet, 6), Some(at(6, 20)));
    }

    #[test]
    fn stays_within_its_capacity_dropping_older_blocks_first() {
        let cache = BalanceCache::new(2);
        let (a, b, c) = (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3));
        cache.put(a, at(1, 1));
        cache.put(b, at(2, 2));
        cache.put(c, at(2, 3));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(a, 1), None);
        assert_eq!(cache.get(b, 2), Some(at(2, 2)));
        assert_eq!(cache.get(c, 2), Some(at(2, 3)));
        cache.put(a, at(2, 1));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(a, 2), Some(at(2, 1)));
    }
}
