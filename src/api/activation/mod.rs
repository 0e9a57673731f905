//! The activation package the buyer signs, and `activate-escrow`, which checks the signed
//! package, screens both wallets and queues the activation for the relayer in one transaction;
//! and the escrow's status as the chain watcher confirmed it.

pub mod escrow_status;
mod request;
mod view;

use alloy::primitives::{Address, Bytes};
use alloy::sol_types::SolStruct;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use request::ActivateEscrow;
pub use view::{ActivationPackage, PackageInfraFee};

use super::AppState;
use super::agreement_access::load_for;
use super::agreement_view::Agreement;
use super::auth::AgentAuth;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath};
use super::idempotency::Write;
use super::signature::signature_error;
use super::time::rfc3339;
use crate::agreement::ids::JobId;
use crate::agreement::status::{AgreementStatus, Event};
use crate::agreement::terms::Terms;
use crate::escrow::calls;
use crate::escrow::package;
use crate::escrow::typed_data;
use crate::escrow::verify;
use crate::screening::ScreeningError;
use crate::store::agreements::{self, AgreementRecord};
use crate::store::jobs::{self, Job, KIND_ACTIVATE};
use crate::store::outbox::EventType;
use crate::store::{StoreError, now, outbox};

fn accepted_terms(record: &AgreementRecord) -> ApiResult<&Terms> {
    record.terms.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "an agreement in status `{}` has no activation package until the seller accepts",
                record.status
            ),
        )
        .with_details(json!({ "status": record.status }))
    })
}

