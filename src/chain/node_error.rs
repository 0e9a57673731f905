//! What a node's error means for the relayer: the one place where the wording of node errors from
//! `eth_sendRawTransaction`, `eth_estimateGas` and `eth_call` is matched, so that retry, nonce
//! and fee logic branch on [`NodeError`] variants and never on strings. The watcher's question,
//! whether the node serves a method at all ([`is_unsupported_method`]), is answered here too.
//!
//! The phrases come from geth (and op-geth, which Base runs), reth (and op-reth), Nethermind,
//! Erigon, Besu and anvil. Nodes word the same condition differently and change wording between
//! releases; a phrase missing here shows up as [`NodeError::Rejected`] with the node's message.

use alloy::primitives::Bytes;
use alloy::rpc::json_rpc::ErrorPayload;
use alloy::transports::{RpcError, TransportError, TransportErrorKind};

use crate::chain::revert::decode_revert;

/// A node's refusal, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The node already holds this very transaction (same hash): an earlier send reached it, so
    /// the send has in effect succeeded.
    #[error("the node already has this transaction")]
    AlreadyKnown,
    /// The sender's nonce is past this transaction's: a transaction with this nonce is already
    /// mined, this one or another.
    #[error("nonce too low")]
    NonceTooLow,
    /// The node wants higher fees for this transaction: a replacement below the required bump
    /// over the pending one, fees under the pool's minimum, or (anvil) a fee cap under the base
    /// fee. Raising both fee fields is the answer to each.
    #[error("transaction underpriced")]
    ReplacementUnderpriced,
    /// The sender cannot pay `gas × fee cap + value`.
    #[error("insufficient funds for gas * price + value")]
    InsufficientFunds,
    /// The call or the gas estimate reverted.
    #[error("execution reverted: {reason}")]
    Reverted {
        /// The revert data, when the node returned it.
        data: Option<Bytes>,
        /// [`decode_revert`] of the data, or the node's message when there is no data.
        reason: String,
    },
    /// The node could not be reached or asked us to come back later: connection refused or
    /// reset, timeout, HTTP 5xx, rate limits (HTTP 429 and their JSON-RPC equivalents), a full
    /// transaction pool.
    #[error("node unavailable: {0}")]
    Unavailable(String),
    /// Any other JSON-RPC error: the node understood the request and refused it.
    #[error("node rejected the request: {0}")]
    Rejected(String),
}

/// The result type of this module.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;

impl NodeError {
    /// True when the same request may succeed if sent again later unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// True when the node refused the transaction because its nonce is already used on-chain:
    /// the nonce owner must re-read the account's nonce and look up the receipts of every hash
    /// it sent with this nonce, since one of them may be the transaction that used it.
    pub fn is_nonce_error(&self) -> bool {
        matches!(self, Self::NonceTooLow)
    }
}

/// Classifies an error returned by a node for `eth_sendRawTransaction`, `eth_estimateGas` or
/// `eth_call`.
pub fn classify(err: &TransportError) -> NodeError {
    match err {
        RpcError::ErrorResp(payload) => classify_payload(payload),
        RpcError::Transport(kind) => classify_transport(kind),
        // A 200 whose body is not a JSON-RPC answer comes from something in front of the node (a
        // proxy or load balancer having a bad moment); a JSON-RPC error in it is classified.
        RpcError::DeserError { text, .. } => match parse_payload(text) {
            Some(payload) => classify_payload(&payload),
            None => NodeError::Unavailable(err.to_string()),
        },
        RpcError::NullResp => NodeError::Unavailable(err.to_string()),
        // Our own request could not be built or sent as asked: sending it again changes nothing.
        RpcError::UnsupportedFeature(_) | RpcError::LocalUsageError(_) | RpcError::SerError(_) => {
            NodeError::Rejected(err.to_string())
        }
    }
}

fn classify_transport(kind: &TransportErrorKind) -> NodeError {
    let unavailable = || NodeError::Unavailable(kind.to_string());
    match kind {
        TransportErrorKind::HttpError(http)
        | TransportErrorKind::HttpErrorWithRetryAfter { error: http, .. } => {
            // 408, 429 and 5xx are the server or a gateway saying "not now".
            if http.status == 408 || http.status == 429 || http.status >= 500 {
                return unavailable();
            }
            // Some providers answer a refused request with a 4xx whose body is the JSON-RPC
            // error; its message decides, as it would in a 200.
            match parse_payload(&http.body) {
                Some(payload) => classify_payload(&payload),
                None => NodeError::Rejected(kind.to_string()),
            }
        }
        TransportErrorKind::NonRetryable(_) | TransportErrorKind::PubsubUnavailable => {
            NodeError::Rejected(kind.to_string())
        }
        // Connection refused or reset, timeouts, a stopped backend, a missing batch answer.
        _ => unavailable(),
    }
}

