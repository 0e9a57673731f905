//! Outbound webhooks: every outbox event about an agreement is delivered to the webhook
//! endpoints of its buyer and seller agents, signed by the Standard Webhooks scheme, retried on
//! a schedule, and every attempt logged.
//!
//! - [`events`]: the event types an endpoint may subscribe to;
//! - [`signature`]: signing secrets (`whsec_…`) and the `webhook-signature` header;
//! - [`address`]: which URLs and addresses a delivery may reach (SSRF);
//! - [`schedule`]: when a failed delivery is tried again (`Retry-After` included);
//! - [`send`]: one HTTP attempt;
//! - [`dispatcher`]: the background task that fans events out and delivers them.
//!
//! The rows live in [`crate::store::webhooks`]; the endpoints in [`crate::api::webhooks`].

pub mod address;
pub mod dispatcher;
pub mod events;
pub mod schedule;
pub mod send;
pub mod signature;

use std::time::Duration;

use schedule::RetrySchedule;

/// The retry schedule used when none is configured: immediately, then after 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h (about three days in all).
pub const DEFAULT_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,14h,20h,24h";

/// How the dispatcher delivers webhooks (the `Webhooks` settings of `pactum serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookSettings {
    /// Let webhook URLs reach loopback, private, link-local and other non-public addresses
    /// (for local development and tests; keep off in production).
    #[arg(
        long = "webhook-allow-private-urls",
        env = "PACTUM_WEBHOOK_ALLOW_PRIVATE_URLS",
        help_heading = "Webhooks"
    )]
    pub allow_private_urls: bool,

    /// Seconds one delivery attempt may take (1–30), connection and response included.
    #[arg(
        long = "webhook-timeout-secs",
        env = "PACTUM_WEBHOOK_TIMEOUT_SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=30),
        help_heading = "Webhooks"
    )]
    pub timeout_secs: u64,

    /// Delays before each attempt, comma-separated, with a unit (`ms`, `s`, `m`, `h`, `d`);
    /// the first is usually `0s`. Each delay gets ±10% jitter.
    #[arg(
        long = "webhook-retry-schedule",
        env = "PACTUM_WEBHOOK_RETRY_SCHEDULE",
        default_value = DEFAULT_SCHEDULE,
        help_heading = "Webhooks"
    )]
    pub retry_schedule: RetrySchedule,

    /// Most deliveries in flight at once, per instance.
    #[arg(
        long = "webhook-concurrency",
        env = "PACTUM_WEBHOOK_CONCURRENCY",
        default_value_t = 8,
        help_heading = "Webhooks"
    )]
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private_urls: false,
            timeout_secs: 15,
            retry_schedule: DEFAULT_SCHEDULE.parse().unwrap_or_default(),
            concurrency: 8,
        }
    }
}

impl WebhookSettings {
    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.clamp(1, 30))
    }

    /// How long a claimed delivery stays reserved for the instance that claimed it: the
    /// timeout plus room to record the outcome. A killed instance's claim lapses after this.
    pub fn lease(&self) -> Duration {
        self.timeout() + Duration::from_secs(5)
    }
}

/// A fresh time-ordered id with `prefix` (`whk_` for endpoints, `msg_` for deliveries), in the
/// form of every other Pactum id.
pub fn new_id(prefix: &str) -> String {
    let event = crate::agreement::ids::EventId::generate();
    format!("{prefix}{}", &event.as_str()[crate::agreement::ids::EventId::PREFIX.len()..])
}
