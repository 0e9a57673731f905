//! Approving: the agent must not be halted, its period budgets must still allow the spend,
//! and an activation it held is queued with the signatures checked when it was submitted, in
//! the transaction that marks the approval `approved`.

use axum::http::StatusCode;
use serde_json::json;

use super::{ApprovalView, lost_race};
use crate::agreement::ids::AgreementId;
use crate::api::AppState;
use crate::api::activation_queue::{self, StoredSignatures};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::idempotency::Idempotency;
use crate::governance::{self, AgentState, Decision, Request};
use crate::payments::PaymentStatus;
use crate::store::governance::approvals::{self, Approval, ApprovalKind, ApprovalStatus};
use crate::store::governance::audit::{self, Actor, AuditDecision, AuditEntry, AuditKind};
use crate::store::governance::{self as rows, Scope};
use crate::store::outbox::{self, EventType};
use crate::store::{agreements, jobs, payments};

/// What an approved activation needs, read and checked before the decision's transaction.
struct HeldActivation {
    record: agreements::AgreementRecord,
    job: jobs::Job,
    screening: serde_json::Value,
}

/// Checks an activation held by `approval` can still go: deadline, screening, signatures kept.
async fn held_activation(state: &AppState, approval: &Approval) -> ApiResult<HeldActivation> {
    let record = agreements::get(state.store.reader(), &approval.subject_id)
        .await?
        .ok_or_else(|| ApiError::internal("approved agreement vanished"))?;
    let terms = record
        .terms
        .clone()
        .ok_or_else(|| ApiError::internal("an awaiting activation without terms"))?;
    let chain_now = state.chain.now().await.map_err(ApiError::chain_unavailable)?;
    if chain_now >= terms.activate_by {
        return Err(ApiError::new(
            ErrorCode::ActivationExpired,
            "the activation deadline has passed; the approval can no longer queue it",
        ));
    }
    let signatures: StoredSignatures =
        agreements::activation_signatures(state.store.reader(), &approval.subject_id)
            .await?
            .ok_or_else(|| ApiError::internal("an awaiting activation without signatures"))
            .and_then(|s| serde_json::from_value(s).map_err(ApiError::internal))?;
    // Sanctions lists change: the wallets are screened again before anything is sent.
    let screening = activation_queue::screen(state, &record, &terms).await?;
    let job = activation_queue::activation_job(state, &record, &terms, &signatures);
    Ok(HeldActivation { record, job, screening })
}

/// Checks a payment held by `approval` can still be signed: it waits for the approval and its
/// authorization is valid long enough to be signed and relayed.
async fn held_payment(
    state: &AppState,
    approval: &Approval,
    at: i64,
) -> ApiResult<crate::payments::Payment> {
    let payment = payments::get(state.store.reader(), &approval.subject_id)
        .await?
        .ok_or_else(|| ApiError::internal("approved payment vanished"))?;
    if payment.status != PaymentStatus::PendingApproval {
        return Err(ApiError::invalid_state(payment.status, "approve the payment"));
    }
    let margin = crate::api::payments::SIGNING_MARGIN_SECS;
    if u64::try_from(at).unwrap_or_default() + margin >= payment.valid_before {
        return Err(ApiError::new(
            ErrorCode::PaymentExpired,
            "the payment's authorization is too close to its `valid_before` to be signed",
        ));
    }
    Ok(payment)
}

