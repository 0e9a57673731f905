//! What an endpoint's HTTP answer means: a JSON-RPC answer (a result or an error response,
//! passed to the caller as is), a transport failure worth another endpoint, or a refusal.

use std::time::Duration;

use alloy::rpc::json_rpc::ResponsePacket;
use alloy::transports::{TransportError, TransportErrorKind};

/// What one HTTP exchange with an endpoint came to.
#[derive(Debug)]
pub enum Outcome {
    /// A JSON-RPC answer, a result or an error response: the endpoint is healthy.
    Answer(ResponsePacket),
    /// The endpoint could not answer (timeout, connection, 408/429/5xx, garbage): try another.
    Unavailable(TransportError),
    /// A refusal without a JSON-RPC body (another 4xx): sending it again changes nothing.
    Refused(TransportError),
}

/// Classifies an HTTP response from an endpoint by its status and body.
pub fn classify_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Outcome {
    let parsed = serde_json::from_slice::<ResponsePacket>(body);
    if (200..300).contains(&status) {
        return match parsed {
            Ok(response) => Outcome::Answer(response),
            // Something in front of the node answered instead of it.
            Err(err) => {
                Outcome::Unavailable(TransportError::deser_err(err, String::from_utf8_lossy(body)))
            }
        };
    }
    // Some providers send JSON-RPC errors with a non-2xx status; the answer is in the body.
    if let Ok(response) = parsed
        && response.is_error()
    {
        return Outcome::Answer(response);
    }
    let error = TransportErrorKind::http_error_with_retry_after(
        status,
        String::from_utf8_lossy(body).into_owned(),
        retry_after,
    );
    if status == 408 || status == 429 || status >= 500 {
        Outcome::Unavailable(error)
    } else {
        Outcome::Refused(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_rpc_error_is_an_answer_whatever_the_status() {
        let body = br#"{"jsonrpc":"2.0","id":1,"error":{"code":3,"message":"execution reverted"}}"#;
        for status in [200, 400, 500] {
            match classify_response(status, body, None) {
                Outcome::Answer(response) => assert!(response.is_error()),
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_result_is_an_answer() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":"0x7a69"}"#;
        assert!(matches!(classify_response(200, body, None), Outcome::Answer(r) if r.is_success()));
    }

    #[test]
    fn overload_and_server_errors_are_transport_failures() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_response(status, b"busy", None), Outcome::Unavailable(_)),
                "{status}"
            );
        }
        // A 200 that is not JSON-RPC came from something in front of the node.
        assert!(matches!(classify_response(200, b"<html>", None), Outcome::Unavailable(_)));
    }

    #[test]
    fn other_client_errors_are_passed_through() {
        for status in [400, 401, 403, 404] {
            assert!(
                matches!(classify_response(status, b"no", None), Outcome::Refused(_)),
                "{status}"
            );
        }
    }
}
