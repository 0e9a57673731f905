//! Rate limits per credential and route group, as a middleware layer over the whole router.
//!
//! Each request is keyed by the SHA-256 of its bearer token (so per credential, with the
//! credential itself never kept), or, with no `Authorization` header, by the client's IP
//! address; and it falls in one route group ([`Group`]) with its own limit per window. The
//! limiter is the generic cell rate algorithm (a token bucket kept as one timestamp per key):
//! `limit` requests may come at once, and one more each `window / limit` after that, so a client
//! that waits a whole window has its full limit back. Tokens are not checked here (that costs a
//! store read): an unknown token gets a budget of its own, and its requests end in 401.
//!
//! State is in memory and per instance: several instances behind one balancer each enforce
//! their own limit. Buckets that have refilled completely are dropped once a window, so memory
//! holds only keys seen within the last window.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
}

impl Group {
    /// The group's name, as the 429 body names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Read => "read",
            Group::Write => "write",
            Group::Sponsored => "sponsored",
            Group::Management => "management",
        }
    }

    /// The group of a request, or `None` for the exempt routes (`/health`, `/healthz`,
    /// `/readyz`, `/metrics`, `/openapi.json`), which probes and scrapers call often and which
    /// touch no account.
    pub fn of(method: &Method, path: &str) -> Option<Group> {
        if matches!(path, "/health" | "/healthz" | "/readyz" | "/metrics" | "/openapi.json") {
            return None;
        }
        if path.contains("/sponsored-actions/") {
            return Some(Group::Sponsored);
        }
        let webhooks = path.starts_with("/agents/") && path.contains("/webhooks");
        if path == "/v1/agents" || path.starts_with("/v1/agents/") || webhooks {
            return Some(Group::Management);
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Some(Group::Read)
        } else {
            Some(Group::Write)
        }
    }
}

/// Limits per group, as configured: requests per `window`; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The window every limit is stated over.
    pub window: Duration,
    /// Limit of [`Group::Read`].
    pub read: u32,
    /// Limit of [`Group::Write`].
    pub write: u32,
    /// Limit of [`Group::Sponsored`].
    pub sponsored: u32,
    /// Limit of [`Group::Management`].
    pub management: u32,
}

impl Limits {
    /// No limit on any group.
    pub const UNLIMITED: Limits =
        Limits { window: Duration::from_secs(60), read: 0, write: 0, sponsored: 0, management: 0 };

    /// The limit of `group` per window (0 = unlimited).
    pub fn of(&self, group: Group) -> u32 {
        match group {
            Group::Read => self.read,
            Group::Write => self.write,
            Group::Sponsored => self.sponsored,
            Group::Management => self.management,
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

/// One step of the generic cell rate algorithm: a bucket whose theoretical arrival time is
/// `tat` (time since the limiter's epoch) meets a request at `now`. Returns the decision and
/// the new `tat` (unchanged when refused). `limit` must be at least 1.
///
/// Each request advances `tat` by `window / limit`; a request is refused when that would put
/// `tat` more than one `window` ahead of `now`.
pub fn take(tat: Duration, now: Duration, window: Duration, limit: u32) -> (Decision, Duration) {
    let interval = (window / limit.max(1)).max(Duration::from_nanos(1));
    let start = tat.max(now);
    let ahead = start - now + interval;
    if ahead > window {
        let retry_after = ahead - window;
        let decision =
            Decision { allowed: false, limit, remaining: 0, reset: start - now, retry_after };
        return (decision, tat);
    }
    let remaining = ((window - ahead).as_nanos() / interval.as_nanos()) as u32;
    let decision =
        Decision { allowed: true, limit, remaining, reset: ahead, retry_after: Duration::ZERO };
    (decision, start + interval)
}

/// Whole seconds for a header, rounded up, so a client that waits that long is let through.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The buckets of one instance.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    epoch: Instant,
    state: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    tats: HashMap<(Group, [u8; 32]), Duration>,
    last_sweep: Duration,
}

impl RateLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits, epoch: Instant::now(), state: Mutex::new(Buckets::default()) }
    }

    /// Takes one request of `key` in `group`; `None` when the group is unlimited.
    pub fn check(&self, group: Group, key: [u8; 32]) -> Option<Decision> {
        let limit = self.limits.of(group);
        if limit == 0 {
            return None;
        }
        let window = self.limits.window.max(Duration::from_millis(1));
        let now = self.epoch.elapsed();
        // A poisoned lock only means another request panicked mid-update; the map is still a
        // map of timestamps, so carry on with it.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.saturating_sub(state.last_sweep) >= window {
            // A bucket whose `tat` has passed is full: forgetting it changes nothing.
            state.tats.retain(|_, tat| *tat > now);
            state.last_sweep = now;
        }
        let tat = state.tats.get(&(group, key)).copied().unwrap_or(now);
        let (decision, tat) = take(tat, now, window, limit);
        if decision.allowed {
            state.tats.insert((group, key), tat);
        }
        Some(decision)
    }

    /// Buckets held now (for tests of eviction).
    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |state| state.tats.len())
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of a request: its credential's hash, else its client address, else one shared key
/// (when the server runs without connection info, as in router-only tests).
fn key_of(headers: &HeaderMap, client: Option<SocketAddr>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    match (headers.get(axum::http::header::AUTHORIZATION), client) {
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
    let key = key_of(request.headers(), client);
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
            "window_secs": ceil_secs(limiter.limits.window),
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

    #[test]
    fn a_full_bucket_allows_the_limit_at_once_then_refuses() {
        let window = 60 * SECOND;
        let now = 100 * SECOND;
        let mut tat = now;
        for expected_remaining in (0..3).rev() {
            let (decision, next) = take(tat, now, window, 3);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            tat = next;
        }
        let (refused, unchanged) = take(tat, now, window, 3);
        assert!(!refused.allowed);
        assert_eq!(unchanged, tat);
        assert_eq!(refused.remaining, 0);
        // One request comes back every window / limit.
        assert_eq!(refused.retry_after, 20 * SECOND);
        assert_eq!(refused.reset, window);
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_fully_after_a_window() {
        let window = 60 * SECOND;
        let mut tat = Duration::ZERO;
        for _ in 0..3 {
            tat = take(tat, Duration::ZERO, window, 3).1;
        }
        // 20 s later, exactly one request fits.
        let (decision, after) = take(tat, 20 * SECOND, window, 3);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 0);
        assert!(!take(after, 20 * SECOND, window, 3).0.allowed);
        // A whole window after the burst, the full limit is back.
        let (decision, _) = take(tat, 60 * SECOND, window, 3);
        assert_eq!((decision.allowed, decision.remaining), (true, 2));
        // An idle bucket never saves up more than the limit.
        let (decision, _) = take(tat, 1_000 * SECOND, window, 3);
        assert_eq!(decision.remaining, 2);
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
    }

    #[test]
    fn keys_and_groups_have_their_own_buckets_and_idle_ones_are_evicted() {
        let limiter = RateLimiter::new(Limits {
            window: Duration::from_millis(50),
            read: 1,
            write: 1,
            sponsored: 0,
            management: 1,
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
}
