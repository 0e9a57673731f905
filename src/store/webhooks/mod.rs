//! Webhook endpoints, their deliveries (one per endpoint and event) and every attempt of each.
//!
//! A delivery is `pending` until an attempt succeeds (`succeeded`) or the schedule runs out or
//! its endpoint is disabled or deleted (`failed`). Deliveries are claimed with a lease
//! (`locked_until_ms`, `lock_token`) so two instances never send the same attempt at once and a
//! killed instance's claim lapses; an outcome is recorded only under the claim's token.
//!
//! Split by idea: [`endpoints`] (the endpoints and their secrets), [`deliveries`] (fan-out and
//! the deliveries' history) and [`attempts`] (claims and the attempt log).

mod attempts;
mod deliveries;
mod endpoints;

pub use attempts::{
    AfterAttempt, Attempt, after_attempt, attempts_of, claim_due, insert_attempt, release,
};
pub use deliveries::{
    Delivery, Undispatched, get_delivery, insert_delivery, list_deliveries, mark_dispatched,
    replay, undispatched,
};
pub use endpoints::{
    Endpoint, Secrets, endpoint_with_secrets, get_endpoint, insert_endpoint, list_endpoints,
    retire_endpoint, rotate_secret, subscribers, update_endpoint,
};

/// An endpoint that receives deliveries.
pub const ACTIVE: &str = "active";
/// An endpoint whose deliveries wait (accumulating) until it is active again.
pub const PAUSED: &str = "paused";
/// An endpoint turned off by Pactum (its receiver answered 410 Gone).
pub const DISABLED: &str = "disabled";
/// A deleted endpoint: invisible to the API, kept for its deliveries' history.
pub const DELETED: &str = "deleted";

/// A delivery still to be made.
pub const PENDING: &str = "pending";
/// A delivery a receiver accepted with a 2xx.
pub const SUCCEEDED: &str = "succeeded";
/// A delivery given up on.
pub const FAILED: &str = "failed";
