//! Per request: a request id, a tracing span carrying it, and the latency histogram.
//!
//! [`track`] is the outermost layer: it takes the client's `X-Request-Id` when it is a plain
//! token (so a caller's own id follows the request through our logs) or makes one, puts it in
//! the request's extensions and on the response, and records the latency by route template.
//! [`span`] is `TraceLayer`'s span: at `INFO`, so that every line logged while the request is
//! handled carries `request_id` whatever the log level.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics;

/// The header a request id travels in, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest client-given request id kept; a longer one is replaced.
const MAX_CLIENT_ID: usize = 128;

/// The id of one request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The client's id if it is 1–128 characters of letters, digits and `-_.:`, else a fresh one
/// (32 hex digits).
fn request_id(request: &Request) -> String {
    let given = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    let plain = |id: &&str| {
        !id.is_empty()
            && id.len() <= MAX_CLIENT_ID
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    given.filter(plain).map_or_else(|| format!("{:032x}", rand::random::<u128>()), str::to_owned)
}

/// The route template a request matched (`/v1/agents/{agent_id}`), or `unmatched`.
fn route(request: &Request) -> String {
    request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned()
}

/// The middleware: request id in and out, latency into `pactum_http_request_seconds`, and the
/// route the JSON-RPC calls made meanwhile are counted against.
pub async fn track(mut request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let (method, route) = (request.method().clone(), route(&request));
    request.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let mut response = metrics::serving(route.clone(), next.run(request)).await;
    let seconds = started.elapsed().as_secs_f64();
    metrics::http_request(method.as_str(), &route, response.status().as_u16(), seconds);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// `TraceLayer`'s span for `request`: its id, method and route template (never the query or a
/// header, which may carry a credential).
pub fn span(request: &Request) -> tracing::Span {
    let id = request.extensions().get::<RequestId>().map_or("", |id| id.0.as_str());
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = %route(request),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &str) -> Request {
        Request::builder().header(REQUEST_ID_HEADER, value).body(Default::default()).unwrap()
    }

    #[test]
    fn a_plain_client_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id(&with_header("abc-123_x.y:z")), "abc-123_x.y:z");
        let made = request_id(&Request::new(Default::default()));
        assert_eq!(made.len(), 32);
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
        for odd in ["has space", "quote\"", &"a".repeat(MAX_CLIENT_ID + 1), ""] {
            let id = request_id(&with_header(odd));
            assert_ne!(id, odd);
            assert_eq!(id.len(), 32);
        }
    }
}
