//! What ends holds and leases besides their own calls: a lease ending (released by the owner,
//! expired, or its agents revoked or halted) gives back what its child holds under it and
//! returns the unspent rest to the parent; the sweeper expires holds and leases whose time ran
//! out; revoking or halting an agent releases its open holds and leases in the same
//! transaction.

use serde_json::json;

use super::audit::{self, Actor, AuditDecision, AuditEntry, AuditKind};
use super::holds::{self, HoldEvent, HoldStatus};
use super::leases::{self, Lease, LeaseStatus};
use super::{Conn, Result, lock_agent};
use crate::store::outbox::{self, EventType};

/// Ends `hold` (unresolved) as `to` with `reason` and announces it; returns whether it ended.
async fn end_hold(
    conn: &mut Conn,
    id: &str,
    to: HoldStatus,
    reason: &str,
    actor: Actor,
    at: i64,
) -> Result<bool> {
    let Some(ended) = holds::end(conn, id, to, reason, actor.as_str(), at).await? else {
        return Ok(false);
    };
    let event = match to {
        HoldStatus::Expired => EventType::ReservationExpired,
        HoldStatus::Rejected => EventType::ReservationRejected,
        _ => EventType::ReservationReleased,
    };
    outbox::record_for_agent(conn, &ended.agent_id, event, &holds::event_data(&ended), at).await?;
    if let Some(approval_id) = &ended.approval_id {
        super::end_approval(conn, approval_id, reason, at).await?;
    }
    Ok(true)
}

/// The `data` of a `budget_lease.*` webhook event.
pub fn lease_event(lease: &Lease, remaining_cents: Option<u64>) -> serde_json::Value {
    json!({
        "lease_id": lease.id,
        "status": lease.status.as_str(),
        "parent_agent_id": lease.parent_agent_id,
        "child_agent_id": lease.child_agent_id,
        "amount_cents": lease.amount_cents,
        "remaining_cents": remaining_cents,
        "release_reason": lease.release_reason,
    })
}

/// Ends the active lease `id` as `to` with `reason`: takes its child's decision lock (so no
/// hold is added under it meanwhile), releases the child's open holds under it and ends the
/// leases the child granted from it (recursively), then settles the parent's hold at what the
/// child spent: released if nothing, captured at that amount otherwise. Returns the lease as
/// ended, or `None` if it was no longer active.
pub async fn end_lease(
    conn: &mut Conn,
    id: &str,
    to: LeaseStatus,
    reason: &str,
    actor: Actor,
    at: i64,
) -> Result<Option<Lease>> {
    let Some(lease) = leases::get_in(conn, id).await? else { return Ok(None) };
    lock_agent(conn, &lease.child_agent_id).await?;
    let Some(ended) = leases::end(conn, id, to, reason, at).await? else { return Ok(None) };
    for hold in holds::open_under_lease(conn, id).await? {
        match hold.source {
            holds::HoldSource::Lease => {
                if let Some(granted) = &hold.subject_id {
                    Box::pin(end_lease(conn, granted, LeaseStatus::Released, reason, actor, at))
                        .await?;
                }
            }
            _ => {
                end_hold(conn, hold.id.as_str(), HoldStatus::Released, reason, actor, at).await?;
            }
        }
    }
    let spent = holds::counted_under_lease(conn, id).await?;
    if let Some(parent_hold) = holds::get_in(conn, &ended.hold_id).await? {
        if spent == 0 {
            end_hold(conn, &ended.hold_id, HoldStatus::Released, reason, actor, at).await?;
        } else {
            let event = (HoldEvent::Captured, spent);
            holds::follow(conn, &parent_hold, HoldStatus::Captured, spent, Some(spent), event, at)
                .await?;
        }
    }
    let mut entry = AuditEntry::new(
        &ended.account_id,
        Some(&ended.parent_agent_id),
        AuditKind::Lease,
        match to {
            LeaseStatus::Expired => AuditDecision::Expired,
            _ => AuditDecision::Released,
        },
        actor,
        at,
    );
    entry.subject_id = Some(ended.id.to_string());
    entry.amount_cents = Some(ended.amount_cents);
    entry.counterparty = Some(ended.child_agent_id.clone());
    entry.detail = json!({
        "reason": reason,
        "spent_cents": spent,
        "returned_cents": ended.amount_cents.saturating_sub(spent),
    });
    audit::append(conn, &entry).await?;
    let event = match to {
        LeaseStatus::Expired => EventType::BudgetLeaseExpired,
        _ => EventType::BudgetLeaseReleased,
    };
    let data = lease_event(&ended, Some(ended.amount_cents.saturating_sub(spent)));
    for agent in [&ended.parent_agent_id, &ended.child_agent_id] {
        outbox::record_for_agent(conn, agent, event, &data, at).await?;
    }
    Ok(Some(ended))
}

/// Stops what `agent_id` holds: releases its open API holds, ends the lease it spends under
/// and the leases it granted, all with `reason` (`agent_revoked`, `agent_halted`). An
/// activation already queued keeps its hold: it follows the activation, which the halt does
/// not recall.
pub async fn stop_agent(
    conn: &mut Conn,
    agent_id: &str,
    reason: &str,
    actor: Actor,
    at: i64,
) -> Result<()> {
    for hold in holds::open_of_agent(conn, agent_id).await? {
        end_hold(conn, hold.id.as_str(), HoldStatus::Released, reason, actor, at).await?;
    }
    if let Some(lease) = leases::active_of(conn, agent_id).await? {
        end_lease(conn, lease.id.as_str(), LeaseStatus::Released, reason, actor, at).await?;
    }
    for lease in leases::active_granted_by(conn, agent_id).await? {
        end_lease(conn, lease.id.as_str(), LeaseStatus::Released, reason, actor, at).await?;
    }
    Ok(())
}

/// Expires up to `limit` holds and `limit` leases whose time ran out by `at`; returns how many.
pub async fn expire_due(conn: &mut Conn, at: i64, limit: i64) -> Result<usize> {
    let mut expired = 0;
    for hold in holds::due(conn, at, limit).await? {
        if end_hold(conn, hold.id.as_str(), HoldStatus::Expired, "ttl", Actor::System, at).await? {
            expired += 1;
        }
    }
    for lease in leases::due(conn, at, limit).await? {
        let ended =
            end_lease(conn, lease.id.as_str(), LeaseStatus::Expired, "expired", Actor::System, at)
                .await?;
        expired += usize::from(ended.is_some());
    }
    Ok(expired)
}
