//! The activation package the buyer signs, and `activate-escrow`, which checks the signed
//! package, screens both wallets and queues the activation for the relayer in one transaction.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::{SolCall, SolStruct};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::agreements::{agreement_json, load_for};
use super::error::{ApiError, ApiResult};
use super::extract::{AgentAuth, ApiJson, ApiPath};
use super::idempotency::Write;
use super::time::rfc3339;
use crate::agreement::ids::JobId;
use crate::agreement::status::{AgreementStatus, Event};
use crate::agreement::terms::Terms;
use crate::escrow::bindings::UsageEscrow;
use crate::escrow::package;
use crate::escrow::typed_data;
use crate::escrow::verify::{self, VerifyError};
use crate::screening::ScreeningError;
use crate::store::agreements::{self, AgreementRecord};
use crate::store::jobs::{self, Job, KIND_ACTIVATE};
use crate::store::{StoreError, now, outbox};

/// The body of `POST …/activate-escrow`: the buyer's signatures over the package.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"activation_signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b", "funding_signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b", "infra_fee_permit_signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b", "agreement_key": "0x9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f9c1f", "chain_id": 31337}))]
pub struct ActivateEscrow {
    /// The buyer's signature of the `activation` document (65-byte ECDSA, or whatever the
    /// buyer's ERC-1271 wallet accepts).
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub activation_signature: Bytes,
    /// The buyer's signature of the `funding` (`ReceiveWithAuthorization`) document.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub funding_signature: Bytes,
    /// The buyer's signature of `infra_fee.permit`; required when the package has a fee.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub infra_fee_permit_signature: Option<Bytes>,
    /// The package's `agreement_key`, echoed back: a mismatch means the buyer signed another
    /// package (optional, recommended).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub agreement_key: Option<B256>,
    /// The chain the buyer's wallet signed for, echoed back (optional, recommended).
    #[serde(default)]
    pub chain_id: Option<u64>,
}

fn accepted_terms(record: &AgreementRecord) -> ApiResult<&Terms> {
    record.terms.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
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
        (status = 200, description = "The documents the buyer signs", body = crate::api::schema::ActivationPackage),
        (status = 409, description = "The current state does not allow it, or a concurrent duplicate", body = crate::api::schema::Error),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::schema::Error),
    ),
)]
pub async fn package(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Value>> {
    let record = load_for(&state, &agent, &id).await?;
    let terms = accepted_terms(&record)?;
    let chain = &state.chain;
    let permit_nonce = if terms.infra_fee.is_zero() {
        U256::ZERO
    } else {
        chain.permit_nonce(terms.buyer).await.map_err(ApiError::chain_unavailable)?
    };
    let built = package::activation_package(
        &terms.activation(),
        chain.escrow,
        chain.chain_id,
        chain.token,
        &chain.token_name,
        permit_nonce,
        chain.fee_recipient,
    )
    .map_err(ApiError::internal)?;
    let mut body = serde_json::to_value(&built).map_err(ApiError::internal)?;
    if let Some(fee) = body.get_mut("infra_fee") {
        fee["status"] = serde_json::to_value(record.infra_fee_status).unwrap_or(Value::Null);
    }
    body["agreement_id"] = json!(record.id);
    body["chain_id"] = json!(chain.chain_id);
    body["escrow_contract"] = json!(chain.escrow.to_checksum(None));
    body["token"] = json!(chain.token.to_checksum(None));
    body["deposit_amount"] = json!(terms.deposit());
    body["activate_by"] = json!(rfc3339(terms.activate_by as i64));
    body["submit_to"] = json!(format!("/usage-agreements/{}/activate-escrow", record.id));
    Ok(Json(body))
}

/// 422 `activation_expired`: the chain's clock passed `activateBy` (whether or not the watcher
/// has marked the agreement `expired` yet).
fn activation_expired(terms: &Terms) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "activation_expired",
        "the activation deadline has passed; nothing was queued",
    )
    .with_details(json!({ "activate_by": rfc3339(terms.activate_by as i64) }))
}

/// 422 `invalid_signature` for `document`, naming the wallet that had to sign it; 503 when the
/// wallet's ERC-1271 check could not reach the chain.
pub(crate) fn signature_error(document: &str, expected: Address, error: VerifyError) -> ApiError {
    match error {
        VerifyError::Unavailable(e) => ApiError::chain_unavailable(e),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_signature",
            format!("the `{document}` signature is not from the wallet that must sign it: {other}"),
        )
        .with_details(json!({
            "document": document,
            "expected_signer": expected.to_checksum(None),
        })),
    }
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
        (status = 202, description = "Activation queued; the agreement is `activating`", body = crate::api::schema::Agreement),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::schema::Error),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::schema::Error),
    ),
)]
pub async fn activate(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<ActivateEscrow>>,
) -> ApiResult<Response> {
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

    if let Some(chain_id) = body.chain_id.filter(|id| *id != chain.chain_id) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_chain_id",
            format!("signed for chain {chain_id}; this escrow is on chain {}", chain.chain_id),
        )
        .with_details(json!({ "expected": chain.chain_id, "received": chain_id })));
    }
    if let Some(sent) = body.agreement_key.filter(|sent| *sent != key) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "package_mismatch",
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
    verify::verify_signature(&chain.provider, buyer, funding_digest, &body.funding_signature)
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
            let nonce = chain.permit_nonce(buyer).await.map_err(ApiError::chain_unavailable)?;
            let permit = typed_data::fee_permit(&activation, chain.escrow, nonce);
            let digest = permit.eip712_signing_hash(&chain.token_domain());
            verify::verify_signature(&chain.provider, buyer, digest, signature)
                .await
                .map_err(|e| signature_error("infra_fee_permit", buyer, e))?;
            signature.clone()
        }
    };
    let needed = terms.deposit().base_units().saturating_add(terms.infra_fee.base_units());
    let balance = chain.balance(buyer).await.map_err(ApiError::chain_unavailable)?;
    if balance < needed {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_funds",
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
                StatusCode::SERVICE_UNAVAILABLE,
                "screening_unavailable",
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
            StatusCode::FORBIDDEN,
            "wallet_sanctioned",
            "a party's wallet is on a sanctions list; the agreement cannot be activated",
        )
        .with_details(json!({
            "wallets": sanctioned.iter().map(|a| a.to_checksum(None)).collect::<Vec<_>>(),
        })));
    }

    // The contract takes `v` as 27/28 only; wallets may sign with 0/1.
    let canonical = |sig: &Bytes| verify::canonical_signature(sig).unwrap_or_else(|_| sig.clone());
    let call = UsageEscrow::activateCall {
        terms: activation,
        buyerSignature: canonical(&body.activation_signature),
        fundingSignature: canonical(&body.funding_signature),
        feePermitSignature: if fee_signature.is_empty() {
            fee_signature
        } else {
            canonical(&fee_signature)
        },
    };
    let job = Job {
        id: JobId::generate(),
        kind: KIND_ACTIVATE,
        agreement_id: Some(record.id.clone()),
        to: chain.escrow,
        calldata: call.abi_encode().into(),
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
    let response = agreement_json(&queued);
    let data = json!({ "job_id": job.id });
    outbox::record(&mut tx, Some(&record.id), "activation.queued", &data, at).await?;
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &response).await?;
    tx.commit().await?;
    state.relayer_wake.notify_one();
    tracing::info!(agreement_id = %record.id, job_id = %job.id, "activation queued");
    Ok((StatusCode::ACCEPTED, Json(response)).into_response())
}
