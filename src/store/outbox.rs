//! The outbox: every status change writes an event here in the transaction that makes the
//! change, so a webhook can never report a change that did not happen nor miss one that did.

use serde_json::Value;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, parse_column, parse_json};
use crate::agreement::ids::{AgreementId, EventId};
use crate::vocab::string_enum;

string_enum!(
    /// An event type a webhook endpoint can receive.
    EventType {
        /// A buyer proposed an agreement.
        AgreementProposed = "agreement.proposed",
        /// The seller accepted; terms fixed.
        AgreementAccepted = "agreement.accepted",
        /// The seller rejected.
        AgreementRejected = "agreement.rejected",
        /// The agreement was cancelled.
        AgreementCancelled = "agreement.cancelled",
        /// Not activated in time.
        AgreementExpired = "agreement.expired",
        /// Activation queued for the relayer.
        ActivationQueued = "activation.queued",
        /// Activation broadcast.
        ActivationSubmitted = "activation.submitted",
        /// Activation confirmed on-chain.
        ActivationConfirmed = "activation.confirmed",
        /// Activation failed.
        ActivationFailed = "activation.failed",
        /// The seller recorded usage.
        UsageRecorded = "usage.recorded",
        /// A buyer's voucher was kept.
        UsageVoucherAccepted = "usage.voucher_accepted",
        /// A sponsored settlement action was queued.
        SettlementActionQueued = "settlement_action.queued",
        /// It was broadcast.
        SettlementActionSubmitted = "settlement_action.submitted",
        /// It was confirmed.
        SettlementActionConfirmed = "settlement_action.confirmed",
        /// It failed.
        SettlementActionFailed = "settlement_action.failed",
        /// A close was initiated on-chain.
        SettlementCloseInitiated = "settlement.close_initiated",
        /// The seller claimed.
        SettlementClaimed = "settlement.claimed",
        /// The buyer withdrew.
        SettlementWithdrawn = "settlement.withdrawn",
        /// Both sides are paid out.
        AgreementSettled = "agreement.settled",
        /// A reorganisation rolled the agreement back.
        AgreementReorged = "agreement.reorged",
        /// A relayer job failed for good.
        RelayerJobFailed = "relayer.job_failed",
        /// A spend escalated by the agent's policy waits for its owner.
        ApprovalRequested = "approval.requested",
        /// The owner approved it.
        ApprovalApproved = "approval.approved",
        /// The owner rejected it (or the agent was revoked).
        ApprovalRejected = "approval.rejected",
        /// Nobody decided in time.
        ApprovalExpired = "approval.expired",
        /// The owner halted the agent.
        AgentHalted = "agent.halted",
        /// The owner resumed the agent.
        AgentResumed = "agent.resumed",
        /// The agent's policy has a new version.
        PolicyUpdated = "policy.updated",
        /// A reservation holds its amount.
        ReservationReserved = "reservation.reserved",
        /// A reservation escalated and waits for the owner.
        ReservationPendingApproval = "reservation.pending_approval",
        /// A reservation was captured.
        ReservationCaptured = "reservation.captured",
        /// A reservation was released.
        ReservationReleased = "reservation.released",
        /// A reservation's time ran out.
        ReservationExpired = "reservation.expired",
        /// A reservation's approval was rejected or expired.
        ReservationRejected = "reservation.rejected",
        /// Part of a captured activation hold came back: the buyer withdrew unused deposit.
        ReservationCredited = "reservation.credited",
        /// A captured activation hold is held again: a reorganisation took its block away.
        ReservationReheld = "reservation.reheld",
        /// A parent agent leased budget to a child.
        BudgetLeaseCreated = "budget_lease.created",
        /// A lease ended; its unspent rest went back to the parent.
        BudgetLeaseReleased = "budget_lease.released",
        /// A lease's time ran out; its unspent rest went back to the parent.
        BudgetLeaseExpired = "budget_lease.expired",
        /// The owner granted the agent a mandate.
        MandateCreated = "mandate.created",
        /// The owner changed one of the agent's mandates.
        MandateUpdated = "mandate.updated",
        /// One of the agent's mandates was revoked (by the owner, or with the agent).
        MandateRevoked = "mandate.revoked",
        /// A wallet of the agent was registered (`POST /v1/wallets`, or `POST /activate`).
        WalletRegistered = "wallet.registered",
        /// A payment was made and held: it waits for the wallet's signature.
        PaymentCreated = "payment.created",
        /// A payment was escalated to the owner.
        PaymentPendingApproval = "payment.pending_approval",
        /// A payment was signed and queued on the relayer.
        PaymentQueued = "payment.queued",
        /// A payment's transaction was sent.
        PaymentSubmitted = "payment.submitted",
        /// A payment's transfer is on chain at the confirmation depth (its receipt is issued).
        PaymentConfirmed = "payment.confirmed",
        /// A payment failed; its hold was released.
        PaymentFailed = "payment.failed",
        /// A payment stopped being valid before it moved; its hold was released.
        PaymentExpired = "payment.expired",
        /// A payment was refused by the policy or its approval rejected; nothing was held.
        PaymentBlocked = "payment.blocked",
        /// A reorganisation took a confirmed payment's transfer away: it waits for the chain
        /// again and its hold is held again.
        PaymentReorged = "payment.reorged",
        /// `POST /validate` allowed a transfer and held its amount.
        IntentValidated = "intent.validated",
        /// The agent posted the transaction hash of an intent.
        IntentBroadcast = "intent.broadcast",
        /// The intent's transfer is at the confirmation depth; its hold is captured.
        IntentConfirmed = "intent.confirmed",
        /// The intent's transaction is not the transfer validated; its hold is released.
        IntentMismatched = "intent.mismatched",
        /// The intent's transaction reverted; its hold is released.
        IntentFailed = "intent.failed",
        /// No matching transfer was found in time; its hold expired.
        IntentExpired = "intent.expired",
        /// A reorganisation took a confirmed intent's transfer away: `broadcast` again, held again.
        IntentReorged = "intent.reorged",
    }
);

