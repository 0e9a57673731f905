//! The one error shape of the API: `{"error": {"code", "message", "details"}}` with a stable
//! machine code and the right HTTP status. Internals are logged, never returned.
//!
//! [`ErrorCode`] is the whole list of codes: each knows its HTTP status, and the OpenAPI
//! document's `code` enum is generated from it, so a code cannot be emitted without being
//! documented (or documented without existing).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::agreement::settlement::RefusalCode;
use crate::agreement::status::IllegalTransition;
use crate::store::StoreError;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = ($text:literal, $status:ident),)+) => {
        /// Every machine code the API answers, with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $text)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the documentation.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)+
                }
            }

            /// The HTTP status every answer with this code carries.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }

            /// Parses [`ErrorCode::as_str`].
            pub fn parse(text: &str) -> Option<ErrorCode> {
                match text {
                    $($text => Some(ErrorCode::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// The request is not well-formed HTTP (a bad `Content-Length`, …).
    BadRequest = ("bad_request", BAD_REQUEST),
    /// The body is not valid JSON.
    MalformedJson = ("malformed_json", BAD_REQUEST),
    /// The body is JSON of the wrong shape for this route.
    InvalidBody = ("invalid_body", BAD_REQUEST),
    /// The `Idempotency-Key` header is not a valid key.
    InvalidIdempotencyKey = ("invalid_idempotency_key", BAD_REQUEST),
    /// The write needs an `Idempotency-Key`.
    IdempotencyKeyRequired = ("idempotency_key_required", BAD_REQUEST),
    /// No credential, or one of the wrong kind for the route.
    Unauthorized = ("unauthorized", UNAUTHORIZED),
    /// The credential is unknown, revoked or malformed.
    InvalidCredential = ("invalid_credential", UNAUTHORIZED),
    /// An agent key of the other environment (`pk_test_` on a live chain, …).
    WrongEnvironment = ("wrong_environment", UNAUTHORIZED),
    /// The execution token has expired.
    ExecutionTokenExpired = ("execution_token_expired", UNAUTHORIZED),
    /// The execution token was minted for another action.
    ExecutionTokenActionMismatch = ("execution_token_action_mismatch", UNAUTHORIZED),
    /// The execution token was minted for another resource.
    ExecutionTokenAudienceMismatch = ("execution_token_audience_mismatch", UNAUTHORIZED),
    /// The execution token was already used.
    ExecutionTokenUsed = ("execution_token_used", UNAUTHORIZED),
    /// The execution token's mandate was revoked.
    MandateRevoked = ("mandate_revoked", UNAUTHORIZED),
    /// The execution token's mandate is past its `valid_until`.
    MandateExpired = ("mandate_expired", UNAUTHORIZED),
    /// The caller is a party, but not the one allowed to do this.
    Forbidden = ("forbidden", FORBIDDEN),
    /// The action belongs to the other party.
    WrongParty = ("wrong_party", FORBIDDEN),
    /// A wallet is on the sanctions list or the operator's denylist.
    WalletSanctioned = ("wallet_sanctioned", FORBIDDEN),
    /// The agent's owner halted it: no spending until resumed (`details.decline_message`).
    AgentHalted = ("agent_halted", FORBIDDEN),
    /// Demo funding exists only on a test deployment on a test chain, with a mock token.
    FundingUnavailable = ("funding_unavailable", FORBIDDEN),
    /// The agent registered itself and no owner has claimed it: it can spend nothing.
    AgentUnclaimed = ("agent_unclaimed", FORBIDDEN),
    /// Agents register themselves only on a test deployment on a test chain.
    SelfRegistrationUnavailable = ("self_registration_unavailable", FORBIDDEN),
    /// No such resource of the caller (another account's answers the same).
    NotFound = ("not_found", NOT_FOUND),
    /// The agent has no policy, or not the one named.
    PolicyNotFound = ("policy_not_found", NOT_FOUND),
    /// The route does not take that method.
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED),
    /// The approval expired before it was decided.
    ApprovalExpired = ("approval_expired", GONE),
    /// The reservation expired before it was captured (`details.status`).
    ReservationExpired = ("reservation_expired", GONE),
    /// The payment's authorization stopped being valid before it was signed or approved.
    PaymentExpired = ("payment_expired", GONE),
    /// The claim code expired before an owner claimed the agent.
    ClaimCodeExpired = ("claim_code_expired", GONE),
    /// The intent expired before a transaction hash was posted: validate again.
    IntentExpired = ("intent_expired", GONE),
    /// The agreement's status does not allow the action.
    InvalidState = ("invalid_state", CONFLICT),
    /// A conditional update lost a race; read again and retry.
    ConcurrentUpdate = ("concurrent_update", CONFLICT),
    /// A request with the same `Idempotency-Key` is still being answered.
    IdempotencyKeyInFlight = ("idempotency_key_in_flight", CONFLICT),
    /// The agent is revoked.
    AgentRevoked = ("agent_revoked", CONFLICT),
    /// The claim code was used already: its agent has been claimed.
    ClaimCodeUsed = ("claim_code_used", CONFLICT),
    /// The approval was already approved or rejected (`details.status`).
    ApprovalAlreadyDecided = ("approval_already_decided", CONFLICT),
    /// The reservation was captured already, for another amount or before a release
    /// (`details.status`, `details.captured_cents`).
    ReservationAlreadyCaptured = ("reservation_already_captured", CONFLICT),
    /// The reservation was released (or rejected) already (`details.status`).
    ReservationReleased = ("reservation_released", CONFLICT),
    /// The reservation waits for its approval and holds nothing to capture yet.
    ReservationPendingApproval = ("reservation_pending_approval", CONFLICT),
    /// The reservation no longer waits for approval.
    ReservationNotPending = ("reservation_not_pending", CONFLICT),
    /// The hold follows an activation or a lease, not capture and release calls.
    ReservationNotManual = ("reservation_not_manual", CONFLICT),
    /// The budget lease has ended already (`details.status`).
    LeaseNotActive = ("lease_not_active", CONFLICT),
    /// The child agent already spends under an active lease (`details.lease_id`).
    LeaseExists = ("lease_exists", CONFLICT),
    /// The mandate is revoked: it can be neither changed nor revoked again (`details.status`).
    MandateNotActive = ("mandate_not_active", CONFLICT),
    /// The payment is not waiting for its signature (`details.status`).
    PaymentNotAwaitingSignature = ("payment_not_awaiting_signature", CONFLICT),
    /// The intent has a transaction hash already, or is resolved (`details.status`).
    IntentAlreadyBroadcast = ("intent_already_broadcast", CONFLICT),
    /// Another intent posted this transaction hash: a transaction pays one intent.
    TxHashAlreadyUsed = ("tx_hash_already_used", CONFLICT),
    /// The account has registered this wallet address already (`details.wallet_id`).
    WalletAlreadyRegistered = ("wallet_already_registered", CONFLICT),
    /// The webhook endpoint is disabled or retired.
    WebhookNotActive = ("webhook_not_active", CONFLICT),
    /// The delivery has not been attempted yet.
    DeliveryPending = ("delivery_pending", CONFLICT),
    /// The signed authorization was relayed already.
    AuthorizationReplayed = ("authorization_replayed", CONFLICT),
    /// A lower voucher than one already kept.
    VoucherRegression = ("voucher_regression", CONFLICT),
    /// The call would revert on-chain (`details.reason`).
    SimulationReverted = ("simulation_reverted", CONFLICT),
    /// The escrow is not activated on-chain.
    EscrowNotActive = ("escrow_not_active", CONFLICT),
    /// The close window is already running.
    AlreadyClosing = ("already_closing", CONFLICT),
    /// The split is final.
    AlreadySettled = ("already_settled", CONFLICT),
    /// The buyer withdrew: nothing is left to claim.
    BuyerWithdrawn = ("buyer_withdrawn", CONFLICT),
    /// The best voucher is not above the units already claimed.
    NothingToClaim = ("nothing_to_claim", CONFLICT),
    /// The buyer's withdraw opens later (`details.available_at`).
    WithdrawNotOpen = ("withdraw_not_open", CONFLICT),
    /// The buyer's part was already withdrawn.
    AlreadyWithdrawn = ("already_withdrawn", CONFLICT),
    /// The body is larger than this server accepts.
    PayloadTooLarge = ("payload_too_large", PAYLOAD_TOO_LARGE),
    /// The request URI is longer than this server accepts.
    UriTooLong = ("uri_too_long", URI_TOO_LONG),
    /// The body is not `application/json`.
    UnsupportedMediaType = ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE),
    /// A field fails validation (`details.field`).
    ValidationError = ("validation_error", UNPROCESSABLE_ENTITY),
    /// The same `Idempotency-Key` came with another request.
    IdempotencyKeyReused = ("idempotency_key_reused", UNPROCESSABLE_ENTITY),
    /// The named agent does not exist for this account.
    UnknownAgent = ("unknown_agent", UNPROCESSABLE_ENTITY),
    /// A policy document is refused (`details.rule_id`, `details.index`, `details.field`).
    InvalidPolicy = ("invalid_policy", UNPROCESSABLE_ENTITY),
    /// The agent has no registered wallet to pay an intent from (`POST /activate` sets one).
    NoRegisteredWallet = ("no_registered_wallet", UNPROCESSABLE_ENTITY),
    /// The agent's policy blocks the spend (`details.reason_code`, `details.violated_rule_id`,
    /// `details.decline_message`, `details.check_id`).
    PolicyBlocked = ("policy_blocked", UNPROCESSABLE_ENTITY),
    /// A webhook filter names an event type Pactum does not send.
    UnknownEventType = ("unknown_event_type", UNPROCESSABLE_ENTITY),
    /// The webhook URL is not allowed (scheme, private address, …).
    WebhookUrlNotAllowed = ("webhook_url_not_allowed", UNPROCESSABLE_ENTITY),
    /// The activation deadline has passed.
    ActivationExpired = ("activation_expired", UNPROCESSABLE_ENTITY),
    /// The echoed `chain_id` is not this deployment's.
    WrongChainId = ("wrong_chain_id", UNPROCESSABLE_ENTITY),
    /// The echoed package fields do not match the stored terms.
    PackageMismatch = ("package_mismatch", UNPROCESSABLE_ENTITY),
    /// A signature does not recover the expected wallet.
    InvalidSignature = ("invalid_signature", UNPROCESSABLE_ENTITY),
    /// The buyer's wallet cannot authorize the token transfer the way the token checks it (an
    /// EIP-7702 delegated account whose delegate does not implement ERC-1271).
    BuyerWalletUnsupported = ("buyer_wallet_unsupported", UNPROCESSABLE_ENTITY),
    /// The paying agent has no primary wallet (`POST /activate` or `POST /v1/wallets`).
    WalletRequired = ("wallet_required", UNPROCESSABLE_ENTITY),
    /// The buyer's balance does not cover deposit and fee.
    InsufficientFunds = ("insufficient_funds", UNPROCESSABLE_ENTITY),
    /// The sponsored authorization's deadline has passed.
    AuthorizationExpired = ("authorization_expired", UNPROCESSABLE_ENTITY),
    /// The units differ from the voucher held.
    UnitsMismatch = ("units_mismatch", UNPROCESSABLE_ENTITY),
    /// A voucher above the agreement's quantity.
    UnitsExceedQuantity = ("units_exceed_quantity", UNPROCESSABLE_ENTITY),
    /// Recorded usage would pass the agreement's quantity.
    UsageExceedsQuantity = ("usage_exceeds_quantity", UNPROCESSABLE_ENTITY),
    /// Too many requests for this credential; retry after `Retry-After`.
    RateLimitExceeded = ("rate_limit_exceeded", TOO_MANY_REQUESTS),
    /// The request headers are larger than this server accepts.
    HeadersTooLarge = ("headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE),
    /// An unexpected failure (logged; nothing internal is returned).
    InternalError = ("internal_error", INTERNAL_SERVER_ERROR),
    /// The chain RPC endpoint did not answer.
    ChainUnavailable = ("chain_unavailable", SERVICE_UNAVAILABLE),
    /// Wallet screening could not answer.
    ScreeningUnavailable = ("screening_unavailable", SERVICE_UNAVAILABLE),
    /// The request took longer than the server allows.
    Timeout = ("timeout", SERVICE_UNAVAILABLE),
    /// The service is not ready (`/readyz`).
    NotReady = ("not_ready", SERVICE_UNAVAILABLE),
}

/// The document's `code` enum: exactly the codes of [`ErrorCode::ALL`], as sent.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A stable machine code; its HTTP status is fixed by the code."))
            .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
            .examples([json!("validation_error")])
            .into()
    }
}

