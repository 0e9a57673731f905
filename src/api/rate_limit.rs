//! Rate limits per credential and route group, as a middleware layer over the whole router.
//!
//! Each request is keyed by the SHA-256 of its bearer token (so per credential, with the
//! credential itself never kept), or, with no `Authorization` header, by the client's IP
//! address; and it falls in one route group ([`Group`]) with its own limit per window.
//! Self-registration ([`Group::Registration`]) takes no credential and creates an agent per
//! request, so it is keyed by the client's IP address alone (a made-up `Authorization` header
//! does not open a new budget) and has a strict limit over a window of its own. The address is
//! the TCP peer's: `X-Forwarded-For` is not trusted, since any client can write it, so behind a
//! reverse proxy every registration shares the proxy's budget. Each
//! group is one keyed `governor` limiter (the generic cell rate algorithm: a token bucket kept
//! as one timestamp per key): `limit` requests may come at once, and one more each
//! `window / limit` after that, so a client that waits a whole window has its full limit back.
//! Tokens are not checked here (that costs a store read): an unknown token gets a budget of its
//! own, and its requests end in 401.
//!
//! State is in memory and per instance: several instances behind one balancer each enforce
//! their own limit. Buckets that have refilled completely are dropped once a window, so memory
//! holds only keys seen within the last window.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorCode};

/// A set of routes sharing one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// `GET` and `HEAD` requests not in another group.
    Read,
    /// `POST`, `PUT`, `PATCH` and `DELETE` requests not in another group.
    Write,
    /// Sponsored settlement actions (`…/sponsored-actions/…`): each one costs the relayer gas.
    Sponsored,
    /// Agent and webhook management (`/v1/agents…`, `/agents/{id}/webhooks…`).
    Management,
    /// Spend checks (`/v1/checks…`, the spend guard) and the risk check (`/risk/check`):
    /// agents call them before every spend, so they get a budget of their own that other
    /// traffic cannot use up.
    Checks,
    /// Owner governance: policies, approvals, mandates, the circuit breaker, audit and
    /// violations.
    Governance,
    /// Agent self-registration (`POST /agents/register`), per client IP address.
    Registration,
}

impl Group {
    /// The group's name, as the 429 body names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Read => "read",
            Group::Write => "write",
            Group::Sponsored => "sponsored",
            Group::Management => "management",
            Group::Checks => "checks",
            Group::Governance => "governance",
            Group::Registration => "registration",
        }
    }

    /// Every group.
    pub const ALL: [Group; 7] = [
        Group::Read,
        Group::Write,
        Group::Sponsored,
        Group::Management,
        Group::Checks,
        Group::Governance,
        Group::Registration,
    ];

    /// Whether requests of this group are keyed by the client's address whatever credential
    /// they carry.
    fn keyed_by_address(self) -> bool {
        self == Group::Registration
    }

    /// The group of a request, or `None` for the exempt routes (`/health`, `/healthz`,
    /// `/readyz`, `/metrics`, `/openapi.json`), which probes and scrapers call often and which
    /// touch no account.
    pub fn of(method: &Method, path: &str) -> Option<Group> {
        if matches!(path, "/health" | "/healthz" | "/readyz" | "/metrics" | "/openapi.json") {
            return None;
        }
        if path == "/agents/register" {
            return Some(Group::Registration);
        }
        if path.contains("/sponsored-actions/") {
            return Some(Group::Sponsored);
        }
        if path.starts_with("/v1/spend-guard/budget-leases") {
            return Some(Group::Governance);
        }
        if path == "/v1/checks"
            || path.starts_with("/v1/checks/")
            || path == "/risk/check"
            || path.starts_with("/v1/spend-guard/")
        {
            return Some(Group::Checks);
        }
        let agent_governance = path.starts_with("/agents/")
            && ["/policies", "/approvals", "/circuit-break", "/violations"]
                .iter()
                .any(|part| path.contains(part));
        if agent_governance
            || path == "/approvals"
            || path.starts_with("/approvals/")
            || path == "/v1/audit"
            || path == "/v1/mandates"
            || path.starts_with("/v1/mandates/")
        {
            return Some(Group::Governance);
        }
        let webhooks = path.starts_with("/agents/") && path.contains("/webhooks");
        let agent_keys = path == "/agents/claim"
            || (path.starts_with("/agents/") && path.ends_with("/regenerate-key"));
        if path == "/v1/agents" || path.starts_with("/v1/agents/") || webhooks || agent_keys {
            return Some(Group::Management);
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Some(Group::Read)
        } else {
            Some(Group::Write)
        }
    }
}

