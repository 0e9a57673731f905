//! Applying what the chain confirmed: an escrow event moves its agreement's escrow state by the
//! pure rules of `agreement::settlement`, with its outbox event and (when it moves money) its
//! signed receipt in the same transaction; a job's confirmed attempt settles what it carried.

use serde_json::json;

use super::Result;
use crate::agreement::settlement::{Action, ChainEvent, ClaimSkipReason};
use crate::receipts::{self, Deployment, EventFacts, Parties, ReceiptKey};
use crate::store::attempts::Attempt;
use crate::store::chain::{self as chain_store, EscrowEvent};
use crate::store::jobs::{Job, JobKind};
use crate::store::outbox::EventType;
use crate::store::{Conn, agreements, now, outbox, receipts as receipt_store, settlement};

/// The receipt key and the deployment receipts name.
pub(super) struct Issuer<'a> {
    pub(super) key: &'a ReceiptKey,
    pub(super) deployment: Deployment,
}

/// Signs and stores the receipt of `event` when it moves money (activation, seller claim,
/// buyer withdraw; see `ReceiptKind::of_event`), in the caller's transaction. A receipt for the
/// same transaction and log index already stored is kept as it is.
async fn issue_receipt(
    tx: &mut Conn,
    event: &EscrowEvent,
    record: &agreements::AgreementRecord,
    issuer: &Issuer<'_>,
) -> Result<()> {
    let parties = Parties {
        agreement_id: record.id.clone(),
        buyer_agent_id: record.buyer_agent_id.clone(),
        seller_agent_id: record.seller_agent_id.clone(),
        buyer_wallet: record.terms.as_ref().map_or(record.buyer_wallet, |t| t.buyer),
        seller_wallet: record
            .terms
            .as_ref()
            .map(|t| t.seller)
            .or(record.seller_wallet)
            .unwrap_or_default(),
    };
    let facts = EventFacts {
        event: &event.event,
        agreement_key: event.agreement_key,
        data: &event.data,
        tx_hash: event.tx_hash,
        block_number: event.block_number,
        block_hash: event.block_hash,
        log_index: event.log_index,
    };
    let Some(receipt) = receipts::receipt_for(&facts, parties, issuer.deployment, now()) else {
        return Ok(());
    };
    let receipt = issuer.key.sign(receipt);
    let stored = receipt_store::insert(tx, &receipt).await?;
    tracing::info!(receipt_id = %receipt.id, kind = %receipt.kind, agreement_id = %record.id, stored, "receipt issued");
    Ok(())
}

/// Applies one confirmed escrow event to the agreement it concerns (if Pactum has it): the
/// escrow state moves as the contract moved it, the agreement status follows, and the change
/// goes to the outbox in the same transaction, with the event's signed receipt when it moves
/// money.
pub(super) async fn apply_event(
    tx: &mut Conn,
    event: &EscrowEvent,
    issuer: &Issuer<'_>,
) -> Result<()> {
    if event.event == super::payments::SPENT {
        return super::payments::apply_spent(tx, event, issuer).await;
    }
    let Some(record) = agreements::get_by_key(tx, event.agreement_key).await? else {
        return Ok(());
    };
    issue_receipt(tx, event, &record, issuer).await?;
    let at = now();
    if event.event == "EscrowActivated" {
        let applied = agreements::escrow_activated(
            tx,
            event.agreement_key,
            event.tx_hash,
            event.block_number,
            event.block_hash,
            at,
        )
        .await?;
        if applied {
            let data = json!({ "tx_hash": event.tx_hash, "block_number": event.block_number });
            outbox::record(tx, Some(&record.id), EventType::ActivationConfirmed, &data, at).await?;
        }
        tracing::info!(agreement_key = %event.agreement_key, applied, "escrow activation confirmed");
        return Ok(());
    }
    let (Some(seen), Some(terms)) = (&record.escrow, &record.terms) else {
        tracing::warn!(agreement_key = %event.agreement_key, event = %event.event, "settlement event before activation; ignored");
        return Ok(());
    };
    let Some(change) = chain_event(event, terms.buyer) else { return Ok(()) };
    let state = seen.state.apply(&change);
    let status = state.status.agreement_status().unwrap_or(record.status);
    agreements::escrow_changed(
        tx,
        &record.id,
        &state,
        status,
        (event.tx_hash, event.block_number, event.block_hash),
        at,
    )
    .await?;
    let event_type = match change {
        ChainEvent::CloseInitiated { .. } => EventType::SettlementCloseInitiated,
        ChainEvent::UsageClaimed { .. } => EventType::SettlementClaimed,
        ChainEvent::BuyerWithdrawn => EventType::SettlementWithdrawn,
        ChainEvent::Settled { .. } => EventType::AgreementSettled,
        ChainEvent::Activated | ChainEvent::ClaimSkipped => return Ok(()),
    };
    let mut data = event.data.clone();
    data["tx_hash"] = json!(event.tx_hash);
    data["block_number"] = json!(event.block_number);
    data["status"] = json!(status);
    outbox::record(tx, Some(&record.id), event_type, &data, at).await?;
    tracing::info!(agreement_id = %record.id, event = %event.event, %status, "escrow event applied");
    Ok(())
}

