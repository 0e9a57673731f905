//! Usage agreements: propose, read, list, accept and reject. Every change is checked against
//! the state machine in [`crate::agreement::status`], so an illegal one answers 409.

use alloy::primitives::{Address, B256};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::AgentAuth;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath, OptionalApiJson};
use super::idempotency::Write;
use super::page;
use super::time::rfc3339;
use super::validate::{prose, text, wallet};
use crate::agreement::ids::AgentId;
use crate::agreement::status::Event;
use crate::agreement::status::InfraFeeStatus;
use crate::agreement::terms::{Agreed, Terms};
use crate::escrow::typed_data;
use crate::store::agents::{self, Agent};
use crate::store::agreements::{self, AgreementRecord, Proposal};
use crate::store::{now, outbox};

/// The body of `POST /usage-agreements`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"seller_agent_id": "agt_9e8d7c6b5a4938274f3c2a1b", "service_id": "svc_search", "quantity": 100, "unit": "api_calls", "price_per_unit_cents": 10, "payment_method": {"rail": "stablecoin", "provider": "x402"}, "settlement_model": "bilateral_escrow", "activation_version": "v2", "buyer_wallet_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}))]
pub struct Propose {
    /// The agent selling.
    pub seller_agent_id: String,
    /// The seller's service.
    pub service_id: String,
    /// Units bought (at least 1).
    pub quantity: u64,
    /// What a unit is.
    pub unit: String,
    /// Price of a unit in cents (at least 1).
    pub price_per_unit_cents: u64,
    /// `{"rail": "stablecoin", "provider": …}`.
    pub payment_method: PaymentMethod,
    /// `bilateral_escrow`.
    pub settlement_model: String,
    /// `v2`.
    pub activation_version: String,
    /// The wallet that funds the escrow and signs the activation.
    pub buyer_wallet_address: String,
}

/// How the agreement is paid.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    /// `stablecoin`.
    pub rail: String,
    /// The payment protocol (`x402`, …), informational.
    #[serde(default)]
    pub provider: Option<String>,
}

/// The body of `PUT …/accept`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"seller_wallet_address": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"}))]
pub struct Accept {
    /// The wallet the seller is paid to.
    pub seller_wallet_address: String,
}

/// The body of `PUT …/reject` (optional).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "capacity exhausted this month"}))]
pub struct Reject {
    /// Why, shown to the buyer.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `?limit=&cursor=` of the list endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Propose {
    fn validate(&self) -> ApiResult<Address> {
        text("seller_agent_id", &self.seller_agent_id, 64)?;
        text("service_id", &self.service_id, 128)?;
        text("unit", &self.unit, 64)?;
        if self.quantity == 0 || i64::try_from(self.quantity).is_err() {
            return Err(ApiError::validation("quantity", "`quantity` must be 1 to 2^63 − 1"));
        }
        if self.price_per_unit_cents == 0 || i64::try_from(self.price_per_unit_cents).is_err() {
            return Err(ApiError::validation(
                "price_per_unit_cents",
                "`price_per_unit_cents` must be 1 to 2^63 − 1",
            ));
        }
        if self.payment_method.rail != "stablecoin" {
            return Err(ApiError::validation(
                "payment_method.rail",
                "only the `stablecoin` rail is supported",
            ));
        }
        if self.settlement_model != "bilateral_escrow" {
            return Err(ApiError::validation(
                "settlement_model",
                "only `bilateral_escrow` is supported",
            ));
        }
        if self.activation_version != "v2" {
            return Err(ApiError::validation(
                "activation_version",
                "only activation version `v2` is supported",
            ));
        }
        wallet("buyer_wallet_address", &self.buyer_wallet_address)
    }
}

