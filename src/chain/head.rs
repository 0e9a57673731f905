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

/// Blocks between the heads a block time is measured over: enough that one-second timestamps
/// give it to a few percent.
const PACE_SPAN: u64 = 16;

/// The chain's pace, measured from block timestamps: the time between an anchor head and the
/// newest one, divided by the blocks between them. The anchor moves up every [`PACE_SPAN`]
/// blocks, so the figure follows a chain whose pace changes; a head below the anchor (a
/// reorganisation, a restarted chain) starts the measurement again.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pace {
    anchor: Option<(u64, u64)>,
    measured: Option<Duration>,
}

impl Pace {
    /// Takes in the head `number` with `timestamp` (seconds).
    pub fn observe(&mut self, number: u64, timestamp: u64) {
        let Some((anchor, anchor_time)) = self.anchor else {
            self.anchor = Some((number, timestamp));
            return;
        };
        if number < anchor || timestamp < anchor_time {
            self.anchor = Some((number, timestamp));
            return;
        }
        let blocks = number - anchor;
        if blocks >= PACE_SPAN {
            self.measured = Some(Duration::from_millis((timestamp - anchor_time) * 1_000 / blocks));
            self.anchor = Some((number, timestamp));
        }
    }

    /// The last measured block time.
    pub fn block_time(&self) -> Option<Duration> {
        self.measured
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
    fn the_pace_is_measured_over_a_span_of_blocks() {
        let mut pace = Pace::default();
        assert_eq!(pace.block_time(), None);
        for n in 0..PACE_SPAN {
            pace.observe(100 + n, 5_000 + 2 * n);
        }
        assert_eq!(pace.block_time(), None, "not a whole span yet");
        pace.observe(100 + PACE_SPAN, 5_000 + 2 * PACE_SPAN);
        assert_eq!(pace.block_time(), Some(Duration::from_secs(2)));
        // A faster chain from here on: the next span measures it.
        let (base, at) = (100 + PACE_SPAN, 5_000 + 2 * PACE_SPAN);
        pace.observe(base + PACE_SPAN, at + PACE_SPAN / 2);
        assert_eq!(pace.block_time(), Some(Duration::from_millis(500)));
        // A head below the anchor starts again; the last figure stands meanwhile.
        pace.observe(3, 10);
        assert_eq!(pace.block_time(), Some(Duration::from_millis(500)));
        let watch = HeadWatch::default();
        for n in 0..=PACE_SPAN {
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