/// `GET …/activation-package`: everything the buyer signs, as `eth_signTypedData_v4`
/// documents, plus where and how to submit the signatures.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/activation-package",
    operation_id = "activation_package",
    tag = "activation",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The documents the buyer signs", body = ActivationPackage),
        (status = 409, description = "The current state does not allow it, or a concurrent duplicate", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn package(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<ActivationPackage>> {
    let record = load_for(&state, &agent, &id).await?;
    let terms = accepted_terms(&record)?;
    let chain = &state.chain;
    let fee_recipient = if terms.infra_fee.is_zero() {
        Address::ZERO
    } else {
        chain.fee_recipient().await.map_err(ApiError::chain_unavailable)?
    };
    let built = package::activation_package(
        &terms.activation(),
        chain.escrow,
        chain.chain_id,
        chain.token,
        &chain.token_name,
        fee_recipient,
    )
    .map_err(ApiError::internal)?;
    Ok(Json(ActivationPackage::new(&record, terms, built, chain)))
}

/// 422 `activation_expired`: the chain's clock passed `activateBy` (whether or not the watcher
/// has marked the agreement `expired` yet).
fn activation_expired(terms: &Terms) -> ApiError {
    ApiError::new(
        ErrorCode::ActivationExpired,
        "the activation deadline has passed; nothing was queued",
    )
    .with_details(json!({ "activate_by": rfc3339(terms.activate_by as i64) }))
}

/// `POST …/activate-escrow`: verify, screen, queue, answer `202` at once.
#[utoipa::path(
    post,
    path = "/usage-agreements/{agreement_id}/activate-escrow",
    operation_id = "activate_escrow",
    tag = "activation",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    request_body = ActivateEscrow,
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "Activation queued; the agreement is `activating`", body = Agreement),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn activate(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<ActivateEscrow>>,
) -> ApiResult<Response> {
    let sent_chain_id = body.chain_id.as_ref().map(|n| n.get("chain_id")).transpose()?;
    let record = load_for(&state, &agent, &id).await?;
    if record.buyer_agent_id != agent.id {
        return Err(ApiError::forbidden("only the buyer can activate an agreement"));
    }
    let terms = accepted_terms(&record)?;
    if record.status == AgreementStatus::Expired {
        return Err(activation_expired(terms));
    }
    record.status.apply(Event::SubmitActivation)?;
    let chain = &state.chain;
    let key = record.agreement_key.ok_or_else(|| ApiError::internal("accepted without a key"))?;

    if let Some(chain_id) = sent_chain_id.filter(|id| *id != chain.chain_id) {
        return Err(ApiError::new(
            ErrorCode::WrongChainId,
            format!("signed for chain {chain_id}; this escrow is on chain {}", chain.chain_id),
        )
        .with_details(json!({ "expected": chain.chain_id, "received": chain_id })));
    }
    if let Some(sent) = body.agreement_key.filter(|sent| *sent != key) {
        return Err(ApiError::new(
            ErrorCode::PackageMismatch,
            "the signed package is not this agreement's current package",
        )
        .with_details(json!({ "expected": key, "received": sent })));
    }
    let chain_now = chain.now().await.map_err(ApiError::chain_unavailable)?;
    if chain_now >= terms.activate_by {
        return Err(activation_expired(terms));
    }

    let activation = terms.activation();
    let buyer = terms.buyer;
    verify::verify_signature(&chain.provider, buyer, key, &body.activation_signature)
        .await
        .map_err(|e| signature_error("activation", buyer, e))?;
    let funding = typed_data::funding_authorization(&activation, chain.escrow, key)
        .ok_or_else(|| ApiError::internal("deposit overflow in stored terms"))?;
    let funding_digest = funding.eip712_signing_hash(&chain.token_domain());
    // USDC checks the funding and the fee by its own rule: ERC-1271 alone for an account with
    // code. The buyer's code is read once for both.
    let buyer_kind = verify::signer_kind(&chain.provider, buyer)
        .await
        .map_err(|e| signature_error("funding", buyer, e))?;
    let funding_signature = &body.funding_signature;
    verify::verify_token_signature(
        &chain.provider,
        buyer,
        buyer_kind,
        funding_digest,
        funding_signature,
    )
    .await
    .map_err(|e| signature_error("funding", buyer, e))?;
    let fee_signature = match (&body.infra_fee_permit_signature, terms.infra_fee.is_zero()) {
        (_, true) => Bytes::new(),
        (None, false) => {
            return Err(ApiError::validation(
                "infra_fee_permit_signature",
                "this package has an infra fee; sign `infra_fee.permit` and send its signature",
            ));
        }
        (Some(signature), false) => {
            let permit = typed_data::fee_authorization(&activation, chain.escrow, key);
            let digest = permit.eip712_signing_hash(&chain.token_domain());
            verify::verify_token_signature(&chain.provider, buyer, buyer_kind, digest, signature)
                .await
                .map_err(|e| signature_error("infra_fee_permit", buyer, e))?;
            signature.clone()
        }
    };
    let needed = terms.deposit().base_units().saturating_add(terms.infra_fee.base_units());
    let balance = chain.balance(buyer).await.map_err(ApiError::chain_unavailable)?;
    if balance < needed {
        return Err(ApiError::new(
            ErrorCode::InsufficientFunds,
            "the buyer's wallet holds less than the deposit plus the infra fee",
        )
        .with_details(
            json!({ "required_amount": needed.to_string(), "balance_amount": balance.to_string() }),
        ));
    }

    let report = match state.screener.screen(&[buyer, terms.seller]).await {
        Ok(report) => report,
        Err(ScreeningError::Unavailable(reason)) => {
            tracing::warn!(agreement_id = %record.id, %reason, "screening unavailable");
            return Err(ApiError::new(
                ErrorCode::ScreeningUnavailable,
                "wallet screening is unavailable; nothing was queued, retry later",
            ));
        }
        Err(other) => return Err(ApiError::internal(other)),
    };
    let report_json = serde_json::to_value(&report).map_err(ApiError::internal)?;
    let sanctioned = report.sanctioned();
    if !sanctioned.is_empty() {
        let mut tx = state.store.begin().await?;
        agreements::record_screening(&mut tx, &record.id, &report_json).await?;
        tx.commit().await?;
        tracing::warn!(agreement_id = %record.id, ?sanctioned, "activation refused: sanctioned wallet");
        return Err(ApiError::new(
            ErrorCode::WalletSanctioned,
            "a party's wallet is on a sanctions list; the agreement cannot be activated",
        )
        .with_details(json!({
            "wallets": sanctioned.iter().map(|a| a.to_checksum(None)).collect::<Vec<_>>(),
        })));
    }

    let signatures = calls::ActivationSignatures {
        activation: body.activation_signature.clone(),
        funding: body.funding_signature.clone(),
        fee_permit: fee_signature,
    };
    let job = Job {
        id: JobId::generate(),
        kind: KIND_ACTIVATE,
        agreement_id: Some(record.id.clone()),
        to: chain.escrow,
        calldata: calls::activate(activation, &signatures),
        status: jobs::JobStatus::Queued,
        error: None,
    };
    let signatures = json!({
        "activation_signature": body.activation_signature,
        "funding_signature": body.funding_signature,
        "infra_fee_permit_signature": body.infra_fee_permit_signature,
    });
    let at = now();
    let mut tx = state.store.begin().await?;
    agreements::record_screening(&mut tx, &record.id, &report_json).await?;
    agreements::submit_activation(&mut tx, &record.id, record.status, &signatures, at)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::invalid_state(record.status, "activated again"),
            other => other.into(),
        })?;
    jobs::enqueue(&mut tx, &job, at).await?;
    let queued = agreements::get_in(&mut tx, record.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("queued agreement vanished"))?;
    let response = Agreement::from(&queued);
    let data = json!({ "job_id": job.id });
    outbox::record(&mut tx, Some(&record.id), EventType::ActivationQueued, &data, at).await?;
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &response).await?;
    tx.commit().await?;
    state.relayer_wake.notify_one();
    tracing::info!(agreement_id = %record.id, job_id = %job.id, "activation queued");
    Ok((StatusCode::ACCEPTED, Json(response)).into_response())
}