/// True when `err` says the node does not serve the method at all: JSON-RPC `-32601` (geth,
/// reth, Nethermind, Erigon: "method not found", "the method … does not exist/is not
/// available"), or a hosted provider's refusal of a method its plan or chain lacks ("unsupported
/// method", "method not supported"), in a JSON-RPC answer or in the body of an HTTP 4xx. Asking
/// again changes nothing: the caller needs another way to read what it wanted.
pub fn is_unsupported_method(err: &TransportError) -> bool {
    let payload = match err {
        RpcError::ErrorResp(payload) => Some(payload.clone()),
        RpcError::Transport(TransportErrorKind::HttpError(http)) => parse_payload(&http.body),
        RpcError::DeserError { text, .. } => parse_payload(text),
        _ => None,
    };
    payload.is_some_and(|payload| {
        let message = payload.message.to_ascii_lowercase();
        payload.code == -32601 || UNSUPPORTED_METHOD.iter().any(|phrase| mentions(&message, phrase))
    })
}

/// geth, reth, Erigon, Nethermind: "method not found", "the method eth_x does not exist/is not
/// available"; hosted providers: "unsupported method", "method not supported", "method
/// eth_x is not supported".
const UNSUPPORTED_METHOD: &[&str] = &[
    "method not found",
    "does not exist/is not available",
    "unsupported method",
    "method not supported",
    "is not supported",
];

/// A JSON-RPC error object in `text`, whole response or bare error.
fn parse_payload(text: &str) -> Option<ErrorPayload> {
    #[derive(serde::Deserialize)]
    struct Response {
        error: ErrorPayload,
    }
    serde_json::from_str::<Response>(text)
        .map(|response| response.error)
        .or_else(|_| serde_json::from_str::<ErrorPayload>(text))
        .ok()
}

fn classify_payload(payload: &ErrorPayload) -> NodeError {
    let message = payload.message.to_ascii_lowercase();
    // A revert first: its message may quote a contract's own words ("insufficient funds").
    // Code 3 is geth's and reth's code for a revert with data.
    if payload.code == 3 || message.contains("revert") {
        let data = payload.as_revert_data();
        let reason = match &data {
            Some(data) => decode_revert(data),
            None => payload.message.to_string(),
        };
        return NodeError::Reverted { data, reason };
    }
    let has = |phrases: &[&str]| phrases.iter().any(|phrase| mentions(&message, phrase));
    if payload.is_retry_err() || has(POOL_FULL) {
        return NodeError::Unavailable(describe(payload));
    }
    if has(ALREADY_KNOWN) {
        NodeError::AlreadyKnown
    } else if has(NONCE_TOO_LOW) {
        NodeError::NonceTooLow
    } else if has(UNDERPRICED) {
        NodeError::ReplacementUnderpriced
    } else if has(INSUFFICIENT_FUNDS) {
        NodeError::InsufficientFunds
    } else {
        NodeError::Rejected(describe(payload))
    }
}

/// A pool with no room for the transaction right now (geth: "txpool is full", Nethermind:
/// "TxPoolFull"): the same transaction may be taken later, so it is a "not now". Rate limits are
/// recognised by alloy's own list (`ErrorPayload::is_retry_err`).
const POOL_FULL: &[&str] = &["txpool is full", "transaction pool is full", "txpoolfull"];

/// geth, reth, Erigon: "already known"; geth before 1.9.x, Besu, Hardhat: "known transaction";
/// anvil: "transaction already imported"; Nethermind: "AlreadyKnown".
const ALREADY_KNOWN: &[&str] =
    &["already known", "known transaction", "already imported", "alreadyknown"];

/// geth, reth, anvil, Erigon, Besu: "nonce too low"; Nethermind: "OldNonce"; Hardhat and some
/// providers: "nonce has already been used".
const NONCE_TOO_LOW: &[&str] =
    &["nonce too low", "nonce is too low", "oldnonce", "nonce has already been used"];

/// geth, reth, Besu: "replacement transaction underpriced" and, below the pool's minimum,
/// "transaction underpriced"; Nethermind: "FeeTooLow"; anvil refuses a fee cap under the base fee
/// with "max fee per gas less than block base fee".
const UNDERPRICED: &[&str] = &["underpriced", "feetoolow", "less than block base fee"];

/// geth, reth, anvil, Erigon: "insufficient funds for gas * price + value" (op-geth adds the L1
/// fee); Nethermind: "InsufficientFunds".
const INSUFFICIENT_FUNDS: &[&str] = &["insufficient funds", "insufficientfunds"];

