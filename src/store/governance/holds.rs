//! Reservations: holds on an agent's budgets. An API reservation, an activation's deposit plus
//! fee and a lease carved out for a child agent are each one row; budgets, leases and mandates
//! sum `counted_cents` over them. Every change is a conditional update from the status it
//! leaves, so capture, release and expiry are exclusive, and each change appends an event (the
//! reservation's evidence).

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::super::{Conn, Result, StoreError, parse_column, unsigned};
use crate::agreement::ids::{ReservationEventId, ReservationId};
use crate::vocab::string_enum;

string_enum!(
    /// Where a reservation stands.
    HoldStatus {
        /// Escalated: waits for the owner and holds nothing yet.
        PendingApproval = "pending_approval",
        /// Holds its amount.
        Reserved = "reserved",
        /// Spent: counts what was captured.
        Captured = "captured",
        /// Given back before it was spent.
        Released = "released",
        /// Its time ran out before it was captured or released.
        Expired = "expired",
        /// The owner rejected it, or its approval expired.
        Rejected = "rejected",
    }
);

string_enum!(
    /// What a reservation holds for.
    HoldSource {
        /// `POST /v1/spend-guard/reservations`.
        Api = "api",
        /// An escrow activation's deposit plus fee.
        Activation = "activation",
        /// A budget lease carved out for a child agent.
        Lease = "lease",
        /// A governed payment (`POST /v1/payments`): its own hold, or the API reservation it
        /// was made under.
        Payment = "payment",
        /// A transfer validated by `POST /validate`, paid from the agent's own wallet.
        Intent = "intent",
    }
);

string_enum!(
    /// One change of a reservation.
    HoldEvent {
        /// Escalated to the owner.
        PendingApproval = "pending_approval",
        /// Held.
        Reserved = "reserved",
        /// Captured.
        Captured = "captured",
        /// Released.
        Released = "released",
        /// Expired.
        Expired = "expired",
        /// Rejected.
        Rejected = "rejected",
        /// A captured activation or intent whose block was reorganised away: held again.
        Reheld = "reheld",
        /// Part of what was captured came back (the buyer withdrew unused deposit).
        Credited = "credited",
    }
);

/// One reservation.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// `rsv_…`.
    pub id: ReservationId,
    /// The agent's account.
    pub account_id: String,
    /// The agent whose budgets it holds.
    pub agent_id: String,
    /// What it holds for.
    pub source: HoldSource,
    /// The agreement (activation), lease (lease) or intent (intent) it holds for.
    pub subject_id: Option<String>,
    /// Where it stands.
    pub status: HoldStatus,
    /// What was held, in cents.
    pub amount_cents: u64,
    /// What was captured.
    pub captured_cents: Option<u64>,
    /// What counts toward budgets now.
    pub counted_cents: u64,
    /// The action type (seed vocabulary).
    pub action_type: String,
    /// `USD` or `USDC`.
    pub currency: String,
    /// Who is paid.
    pub counterparty: Option<String>,
    /// What is bought.
    pub category: Option<String>,
    /// The caller's metadata object.
    pub metadata: Option<Value>,
    /// The mandate it spends under.
    pub mandate_id: Option<String>,
    /// The lease it spends under.
    pub lease_id: Option<String>,
    /// The approval it waits for (or waited for).
    pub approval_id: Option<String>,
    /// The decision that let it through or escalated it.
    pub check_id: Option<String>,
    /// Its time to live once held.
    pub ttl_seconds: Option<u64>,
    /// When the sweeper expires it, if still unresolved; `None` when it follows its subject.
    pub expires_at: Option<i64>,
    /// The time budgets count it at.
    pub counted_at: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// One change of a reservation, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct HoldChange {
    /// `rsve_…`.
    pub id: String,
    /// The reservation.
    pub reservation_id: String,
    /// What happened.
    pub event: HoldEvent,
    /// The cents it concerned (held, captured, released, credited).
    pub amount_cents: u64,
    /// Who did it: `owner`, `agent` or `system`.
    pub actor: String,
    /// Whatever else it carried (a reason, the approval).
    pub detail: Value,
    /// Unix seconds.
    pub created_at: i64,
}

