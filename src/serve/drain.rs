//! Every request through the router, with its unread body drained afterwards.
//!
//! A handler may answer before it reads the body (a 401 for a bad key, a 415, a 413 for a
//! declared length over the limit). hyper then gives up on the connection if the rest of the body
//! has not already arrived: the client's next request on it fails with a broken pipe, and the
//! answer never said `Connection: close`. So the body is lent to the router and handed back when
//! the router drops it; what is left is read and discarded (bounded by the body limit and a short
//! time) before the connection is reused, and when that is not possible the answer says
//! `Connection: close` and the connection closes with a linger ([`super::conn`]). The answer
//! goes out once the drain ends: hyper sends a response only after its service returns, and a
//! client that holds its body until it sees an answer waits at most [`DRAIN_TIME`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::sync::oneshot;
use tower::Service;

use super::conn::{MAX_URI_BYTES, refusal_json};

/// How long the rest of an unread body may take to arrive before the connection is given up.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Answers `request` with `router`, then drains what the router left of its body.
pub(super) async fn call(
    mut router: Router,
    request: Request<Incoming>,
    max_body_bytes: usize,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (back, mut returned) = oneshot::channel();
    let lent = Lent { body: Some(body), back: Some(back) };
    let target = parts.uri.path_and_query().map_or(0, |target| target.as_str().len());
    let mut response = if target > MAX_URI_BYTES {
        drop(lent);
        let mut response = Response::new(Body::from(refusal_json(StatusCode::URI_TOO_LONG)));
        *response.status_mut() = StatusCode::URI_TOO_LONG;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    } else {
        let request = Request::from_parts(parts, Body::new(lent));
        let _ = std::future::poll_fn(|cx| {
            <Router as Service<Request<Body>>>::poll_ready(&mut router, cx)
        })
        .await;
        match router.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    };
    // The router has answered; if it dropped the body, it is back here.
    let Ok(mut body) = returned.try_recv() else { return response };
    if body.is_end_stream() {
        return response;
    }
    // A client waiting for `100 Continue` sends no body unless asked; asking now only to
    // discard it would waste its upload.
    let drained = !expects_continue && drain(&mut body, max_body_bytes).await;
    if !drained {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and discards the rest of `body`; false if it is longer than `limit`, does not end
/// within [`DRAIN_TIME`] or fails.
async fn drain(body: &mut Incoming, limit: usize) -> bool {
    if body.size_hint().lower() > limit as u64 {
        return false;
    }
    let read = async {
        let mut read = 0usize;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
        {
            let Ok(frame) = frame else { return false };
            read += frame.data_ref().map_or(0, |data| data.len());
            if read > limit {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read).await.unwrap_or(false)
}

/// The request body as the router sees it: hyper's body, handed back on drop.
struct Lent {
    body: Option<Incoming>,
    back: Option<oneshot::Sender<Incoming>>,
}

impl HttpBody for Lent {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut().body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let (Some(body), Some(back)) = (self.body.take(), self.back.take()) {
            let _ = back.send(body);
        }
    }
}
