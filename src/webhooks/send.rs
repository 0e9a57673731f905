//! One delivery attempt: a signed `POST` to the vetted address only, no proxy, no redirects, a
//! bounded time, and at most the first KiB of the answer kept.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};

use super::schedule::parse_retry_after;

/// How much of a response body an attempt keeps.
pub const BODY_PREFIX_BYTES: usize = 1_024;

/// The `user-agent` of every delivery.
pub const AGENT: &str = concat!("Pactum-Webhooks/", env!("CARGO_PKG_VERSION"));

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// Why there was no answer (`timeout`, `connect: …`, `address_not_allowed: …`).
    pub error: Option<String>,
    /// Milliseconds from sending to the end of the kept body (or the failure).
    pub latency_ms: u64,
    /// The first bytes of the response body, lossily decoded.
    pub body_prefix: Option<String>,
    /// The receiver's `Retry-After`, as a delay.
    pub retry_after: Option<Duration>,
}

impl Outcome {
    /// An attempt that could not start (the address was refused); nothing was sent.
    pub fn refused(reason: String) -> Self {
        Self {
            status: None,
            error: Some(reason),
            latency_ms: 0,
            body_prefix: None,
            retry_after: None,
        }
    }

    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// A 410 Gone: the receiver asks never to be called again.
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// The headers of a signed message.
#[derive(Debug, Clone)]
pub struct Signed {
    /// `webhook-id`: the same on every attempt of a delivery.
    pub id: String,
    /// `webhook-timestamp`: unix seconds of this attempt.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
}

/// Posts `body` to `url`, connecting to `address` (already vetted) and nowhere else.
pub async fn post(
    url: &Url,
    address: SocketAddr,
    signed: &Signed,
    body: &[u8],
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let elapsed = |started: Instant| started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    let client = match client_for(url, address, timeout) {
        Ok(client) => client,
        Err(error) => return Outcome::refused(format!("client: {}", describe(&error))),
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
    for (name, value) in [
        ("webhook-id", signed.id.as_str()),
        ("webhook-timestamp", &signed.timestamp.to_string()),
        ("webhook-signature", signed.signature.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    let sent = client.post(url.clone()).headers(headers).body(body.to_vec()).send().await;
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => {
            return Outcome {
                status: None,
                error: Some(describe(&error)),
                latency_ms: elapsed(started),
                body_prefix: None,
                retry_after: None,
            };
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let mut prefix = Vec::new();
    let mut error = None;
    while prefix.len() < BODY_PREFIX_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => prefix.extend_from_slice(&chunk),
            Ok(None) => break,
            // The status arrived: the attempt counts by it; a body cut short is noted.
            Err(e) => {
                error = Some(format!("body: {}", describe(&e)));
                break;
            }
        }
    }
    prefix.truncate(BODY_PREFIX_BYTES);
    Outcome {
        status: Some(status),
        error,
        latency_ms: elapsed(started),
        body_prefix: Some(String::from_utf8_lossy(&prefix).into_owned()),
        retry_after,
    }
}

/// A client for one attempt: pinned to `address` for `url`'s host, no proxy (a proxy would
/// resolve the host itself), no redirects (a redirect could lead anywhere).
fn client_for(
    url: &Url,
    address: SocketAddr,
    timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(0);
    if let Some(host) = url.host_str() {
        builder = builder.resolve(host, address);
    }
    builder.build()
}

/// A transport error as a short reason, without the URL (it may hold the owner's tokens).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        return "timeout".to_owned();
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut text = kind.to_owned();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_outcomes() {
        let answered = |status| Outcome { status: Some(status), ..Outcome::refused(String::new()) };
        assert!(answered(204).succeeded());
        assert!(!answered(500).succeeded());
        assert!(answered(410).gone());
        assert!(!Outcome::refused("timeout".into()).succeeded());
    }
}