/// Limits per group, as configured: requests per `window` (registrations per
/// `registration_window`); 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The window every limit but the registration limit is stated over.
    pub window: Duration,
    /// Limit of [`Group::Read`].
    pub read: u32,
    /// Limit of [`Group::Write`].
    pub write: u32,
    /// Limit of [`Group::Sponsored`].
    pub sponsored: u32,
    /// Limit of [`Group::Management`].
    pub management: u32,
    /// Limit of [`Group::Checks`].
    pub checks: u32,
    /// Limit of [`Group::Governance`].
    pub governance: u32,
    /// Limit of [`Group::Registration`], per client IP address.
    pub registration: u32,
    /// The window the registration limit is stated over.
    pub registration_window: Duration,
}

impl Limits {
    /// No limit on any group.
    pub const UNLIMITED: Limits = Limits {
        window: Duration::from_secs(60),
        read: 0,
        write: 0,
        sponsored: 0,
        management: 0,
        checks: 0,
        governance: 0,
        registration: 0,
        registration_window: Duration::from_secs(3_600),
    };

    /// The limit of `group` per window (0 = unlimited).
    pub fn of(&self, group: Group) -> u32 {
        match group {
            Group::Read => self.read,
            Group::Write => self.write,
            Group::Sponsored => self.sponsored,
            Group::Management => self.management,
            Group::Checks => self.checks,
            Group::Governance => self.governance,
            Group::Registration => self.registration,
        }
    }

    /// The window the limit of `group` is stated over.
    pub fn window_of(&self, group: Group) -> Duration {
        match group {
            Group::Registration => self.registration_window,
            _ => self.window,
        }
    }
}

/// What the limiter decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The limit per window.
    pub limit: u32,
    /// Requests that could still be made at once.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Until the next request would be allowed (zero when `allowed`).
    pub retry_after: Duration,
}

/// Whole seconds for a header, rounded up, so a client that waits that long is let through.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A credential's (or address's) key: the SHA-256 of what identifies it.
type Key = [u8; 32];

/// One group's keyed limiter, answering with the bucket's state on success.
type Keyed = governor::RateLimiter<
    Key,
    DefaultKeyedStateStore<Key>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// The buckets of one instance: a keyed limiter per limited group.
