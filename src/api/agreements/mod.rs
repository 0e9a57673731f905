//! Usage agreements: propose, read, list, accept and reject. Every change is checked against
//! the state machine in [`crate::agreement::status`], so an illegal one answers 409.

mod request;
mod view;

use alloy::primitives::B256;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use request::{Accept, Page, PaymentMethod, Propose, Reject};
pub use view::AgreementList;

use super::AppState;
use super::agreement_access::load_for;
use super::agreement_view::Agreement;
use super::auth::AgentAuth;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalApiJson};
use super::idempotency::Write;
use super::page;
use super::validate::{prose, wallet};
use crate::agreement::ids::AgentId;
use crate::agreement::status::Event;
use crate::agreement::status::InfraFeeStatus;
use crate::agreement::terms::{Agreed, Terms};
use crate::escrow::typed_data;
use crate::store::agents;
use crate::store::agreements::{self, AgreementRecord, Proposal};
use crate::store::outbox::EventType;
use crate::store::{now, outbox};

/// `POST /usage-agreements`: the authenticated agent proposes, as the buyer.
#[utoipa::path(
    post,
    path = "/usage-agreements",
    operation_id = "propose_agreement",
    tag = "agreements",
    request_body = Propose,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The proposed agreement", body = Agreement),
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
        payment_method: serde_json::to_value(&body.payment_method).unwrap_or_default(),
        buyer_wallet,
    };
    let record = AgreementRecord::proposed(proposal, now());
    let response = Agreement::from(&record);
    let mut tx = state.store.begin().await?;
    agreements::insert(&mut tx, &record).await?;
    outbox::record(
        &mut tx,
        Some(&record.id),
        EventType::AgreementProposed,
        &json!({}),
        record.created_at,
    )
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
        (status = 200, description = "The agreement", body = Agreement),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Agreement>> {
    Ok(Json(Agreement::from(&load_for(&state, &agent, &id).await?)))
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
        (status = 200, description = "A page of the agent's agreements, newest first", body = AgreementList),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(agent_id): ApiPath,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<AgreementList>> {
    if agent.id.as_str() != agent_id {
        return Err(ApiError::not_found("agent"));
    }
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
    Ok(Json(AgreementList {
        agreements: records.iter().map(Agreement::from).collect(),
        next_cursor,
    }))
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
        (status = 200, description = "The accepted agreement, terms fixed", body = Agreement),
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
    let response = Agreement::from(&accepted);
    let data = json!({ "agreement_key": key });
    outbox::record(&mut tx, Some(&record.id), EventType::AgreementAccepted, &data, now()).await?;
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
        (status = 200, description = "The rejected agreement", body = Agreement),
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
    let response = Agreement::from(&rejected);
    let data = json!({ "reason": rejected.rejection_reason });
    outbox::record(&mut tx, Some(&record.id), EventType::AgreementRejected, &data, now()).await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    Ok(Json(response).into_response())
}
