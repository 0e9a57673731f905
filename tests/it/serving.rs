//! The connection itself, driven with a raw TCP client: a refusal answered before the request
//! body arrived leaves a keep-alive connection usable (or says `Connection: close` and closes
//! cleanly), and the refusals hyper makes while parsing a request answer in the API's one error
//! shape.

use std::time::Duration;

use crate::support::service::{Harness, OWNER_KEY};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the client holds its body back, as a slow client would: long enough for a server
/// that answers without reading the body to have answered already.
const BODY_DELAY: Duration = Duration::from_millis(300);
/// How long any read may take before the test fails.
const READ_LIMIT: Duration = Duration::from_secs(20);

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// The body as the API's error shape; returns its code.
    fn error_code(&self) -> String {
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        let body: Value = serde_json::from_slice(&self.body).expect("a JSON body");
        let error = body["error"].as_object().unwrap_or_else(|| panic!("error shape: {body}"));
        assert!(error.keys().all(|k| ["code", "message", "details"].contains(&k.as_str())));
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        error["code"].as_str().expect("a code").to_owned()
    }
}

/// A raw connection with what has been read but not yet parsed.
struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    async fn connect(h: &Harness) -> Raw {
        let addr = h.service.as_ref().expect("running").local_addr();
        let stream = TcpStream::connect(addr).await.expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream, buffer: Vec::new() }
    }

    /// Sends `head`, waits (up to [`BODY_DELAY`]) for the server to answer early, then sends
    /// `body` in a second write.
    async fn send_split(&mut self, head: &str, body: &[u8]) {
        self.stream.write_all(head.as_bytes()).await.expect("head written");
        self.stream.flush().await.expect("flushed");
        let mut chunk = [0u8; 4096];
        if let Ok(read) = tokio::time::timeout(BODY_DELAY, self.stream.read(&mut chunk)).await {
            self.buffer.extend_from_slice(&chunk[..read.expect("reads")]);
        }
        self.stream.write_all(body).await.expect("body written");
        self.stream.flush().await.expect("flushed");
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let read = tokio::time::timeout(READ_LIMIT, self.stream.read(&mut chunk))
            .await
            .expect("the server answers in time")?;
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(read)
    }

    /// Reads one whole response.
    async fn answer(&mut self) -> std::io::Result<Answer> {
        let head_end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = String::from_utf8(self.buffer[..head_end].to_vec()).expect("an ASCII head");
        let mut lines = head.trim_end().split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().expect("a status");
        let headers: Vec<(String, String)> = lines
            .map(|l| l.split_once(':').expect("a header line"))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().expect("a length"));
        while self.buffer.len() < head_end + length {
            if self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        Ok(Answer { status, headers, body })
    }

    /// Reads until the server closes; panics on a reset or on more bytes.
    async fn clean_eof(&mut self) {
        assert!(self.buffer.is_empty(), "bytes after the answer");
        assert_eq!(self.fill().await.expect("a clean close, not a reset"), 0, "EOF");
    }
}

/// A refused request whose body comes in a second segment; the connection is then either
/// reusable or closed cleanly, as the first answer says.
async fn refused_then_reused(h: &Harness, head: &str, body: &[u8]) -> (Answer, bool) {
    let mut raw = Raw::connect(h).await;
    raw.send_split(head, body).await;
    let first = raw.answer().await.expect("the refusal is read");
    if first.closes() {
        raw.clean_eof().await;
        return (first, false);
    }
    for _ in 0..3 {
        raw.stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: pactum\r\n\r\n")
            .await
            .expect("the connection is still writable");
        let next = raw.answer().await.expect("a follow-up on the same connection is answered");
        assert_eq!(next.status, 200, "{next:?}");
    }
    (first, true)
}

fn post_head(path: &str, auth: &str, content_type: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: pactum\r\nAuthorization: Bearer {auth}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn an_early_refusal_leaves_the_connection_usable() {
    let h = Harness::start().await;
    let body = br#"{"name":"slow-client"}"#;

    let head = post_head("/v1/agents", "ak_garbage", "application/json", body.len());
    let (answer, reused) = refused_then_reused(&h, &head, body).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.error_code(), "invalid_credential");
    assert!(reused, "a small unread body is drained, the connection kept");

    let head = post_head("/v1/agents", OWNER_KEY, "text/plain", body.len());
    let (answer, reused) = refused_then_reused(&h, &head, body).await;
    assert_eq!(answer.status, 415, "{answer:?}");
    assert_eq!(answer.error_code(), "unsupported_media_type");
    assert!(reused, "a small unread body is drained, the connection kept");

    // Just over the limit: what the handler left is small, so either outcome is fine.
    let over = vec![b' '; 65_536 + 1000];
    let head = post_head("/v1/agents", OWNER_KEY, "application/json", over.len());
    let (answer, _) = refused_then_reused(&h, &head, &over).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.error_code(), "payload_too_large");

    // Far over the limit: not worth draining, so the answer says so and the close is clean.
    let big = vec![b' '; 4 * 65_536];
    let head = post_head("/v1/agents", OWNER_KEY, "application/json", big.len());
    let (answer, reused) = refused_then_reused(&h, &head, &big).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.error_code(), "payload_too_large");
    assert!(!reused && answer.closes(), "{answer:?}");

    // And the refused writes changed nothing.
    let agents = h.call(reqwest::Method::GET, "/v1/agents", Some(OWNER_KEY), None).await;
    assert!(!agents.1.to_string().contains("slow-client"), "{}", agents.1);
}

/// Sends `request` whole and expects a refusal with `status` and `code`; then a clean close
/// (a request that could not be framed leaves nothing to keep) or, if the answer keeps the
/// connection, a follow-up answered on it.
async fn protocol_refusal(h: &Harness, request: &[u8], status: u16, code: &str, closes: bool) {
    let mut raw = Raw::connect(h).await;
    raw.stream.write_all(request).await.expect("written");
    let answer = raw.answer().await.expect("an answer");
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.error_code(), code);
    assert_eq!(answer.closes(), closes, "{answer:?}");
    if closes {
        raw.clean_eof().await;
    } else {
        raw.stream.write_all(b"GET /health HTTP/1.1\r\nHost: pactum\r\n\r\n").await.unwrap();
        assert_eq!(raw.answer().await.expect("a follow-up answer").status, 200);
    }
}

#[tokio::test]
async fn protocol_refusals_answer_in_the_error_shape() {
    let h = Harness::start().await;

    let bad_length = b"POST /v1/agents HTTP/1.1\r\nHost: pactum\r\nContent-Length: ten\r\n\r\n{}";
    protocol_refusal(&h, bad_length, 400, "bad_request", true).await;
    let two_lengths =
        b"POST /v1/agents HTTP/1.1\r\nHost: pactum\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}";
    protocol_refusal(&h, two_lengths, 400, "bad_request", true).await;

    let long_uri = format!("GET /health?{} HTTP/1.1\r\nHost: pactum\r\n\r\n", "a".repeat(9000));
    protocol_refusal(&h, long_uri.as_bytes(), 414, "uri_too_long", false).await;

    let big_head = format!(
        "GET /health HTTP/1.1\r\nHost: pactum\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    protocol_refusal(&h, big_head.as_bytes(), 431, "headers_too_large", true).await;
}
