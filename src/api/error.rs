//! The one error shape of the API: `{"error": {"code", "message", "details"}}` with a stable
//! machine code and the right HTTP status. Internals are logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::agreement::status::IllegalTransition;
use crate::store::StoreError;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable machine code (`validation_error`, `not_found`, …).
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// Structured context (the offending field, the current status, …).
    pub details: Option<Value>,
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 422 `validation_error` naming the offending `field`.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", message)
            .with_details(json!({ "field": field }))
    }

    /// 404 `not_found`; also the answer for resources of other accounts.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 403 `forbidden`: the caller is a party but not the one allowed to do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409 `invalid_state`: the agreement's status does not allow the action.
    pub fn invalid_state(current: impl std::fmt::Display, action: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "invalid_state",
            format!("an agreement in status `{current}` cannot be {action}"),
        )
        .with_details(json!({ "status": current.to_string(), "action": action }))
    }

    /// 503 `chain_unavailable`: the RPC endpoint did not answer.
    pub fn chain_unavailable(error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, "RPC call failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "chain_unavailable",
            "the chain RPC endpoint is not answering; retry later",
        )
    }

    /// 500 `internal_error`, logging the cause.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // A conditional update lost a race: the row moved on under us.
            StoreError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "concurrent_update",
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
