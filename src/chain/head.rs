//! The chain's head as this instance last saw it, kept in memory: the watcher publishes every
//! head it reads (once per pass) and the request path reads the clock and the base fee from here
//! instead of asking the node. A head is trusted only while it is fresh ([`HeadWatch::fresh`]):
//! a watcher that stopped reading (a node outage, a stuck pass) leaves the request path to read
//! the chain itself, as it did before there was a head in memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use tokio::sync::watch;

/// How long a head is trusted after it was last read when nothing else is configured: three
/// polls of the default watcher.
pub const DEFAULT_FRESH: Duration = Duration::from_secs(3);

/// A block header's facts the request path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: B256,
    /// Its timestamp: the clock the contract checks deadlines against (a block mined later can
    /// only be later).
    pub timestamp: u64,
    /// Its base fee, wei; `None` on a chain without EIP-1559.
    pub base_fee_per_gas: Option<u64>,
    /// When this instance last read it (or a later read found it still the head).
    pub seen: Instant,
}

impl Head {
    /// The head `header` describes, read now.
    pub fn read_now(header: &alloy::rpc::types::Header) -> Self {
        Head {
            number: header.number,
            hash: header.hash,
            timestamp: header.timestamp,
            base_fee_per_gas: header.base_fee_per_gas,
            seen: Instant::now(),
        }
    }
}

/// The newest head, shared by the watcher (which publishes) and the API (which reads).
#[derive(Debug, Clone)]
pub struct HeadWatch {
    sender: Arc<watch::Sender<Option<Head>>>,
    fresh_for: Duration,
    pace: Arc<Mutex<Pace>>,
}

impl Default for HeadWatch {
    fn default() -> Self {
        Self::new(DEFAULT_FRESH)
    }
}

impl HeadWatch {
    /// No head yet; a published head is trusted for `fresh_for` after it was read.
    pub fn new(fresh_for: Duration) -> Self {
        Self { sender: Arc::new(watch::channel(None).0), fresh_for, pace: Arc::default() }
    }

    /// Records `head` as read now. A head below the one kept is taken only when it replaces it
    /// (a reorganisation to a shorter chain); the same head read again only refreshes `seen`,
    /// without waking subscribers.
    pub fn publish(&self, head: Head) {
        self.pace.lock().expect("pace lock").observe(head.number, head.timestamp);
        self.sender.send_if_modified(|kept| match kept {
            Some(kept) if kept.number == head.number && kept.hash == head.hash => {
                kept.seen = kept.seen.max(head.seen);
                false
            }
            Some(kept) if kept.number > head.number && kept.seen > head.seen => false,
            _ => {
                *kept = Some(head);
                true
            }
        });
    }

    /// The newest head if it was read within the freshness bound; `None` when there is none or
    /// it is older (the caller reads the chain itself).
    pub fn fresh(&self) -> Option<Head> {
        let head = (*self.sender.borrow())?;
        (head.seen.elapsed() <= self.fresh_for).then_some(head)
    }

    /// The newest head, however old.
    pub fn latest(&self) -> Option<Head> {
        *self.sender.borrow()
    }

    /// The chain's block time as the published heads show it (see [`Pace`]); `None` until
    /// enough blocks were seen.
    pub fn block_time(&self) -> Option<Duration> {
        self.pace.lock().expect("pace lock").block_time()
    }

    /// A receiver woken at each new head.
    pub fn subscribe(&self) -> watch::Receiver<Option<Head>> {
        self.sender.subscribe()
    }
}

/// Block intervals the block time is the median of.
const PACE_SPAN: usize = 16;

/// The chain's pace, measured from block timestamps: the median, over the last [`PACE_SPAN`]
/// heads seen, of the time from the head before divided by the blocks between them. A median,
/// so a chain that mines only when there is work (anvil's automine: bursts within one second,
/// then idle minutes) is taken at the pace of its bursts, not slowed down by its idle spells;
/// on a chain with a steady block time (1 s interval mining, Base's 2 s) it is that time. A head
/// below the last one (a reorganisation, a restarted chain) starts a new interval.
#[derive(Debug, Default, Clone)]
pub struct Pace {
    last: Option<(u64, u64)>,
    intervals: std::collections::VecDeque<u64>,
}