/// One event, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Its id (`evt_…`), time-ordered.
    pub id: EventId,
    /// The agreement it concerns.
    pub agreement_id: Option<AgreementId>,
    /// What happened (`agreement.accepted`, `settlement.claimed`, …).
    pub event_type: EventType,
    /// The event's payload.
    pub data: Value,
    /// Unix seconds.
    pub created_at: i64,
}

/// Writes an event of `event_type` about `agreement` with `data`, inside the caller's
/// transaction.
pub async fn record(
    conn: &mut Conn,
    agreement: Option<&AgreementId>,
    event_type: EventType,
    data: &Value,
    now: i64,
) -> Result<EventId> {
    insert(conn, agreement.map(AgreementId::as_str), None, event_type, data, now).await
}

/// Writes an event of `event_type` about the agent `agent_id` (not about an agreement:
/// approvals, halts, policies), delivered to that agent's endpoints.
pub async fn record_for_agent(
    conn: &mut Conn,
    agent_id: &str,
    event_type: EventType,
    data: &Value,
    now: i64,
) -> Result<EventId> {
    insert(conn, None, Some(agent_id), event_type, data, now).await
}

async fn insert(
    conn: &mut Conn,
    agreement: Option<&str>,
    agent: Option<&str>,
    event_type: EventType,
    data: &Value,
    now: i64,
) -> Result<EventId> {
    let id = EventId::generate();
    insert_many(conn, &[(id.clone(), agreement, agent, event_type, data)], now).await?;
    Ok(id)
}

/// Events about agents (not agreements) to write together: `(agent_id, type, data)`.
pub type AgentEvent<'a> = (&'a str, EventType, &'a Value);

/// Writes `events`, each about its agent, in one statement per hundred, in order.
pub async fn record_many_for_agents(
    conn: &mut Conn,
    events: &[AgentEvent<'_>],
    now: i64,
) -> Result<()> {
    let rows: Vec<_> = events
        .iter()
        .map(|(agent, event_type, data)| {
            (EventId::generate(), None, Some(*agent), *event_type, *data)
        })
        .collect();
    insert_many(conn, &rows, now).await
}

type NewEvent<'a> = (EventId, Option<&'a str>, Option<&'a str>, EventType, &'a Value);

async fn insert_many(conn: &mut Conn, rows: &[NewEvent<'_>], now: i64) -> Result<()> {
    for chunk in rows.chunks(100) {
        let sql = format!(
            "INSERT INTO outbox_events (id, agreement_id, agent_id, event_type, data, created_at) \
             VALUES {}",
            super::placeholders(chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for (id, agreement, agent, event_type, data) in chunk {
            query = query
                .bind(id.as_str())
                .bind(agreement.map(str::to_owned))
                .bind(agent.map(str::to_owned))
                .bind(event_type.as_str())
                .bind(data.to_string())
                .bind(now);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The events about `agreement`, oldest first.
pub async fn for_agreement(pool: &AnyPool, agreement: &AgreementId) -> Result<Vec<OutboxEvent>> {
    let rows = sqlx::query(
        "SELECT id, agreement_id, event_type, data, created_at FROM outbox_events \
         WHERE agreement_id = $1 ORDER BY created_at, id",
    )
    .bind(agreement.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OutboxEvent {
                id: EventId(row.get("id")),
                agreement_id: row.get::<Option<String>, _>("agreement_id").map(AgreementId),
                event_type: parse_column("event_type", row.get("event_type"))?,
                data: parse_json("data", row.get("data"))?,
                created_at: row.get("created_at"),
            })
        })
        .collect()
}
