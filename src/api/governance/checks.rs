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
use crate::api::auth::{Caller, credential, invalid_credential, owned_agent};
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::api::idempotency::Idempotency;
use crate::api::spend_gate::{CheckResponse, Spend};
use crate::governance::classify::classify;
use crate::governance::{ActionType, Confidence, Metadata, Request};
use crate::store::agents::Agent;
use crate::store::governance::audit::{Actor, AuditKind};
use crate::store::governance::checks;

/// The largest amount a check takes: $10 billion, in cents.
const MAX_CENTS: u64 = 1_000_000_000_000;

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

/// Dollars as a JSON number to exact cents, refusing fractions of a cent and negatives.
fn cents_of(amount: &serde_json::Number) -> ApiResult<u64> {
    let refuse = || {
        ApiError::validation(
            "amount",
            "`amount` must be a non-negative number of dollars with at most two decimals",
        )
    };
    if let Some(dollars) = amount.as_u64() {
        return dollars.checked_mul(100).filter(|c| *c <= MAX_CENTS).ok_or_else(refuse);
    }
    let value = amount.as_f64().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(refuse)?;
    // The shortest decimal that reads back as this number: exact cents have at most two
    // fractional digits.
    let text = format!("{value}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if fraction.len() > 2 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let whole: u64 = whole.parse().map_err(|_| refuse())?;
    let fraction: u64 = format!("{fraction:0<2}").parse().map_err(|_| refuse())?;
    whole
        .checked_mul(100)
        .and_then(|c| c.checked_add(fraction))
        .filter(|c| *c <= MAX_CENTS)
        .ok_or_else(refuse)
}

/// A metadata field of the expected type, or 422 naming it.
fn metadata_field<T: serde::de::DeserializeOwned>(
    metadata: &Map<String, Value>,
    key: &str,
    what: &str,
) -> ApiResult<Option<T>> {
    match metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone()).map(Some).map_err(|_| {
            ApiError::validation(
                &format!("metadata.{key}"),
                format!("`metadata.{key}` must be {what}"),
            )
        }),
    }
}

/// Checks the body's fields and builds the engine's request (at `at`).
fn request_of(body: &CheckRequest, at: i64) -> ApiResult<(Request, Confidence, String)> {
    let currency = body.currency.trim().to_uppercase();
    if currency != "USD" && currency != "USDC" {
        return Err(ApiError::validation("currency", "`currency` must be `USD` or `USDC`"));
    }
    let amount_cents = match (&body.amount, body.amount_cents) {
        (Some(amount), None) => cents_of(amount)?,
        (None, Some(cents)) if cents <= MAX_CENTS => cents,
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
    let empty = Map::new();
    let metadata = body.metadata.as_ref().unwrap_or(&empty);
    let country: Option<String> = metadata_field(metadata, "country", "a two-letter country code")?;
    if country.as_ref().is_some_and(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(ApiError::validation(
            "metadata.country",
            "`metadata.country` must be an ISO 3166-1 alpha-2 code",
        ));
    }
    let category: Option<String> = metadata_field(metadata, "category", "a string")?;
    let discount_percent: Option<f64> = metadata_field(metadata, "discount_percent", "a number")?;
    if discount_percent.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
        return Err(ApiError::validation(
            "metadata.discount_percent",
            "`metadata.discount_percent` must be 0 to 100",
        ));
    }
    let metadata = Metadata {
        days_since_purchase: metadata_field(
            metadata,
            "days_since_purchase",
            "a whole number of days",
        )?,
        discount_percent,
    };
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

/// The caller of a check route: an agent (by its API key) or an account owner.
#[derive(Debug, Clone)]
pub enum Checker {
    /// An agent, checking as itself.
    Agent(Agent),
    /// An owner, naming any agent of its account.
    Owner(crate::store::agents::Account),
}

impl axum::extract::FromRequestParts<AppState> for Checker {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let key = credential(&parts.headers, state.environment)?;
        let (reader, seen) = (state.store.reader(), &state.credentials_seen);
        let checker = if let Some(agent) = seen.agent(reader, &key.hash()).await? {
            Checker::Agent(agent)
        } else {
            let account = seen
                .owner(reader, &key.hash())
                .await?
                .ok_or_else(|| invalid_credential("agent API key or owner credential"))?;
            Checker::Owner(account)
        };
        let scope = match &checker {
            Checker::Agent(agent) => agent.id.to_string(),
            Checker::Owner(account) => account.id.to_string(),
        };
        parts.extensions.insert(Caller(scope));
        Ok(checker)
    }
}

impl Checker {
    /// The agent a check is for and who asked: the agent key's own agent (naming another is
    /// 403), or the agent the owner names (404 unless of its account).
    async fn agent(&self, state: &AppState, named: Option<&str>) -> ApiResult<(Agent, Actor)> {
        match self {
            Checker::Agent(agent) => {
                if named.is_some_and(|named| named != agent.id.as_str()) {
                    return Err(ApiError::forbidden("an agent key checks only as its own agent"));
                }
                Ok((agent.clone(), Actor::Agent))
            }
            Checker::Owner(account) => {
                let named = named.ok_or_else(|| {
                    ApiError::validation(
                        "agent_id",
                        "`agent_id` is required with the owner credential",
                    )
                })?;
                Ok((owned_agent(state, account, named).await?, Actor::Owner))
            }
        }
    }

    /// The caller's idempotency key space.
    fn scope(&self) -> Caller {
        match self {
            Checker::Agent(agent) => Caller(agent.id.to_string()),
            Checker::Owner(account) => Caller(account.id.to_string()),
        }
    }
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