impl Pace {
    /// Takes in the head `number` with `timestamp` (seconds).
    pub fn observe(&mut self, number: u64, timestamp: u64) {
        let last = self.last.replace((number, timestamp));
        let Some((previous, previous_time)) = last else { return };
        if number <= previous || timestamp < previous_time {
            if number == previous {
                self.last = last;
            }
            return;
        }
        let per_block = (timestamp - previous_time) * 1_000 / (number - previous);
        if self.intervals.len() == PACE_SPAN {
            self.intervals.pop_front();
        }
        self.intervals.push_back(per_block);
    }

    /// The median block time of the intervals seen; `None` before the first.
    pub fn block_time(&self) -> Option<Duration> {
        let mut sorted: Vec<u64> = self.intervals.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).map(|ms| Duration::from_millis(*ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(number: u64, hash: u8, seen: Instant) -> Head {
        Head {
            number,
            hash: B256::repeat_byte(hash),
            timestamp: 1_000 + number,
            base_fee_per_gas: Some(7),
            seen,
        }
    }

    #[test]
    fn a_new_head_replaces_the_kept_one_and_wakes_subscribers() {
        let watch = HeadWatch::default();
        let mut rx = watch.subscribe();
        let now = Instant::now();
        watch.publish(head(5, 1, now));
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        assert_eq!(watch.fresh().map(|h| h.number), Some(5));
        watch.publish(head(5, 1, now + Duration::from_millis(10)));
        assert!(!rx.has_changed().unwrap(), "the same head read again wakes nobody");
        assert_eq!(watch.latest().unwrap().seen, now + Duration::from_millis(10));
        watch.publish(head(6, 2, now));
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn a_slower_read_of_an_older_head_does_not_win() {
        let watch = HeadWatch::default();
        let now = Instant::now();
        watch.publish(head(9, 1, now + Duration::from_millis(5)));
        watch.publish(head(8, 2, now));
        assert_eq!(watch.latest().unwrap().number, 9);
        // Read later: the chain is shorter now (a reorganisation), and that is the head.
        watch.publish(head(8, 3, now + Duration::from_millis(9)));
        assert_eq!(watch.latest().unwrap().hash, B256::repeat_byte(3));
    }

    #[test]
    fn the_pace_is_the_median_block_time_of_recent_heads() {
        let mut pace = Pace::default();
        assert_eq!(pace.block_time(), None);
        pace.observe(100, 5_000);
        assert_eq!(pace.block_time(), None, "one head is no interval");
        // Base: a block every 2 s, heads seen one by one or two at a time.
        for n in 1..=10 {
            pace.observe(100 + 2 * n, 5_000 + 4 * n);
        }
        assert_eq!(pace.block_time(), Some(Duration::from_secs(2)));
        // The same head read again changes nothing.
        pace.observe(120, 5_040);
        assert_eq!(pace.block_time(), Some(Duration::from_secs(2)));

        // Automine: bursts of blocks within a second, then an idle minute; the bursts set it.
        let mut automine = Pace::default();
        let (mut number, mut time) = (1, 1_000);
        for _ in 0..4 {
            for _ in 0..5 {
                number += 1;
                automine.observe(number, time);
            }
            time += 60;
        }
        assert_eq!(automine.block_time(), Some(Duration::ZERO));

        // A head below the last one starts again from there.
        pace.observe(3, 10);
        pace.observe(4, 11);
        assert_eq!(pace.block_time(), Some(Duration::from_secs(2)), "the median still holds");
        let watch = HeadWatch::default();
        for n in 0..=4 {
            watch.publish(head(n, n as u8, Instant::now()));
        }
        assert_eq!(watch.block_time(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_head_past_the_bound_is_not_fresh() {
        let watch = HeadWatch::new(Duration::from_millis(50));
        assert!(watch.fresh().is_none());
        let long_ago = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        watch.publish(head(3, 1, long_ago));
        assert!(watch.fresh().is_none());
        assert!(watch.latest().is_some());
        watch.publish(head(3, 1, Instant::now()));
        assert!(watch.fresh().is_some());
    }
}
