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
use super::activation_queue::{self, StoredSignatures};
use super::agreement_access::load_for;
use super::agreement_view::Agreement;
use super::auth::AgentAuth;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath};
use super::idempotency::Write;
use super::signature::signature_error;
use super::spend_gate::{self, Spend};
use super::time::rfc3339;
use crate::agreement::status::{ActivationStatus, AgreementStatus, Event};
use crate::agreement::terms::Terms;
use crate::escrow::package;
use crate::escrow::typed_data;
use crate::escrow::verify;
use crate::governance::{ActionType, Confidence, Decision, Metadata, Request};
use crate::store::agreements::{self, AgreementRecord};
use crate::store::governance as governance_rows;
use crate::store::governance::approvals::ApprovalKind;
use crate::store::governance::audit::{Actor, AuditKind};
use crate::store::jobs;
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
        (status = 202, description = "Activation queued (the agreement is `activating`), or held for the owner's approval (`activation_status` `awaiting_approval`, with `approval_id`)", body = Agreement),
        (status = 403, description = "The caller is not the party allowed to do this, or `agent_halted`", body = crate::api::error::ErrorBody),
        (status = 422, description = "`policy_blocked`: the buyer's policy refuses it; nothing was queued", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn activate(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<ActivateEscrow>>,
) -> ApiResult<Response> {
    let started = std::time::Instant::now();
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
    if record.activation_status == ActivationStatus::AwaitingApproval {
        return Err(ApiError::invalid_state(record.activation_status, "activated again"));
    }
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

    let report_json = activation_queue::screen(&state, &record, terms).await?;
    let signatures = StoredSignatures {
        activation_signature: body.activation_signature.clone(),
        funding_signature: body.funding_signature.clone(),
        infra_fee_permit_signature: (!fee_signature.is_empty()).then(|| fee_signature.clone()),
    };
    let signatures_json = serde_json::to_value(&signatures).map_err(ApiError::internal)?;
    let at = now();
    let mut tx = state.store.begin().await?;
    // The buyer's policy decides in this transaction, so what it counts and what it lets
    // through commit together. The decision takes the agent's lock first, before any other
    // row, as every governance write does, so two of them never wait on each other in a cycle.
    let mut counterparties =
        vec![record.seller_agent_id.to_string(), terms.seller.to_checksum(None)];
    counterparties.dedup();
    let spend = Spend {
        account_id: agent.account_id.to_string(),
        agent_id: agent.id.to_string(),
        kind: AuditKind::Activation,
        actor: Actor::Agent,
        subject_id: Some(record.id.to_string()),
        currency: "USDC".to_owned(),
        confidence: Confidence::High,
        request: Request {
            action_type: ActionType::Spend,
            amount_cents: activation_queue::committed_cents(terms),
            counterparties,
            categories: [&record.service_id, &record.unit]
                .into_iter()
                .filter(|c| !c.is_empty())
                .cloned()
                .collect(),
            country: None,
            at,
            metadata: Metadata::default(),
        },
        expect_policy: None,
        mandate_id: None,
        budgets_only: false,
        started,
    };
    let mut gated = spend_gate::decide(&mut tx, &spend).await?;
    if gated.evaluation.decision != Decision::Block {
        agreements::record_screening(&mut tx, &record.id, &report_json).await?;
    }
    let conflict = |e| match e {
        StoreError::Conflict => ApiError::invalid_state(record.status, "activated again"),
        other => other.into(),
    };
    let mut approval_id = None;
    let mut queued_job = None;
    match gated.evaluation.decision {
        Decision::Block => {
            spend_gate::store_check(&mut tx, &spend, &gated).await?;
            tx.commit().await?;
            tracing::info!(agreement_id = %record.id, reason = ?gated.evaluation.reason_code, "activation blocked by policy");
            return Err(gated.refusal());
        }
        Decision::Escalate => {
            // The approval can wait no longer than the activation can.
            let ttl = i64::try_from(state.approval_ttl).unwrap_or(i64::MAX);
            let deadline = i64::try_from(terms.activate_by).unwrap_or(i64::MAX);
            let expires_at = at.saturating_add(ttl).min(deadline);
            agreements::await_approval(&mut tx, &record.id, record.status, &signatures_json, at)
                .await
                .map_err(conflict)?;
            let approval = spend_gate::open_approval(
                &mut tx,
                &spend,
                &gated,
                ApprovalKind::Activation,
                record.id.as_str(),
                expires_at,
            )
            .await?;
            gated.response.approval_id = Some(approval.id.to_string());
            approval_id = Some(approval.id.to_string());
            spend_gate::store_check(&mut tx, &spend, &gated).await?;
        }
        Decision::Allow => {
            spend_gate::store_check(&mut tx, &spend, &gated).await?;
            let job = activation_queue::activation_job(&state, &record, terms, &signatures);
            agreements::submit_activation(&mut tx, &record.id, record.status, &signatures_json, at)
                .await
                .map_err(conflict)?;
            let bound = governance_rows::Bound {
                lease_id: gated.lease_id.clone(),
                mandate_id: spend.mandate_id.clone(),
                check_id: Some(gated.response.check_id.clone()),
            };
            governance_rows::commit_activation(
                &mut tx,
                record.id.as_str(),
                spend.request.amount_cents,
                at,
                &bound,
            )
            .await?;
            jobs::enqueue(&mut tx, &job, at).await?;
            let data = json!({ "job_id": job.id });
            outbox::record(&mut tx, Some(&record.id), EventType::ActivationQueued, &data, at)
                .await?;
            queued_job = Some(job);
        }
    }
    let queued = agreements::get_in(&mut tx, record.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("queued agreement vanished"))?;
    let response = Agreement {
        approval_id,
        check_id: Some(gated.response.check_id.clone()),
        ..Agreement::from(&queued)
    };
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &response).await?;
    tx.commit().await?;
    if let Some(job) = &queued_job {
        state.relayer.queued(job);
    }
    tracing::info!(agreement_id = %record.id, activation_status = %queued.activation_status, "activation accepted");
    Ok((StatusCode::ACCEPTED, Json(response)).into_response())
}