pub struct RateLimiter {
    limits: Limits,
    groups: HashMap<Group, Keyed>,
    last_sweep: Mutex<Instant>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        let groups = Group::ALL
            .into_iter()
            .filter_map(|group| {
                let window = limits.window_of(group).max(Duration::from_millis(1));
                let limit = NonZeroU32::new(limits.of(group))?;
                let interval = (window / limit.get()).max(Duration::from_nanos(1));
                let quota = Quota::with_period(interval)?.allow_burst(limit);
                let keyed = governor::RateLimiter::keyed(quota)
                    .with_middleware::<StateInformationMiddleware>();
                Some((group, keyed))
            })
            .collect();
        Self { limits, groups, last_sweep: Mutex::new(Instant::now()) }
    }

    /// Takes one request of `key` in `group`; `None` when the group is unlimited.
    pub fn check(&self, group: Group, key: Key) -> Option<Decision> {
        let keyed = self.groups.get(&group)?;
        self.sweep();
        let limit = self.limits.of(group);
        let decision = match keyed.check_key(&key) {
            Ok(state) => {
                let interval = state.quota().replenish_interval();
                let remaining = state.remaining_burst_capacity();
                // Full again once every used cell has come back (rounded up to whole cells).
                let reset = interval * (limit - remaining);
                Decision { allowed: true, limit, remaining, reset, retry_after: Duration::ZERO }
            }
            Err(refused) => {
                let interval = refused.quota().replenish_interval();
                let retry_after = refused.wait_time_from(keyed.clock().now());
                // The bucket is full one window after the cell that would fit next.
                let window = self.limits.window_of(group).max(interval);
                let reset = retry_after + window - interval;
                Decision { allowed: false, limit, remaining: 0, reset, retry_after }
            }
        };
        Some(decision)
    }

    /// Once a (general) window, drops every bucket that has refilled completely (forgetting a
    /// full bucket changes nothing).
    fn sweep(&self) {
        // Another request sweeping now is as good.
        let Ok(mut last) = self.last_sweep.try_lock() else { return };
        if last.elapsed() < self.limits.window {
            return;
        }
        for keyed in self.groups.values() {
            keyed.retain_recent();
            keyed.shrink_to_fit();
        }
        *last = Instant::now();
    }

    /// Buckets held now (for tests of eviction).
    pub fn len(&self) -> usize {
        self.groups.values().map(Keyed::len).sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of a request in `group`: its credential's hash, else its client address, else one
/// shared key (when the server runs without connection info, as in router-only tests). A group
/// keyed by address ignores the credential.
fn key_of(group: Group, headers: &HeaderMap, client: Option<SocketAddr>) -> Key {
    let mut hasher = Sha256::new();
    let credential =
        headers.get(axum::http::header::AUTHORIZATION).filter(|_| !group.keyed_by_address());
    match (credential, client) {
        (Some(header), _) => {
            // The token alone, so spelling the scheme differently does not open a new budget.
            let bytes = header.as_bytes();
            let token = header
                .to_str()
                .ok()
                .and_then(|value| value.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map_or(bytes, |(_, token)| token.trim().as_bytes());
            hasher.update(b"credential:");
            hasher.update(token);
        }
        (None, Some(client)) => {
            hasher.update(b"ip:");
            hasher.update(client.ip().to_string().as_bytes());
        }
        (None, None) => hasher.update(b"anonymous"),
    }
    hasher.finalize().into()
}

/// The middleware: refuses a request over its limit with 429 `rate_limit_exceeded` and
/// `Retry-After`, and puts `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
/// on every response of a limited group.
pub async fn enforce(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(group) = Group::of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let key = key_of(group, request.headers(), client);
    let Some(decision) = limiter.check(group, key) else {
        return next.run(request).await;
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        let retry_after = ceil_secs(decision.retry_after).max(1);
        let mut response = ApiError::new(
            ErrorCode::RateLimitExceeded,
            format!("too many `{}` requests; retry in {retry_after} s", group.as_str()),
        )
        .with_details(json!({
            "group": group.as_str(),
            "limit": decision.limit,
            "window_secs": ceil_secs(limiter.limits.window_of(group)),
            "retry_after_secs": retry_after,
        }))
        .into_response();
        response.headers_mut().insert("retry-after", HeaderValue::from(retry_after));
        response
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(ceil_secs(decision.reset)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn limiter(window: Duration, write: u32) -> RateLimiter {
        RateLimiter::new(Limits { write, window, ..Limits::UNLIMITED })
    }

    #[test]
    fn a_full_bucket_allows_the_limit_at_once_then_refuses() {
        let window = 60 * SECOND;
        let limiter = limiter(window, 3);
        for expected_remaining in (0..3).rev() {
            let decision = limiter.check(Group::Write, [1; 32]).unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            // Full again once each used request has come back, one per 20 s.
            assert_eq!(decision.reset, 20 * SECOND * (3 - expected_remaining));
        }
        let refused = limiter.check(Group::Write, [1; 32]).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        // One request comes back every window / limit (less the few microseconds gone by).
        assert!(refused.retry_after <= 20 * SECOND, "{refused:?}");
        assert!(refused.retry_after > 19 * SECOND, "{refused:?}");
        assert!(refused.reset <= window && refused.reset > window - SECOND, "{refused:?}");
        assert_eq!(limiter.check(Group::Read, [1; 32]), None, "reads are unlimited here");
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_fully_after_a_window() {
        let window = Duration::from_millis(300);
        let limiter = limiter(window, 3);
        for _ in 0..3 {
            assert!(limiter.check(Group::Write, [1; 32]).unwrap().allowed);
        }
        assert!(!limiter.check(Group::Write, [1; 32]).unwrap().allowed);
        // A whole window after the burst, the full limit is back, and never more than it.
        std::thread::sleep(2 * window);
        let decision = limiter.check(Group::Write, [1; 32]).unwrap();
        assert_eq!((decision.allowed, decision.remaining), (true, 2));
    }

    #[test]
    fn headers_round_seconds_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(SECOND), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }

    #[test]
    fn requests_fall_in_their_group() {
        let group = |method: Method, path: &str| Group::of(&method, path);
        assert_eq!(group(Method::GET, "/health"), None);
        assert_eq!(group(Method::GET, "/openapi.json"), None);
        assert_eq!(group(Method::GET, "/usage-agreements/ua_1"), Some(Group::Read));
        assert_eq!(group(Method::PUT, "/usage-agreements/ua_1/accept"), Some(Group::Write));
        assert_eq!(
            group(Method::POST, "/usage-agreements/ua_1/sponsored-actions/seller_claim"),
            Some(Group::Sponsored)
        );
        assert_eq!(group(Method::POST, "/v1/agents"), Some(Group::Management));
        assert_eq!(group(Method::GET, "/v1/agents/agt_1"), Some(Group::Management));
        assert_eq!(group(Method::POST, "/agents/agt_1/webhooks"), Some(Group::Management));
        assert_eq!(group(Method::GET, "/v1/agentsx"), Some(Group::Read));
        assert_eq!(group(Method::POST, "/v1/checks"), Some(Group::Checks));
        assert_eq!(group(Method::GET, "/v1/checks/chk_1"), Some(Group::Checks));
        assert_eq!(group(Method::POST, "/risk/check"), Some(Group::Checks));
        assert_eq!(group(Method::POST, "/v1/wallets"), Some(Group::Write));
        assert_eq!(group(Method::PUT, "/agents/agt_1/policies"), Some(Group::Governance));
        assert_eq!(group(Method::POST, "/agents/agt_1/circuit-break"), Some(Group::Governance));
        assert_eq!(group(Method::GET, "/approvals"), Some(Group::Governance));
        assert_eq!(group(Method::POST, "/approvals/apr_1/decide"), Some(Group::Governance));
        assert_eq!(group(Method::GET, "/v1/audit"), Some(Group::Governance));
        assert_eq!(group(Method::POST, "/v1/mandates"), Some(Group::Governance));
        assert_eq!(group(Method::PUT, "/v1/mandates/mdt_1"), Some(Group::Governance));
        assert_eq!(group(Method::POST, "/v1/mandates/mdt_1/revoke"), Some(Group::Governance));
        assert_eq!(group(Method::POST, "/agents/register"), Some(Group::Registration));
        assert_eq!(group(Method::POST, "/agents/claim"), Some(Group::Management));
        assert_eq!(group(Method::POST, "/agents/agt_1/regenerate-key"), Some(Group::Management));
    }

    #[test]
    fn keys_and_groups_have_their_own_buckets_and_idle_ones_are_evicted() {
        let limiter = RateLimiter::new(Limits {
            window: Duration::from_millis(50),
            read: 1,
            write: 1,
            management: 1,
            ..Limits::UNLIMITED
        });
        let (a, b) = ([1; 32], [2; 32]);
        assert!(limiter.check(Group::Write, a).unwrap().allowed);
        assert!(!limiter.check(Group::Write, a).unwrap().allowed);
        assert!(limiter.check(Group::Write, b).unwrap().allowed);
        assert!(limiter.check(Group::Read, a).unwrap().allowed);
        assert_eq!(limiter.check(Group::Sponsored, a), None);
        assert_eq!(limiter.len(), 3);
        std::thread::sleep(Duration::from_millis(120));
        // The next request sweeps every refilled bucket away, keeping only its own.
        assert!(limiter.check(Group::Management, a).unwrap().allowed);
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn the_key_is_the_credential_else_the_address() {
        let key_of = |headers: &HeaderMap, client| key_of(Group::Write, headers, client);
        let mut headers = HeaderMap::new();
        let client: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let other: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        assert_ne!(key_of(&headers, Some(client)), key_of(&headers, Some(other)));
        assert_eq!(
            key_of(&headers, Some(client)),
            key_of(&headers, Some("10.0.0.1:1".parse().unwrap()))
        );
        headers.insert("authorization", HeaderValue::from_static("Bearer pk_test_a"));
        let with_a = key_of(&headers, Some(client));
        assert_eq!(with_a, key_of(&headers, Some(other)));
        headers.insert("authorization", HeaderValue::from_static("bearer  pk_test_a"));
        assert_eq!(with_a, key_of(&headers, Some(client)));
        headers.insert("authorization", HeaderValue::from_static("Bearer pk_test_b"));
        assert_ne!(with_a, key_of(&headers, Some(client)));
    }

    #[test]
    fn registrations_are_keyed_by_the_address_whatever_the_credential() {
        let key_of = |headers: &HeaderMap, client| key_of(Group::Registration, headers, client);
        let client: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let other: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let bare = key_of(&HeaderMap::new(), Some(client));
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer made_up_1"));
        assert_eq!(key_of(&headers, Some(client)), bare);
        headers.insert("authorization", HeaderValue::from_static("Bearer made_up_2"));
        assert_eq!(key_of(&headers, Some(client)), bare);
        assert_ne!(key_of(&headers, Some(other)), bare);
    }

    #[test]
    fn the_registration_limit_has_a_window_of_its_own() {
        let limiter = RateLimiter::new(Limits {
            window: 60 * SECOND,
            write: 1,
            registration: 2,
            registration_window: 3_600 * SECOND,
            ..Limits::UNLIMITED
        });
        for _ in 0..2 {
            assert!(limiter.check(Group::Registration, [1; 32]).unwrap().allowed);
        }
        let refused = limiter.check(Group::Registration, [1; 32]).unwrap();
        assert!(!refused.allowed);
        // One registration comes back every 30 minutes, not every 30 seconds.
        assert!(refused.retry_after > 1_799 * SECOND, "{refused:?}");
        assert!(refused.reset <= 3_600 * SECOND, "{refused:?}");
        // Other groups keep their own budget.
        assert!(limiter.check(Group::Write, [1; 32]).unwrap().allowed);
    }
}
