//! `POST /v1/checks` (decide a spend before making it) and `GET /v1/checks/{check_id}`.
//!
//! A check binds nothing by itself: it evaluates the agent's policy, records the decision
//! (audit, violations) and answers. An escalated check opens an approval the owner can decide,
//! which again binds nothing; what binds is the spend itself (an activation) passing the gate.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::AppState;
use crate::api::auth::Checker;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::api::idempotency::Idempotency;
use crate::api::spend_gate::{CheckResponse, Spend};
use crate::api::spend_request;
use crate::governance::classify::classify;
use crate::governance::{ActionType, Confidence, Request};
use crate::store::governance::audit::AuditKind;
use crate::store::governance::checks;

/// The body of `POST /v1/checks` (the seed's fields, plus `amount_cents`).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent_id": "agt_0001", "policy_id": "pol_0001", "action_type": "refund", "amount": 300.00, "currency": "USD", "counterparty": "customer_789", "metadata": {"days_since_purchase": 5}}))]
pub struct CheckRequest {
    /// The agent the check is for: an agent key may name only itself (or leave it out); the
    /// owner names any agent of its account.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The agent's policy (`pol_…`); another id answers 404 `policy_not_found`.
    pub policy_id: String,
    /// `refund`, `credit`, `discount` or `spend`; classified from `reason_text` when absent.
    #[serde(default)]
    pub action_type: Option<ActionType>,
    /// Dollars, as a JSON number with at most two decimals (an exact number of cents).
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub amount: Option<serde_json::Number>,
    /// Cents, instead of `amount`.
    #[serde(default)]
    pub amount_cents: Option<u64>,
    /// `USD` or `USDC`.
    pub currency: String,
    /// Customer, vendor, agent id or wallet address.
    pub counterparty: String,
    /// `card`, `ach`, `wire`, `crypto`, …
    #[serde(default)]
    pub payment_method: Option<String>,
    /// The merchant or vendor; counted as a counterparty identifier too.
    #[serde(default)]
    pub merchant_or_vendor: Option<String>,
    /// Why; required when `action_type` is absent.
    #[serde(default)]
    pub reason_text: Option<String>,
    /// Same as the `Idempotency-Key` header (the header wins when both are sent).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// `days_since_purchase`, `discount_percent`, `country`, `category`, and anything else.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Checks the body's fields and builds the engine's request (at `at`).
fn request_of(body: &CheckRequest, at: i64) -> ApiResult<(Request, Confidence, String)> {
    let currency = spend_request::currency_of(&body.currency)?;
    let amount_cents = match (&body.amount, body.amount_cents) {
        (Some(amount), None) => spend_request::cents_of(amount)?,
        (None, Some(cents)) if cents <= spend_request::MAX_CENTS => cents,
        (None, Some(_)) => {
            return Err(ApiError::validation("amount_cents", "`amount_cents` is too large"));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "amount",
                "send `amount` or `amount_cents`, not both",
            ));
        }
        (None, None) => return Err(ApiError::validation("amount", "`amount` is required")),
    };
    let counterparty = body.counterparty.trim();
    if counterparty.is_empty() || counterparty.len() > 256 {
        return Err(ApiError::validation(
            "counterparty",
            "`counterparty` must be 1 to 256 characters",
        ));
    }
    if body.policy_id.is_empty() {
        return Err(ApiError::validation("policy_id", "`policy_id` is required"));
    }
    for (field, value) in [
        ("reason_text", &body.reason_text),
        ("payment_method", &body.payment_method),
        ("merchant_or_vendor", &body.merchant_or_vendor),
        ("idempotency_key", &body.idempotency_key),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > 2_000) {
            return Err(ApiError::validation(field, format!("`{field}` is too long")));
        }
    }
    let (action_type, confidence) = match (body.action_type, body.reason_text.as_deref()) {
        (Some(action), _) => (action, Confidence::High),
        (None, Some(text)) if !text.trim().is_empty() => classify(text),
        (None, _) => {
            return Err(ApiError::validation(
                "action_type",
                "send `action_type`, or `reason_text` to classify it from",
            ));
        }
    };
    let (metadata, country, category) = spend_request::metadata_of(body.metadata.as_ref())?;
    let mut counterparties = vec![counterparty.to_owned()];
    counterparties.extend(
        body.merchant_or_vendor.iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()),
    );
    let request = Request {
        action_type,
        amount_cents,
        counterparties,
        categories: category.into_iter().collect(),
        country: country.map(|c| c.to_uppercase()),
        at,
        metadata,
    };
    Ok((request, confidence, currency))
}

/// `POST /v1/checks`: decides a spend against the agent's policy and records the decision.
/// A retry with the same key (`Idempotency-Key` or the body's `idempotency_key`, 24 h) answers
/// the first decision again without deciding or auditing anew.
#[utoipa::path(
    post,
    path = "/v1/checks",
    operation_id = "create_check",
    tag = "governance",
    request_body = CheckRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The decision", body = CheckResponse),
        (status = 404, description = "No such agent of the caller, or `policy_not_found`", body = crate::api::error::ErrorBody),
        (status = 422, description = "A field fails validation", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    checker: Checker,
    method: Method,
    uri: Uri,
    IdempotencyKey(header_key): IdempotencyKey,
    ApiJson(body): ApiJson<CheckRequest>,
) -> ApiResult<Response> {
    let started = Instant::now();
    let (agent, actor) = checker.agent(&state, body.agent_id.as_deref()).await?;
    let body_key = body.idempotency_key.as_deref().map(IdempotencyKey::parse).transpose()?;
    let key = header_key.or(body_key);
    let fingerprint = serde_json::to_string(&body).map_err(ApiError::internal)?;
    let idempotency =
        match Idempotency::open(&state, checker.scope(), key, method.as_str(), &uri, &fingerprint)
            .await
        {
            Ok(idempotency) => idempotency,
            Err(replayed) => return Ok(replayed),
        };
    let at = crate::store::now();
    let (request, confidence, currency) = request_of(&body, at)?;
    let spend = Spend {
        account_id: agent.account_id.to_string(),
        agent_id: agent.id.to_string(),
        kind: AuditKind::Check,
        actor,
        subject_id: None,
        currency,
        confidence,
        request,
        expect_policy: Some(body.policy_id.clone()),
        mandate_id: None,
        budgets_only: false,
        started,
    };
    // Decided in a batch with whatever other checks arrived meanwhile; answered once the
    // batch (with this decision, its audit row and its stored answer) has committed.
    let response = state.checks.decide(spend, idempotency).await?;
    Ok((StatusCode::OK, Json(response)).into_response())
}

/// `GET /v1/checks/{check_id}`: a check (or an activation's policy decision) as answered. The
/// agent sees its own; the owner those of its account's agents.
#[utoipa::path(
    get,
    path = "/v1/checks/{check_id}",
    operation_id = "get_check",
    tag = "governance",
    params(("check_id" = String, Path, description = "The check")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The check as answered", body = CheckResponse),
        (status = 404, description = "No such check of the caller", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(check_id): ApiPath,
) -> ApiResult<Json<Value>> {
    let stored = checks::get(state.store.reader(), &check_id).await?;
    let visible = stored.filter(|check| match &checker {
        Checker::Agent(agent) => check.agent_id == agent.id.as_str(),
        Checker::Owner(account) => check.account_id == account.id.as_str(),
    });
    visible.map(|check| Json(check.response)).ok_or_else(|| ApiError::not_found("check"))
}