const COLUMNS: &str = "id, account_id, agent_id, source, subject_id, status, amount_cents, \
    captured_cents, counted_cents, action_type, currency, counterparty, category, metadata, \
    mandate_id, lease_id, approval_id, check_id, ttl_seconds, expires_at, counted_at, \
    created_at, updated_at";

fn cents(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_row(row: &AnyRow) -> Result<Hold> {
    let optional = |column: &'static str| -> Result<Option<u64>> {
        row.try_get::<Option<i64>, _>(column)?.map(|v| unsigned(column, v)).transpose()
    };
    Ok(Hold {
        id: ReservationId(row.try_get("id")?),
        account_id: row.try_get("account_id")?,
        agent_id: row.try_get("agent_id")?,
        source: parse_column("source", row.try_get("source")?)?,
        subject_id: row.try_get("subject_id")?,
        status: parse_column("status", row.try_get("status")?)?,
        amount_cents: unsigned("amount_cents", row.try_get("amount_cents")?)?,
        captured_cents: optional("captured_cents")?,
        counted_cents: unsigned("counted_cents", row.try_get("counted_cents")?)?,
        action_type: row.try_get("action_type")?,
        currency: row.try_get("currency")?,
        counterparty: row.try_get("counterparty")?,
        category: row.try_get("category")?,
        metadata: row
            .try_get::<Option<String>, _>("metadata")?
            .map(|m| super::super::parse_json("metadata", &m))
            .transpose()?,
        mandate_id: row.try_get("mandate_id")?,
        lease_id: row.try_get("lease_id")?,
        approval_id: row.try_get("approval_id")?,
        check_id: row.try_get("check_id")?,
        ttl_seconds: optional("ttl_seconds")?,
        expires_at: row.try_get("expires_at")?,
        counted_at: row.try_get("counted_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Stores a new reservation and its first event (`reserved` or `pending_approval`, by its
/// status), by `actor`.
pub async fn insert(conn: &mut Conn, hold: &Hold, actor: &str) -> Result<()> {
    let sql = format!(
        "INSERT INTO reservations ({COLUMNS}) VALUES {}",
        super::super::placeholders(1, 23)
    );
    sqlx::query(&sql)
        .bind(hold.id.as_str())
        .bind(&hold.account_id)
        .bind(&hold.agent_id)
        .bind(hold.source.as_str())
        .bind(hold.subject_id.clone())
        .bind(hold.status.as_str())
        .bind(cents(hold.amount_cents))
        .bind(hold.captured_cents.map(cents))
        .bind(cents(hold.counted_cents))
        .bind(&hold.action_type)
        .bind(&hold.currency)
        .bind(hold.counterparty.clone())
        .bind(hold.category.clone())
        .bind(hold.metadata.as_ref().map(Value::to_string))
        .bind(hold.mandate_id.clone())
        .bind(hold.lease_id.clone())
        .bind(hold.approval_id.clone())
        .bind(hold.check_id.clone())
        .bind(hold.ttl_seconds.map(cents))
        .bind(hold.expires_at)
        .bind(hold.counted_at)
        .bind(hold.created_at)
        .bind(hold.updated_at)
        .execute(&mut *conn)
        .await?;
    let event = match hold.status {
        HoldStatus::PendingApproval => HoldEvent::PendingApproval,
        _ => HoldEvent::Reserved,
    };
    let detail = serde_json::json!({ "source": hold.source.as_str() });
    append_event(conn, hold, event, hold.amount_cents, actor, &detail, hold.created_at).await
}

/// Appends one change of `hold` to its evidence.
pub async fn append_event(
    conn: &mut Conn,
    hold: &Hold,
    event: HoldEvent,
    amount_cents: u64,
    actor: &str,
    detail: &Value,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO reservation_events (id, reservation_id, account_id, agent_id, event, \
         amount_cents, actor, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(ReservationEventId::generate().as_str())
    .bind(hold.id.as_str())
    .bind(&hold.account_id)
    .bind(&hold.agent_id)
    .bind(event.as_str())
    .bind(cents(amount_cents))
    .bind(actor)
    .bind(detail.to_string())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The reservation `id`; `None` if there is none.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Hold>> {
    let sql = format!("SELECT {COLUMNS} FROM reservations WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// The reservation `id` inside a transaction; `None` if there is none.
pub async fn get_in(conn: &mut Conn, id: &str) -> Result<Option<Hold>> {
    let sql = format!("SELECT {COLUMNS} FROM reservations WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The changes of reservation `id`, oldest first.
pub async fn events_of(conn: &mut Conn, id: &str) -> Result<Vec<HoldChange>> {
    let rows = sqlx::query(
        "SELECT id, reservation_id, event, amount_cents, actor, detail, created_at \
         FROM reservation_events WHERE reservation_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(HoldChange {
                id: row.try_get("id")?,
                reservation_id: row.try_get("reservation_id")?,
                event: parse_column("event", row.try_get("event")?)?,
                amount_cents: unsigned("amount_cents", row.try_get("amount_cents")?)?,
                actor: row.try_get("actor")?,
                detail: super::super::parse_json("detail", row.try_get("detail")?)?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// A page of reservations, newest first: of `account`, only `agent_id`'s and only in `status`
/// when given; at most `limit`, strictly after the `(created_at, id)` cursor.
pub async fn list(
    pool: &AnyPool,
    account: &str,
    agent_id: Option<&str>,
    status: Option<HoldStatus>,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<Hold>> {
    let rows = super::super::account_page(
        pool,
        ("reservations", COLUMNS),
        account,
        (agent_id, status.map(|s| s.as_str())),
        limit,
        after,
    )
    .await?;
    rows.iter().map(from_row).collect()
}

/// Moves `hold` to `status` counting `counted` cents (and `captured` when given) if it is still
/// in `from`, and records `event` for `amount` by `actor`. Returns the hold as changed, or
/// `None` if it had left `from` (another change came first).
#[allow(clippy::too_many_arguments)]
async fn change(
    conn: &mut Conn,
    id: &str,
    from: &[HoldStatus],
    to: HoldStatus,
    counted: Option<u64>,
    captured: Option<u64>,
    expires_at: Option<i64>,
    event: (HoldEvent, u64, &str, &Value),
    at: i64,
) -> Result<Option<Hold>> {
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "UPDATE reservations SET status = $2, \
         counted_cents = COALESCE($3, counted_cents), \
         captured_cents = COALESCE($4, captured_cents), \
         expires_at = COALESCE($5, expires_at), updated_at = $6 \
         WHERE id = $1 AND status IN ({}) RETURNING {COLUMNS}",
        from.join(", ")
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(to.as_str())
        .bind(counted.map(cents))
        .bind(captured.map(cents))
        .bind(expires_at)
        .bind(at)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(hold) = row.as_ref().map(from_row).transpose()? else { return Ok(None) };
    let (event, amount, actor, detail) = event;
    append_event(conn, &hold, event, amount, actor, detail, at).await?;
    Ok(Some(hold))
}

/// Captures `amount` (at most what is held) of a reserved hold that has not expired at `at`;
/// the rest is released. `None` if it is no longer reserved, or expired.
pub async fn capture(
    conn: &mut Conn,
    id: &str,
    amount: u64,
    actor: &str,
    at: i64,
) -> Result<Option<Hold>> {
    let current = get_in(conn, id).await?;
    let Some(current) = current.filter(|h| h.status == HoldStatus::Reserved) else {
        return Ok(None);
    };
    if current.expires_at.is_some_and(|e| e <= at) || amount > current.amount_cents {
        return Ok(None);
    }
    let detail = serde_json::json!({ "released_cents": current.amount_cents - amount });
    change(
        conn,
        id,
        &[HoldStatus::Reserved],
        HoldStatus::Captured,
        Some(amount),
        Some(amount),
        None,
        (HoldEvent::Captured, amount, actor, &detail),
        at,
    )
    .await
}

/// Ends an unresolved hold (`pending_approval` or `reserved`) as `to` (`released`,
/// `expired` or `rejected`) with `reason`: it counts nothing any more. `None` if it was
/// already resolved.
pub async fn end(
    conn: &mut Conn,
    id: &str,
    to: HoldStatus,
    reason: &str,
    actor: &str,
    at: i64,
) -> Result<Option<Hold>> {
    let event = match to {
        HoldStatus::Expired => HoldEvent::Expired,
        HoldStatus::Rejected => HoldEvent::Rejected,
        _ => HoldEvent::Released,
    };
    let Some(current) = get_in(conn, id).await? else { return Ok(None) };
    let detail = serde_json::json!({ "reason": reason });
    change(
        conn,
        id,
        &[HoldStatus::PendingApproval, HoldStatus::Reserved],
        to,
        Some(0),
        None,
        None,
        (event, current.counted_cents, actor, &detail),
        at,
    )
    .await
}

/// Holds an approved reservation: `pending_approval` → `reserved`, counted from `at` and
/// expiring `ttl` later. `None` if it no longer waits.
pub async fn approve(
    conn: &mut Conn,
    id: &str,
    approval_id: &str,
    at: i64,
) -> Result<Option<Hold>> {
    let Some(current) = get_in(conn, id).await? else { return Ok(None) };
    let expires_at = current.ttl_seconds.map(|ttl| at.saturating_add(cents(ttl)));
    sqlx::query(
        "UPDATE reservations SET counted_at = $2 WHERE id = $1 AND status = 'pending_approval'",
    )
    .bind(id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let detail = serde_json::json!({ "approval_id": approval_id });
    change(
        conn,
        id,
        &[HoldStatus::PendingApproval],
        HoldStatus::Reserved,
        Some(current.amount_cents),
        None,
        expires_at,
        (HoldEvent::Reserved, current.amount_cents, "owner", &detail),
        at,
    )
    .await
}

/// Makes the agent's API reservation `id` the hold of payment `payment_id`, if it is still
/// reserved and unexpired at `at`: its source becomes `payment`, it follows the payment and
/// expires no more on its own. Returns it as changed, or `None` if it changed first.
pub async fn adopt(conn: &mut Conn, id: &str, payment_id: &str, at: i64) -> Result<Option<Hold>> {
    let sql = format!(
        "UPDATE reservations SET source = 'payment', subject_id = $2, expires_at = NULL, \
         updated_at = $3 WHERE id = $1 AND source = 'api' AND status = 'reserved' \
         AND (expires_at IS NULL OR expires_at > $3) RETURNING {COLUMNS}"
    );
    let row =
        sqlx::query(&sql).bind(id).bind(payment_id).bind(at).fetch_optional(&mut *conn).await?;
    let Some(hold) = row.as_ref().map(from_row).transpose()? else { return Ok(None) };
    let detail = serde_json::json!({ "payment_id": payment_id });
    append_event(conn, &hold, HoldEvent::Reserved, hold.amount_cents, "agent", &detail, at).await?;
    Ok(Some(hold))
}

/// Up to `limit` reserved holds whose time ran out by `at`, oldest deadline first.
pub async fn due(conn: &mut Conn, at: i64, limit: i64) -> Result<Vec<Hold>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM reservations WHERE status = 'reserved' \
         AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
    );
    let rows = sqlx::query(&sql).bind(at).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// The unresolved API holds of `agent_id` (reserved or waiting for approval), oldest first.
pub async fn open_of_agent(conn: &mut Conn, agent_id: &str) -> Result<Vec<Hold>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM reservations WHERE agent_id = $1 AND source = 'api' \
         AND status IN ('pending_approval', 'reserved') ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql).bind(agent_id).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// The unresolved API holds spending under lease `lease_id`, oldest first.
pub async fn open_under_lease(conn: &mut Conn, lease_id: &str) -> Result<Vec<Hold>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM reservations WHERE lease_id = $1 \
         AND source NOT IN ('activation', 'payment', 'intent') \
         AND status IN ('pending_approval', 'reserved') ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql).bind(lease_id).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Cents counted under lease `lease_id` (held or spent by its child).
pub async fn counted_under_lease(conn: &mut Conn, lease_id: &str) -> Result<u64> {
    sum(conn, "lease_id", lease_id).await
}

/// Cents counted under mandate `mandate_id`.
pub async fn counted_under_mandate(conn: &mut Conn, mandate_id: &str) -> Result<u64> {
    sum(conn, "mandate_id", mandate_id).await
}

async fn sum(conn: &mut Conn, column: &'static str, id: &str) -> Result<u64> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(counted_cents), 0) AS BIGINT) AS total FROM reservations \
         WHERE {column} = $1"
    );
    let total: i64 = sqlx::query(&sql).bind(id).fetch_one(&mut *conn).await?.try_get("total")?;
    unsigned("counted_cents", total)
}

/// The newest hold for `subject_id` from `source`; `None` if there is none.
pub async fn latest_for(
    conn: &mut Conn,
    source: HoldSource,
    subject_id: &str,
) -> Result<Option<Hold>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM reservations WHERE source = $1 AND subject_id = $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    let row =
        sqlx::query(&sql).bind(source.as_str()).bind(subject_id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// Sets `hold` to `to` counting `counted` cents (captured: `captured`), recording `event`
/// for `amount`, whatever its status was: an activation's hold follows what the chain says.
pub async fn follow(
    conn: &mut Conn,
    hold: &Hold,
    to: HoldStatus,
    counted: u64,
    captured: Option<u64>,
    event: (HoldEvent, u64),
    at: i64,
) -> Result<Hold> {
    let from = HoldStatus::ALL;
    let detail = serde_json::json!({ "source": hold.source.as_str() });
    change(
        conn,
        hold.id.as_str(),
        from,
        to,
        Some(counted),
        captured,
        None,
        (event.0, event.1, "system", &detail),
        at,
    )
    .await?
    .ok_or(StoreError::Conflict)
}

/// Brings the hold that follows a subject (an activation, a payment) to `to`, counting
/// `counted` cents (`captured` once captured), with the event that change is — captured,
/// credited, held again or released — and its `reservation.*` webhook; nothing when it is there
/// already.
pub async fn follow_subject(
    conn: &mut Conn,
    hold: &Hold,
    to: HoldStatus,
    counted: u64,
    captured: Option<u64>,
    at: i64,
) -> Result<()> {
    if to == hold.status && counted == hold.counted_cents {
        return Ok(());
    }
    let event = match (hold.status, to) {
        (HoldStatus::Captured, HoldStatus::Captured) => {
            (HoldEvent::Credited, hold.counted_cents.saturating_sub(counted))
        }
        (HoldStatus::Captured, HoldStatus::Reserved) => (HoldEvent::Reheld, counted),
        (_, HoldStatus::Captured) => (HoldEvent::Captured, counted),
        (HoldStatus::Reserved, HoldStatus::Reserved) => (HoldEvent::Reserved, counted),
        (_, HoldStatus::Reserved) => (HoldEvent::Reheld, counted),
        _ => (HoldEvent::Released, hold.counted_cents),
    };
    let now = follow(conn, hold, to, counted, captured, event, at).await?;
    use crate::store::outbox::{self, EventType};
    let announced = match event.0 {
        HoldEvent::Captured => EventType::ReservationCaptured,
        HoldEvent::Credited => EventType::ReservationCredited,
        HoldEvent::Reheld => EventType::ReservationReheld,
        HoldEvent::Reserved => EventType::ReservationReserved,
        _ => EventType::ReservationReleased,
    };
    outbox::record_for_agent(conn, &now.agent_id, announced, &event_data(&now), at).await?;
    Ok(())
}

/// The `data` of a `reservation.*` webhook event.
pub fn event_data(hold: &Hold) -> Value {
    serde_json::json!({
        "reservation_id": hold.id,
        "agent_id": hold.agent_id,
        "status": hold.status.as_str(),
        "source": hold.source.as_str(),
        "subject_id": hold.subject_id,
        "amount_cents": hold.amount_cents,
        "captured_cents": hold.captured_cents,
        "counted_cents": hold.counted_cents,
        "currency": hold.currency,
        "mandate_id": hold.mandate_id,
        "lease_id": hold.lease_id,
        "approval_id": hold.approval_id,
        "agreement_id": (hold.source == HoldSource::Activation).then_some(&hold.subject_id),
    })
}
