//! The sponsored path: a party signs an authorization and Pactum relays the action, paying the
//! gas.

use alloy::primitives::Bytes;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::view::SettlementAction as SettlementActionView;
use super::{authorization, fixed_terms, party_of, planned, refusal_error, voucher_for, wallet_of};
use crate::agreement::ids::{JobId, SettlementActionId};
use crate::agreement::settlement::{Action, Party};
use crate::api::AppState;
use crate::api::agreement_access::load_for;
use crate::api::auth::AgentAuth;
use crate::api::document_number::DocumentNumber;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, ApiPathPair};
use crate::api::idempotency::{Idempotency, Write};
use crate::api::signature::signature_error;
use crate::escrow::calls;
use crate::escrow::verify;
use crate::money::TokenAmount;
use crate::store::agents::Agent;
use crate::store::jobs::{self, Job};
use crate::store::outbox::EventType;
use crate::store::settlement::{self as store, SettlementAction};
use crate::store::{now, outbox};

/// The `{action}` of a sponsored-action route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SponsoredActionName {
    /// `initiateCloseWithAuthorization`.
    InitiateClose,
    /// `sellerClaimWithAuthorization`.
    SellerClaim,
    /// `buyerWithdrawWithAuthorization`.
    BuyerWithdraw,
}

/// The body of a sponsored action: the party's signed authorization.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"deadline": 1767229200, "authorization_signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b", "units": 40}))]
pub struct SponsoredBody {
    /// The authorization's `deadline` (unix seconds), as signed: a number or the document's
    /// decimal string.
    pub deadline: DocumentNumber,
    /// The party's signature of the authorization document.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub authorization_signature: Bytes,
    /// A close's `finalUnits` or a claim's `cumulativeUnits`, as signed (default: what
    /// `settlement-action-options` offered — the buyer's best voucher; 0 for a buyer's close).
    #[serde(default)]
    pub units: Option<DocumentNumber>,
}

/// A deadline less than this many seconds past the head Pactum saw last is checked against the
/// head read from the node now; later ones (the options offer `authorization_ttl`) need no call.
const DEADLINE_RECHECK_SECS: u64 = 120;

async fn sponsored(
    state: &AppState,
    agent: &Agent,
    id: &str,
    idempotency: Idempotency,
    body: SponsoredBody,
    (deadline, signed_units): (u64, Option<u64>),
    action: Action,
) -> ApiResult<Response> {
    let record = load_for(state, agent, id).await?;
    let party = party_of(&record, agent);
    let (terms, key) = fixed_terms(&record)?;
    let (plan, _, head) = planned(state, &record, action, party).await?;
    let plan = plan.map_err(refusal_error)?;
    let units = signed_units.unwrap_or(plan.units);
    if units != plan.units && !(action == Action::InitiateClose && party == Party::Buyer) {
        return Err(ApiError::new(
            ErrorCode::UnitsMismatch,
            "the signed units must be the buyer's best voucher, which Pactum submits with it",
        )
        .with_details(json!({ "expected_units": plan.units, "received_units": units })));
    }
    let mut chain_now = head.timestamp;
    if deadline <= chain_now.saturating_add(DEADLINE_RECHECK_SECS) {
        // Close to the head Pactum saw last: the chain may be past it already.
        chain_now = state.chain.read_head().await.map_err(ApiError::chain_unavailable)?.timestamp;
    }
    if deadline <= chain_now {
        return Err(ApiError::new(
            ErrorCode::AuthorizationExpired,
            "the authorization's deadline has passed by the chain's clock; sign a new one",
        )
        .with_details(json!({ "deadline": deadline, "chain_time": chain_now })));
    }
    let signer = wallet_of(terms, party);
    let (_, digest) = authorization(state, action, party, terms, key, units, deadline);
    verify::verify_signature(&state.chain.provider, signer, digest, &body.authorization_signature)
        .await
        .map_err(|e| signature_error(action.as_str(), signer, e))?;

    let kind = match action {
        Action::InitiateClose => jobs::KIND_INITIATE_CLOSE,
        Action::SellerClaim => jobs::KIND_SELLER_CLAIM,
        Action::BuyerWithdraw => jobs::KIND_BUYER_WITHDRAW,
    };
    let authorization =
        calls::Authorization { signer, deadline, signature: body.authorization_signature.clone() };
    let voucher = voucher_for(&record, &plan);
    let calldata = calls::sponsored(action, terms.activation(), units, &voucher, &authorization);
    let job = Job {
        id: JobId::generate(),
        kind,
        agreement_id: Some(record.id.clone()),
        to: state.chain.escrow,
        calldata,
        status: crate::store::jobs::JobStatus::Queued,
        error: None,
    };
    let at = now();
    let settlement_action = SettlementAction {
        id: SettlementActionId::generate(),
        agreement_id: record.id.clone(),
        action,
        party,
        signer,
        units,
        amount: TokenAmount::new(plan.amount),
        deadline,
        authorization_digest: digest,
        authorization_signature: body.authorization_signature.clone(),
        job_id: job.id.clone(),
        status: store::PENDING,
        tx_hash: None,
        block_number: None,
        error: None,
        created_at: at,
        updated_at: at,
    };
    let replayed = |existing: Option<&SettlementAction>| {
        ApiError::new(
            ErrorCode::AuthorizationReplayed,
            "this signed authorization was already submitted; each is relayed once",
        )
        .with_details(json!({ "settlement_action_id": existing.map(|a| a.id.clone()) }))
    };
    let mut tx = state.store.begin().await?;
    if let Some(existing) = store::by_digest(&mut tx, digest).await? {
        return Err(replayed(Some(&existing)));
    }
    jobs::enqueue(&mut tx, &job, at).await?;
    store::insert_action(&mut tx, &settlement_action)
        .await
        .map_err(|e| if e.is_unique_violation() { replayed(None) } else { e.into() })?;
    let response = SettlementActionView::try_from(&settlement_action)?;
    let data = json!({
        "settlement_action_id": settlement_action.id,
        "action": action.as_str(),
        "party": party.as_str(),
        "amount": settlement_action.amount,
    });
    outbox::record(&mut tx, Some(&record.id), EventType::SettlementActionQueued, &data, at).await?;
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &response).await?;
    tx.commit().await?;
    state.relayer.queued(&job);
    tracing::info!(agreement_id = %record.id, settlement_action_id = %settlement_action.id, action = action.as_str(), "sponsored action queued");
    Ok((StatusCode::ACCEPTED, Json(response)).into_response())
}

/// `POST …/sponsored-actions/{action}`: `initiate-close`, `seller-claim` or `buyer-withdraw`.
#[utoipa::path(
    post,
    path = "/usage-agreements/{agreement_id}/sponsored-actions/{action}",
    operation_id = "sponsored_action",
    tag = "settlement",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
        ("action" = SponsoredActionName, Path, description = "`initiate-close`, `seller-claim` or `buyer-withdraw`"),
    ),
    request_body = SponsoredBody,
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "Queued for the relayer", body = SettlementActionView),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn sponsored_action(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPathPair(id, action): ApiPathPair,
    Write(ApiJson(body), idempotency): Write<ApiJson<SponsoredBody>>,
) -> ApiResult<Response> {
    let deadline = body.deadline.get("deadline")?;
    let units = body.units.as_ref().map(|units| units.get("units")).transpose()?;
    let action = Action::parse(&action.replace('-', "_"))
        .filter(|_| !action.contains('_'))
        .ok_or_else(|| ApiError::not_found("route"))?;
    sponsored(&state, &agent, &id, idempotency, body, (deadline, units), action).await
}