/// An agreement as the API shows it.
pub fn agreement_json(record: &AgreementRecord) -> Value {
    let terms = record.terms.as_ref().map(|terms| {
        json!({
            "unit_price_amount": terms.unit_price,
            "deposit_amount": terms.deposit(),
            "infra_fee_amount": terms.infra_fee,
            "activate_by": rfc3339(terms.activate_by as i64),
            "expires_at": rfc3339(terms.expiry as i64),
            "close_window_seconds": terms.close_window,
        })
    });
    let total_cents = record.price_per_unit_cents.checked_mul(record.quantity);
    json!({
        "id": record.id,
        "buyer_agent_id": record.buyer_agent_id,
        "seller_agent_id": record.seller_agent_id,
        "service_id": record.service_id,
        "quantity": record.quantity,
        "unit": record.unit,
        "price_per_unit_cents": record.price_per_unit_cents,
        "total_cents": total_cents,
        "payment_method": record.payment_method,
        "settlement_model": record.settlement_model,
        "activation_version": record.activation_version,
        "buyer_wallet_address": record.buyer_wallet.to_checksum(None),
        "seller_wallet_address": record.seller_wallet.map(|a| a.to_checksum(None)),
        "status": record.status,
        "activation_status": record.activation_status,
        "activation_tx_hash": record.activation_tx_hash,
        "activation_error": record.activation_error,
        "rejection_reason": record.rejection_reason,
        "agreement_key": record.agreement_key,
        "terms": terms,
        "infra_fee": {
            "amount": record.terms.as_ref().map(|t| t.infra_fee),
            "status": record.infra_fee_status,
        },
        "screening": record.screening,
        "usage": super::status::usage_json(record),
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
    })
}

/// The agreement `id` if `agent` is party to it; 404 otherwise (never revealing that an
/// agreement of someone else exists).
pub(crate) async fn load_for(
    state: &AppState,
    agent: &Agent,
    id: &str,
) -> ApiResult<AgreementRecord> {
    agreements::get(state.store.reader(), id)
        .await?
        .filter(|record| record.is_party(&agent.id))
        .ok_or_else(|| ApiError::not_found("agreement"))
}

/// `POST /usage-agreements`: the authenticated agent proposes, as the buyer.
#[utoipa::path(
    post,
    path = "/usage-agreements",
    operation_id = "propose_agreement",
    tag = "agreements",
    request_body = Propose,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The proposed agreement", body = crate::api::schema::Agreement),
    ),
)]
pub async fn propose(
    State(state): State<AppState>,
    AgentAuth(buyer): AgentAuth,
    Write(ApiJson(body), idempotency): Write<ApiJson<Propose>>,
) -> ApiResult<Response> {
    let buyer_wallet = body.validate()?;
    let seller = agents::get_agent(state.store.reader(), &body.seller_agent_id)
        .await?
        .filter(|seller| seller.status == "active")
        .ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownAgent, "`seller_agent_id` names no active agent")
                .with_details(json!({ "field": "seller_agent_id" }))
        })?;
    if seller.id == buyer.id {
        return Err(ApiError::validation("seller_agent_id", "an agent cannot sell to itself"));
    }
    let proposal = Proposal {
        buyer_agent_id: buyer.id.clone(),
        seller_agent_id: seller.id,
        service_id: body.service_id.clone(),
        quantity: body.quantity,
        unit: body.unit.clone(),
        price_per_unit_cents: body.price_per_unit_cents,
        payment_method: serde_json::to_value(&body.payment_method).unwrap_or(Value::Null),
        buyer_wallet,
    };
    let record = AgreementRecord::proposed(proposal, now());
    let response = agreement_json(&record);
    let mut tx = state.store.begin().await?;
    agreements::insert(&mut tx, &record).await?;
    outbox::record(&mut tx, Some(&record.id), "agreement.proposed", &json!({}), record.created_at)
        .await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &response).await?;
    tx.commit().await?;
    tracing::info!(agreement_id = %record.id, buyer = %record.buyer_agent_id, "agreement proposed");
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

/// `GET /usage-agreements/{id}`.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}",
    operation_id = "get_agreement",
    tag = "agreements",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agreement", body = crate::api::schema::Agreement),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Value>> {
    Ok(Json(agreement_json(&load_for(&state, &agent, &id).await?)))
}