/// True when `phrase` starts a word in `message`, so "known transaction" is not found in
/// "unknown transaction type".
fn mentions(message: &str, phrase: &str) -> bool {
    message
        .match_indices(phrase)
        .any(|(at, _)| !message[..at].ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn describe(payload: &ErrorPayload) -> String {
    format!("{} (code {})", payload.message, payload.code)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;
    use alloy::sol_types::SolError;

    use super::*;
    use crate::escrow::bindings::UsageEscrow;

    fn response(code: i64, message: &str) -> TransportError {
        let payload = serde_json::json!({ "code": code, "message": message });
        TransportError::ErrorResp(serde_json::from_value(payload).unwrap())
    }

    fn classify_message(message: &str) -> NodeError {
        classify(&response(-32000, message))
    }

    #[test]
    fn already_known() {
        for message in [
            "already known",
            "known transaction: 0x1234",
            "Known transaction",
            "transaction already imported",
            "AlreadyKnown",
        ] {
            assert_eq!(classify_message(message), NodeError::AlreadyKnown, "{message}");
        }
    }

    #[test]
    fn nonce_too_low() {
        for message in [
            "nonce too low",
            "nonce too low: next nonce 5, tx nonce 3",
            "Nonce too low",
            "OldNonce",
            "nonce has already been used",
        ] {
            let err = classify_message(message);
            assert_eq!(err, NodeError::NonceTooLow, "{message}");
            assert!(err.is_nonce_error() && !err.is_retryable());
        }
    }

    #[test]
    fn underpriced() {
        for message in [
            "replacement transaction underpriced",
            "transaction underpriced",
            "Replacement transaction underpriced",
            "FeeTooLow",
            "max fee per gas less than block base fee",
        ] {
            assert_eq!(classify_message(message), NodeError::ReplacementUnderpriced, "{message}");
        }
    }

    #[test]
    fn insufficient_funds() {
        for message in [
            "insufficient funds for gas * price + value",
            "insufficient funds for gas * price + value: address 0xab have 0 want 21000",
            "Insufficient funds for gas * price + value",
            "insufficient funds for gas * price + value + gas limit * l1 fee",
            "InsufficientFunds",
        ] {
            assert_eq!(classify_message(message), NodeError::InsufficientFunds, "{message}");
        }
    }

    #[test]
    fn reverts_carry_their_data_and_decoded_reason() {
        let data = UsageEscrow::ActivationExpired { activateBy: U256::from(7) }.abi_encode();
        let payload = serde_json::json!({
            "code": 3,
            "message": "execution reverted: custom error",
            "data": alloy::primitives::hex::encode_prefixed(&data),
        });
        let err = classify(&TransportError::ErrorResp(serde_json::from_value(payload).unwrap()));
        assert_eq!(
            err,
            NodeError::Reverted {
                data: Some(data.into()),
                reason: "ActivationExpired(activateBy=7)".to_string()
            }
        );
        assert!(!err.is_retryable());

        // No data: the node's message is all there is. A contract's words do not change the class.
        let err = classify_message("execution reverted: ERC20: insufficient funds");
        assert_eq!(
            err,
            NodeError::Reverted {
                data: None,
                reason: "execution reverted: ERC20: insufficient funds".to_string()
            }
        );
    }

    #[test]
    fn rate_limits_and_server_errors_are_unavailable() {
        for err in [
            response(429, "Too Many Requests"),
            response(-32005, "request rate exceeded"),
            response(-32000, "header not found"),
            response(-32000, "txpool is full"),
            response(-32010, "TxPoolFull"),
            TransportErrorKind::http_error(503, "Service Unavailable".to_string()),
            TransportErrorKind::http_error(502, String::new()),
            TransportErrorKind::http_error(429, String::new()),
            TransportErrorKind::backend_gone(),
            TransportErrorKind::custom_str("error sending request: connection refused"),
            TransportError::NullResp,
        ] {
            let class = classify(&err);
            assert!(matches!(class, NodeError::Unavailable(_)), "{err}: {class:?}");
            assert!(class.is_retryable() && !class.is_nonce_error());
        }
    }

    #[test]
    fn a_json_rpc_error_inside_an_http_4xx_is_classified_by_its_message() {
        let body = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}"#;
        let err = TransportErrorKind::http_error(400, body.to_string());
        assert_eq!(classify(&err), NodeError::NonceTooLow);
        let err = TransportErrorKind::http_error(403, "forbidden".to_string());
        assert!(matches!(classify(&err), NodeError::Rejected(_)));
    }

    #[test]
    fn a_method_the_node_does_not_serve_is_told_apart() {
        for err in [
            response(-32601, "the method eth_getBlockReceipts does not exist/is not available"),
            response(-32601, "Method not found"),
            response(-32600, "Unsupported method: eth_getBlockReceipts"),
            response(-32000, "method eth_getBlockReceipts is not supported"),
            TransportErrorKind::http_error(
                400,
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#.to_string(),
            ),
        ] {
            assert!(is_unsupported_method(&err), "{err}");
        }
        for err in [
            response(-32000, "header not found"),
            response(-32602, "invalid params"),
            response(-32005, "request rate exceeded"),
            TransportErrorKind::http_error(503, "Service Unavailable".to_string()),
            TransportError::NullResp,
        ] {
            assert!(!is_unsupported_method(&err), "{err}");
        }
    }

    #[test]
    fn anything_else_is_rejected_with_the_nodes_words() {
        // A phrase must start a word: this is not "known transaction".
        assert!(matches!(classify_message("unknown transaction type"), NodeError::Rejected(_)));
        let err = classify(&response(-32000, "nonce too high"));
        assert_eq!(err, NodeError::Rejected("nonce too high (code -32000)".to_string()));
        assert!(!err.is_retryable() && !err.is_nonce_error());
        assert!(matches!(classify(&response(-32602, "invalid params")), NodeError::Rejected(_)));
        assert!(matches!(
            classify(&TransportError::local_usage_str("no signer")),
            NodeError::Rejected(_)
        ));
    }
}
