//! Serving the API router over HTTP/1.1: our own accept loop over hyper, so that what happens
//! on the connection itself is ours to decide. Three things axum's `serve` leaves to hyper:
//!
//! - a refusal answered before the request body was read (401, 413, 415, …) drains that body
//!   before the connection is reused, or says `Connection: close` when it cannot ([`drain`]);
//! - hyper's own refusals of a request it cannot parse (a bad `Content-Length`, a URI or a head
//!   too large) answer in the API's one error shape instead of an empty body ([`conn`]);
//! - a connection that closes with request bytes still unread lingers (shuts its write side,
//!   reads and discards for a moment) so the client reads our answer instead of a reset.

mod conn;
mod drain;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use conn::{HEADERS_TOO_LARGE, MAX_HEAD_BYTES, MAX_URI_BYTES, URI_TOO_LONG, protocol_refusal};

/// How long a client has to send a request head once it starts one (and how long an idle
/// keep-alive connection stays open).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets the
/// open connections finish their current request. `max_body_bytes` bounds how much of an unread
/// request body is drained after an early refusal.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_body_bytes: usize,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        // One flat buffer per write, so hyper's own refusal head arrives in one piece.
        .writev(false);
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: axum::http::Request<Incoming>| {
            let router = router.clone();
            async move {
                let mut request = request;
                request.extensions_mut().insert(ConnectInfo(remote));
                Ok::<_, Infallible>(drain::call(router, request, max_body_bytes).await)
            }
        });
        let connection = builder.serve_connection(TokioIo::new(conn::ConnIo::new(stream)), service);
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => log_end(served, remote),
                _ = async { closing.wait_for(|closing| *closing).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await, remote);
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

/// A failed `accept`: a client that went away is nothing; anything else (out of file
/// descriptors) is logged and waited out briefly rather than spun on.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn log_end(served: Result<(), hyper::Error>, remote: SocketAddr) {
    if let Err(error) = served {
        tracing::debug!(%error, %remote, "connection ended with an error");
    }
}
