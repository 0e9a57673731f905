//! The hold an activation makes on its buyer's budgets: made when the activation is queued, it
//! follows the activation through every status change (captured on confirmation, released on
//! failure, held again when a reorganisation takes the confirmation away, credited when the
//! buyer withdraws unused deposit), in the transaction of that change.

use super::holds;
use super::{Conn, Result, StoreError};

/// What a spend is bound to besides the agent's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bound {
    /// The budget lease the agent spends under.
    pub lease_id: Option<String>,
    /// The mandate the spend is made under.
    pub mandate_id: Option<String>,
    /// The decision that let it through.
    pub check_id: Option<String>,
}

/// Holds what a queued activation commits of its buyer's budgets (deposit plus fee, `cents`):
/// a reservation that follows the activation ([`follow_activation`]).
pub async fn commit_activation(
    conn: &mut Conn,
    agreement_id: &str,
    cents: u64,
    at: i64,
    bound: &Bound,
) -> Result<()> {
    use crate::agreement::ids::ReservationId;
    let id = ReservationId::generate();
    sqlx::query(
        "INSERT INTO reservations (id, account_id, agent_id, source, subject_id, status, \
         amount_cents, captured_cents, counted_cents, action_type, currency, counterparty, \
         category, metadata, mandate_id, lease_id, approval_id, check_id, ttl_seconds, \
         expires_at, counted_at, created_at, updated_at) \
         SELECT $1, ag.account_id, ua.buyer_agent_id, 'activation', ua.id, 'reserved', $3, NULL, \
         $3, 'spend', 'USDC', ua.seller_agent_id, ua.service_id, NULL, $4, $5, NULL, $6, NULL, \
         NULL, $7, $7, $7 FROM usage_agreements ua JOIN agents ag ON ag.id = ua.buyer_agent_id \
         WHERE ua.id = $2",
    )
    .bind(id.as_str())
    .bind(agreement_id)
    .bind(i64::try_from(cents).unwrap_or(i64::MAX))
    .bind(bound.mandate_id.clone())
    .bind(bound.lease_id.clone())
    .bind(bound.check_id.clone())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let hold = holds::get_in(conn, id.as_str()).await?.ok_or(StoreError::Conflict)?;
    let detail = serde_json::json!({ "source": "activation" });
    holds::append_event(conn, &hold, holds::HoldEvent::Reserved, cents, "agent", &detail, at)
        .await?;
    let data = holds::event_data(&hold);
    let event = crate::store::outbox::EventType::ReservationReserved;
    crate::store::outbox::record_for_agent(conn, &hold.agent_id, event, &data, at).await?;
    Ok(())
}

/// Brings the hold of agreement `agreement_id`'s latest activation in line with what the
/// activation did: held while it is on its way, captured once confirmed (less the unused
/// deposit the buyer withdrew, credited back to the period it was counted in), released when
/// it failed or expired, held again when a reorganisation took its block away. Called in the
/// transaction of every change of an activation's status.
pub async fn follow_activation(conn: &mut Conn, agreement_id: &str, at: i64) -> Result<()> {
    use holds::{HoldSource, HoldStatus};
    let Some(hold) = holds::latest_for(conn, HoldSource::Activation, agreement_id).await? else {
        return Ok(());
    };
    let Some(record) = crate::store::agreements::get_in(conn, agreement_id).await? else {
        return Ok(());
    };
    use crate::agreement::status::ActivationStatus as A;
    let (to, counted, captured) = match record.activation_status {
        A::Pending | A::Submitting | A::Submitted => {
            (HoldStatus::Reserved, hold.amount_cents, None)
        }
        A::Confirmed => {
            let credit = record
                .terms
                .as_ref()
                .zip(record.escrow.as_ref())
                .filter(|(_, escrow)| escrow.state.buyer_withdrawn)
                .map(|(terms, escrow)| {
                    let unused = terms.quantity.saturating_sub(escrow.state.claimed_units);
                    let refund =
                        terms.unit_price.0.saturating_mul(alloy::primitives::U256::from(unused));
                    // Base units of a 6-decimal token: 10,000 to the cent, rounded down so the
                    // budget never counts less than was paid.
                    u64::try_from(refund / alloy::primitives::U256::from(10_000u64))
                        .unwrap_or(u64::MAX)
                })
                .unwrap_or(0);
            (
                HoldStatus::Captured,
                hold.amount_cents.saturating_sub(credit),
                Some(hold.amount_cents),
            )
        }
        A::Failed | A::Expired | A::Rejected => (HoldStatus::Released, 0, None),
        _ => return Ok(()),
    };
    holds::follow_subject(conn, &hold, to, counted, captured, at).await
}