impl ToSchema for ErrorCode {}

impl From<RefusalCode> for ErrorCode {
    fn from(code: RefusalCode) -> Self {
        match code {
            RefusalCode::WrongParty => ErrorCode::WrongParty,
            RefusalCode::EscrowNotActive => ErrorCode::EscrowNotActive,
            RefusalCode::AlreadyClosing => ErrorCode::AlreadyClosing,
            RefusalCode::AlreadySettled => ErrorCode::AlreadySettled,
            RefusalCode::BuyerWithdrawn => ErrorCode::BuyerWithdrawn,
            RefusalCode::NothingToClaim => ErrorCode::NothingToClaim,
            RefusalCode::WithdrawNotOpen => ErrorCode::WithdrawNotOpen,
            RefusalCode::AlreadyWithdrawn => ErrorCode::AlreadyWithdrawn,
        }
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The stable machine code; it fixes the HTTP status.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// Structured context (the offending field, the current status, …).
    pub details: Option<Value>,
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// The body of every error answer, as sent and as documented.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error, example = json!({"error": {"code": "validation_error", "message": "`quantity` must be 1 to 2^63 − 1", "details": {"field": "quantity"}}}))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// The stable machine code.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// Structured context (the offending field, the current status, …); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with `code` (and so its status) and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }

    /// The HTTP status of this answer.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 422 `validation_error` naming the offending `field`.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message).with_details(json!({ "field": field }))
    }

