//! The hand-off from this process's API to its relayer: each job the API has committed, by id
//! and kind, over a channel.
//!
//! The store stays the queue: a job exists once its row is committed, whoever takes it. The
//! hand-off only tells the relayer at once which jobs to lease (by id, without scanning the
//! queue) and lets it fill a batch by counting what arrives instead of reading the store. A
//! full channel, a restarted worker or another instance's API lose nothing: the worker's
//! polled path finds every queued row, as it did before there was a channel.

use std::sync::Arc;

use tokio::sync::{Mutex, Notify, mpsc};

use crate::agreement::ids::JobId;
use crate::store::jobs::{Job, JobKind};

/// Hand-offs the channel holds before the API falls back to a wake-up.
pub const CAPACITY: usize = 8_192;

/// A committed job, as handed to the relayer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handed {
    /// Its id.
    pub id: JobId,
    /// Its kind: decides whether it waits for others to batch with.
    pub kind: JobKind,
}

/// The API's end: hands over committed jobs, or wakes the worker.
#[derive(Debug, Clone)]
pub struct JobFeed {
    sender: mpsc::Sender<Handed>,
    wake: Arc<Notify>,
}

/// The relayer's end. It outlives worker runs (a restarted run takes the same receiver), so a
/// hand-off made while the worker restarts waits in the channel.
#[derive(Debug, Clone)]
pub struct JobInbox {
    pub(crate) receiver: Arc<Mutex<mpsc::Receiver<Handed>>>,
    pub(crate) wake: Arc<Notify>,
}

/// A connected feed and inbox.
pub fn channel() -> (JobFeed, JobInbox) {
    let (sender, receiver) = mpsc::channel(CAPACITY);
    let wake = Arc::new(Notify::new());
    (
        JobFeed { sender, wake: wake.clone() },
        JobInbox { receiver: Arc::new(Mutex::new(receiver)), wake },
    )
}

impl JobFeed {
    /// Hands `job`, committed, to the relayer; when the channel is full (or no worker runs),
    /// wakes the worker instead, whose polled path then finds it in the store.
    pub fn queued(&self, job: &Job) {
        let handed = Handed { id: job.id.clone(), kind: job.kind };
        if self.sender.try_send(handed).is_err() {
            self.wake.notify_one();
        }
    }

    /// Wakes the worker to look at the store (a job queued where its id is not at hand).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Default for JobFeed {
    /// A feed nothing reads: every hand-off falls back to the wake-up (tests that build an API
    /// state without a worker).
    fn default() -> Self {
        channel().0
    }
}