/// Approves `approval`; returns it as decided.
pub(super) async fn approve(
    state: &AppState,
    approval: &Approval,
    reason: Option<String>,
    idempotency: &Idempotency,
    at: i64,
) -> ApiResult<Approval> {
    let held = match approval.kind {
        ApprovalKind::Activation => Some(held_activation(state, approval).await?),
        ApprovalKind::Check | ApprovalKind::Reservation | ApprovalKind::Payment => None,
    };
    let payment = match approval.kind {
        ApprovalKind::Payment => Some(held_payment(state, approval, at).await?),
        _ => None,
    };
    let mut tx = state.store.begin().await?;
    let locked = rows::lock_agent_with_policy(&mut tx, &approval.agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let agent = locked.state;
    if agent == AgentState::Halted {
        return Err(ApiError::new(
            ErrorCode::AgentHalted,
            "the agent is halted; resume it before approving its spending",
        ));
    }
    // What binds now: the period budgets (not the escalation the owner is answering), the
    // agent's lease and, for a reservation, its mandate.
    let policy = crate::api::spend_gate::policy_in_force(&mut tx, &approval.agent_id)
        .await?
        .map(|(policy, _)| crate::api::spend_gate::budgets_only(&policy))
        .unwrap_or_default();
    let waiting = match approval.kind {
        ApprovalKind::Reservation => rows::holds::get_in(&mut tx, &approval.subject_id).await?,
        ApprovalKind::Payment => match payment.as_ref().and_then(|p| p.reservation_id.as_deref()) {
            Some(hold) => rows::holds::get_in(&mut tx, hold).await?,
            None => None,
        },
        _ => None,
    };
    let request = Request {
        action_type: approval.action_type.parse().unwrap_or(governance::ActionType::Spend),
        amount_cents: approval.amount_cents,
        counterparties: approval.counterparty.iter().cloned().collect(),
        categories: waiting.iter().filter_map(|h| h.category.clone()).collect(),
        country: None,
        at,
        metadata: governance::Metadata::default(),
    };
    let scope = Scope { agent_id: &approval.agent_id, kind: "activation" };
    let mut facts = rows::facts(&mut tx, scope, &policy, &request, "", agent).await?;
    if approval.kind != ApprovalKind::Check {
        facts.lease =
            crate::api::spend_gate::lease_fact(&mut tx, locked.lease_id.as_deref()).await?;
    }
    let mandate = waiting.as_ref().and_then(|h| h.mandate_id.as_deref());
    facts.mandate_refusal = crate::api::spend_gate::mandate_fact(
        &mut tx,
        (&approval.account_id, &approval.agent_id),
        mandate,
        &request,
    )
    .await?;
    let evaluation = governance::evaluate(&policy, &request, &facts);
    if evaluation.decision == Decision::Block {
        return Err(ApiError::new(
            ErrorCode::PolicyBlocked,
            evaluation.message.clone().unwrap_or_default(),
        )
        .with_details(json!({
            "reason_code": evaluation.reason_code,
            "violated_rule_id": evaluation.violated_rule_id,
            "message": evaluation.message,
            "decline_message": evaluation.decline_message,
        })));
    }
    let Some(decided) = approvals::decide(
        &mut tx,
        approval.id.as_str(),
        ApprovalStatus::Approved,
        reason.as_deref(),
        at,
    )
    .await?
    else {
        // The transaction goes first: reading with another connection while holding this one
        // could starve the pool when many decisions race.
        drop(tx);
        return Err(lost_race(state, approval, at).await);
    };
    if let Some(held) = &held {
        let id = AgreementId(approval.subject_id.clone());
        agreements::record_screening(&mut tx, &id, &held.screening).await?;
        if !agreements::approve_activation(&mut tx, &id, at).await? {
            return Err(ApiError::invalid_state(held.record.status, "activated after approval"));
        }
        let bound = rows::Bound { lease_id: locked.lease_id.clone(), ..rows::Bound::default() };
        rows::commit_activation(&mut tx, id.as_str(), approval.amount_cents, at, &bound).await?;
        jobs::enqueue(&mut tx, &held.job, at).await?;
        let data = json!({ "job_id": held.job.id, "approval_id": approval.id });
        outbox::record(&mut tx, Some(&id), EventType::ActivationQueued, &data, at).await?;
    }
    if let Some(payment) = &payment {
        let hold = payment.reservation_id.as_deref().unwrap_or_default();
        rows::holds::approve(&mut tx, hold, approval.id.as_str(), at).await?;
        let from = [PaymentStatus::PendingApproval];
        let to = PaymentStatus::AwaitingSignature;
        let change = payments::Change::default();
        let signable = payments::transition(&mut tx, payment.id.as_str(), &from, to, &change, at)
            .await?
            .ok_or_else(|| ApiError::invalid_state(payment.status, "approve the payment"))?;
        payments::announce(&mut tx, &signable, at).await?;
    }
    if approval.kind == ApprovalKind::Reservation {
        let held = rows::holds::approve(&mut tx, &approval.subject_id, approval.id.as_str(), at)
            .await?
            .ok_or_else(|| {
                ApiError::new(ErrorCode::ReservationNotPending, "the reservation no longer waits")
            })?;
        let data = rows::holds::event_data(&held);
        outbox::record_for_agent(
            &mut tx,
            &held.agent_id,
            EventType::ReservationReserved,
            &data,
            at,
        )
        .await?;
    }
    let mut entry = AuditEntry::new(
        &approval.account_id,
        Some(&approval.agent_id),
        AuditKind::Approval,
        AuditDecision::Approved,
        Actor::Owner,
        at,
    );
    entry.subject_id = Some(approval.id.to_string());
    entry.action_type = Some(approval.action_type.clone());
    entry.amount_cents = Some(approval.amount_cents);
    entry.currency = Some(approval.currency.clone());
    entry.detail = json!({
        "kind": approval.kind.as_str(),
        "subject_id": approval.subject_id,
        "reason": decided.decision_reason,
    });
    audit::append(&mut tx, &entry).await?;
    let data = rows::approval_event(&decided);
    outbox::record_for_agent(&mut tx, &approval.agent_id, EventType::ApprovalApproved, &data, at)
        .await?;
    idempotency.save(&mut tx, StatusCode::OK, &ApprovalView::from(&decided)).await?;
    tx.commit().await?;
    if let Some(held) = &held {
        state.relayer.queued(&held.job);
    }
    Ok(decided)
}