/// A stored escrow event as the pure state machine's input; `buyer` tells whose close it was.
pub(crate) fn chain_event(
    event: &EscrowEvent,
    buyer: alloy::primitives::Address,
) -> Option<ChainEvent> {
    let units = |field: &str| event.data[field].as_str().and_then(|v| v.parse::<u64>().ok());
    Some(match event.event.as_str() {
        "EscrowActivated" => ChainEvent::Activated,
        "CloseInitiated" => ChainEvent::CloseInitiated {
            by_buyer: event.data["initiator"].as_str().and_then(|a| a.parse().ok()) == Some(buyer),
            closes_at: units("closes_at")?,
        },
        "UsageClaimed" => ChainEvent::UsageClaimed { cumulative_units: units("cumulative_units")? },
        "BuyerWithdrawn" => ChainEvent::BuyerWithdrawn,
        "AgreementSettled" => ChainEvent::Settled {
            claimed_units: units("claimed_units")?,
            buyer_amount_is_zero: event.data["buyer_amount"].as_str() == Some("0"),
        },
        "ClaimSkipped" => ChainEvent::ClaimSkipped,
        _ => return None,
    })
}

/// What a job's confirmed (or reverted) attempt means for what it carried: an activation fails
/// with the revert reason; each settlement action is confirmed, or failed with the reason — a
/// batched claim the contract skipped (nothing left to claim) fails too, saying so.
pub(super) async fn job_outcome(
    tx: &mut Conn,
    job: &Job,
    attempt: &Attempt,
    error: Option<&str>,
) -> Result<()> {
    let at = now();
    if let Some(reason) = error {
        let data = json!({ "job_id": job.id, "kind": job.kind, "tx_hash": attempt.tx_hash, "error": reason });
        outbox::record(tx, job.agreement_id.as_ref(), EventType::RelayerJobFailed, &data, at)
            .await?;
    }
    if matches!(job.kind, JobKind::Payment | JobKind::PaymentBatch) {
        // A transfer is confirmed from the token's logs (whoever sent it); a revert fails the
        // payments unless those logs show their authorization spent. A batch that went through
        // fails the payments the token refused inside it (their nonces unspent).
        let refused = "refused by the token inside the batch (see its TransferRefused event)";
        match error {
            Some(reason) => {
                crate::store::payments::job_failed(tx, job.id.as_str(), reason, at).await?
            }
            None if job.kind == JobKind::PaymentBatch => {
                crate::store::payments::job_failed(tx, job.id.as_str(), refused, at).await?
            }
            None => {}
        }
        return Ok(());
    }
    if job.kind == JobKind::Activate {
        if let (Some(reason), Some(agreement)) = (error, &job.agreement_id)
            && agreements::activation_failed(tx, agreement, reason, at).await?
        {
            let data = json!({ "error": reason, "tx_hash": attempt.tx_hash });
            outbox::record(tx, Some(agreement), EventType::ActivationFailed, &data, at).await?;
        }
        return Ok(());
    }
    for action in settlement::actions_of_job(tx, &job.id).await? {
        let outcome = match error {
            Some(reason) => Some(reason.to_owned()),
            None => {
                let key = agreements::get_in(tx, action.agreement_id.as_str())
                    .await?
                    .and_then(|a| a.agreement_key);
                let events = match key {
                    Some(key) => chain_store::events_of(tx, attempt.tx_hash, key).await?,
                    None => Vec::new(),
                };
                if job.kind == JobKind::SettlementBatch {
                    // Carried out when its own event is in the batch's logs; the contract skips
                    // a call it refuses (`BatchCallFailed`) and leaves its escrow as it was.
                    let carried = carried_by(action.action);
                    (!events.iter().any(|e| e.event == carried))
                        .then(|| REFUSED_IN_BATCH.to_owned())
                } else {
                    let skipped = events.iter().find(|e| e.event == "ClaimSkipped");
                    let claimed = events.iter().any(|e| e.event == "UsageClaimed");
                    skipped.filter(|_| !claimed).map(|e| skip_outcome(&e.data))
                }
            }
        };
        settlement::finish(
            tx,
            &action.id,
            outcome.as_deref(),
            Some(attempt.tx_hash),
            attempt.block_number,
            at,
        )
        .await?;
        let event_type = if outcome.is_some() {
            EventType::SettlementActionFailed
        } else {
            EventType::SettlementActionConfirmed
        };
        let data = json!({
            "settlement_action_id": action.id,
            "action": action.action.as_str(),
            "tx_hash": attempt.tx_hash,
            "error": outcome,
        });
        outbox::record(tx, Some(&action.agreement_id), event_type, &data, at).await?;
    }
    Ok(())
}

/// The failure of a close or withdraw a settlement batch did not carry out.
const REFUSED_IN_BATCH: &str = "BatchCallFailed: the contract refused this call inside a \
     settlement batch (the escrow was no longer in the state it needs, or the authorization did \
     not verify on-chain); the escrow did not move";

/// The escrow event a settlement action's call emits when it goes through.
fn carried_by(action: Action) -> &'static str {
    match action {
        Action::InitiateClose => "CloseInitiated",
        Action::SellerClaim => "UsageClaimed",
        Action::BuyerWithdraw => "BuyerWithdrawn",
    }
}

/// The failure a `ClaimSkipped` event gives its claim action: `ClaimSkipped (<reason>): <what it
/// means>`, from the event's `reason` (absent in events an older contract emitted).
fn skip_outcome(data: &serde_json::Value) -> String {
    let reason = data["reason"]
        .as_str()
        .and_then(ClaimSkipReason::parse)
        .unwrap_or(ClaimSkipReason::NothingToClaim);
    format!("ClaimSkipped ({reason}): {}", reason.explanation())
}