    /// 404 `not_found`; also the answer for resources of other accounts.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 403 `forbidden`: the caller is a party but not the one allowed to do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 409 `invalid_state`: the agreement's status does not allow the action.
    pub fn invalid_state(current: impl std::fmt::Display, action: &str) -> Self {
        Self::new(
            ErrorCode::InvalidState,
            format!("an agreement in status `{current}` cannot be {action}"),
        )
        .with_details(json!({ "status": current.to_string(), "action": action }))
    }

    /// 503 `chain_unavailable`: the RPC endpoint did not answer.
    pub fn chain_unavailable(error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, "RPC call failed");
        Self::new(
            ErrorCode::ChainUnavailable,
            "the chain RPC endpoint is not answering; retry later",
        )
    }

    /// 500 `internal_error`, logging the cause.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(ErrorCode::InternalError, "internal error")
    }

    /// The body this error answers with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // A conditional update lost a race: the row moved on under us.
            StoreError::Conflict => ApiError::new(
                ErrorCode::ConcurrentUpdate,
                "the resource changed concurrently; read it again and retry",
            ),
            other => ApiError::internal(other),
        }
    }
}
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::from(StoreError::from(error))
    }
}

impl From<IllegalTransition> for ApiError {
    fn from(error: IllegalTransition) -> Self {
        let action = match error.event {
            crate::agreement::status::Event::Accept => "accepted",
            crate::agreement::status::Event::Reject => "rejected",
            crate::agreement::status::Event::Cancel => "cancelled",
            crate::agreement::status::Event::SubmitActivation => "activated",
            _ => "changed this way",
        };
        ApiError::invalid_state(error.from, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_and_serializes_as_its_text() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn the_error_table_of_the_api_docs_lists_every_code_with_its_status() {
        let doc = include_str!("../../docs/api.md");
        let table = &doc[doc.find("| Status | Code | When |").expect("the error table")..];
        let table = &table[..table.find("\n\n").unwrap_or(table.len())];
        for &code in ErrorCode::ALL {
            let row = table
                .lines()
                .find(|line| line.contains(&format!("`{}`", code.as_str())))
                .unwrap_or_else(|| panic!("docs/api.md's error table lacks `{}`", code.as_str()));
            let status = code.status().as_u16().to_string();
            assert!(
                row.starts_with(&format!("| {status} |")),
                "`{}` is not {status}",
                code.as_str()
            );
        }
    }

    /// The serving loop answers malformed HTTP before the router sees it; its codes are
    /// codes of this list, with the same statuses.
    #[test]
    fn the_serving_loop_refuses_with_codes_of_this_list() {
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::URI_TOO_LONG,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ] {
            let (text, _) = crate::serve::protocol_refusal(status);
            let code = ErrorCode::parse(text).unwrap_or_else(|| panic!("`{text}` is no ErrorCode"));
            assert_eq!(code.status(), status, "{text}");
        }
    }

    #[test]
    fn the_body_omits_absent_details() {
        let body = serde_json::to_value(ApiError::not_found("agent").body()).unwrap();
        assert_eq!(body, json!({"error": {"code": "not_found", "message": "agent not found"}}));
    }
}
