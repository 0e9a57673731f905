//! The connection under hyper: answers hyper's own refusals in the API's error shape and
//! closes with a linger.
//!
//! hyper answers a request it cannot parse (a bad `Content-Length`, a URI or a head too large)
//! itself, before any service sees it, with an empty body and no hook to change it. Every refusal
//! the router sends carries a JSON body, so an empty-bodied 400, 414 or 431 head written to the
//! socket can only be hyper's: [`ConnIo`] swaps it for the same status with our JSON body.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The longest request target (path and query) served; longer ones get 414 `uri_too_long`.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The largest request head (request line and headers); larger ones get 431
/// `headers_too_large`.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// The error code of a 414.
pub const URI_TOO_LONG: &str = "uri_too_long";
/// The error code of a 431.
pub const HEADERS_TOO_LARGE: &str = "headers_too_large";

/// How long a closing connection keeps reading (and discarding) what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// How much a closing connection discards before it gives up on the client.
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// The error code and message for a refusal made at the protocol level.
pub fn protocol_refusal(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::URI_TOO_LONG => (URI_TOO_LONG, "the request target is too long"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            (HEADERS_TOO_LARGE, "the request headers are too large")
        }
        _ => ("bad_request", "the request is not valid HTTP/1.1 (request line or framing headers)"),
    }
}

/// The error body `{"error":{"code","message"}}` of a protocol-level refusal.
pub(super) fn refusal_json(status: StatusCode) -> String {
    let (code, message) = protocol_refusal(status);
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

/// A TCP connection as hyper sees it.
#[derive(Debug)]
pub(super) struct ConnIo {
    stream: TcpStream,
    /// Our answer in place of hyper's empty refusal, and how much of it is written.
    replacement: Vec<u8>,
    written: usize,
    /// Set once the write side is shut: the deadline of the linger.
    linger: Option<Pin<Box<Sleep>>>,
    discarded: usize,
}

impl ConnIo {
    pub(super) fn new(stream: TcpStream) -> ConnIo {
        ConnIo { stream, replacement: Vec::new(), written: 0, linger: None, discarded: 0 }
    }

    /// Writes what is left of the replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.replacement.len() {
            let n = ready!(
                Pin::new(&mut self.stream).poll_write(cx, &self.replacement[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if let Some(replacement) = replace_refusal(buf) {
            this.replacement = replacement;
            this.written = 0;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    /// Shuts the write side, then reads and discards what the client still sends (until it
    /// closes, [`LINGER`] passes or [`LINGER_BYTES`] arrive): closing a socket with unread
    /// bytes sends a reset, which can destroy our answer before the client reads it.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            ready!(this.poll_replacement(cx))?;
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    this.discarded += buf.filled().len();
                    if this.discarded > LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    let linger = this.linger.as_mut().expect("set above");
                    return linger.as_mut().poll(cx).map(Ok);
                }
            }
        }
    }
}

/// Our answer in place of `head` when `head` is hyper's own refusal: a whole response head with
/// status 400, 414 or 431 and `content-length: 0`. hyper's headers (its `date`) are kept.
fn replace_refusal(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ").or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    let status = StatusCode::from_bytes(rest.get(..3)?.as_bytes()).ok()?;
    let refused = [
        StatusCode::BAD_REQUEST,
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ];
    let header_block = text.strip_suffix("\r\n\r\n")?;
    if !refused.contains(&status) || header_block.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = header_block.split("\r\n");
    let status_line = lines.next()?;
    let mut empty = false;
    let mut kept = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => empty = value.trim() == "0",
            "content-type" => return None,
            "connection" => {}
            _ => kept.push(line),
        }
    }
    if !empty {
        return None;
    }
    let body = refusal_json(status);
    let mut answer = format!("{status_line}\r\n");
    for line in kept {
        answer.push_str(line);
        answer.push_str("\r\n");
    }
    answer.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(answer.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_refusals_are_replaced_and_answers_are_not() {
        let canned = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 19:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(replace_refusal(canned).unwrap()).unwrap();
        assert!(replaced.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(replaced.contains("\r\ndate: Sun, 06 Dec 2026 19:00:00 GMT\r\n"));
        assert!(replaced.contains("\r\nconnection: close\r\n"));
        assert!(replaced.ends_with(r#"{"error":{"code":"headers_too_large","message":"the request headers are too large"}}"#));

        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(replace_refusal(ours).is_none());
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert!(replace_refusal(with_body).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(replace_refusal(ok).is_none());
    }
}
