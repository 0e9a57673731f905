//! The hold an intent makes on its agent's budgets: made when `POST /validate` allows the
//! transfer, it follows the intent through every status change in the transaction of that
//! change — held while validated or broadcast, captured once the matching transfer is
//! confirmed, released on a mismatch or a revert, expired with the intent, and held again when
//! a reorganisation takes the confirmed transfer away.

use super::holds::{self, Hold, HoldEvent, HoldSource, HoldStatus};
use super::{Conn, Result};
use crate::intents::IntentStatus;
use crate::store::intents::Intent;
use crate::store::outbox::{self, EventType};

/// Stores the new hold of an intent (`reserved`, following its subject: no `expires_at` of its
/// own, the intent's expiry ends it) and announces it (`reservation.reserved`).
pub async fn hold(conn: &mut Conn, hold: &Hold, actor: &str) -> Result<()> {
    debug_assert_eq!(hold.source, HoldSource::Intent);
    holds::insert(conn, hold, actor).await?;
    let data = holds::event_data(hold);
    outbox::record_for_agent(
        conn,
        &hold.agent_id,
        EventType::ReservationReserved,
        &data,
        hold.created_at,
    )
    .await?;
    Ok(())
}

/// Brings `intent`'s hold in line with its status (as just changed) and announces the hold's
/// change; nothing when it already is.
pub async fn follow_intent(conn: &mut Conn, intent: &Intent, at: i64) -> Result<()> {
    let Some(hold) = holds::get_in(conn, &intent.reservation_id).await? else { return Ok(()) };
    let (to, counted, captured) = match intent.status {
        IntentStatus::Validated | IntentStatus::Broadcast => {
            (HoldStatus::Reserved, hold.amount_cents, None)
        }
        IntentStatus::Confirmed => {
            (HoldStatus::Captured, hold.amount_cents, Some(hold.amount_cents))
        }
        IntentStatus::Mismatched | IntentStatus::Failed => (HoldStatus::Released, 0, None),
        IntentStatus::Expired => (HoldStatus::Expired, 0, None),
    };
    if to == hold.status {
        return Ok(());
    }
    let (event, announced) = match (hold.status, to) {
        (_, HoldStatus::Captured) => (HoldEvent::Captured, EventType::ReservationCaptured),
        (_, HoldStatus::Reserved) => (HoldEvent::Reheld, EventType::ReservationReheld),
        (_, HoldStatus::Expired) => (HoldEvent::Expired, EventType::ReservationExpired),
        _ => (HoldEvent::Released, EventType::ReservationReleased),
    };
    let amount = if to == HoldStatus::Reserved || to == HoldStatus::Captured {
        counted
    } else {
        hold.counted_cents
    };
    let now = holds::follow(conn, &hold, to, counted, captured, (event, amount), at).await?;
    outbox::record_for_agent(conn, &now.agent_id, announced, &holds::event_data(&now), at).await?;
    Ok(())
}