/// `GET /usage-agreements/agents/{agent_id}/agreements`: the caller's own agreements, newest
/// first, `limit` per page with an opaque `next_cursor`. Another agent's list answers 404.
#[utoipa::path(
    get,
    path = "/usage-agreements/agents/{agent_id}/agreements",
    operation_id = "list_agreements",
    tag = "agreements",
    params(
        ("agent_id" = String, Path, description = "The calling agent"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of the agent's agreements, newest first", body = crate::api::schema::AgreementList),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(agent_id): ApiPath,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    if agent.id.as_str() != agent_id {
        return Err(ApiError::not_found("agent"));
    }
    let Query(page) =
        page.map_err(|e| ApiError::validation("query", format!("bad query string: {e}")))?;
    let limit = page::limit(page.limit)?;
    let cursor = page.cursor.as_deref().map(page::decode_cursor).transpose()?;
    // One row more than the page tells whether another page exists, so a list that is an exact
    // multiple of `limit` does not end with an empty page.
    let mut records = agreements::list_for_agent(
        state.store.reader(),
        &AgentId(agent_id),
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut records, limit, |r| page::cursor_of(r.created_at, r.id.as_str()));
    Ok(Json(json!({
        "agreements": records.iter().map(agreement_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

/// `PUT …/accept`: the seller accepts with its wallet; the on-chain terms are fixed now.
#[utoipa::path(
    put,
    path = "/usage-agreements/{agreement_id}/accept",
    operation_id = "accept_agreement",
    tag = "agreements",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    request_body = Accept,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The accepted agreement, terms fixed", body = crate::api::schema::Agreement),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn accept(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<Accept>>,
) -> ApiResult<Response> {
    let seller_wallet = wallet("seller_wallet_address", &body.seller_wallet_address)?;
    let record = load_for(&state, &agent, &id).await?;
    if record.seller_agent_id != agent.id {
        return Err(ApiError::forbidden("only the seller can accept an agreement"));
    }
    record.status.apply(Event::Accept)?;
    if seller_wallet == record.buyer_wallet {
        return Err(ApiError::validation(
            "seller_wallet_address",
            "the seller's wallet must differ from the buyer's",
        ));
    }
    let chain_now = state.chain.now().await.map_err(ApiError::chain_unavailable)?;
    let agreed = Agreed {
        id: &record.id,
        buyer: record.buyer_wallet,
        seller: seller_wallet,
        quantity: record.quantity,
        price_per_unit_cents: record.price_per_unit_cents,
    };
    let terms =
        Terms::fix(agreed, &state.policy, chain_now, B256::from(rand::random::<[u8; 32]>()))
            .map_err(|e| ApiError::validation("quantity", e.to_string()))?;
    let key = typed_data::agreement_key(&terms.activation(), &state.chain.escrow_domain());
    let fee_status =
        if terms.infra_fee.is_zero() { InfraFeeStatus::None } else { InfraFeeStatus::Pending };

    let mut tx = state.store.begin().await?;
    agreements::accept(&mut tx, &record.id, seller_wallet, &terms, key, fee_status, now()).await?;
    let accepted = agreements::get_in(&mut tx, record.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("accepted agreement vanished"))?;
    let response = agreement_json(&accepted);
    let data = json!({ "agreement_key": key });
    outbox::record(&mut tx, Some(&record.id), "agreement.accepted", &data, now()).await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    tracing::info!(agreement_id = %record.id, agreement_key = %key, "agreement accepted");
    Ok(Json(response).into_response())
}

/// `PUT …/reject`: the seller declines, optionally saying why. The body may be empty.
#[utoipa::path(
    put,
    path = "/usage-agreements/{agreement_id}/reject",
    operation_id = "reject_agreement",
    tag = "agreements",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    request_body = Option<Reject>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The rejected agreement", body = crate::api::schema::Agreement),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn reject(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(OptionalApiJson(body), idempotency): Write<OptionalApiJson<Reject>>,
) -> ApiResult<Response> {
    if let Some(reason) = &body.reason {
        prose("reason", reason, 1_000)?;
    }
    let record = load_for(&state, &agent, &id).await?;
    if record.seller_agent_id != agent.id {
        return Err(ApiError::forbidden("only the seller can reject an agreement"));
    }
    record.status.apply(Event::Reject)?;
    let mut tx = state.store.begin().await?;
    agreements::reject(&mut tx, &record.id, body.reason.as_deref(), now()).await?;
    let rejected = agreements::get_in(&mut tx, record.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("rejected agreement vanished"))?;
    let response = agreement_json(&rejected);
    let data = json!({ "reason": rejected.rejection_reason });
    outbox::record(&mut tx, Some(&record.id), "agreement.rejected", &data, now()).await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    Ok(Json(response).into_response())
}
