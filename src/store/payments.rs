//! Governed payments ([`crate::payments::Payment`]). Every change of status is a conditional
//! update from the statuses it may leave, so a confirmation, a failure and an expiry of one
//! payment exclude each other; the payment's hold follows each change in the same transaction
//! ([`follow_hold`]).

use alloy::primitives::{Address, B256};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::governance::holds::{self, HoldStatus};
use super::{Conn, Result, parse_column, parse_json, unsigned};
use crate::agreement::ids::{JobId, PaymentId, ReceiptId};
use crate::payments::{Payment, PaymentStatus};

const COLUMNS: &str = "id, account_id, agent_id, from_address, to_address, to_agent_id, \
    amount_cents, currency, status, payment_key, valid_after, valid_before, reservation_id, \
    mandate_id, approval_id, check_id, memo, metadata, signature, job_id, tx_hash, block_number, \
    block_hash, log_index, error, receipt_id, receipt_issued_at, receipt_signer, \
    receipt_signature, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Payment> {
    let optional = |column: &'static str| -> Result<Option<String>> { Ok(row.try_get(column)?) };
    let hash = |column: &'static str| -> Result<Option<B256>> {
        optional(column)?.map(|v| parse_column(column, &v)).transpose()
    };
    let number = |column: &'static str| -> Result<Option<u64>> {
        row.try_get::<Option<i64>, _>(column)?.map(|v| unsigned(column, v)).transpose()
    };
    let receipt = match (
        optional("receipt_id")?,
        row.try_get::<Option<i64>, _>("receipt_issued_at")?,
        optional("receipt_signer")?,
        optional("receipt_signature")?,
    ) {
        (Some(id), Some(at), Some(signer), Some(signature)) => Some((
            ReceiptId(id),
            at,
            parse_column("receipt_signer", &signer)?,
            parse_column("receipt_signature", &signature)?,
        )),
        _ => None,
    };
    Ok(Payment {
        id: PaymentId(row.try_get("id")?),
        account_id: row.try_get("account_id")?,
        agent_id: row.try_get("agent_id")?,
        from: parse_column("from_address", row.try_get("from_address")?)?,
        to: parse_column("to_address", row.try_get("to_address")?)?,
        to_agent_id: optional("to_agent_id")?,
        amount_cents: unsigned("amount_cents", row.try_get("amount_cents")?)?,
        currency: row.try_get("currency")?,
        status: parse_column("status", row.try_get("status")?)?,
        payment_key: parse_column("payment_key", row.try_get("payment_key")?)?,
        valid_after: unsigned("valid_after", row.try_get("valid_after")?)?,
        valid_before: unsigned("valid_before", row.try_get("valid_before")?)?,
        reservation_id: optional("reservation_id")?,
        mandate_id: optional("mandate_id")?,
        approval_id: optional("approval_id")?,
        check_id: optional("check_id")?,
        memo: optional("memo")?,
        metadata: optional("metadata")?.map(|v| parse_json("metadata", &v)).transpose()?,
        signature: optional("signature")?.map(|v| parse_column("signature", &v)).transpose()?,
        job_id: optional("job_id")?,
        tx_hash: hash("tx_hash")?,
        block_number: number("block_number")?,
        block_hash: hash("block_hash")?,
        log_index: number("log_index")?,
        error: optional("error")?,
        receipt,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Stores a new payment.
pub async fn insert(conn: &mut Conn, payment: &Payment) -> Result<()> {
    sqlx::query(
        "INSERT INTO payments (id, account_id, agent_id, from_address, to_address, to_agent_id, \
         amount_cents, amount_units, currency, status, payment_key, valid_after, valid_before, \
         reservation_id, mandate_id, approval_id, check_id, memo, metadata, error, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $21)",
    )
    .bind(payment.id.as_str())
    .bind(payment.account_id.as_str())
    .bind(payment.agent_id.as_str())
    .bind(payment.from.to_checksum(None))
    .bind(payment.to.to_checksum(None))
    .bind(payment.to_agent_id.clone())
    .bind(signed(payment.amount_cents))
    .bind(payment.value().to_string())
    .bind(payment.currency.as_str())
    .bind(payment.status.as_str())
    .bind(payment.payment_key.to_string())
    .bind(signed(payment.valid_after))
    .bind(signed(payment.valid_before))
    .bind(payment.reservation_id.clone())
    .bind(payment.mandate_id.clone())
    .bind(payment.approval_id.clone())
    .bind(payment.check_id.clone())
    .bind(payment.memo.clone())
    .bind(payment.metadata.as_ref().map(ToString::to_string))
    .bind(payment.error.clone())
    .bind(payment.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The payment `id`.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// The payment `id`, in a transaction.
pub async fn get_in(conn: &mut Conn, id: &str) -> Result<Option<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The payment whose authorization nonce is `key`.
pub async fn by_key(conn: &mut Conn, key: B256) -> Result<Option<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE payment_key = $1");
    let row = sqlx::query(&sql).bind(key.to_string()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The payments relayer job `job_id` carries (one, or a batch's).
pub async fn of_job(conn: &mut Conn, job_id: &str) -> Result<Vec<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE job_id = $1 ORDER BY id");
    let rows = sqlx::query(&sql).bind(job_id).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// The payments of the relayer jobs `jobs` now go in batch job `batch`.
pub async fn move_to_job(conn: &mut Conn, jobs: &[JobId], batch: &JobId, at: i64) -> Result<()> {
    super::set_where_job_in(conn, ("payments", "job_id", "job_id"), batch.as_str(), jobs, at).await
}

/// The payment with its receipt `receipt_id`.
pub async fn by_receipt(pool: &AnyPool, receipt_id: &str) -> Result<Option<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE receipt_id = $1");
    let row = sqlx::query(&sql).bind(receipt_id).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// A page of payments, newest first: of `account`, only `agent_id`'s and only in `status` when
/// given; at most `limit`, strictly after the `(created_at, id)` cursor.
pub async fn list(
    pool: &AnyPool,
    account: &str,
    agent_id: Option<&str>,
    status: Option<PaymentStatus>,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<Payment>> {
    let rows = super::account_page(
        pool,
        ("payments", COLUMNS),
        account,
        (agent_id, status.map(|s| s.as_str())),
        limit,
        after,
    )
    .await?;
    rows.iter().map(from_row).collect()
}

/// What a change of a payment sets besides its status.
#[derive(Debug, Default, Clone)]
pub struct Change<'a> {
    /// The reason (failed, expired, blocked).
    pub error: Option<&'a str>,
    /// The wallet's signature and the job that carries it (authorized).
    pub authorized: Option<(&'a [u8], &'a str)>,
    /// The transaction that carries or moved it.
    pub tx_hash: Option<B256>,
    /// Where the transfer was mined: block number, hash and the `Transfer` log's index.
    pub mined: Option<(u64, B256, u64)>,
    /// The hold the payment holds on (set when approval holds it).
    pub reservation_id: Option<&'a str>,
}

/// Moves payment `id` to `to` if it is in one of `from`, with `change`; its hold follows in the
/// same transaction. Returns the payment as changed, or `None` if it was in none of `from`.
pub async fn transition(
    conn: &mut Conn,
    id: &str,
    from: &[PaymentStatus],
    to: PaymentStatus,
    change: &Change<'_>,
    at: i64,
) -> Result<Option<Payment>> {
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let (block_number, block_hash, log_index) = match change.mined {
        Some((number, hash, index)) => {
            (Some(signed(number)), Some(hash.to_string()), Some(signed(index)))
        }
        None => (None, None, None),
    };
    let sql = format!(
        "UPDATE payments SET status = $2, error = $3, \
         signature = COALESCE($4, signature), job_id = COALESCE($5, job_id), \
         tx_hash = COALESCE($6, tx_hash), block_number = $7, block_hash = $8, log_index = $9, \
         reservation_id = COALESCE($10, reservation_id), updated_at = $11 \
         WHERE id = $1 AND status IN ({}) RETURNING {COLUMNS}",
        from.join(", ")
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(to.as_str())
        .bind(change.error)
        .bind(change.authorized.map(|(signature, _)| alloy::hex::encode_prefixed(signature)))
        .bind(change.authorized.map(|(_, job)| job))
        .bind(change.tx_hash.map(|h| h.to_string()))
        .bind(block_number)
        .bind(block_hash)
        .bind(log_index)
        .bind(change.reservation_id)
        .bind(at)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(payment) = row.as_ref().map(from_row).transpose()? else { return Ok(None) };
    follow_hold(conn, &payment, at).await?;
    Ok(Some(payment))
}

/// Stores the signed receipt of confirmed payment `id`.
pub async fn set_receipt(
    conn: &mut Conn,
    id: &str,
    receipt: &(ReceiptId, i64, Address, alloy::primitives::Bytes),
) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET receipt_id = $2, receipt_issued_at = $3, receipt_signer = $4, \
         receipt_signature = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(receipt.0.as_str())
    .bind(receipt.1)
    .bind(receipt.2.to_checksum(None))
    .bind(receipt.3.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Brings `payment`'s hold in line with its status: held while it waits for its signature or
/// the chain, captured (the payment's amount; the rest of a larger reservation released) once
/// confirmed, released when it failed, expired or was blocked.
pub async fn follow_hold(conn: &mut Conn, payment: &Payment, at: i64) -> Result<()> {
    let Some(id) = &payment.reservation_id else { return Ok(()) };
    let Some(hold) = holds::get_in(conn, id).await? else { return Ok(()) };
    use PaymentStatus as P;
    let (to, counted, captured) = match payment.status {
        P::AwaitingSignature | P::Queued | P::Submitted => {
            (HoldStatus::Reserved, hold.amount_cents, None)
        }
        P::Confirmed => (HoldStatus::Captured, payment.amount_cents, Some(payment.amount_cents)),
        P::Failed | P::Expired | P::Blocked => (HoldStatus::Released, 0, None),
        P::PendingApproval => return Ok(()),
    };
    let ended =
        matches!(hold.status, HoldStatus::Released | HoldStatus::Expired | HoldStatus::Rejected);
    if to == HoldStatus::Released && ended {
        return Ok(());
    }
    holds::follow_subject(conn, &hold, to, counted, captured, at).await
}

/// The wallets whose token logs the watcher reads: those of payments not confirmed whose
/// authorization was still valid at `since` (unix seconds). Anyone may submit a signed
/// authorization, so a failed or expired payment is watched until it can no longer move.
pub async fn watched_wallets(pool: &AnyPool, since: i64) -> Result<Vec<Address>> {
    let rows = sqlx::query(
        "SELECT DISTINCT from_address FROM payments WHERE status IN ('awaiting_signature', \
         'queued', 'submitted', 'failed', 'expired') AND valid_before >= $1",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| parse_column("from_address", row.try_get::<&str, _>("from_address")?))
        .collect()
}

/// Payments still open whose authorization stopped being valid before `chain_time` (the
/// chain's clock at the head) and that nothing on the chain read so far spent: none can move
/// any more. Up to `limit`, oldest deadline first.
pub async fn due(conn: &mut Conn, chain_time: i64, limit: i64) -> Result<Vec<Payment>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments p WHERE status IN ('awaiting_signature', \
         'pending_approval', 'queued', 'submitted') AND valid_before < $1 \
         AND NOT EXISTS (SELECT 1 FROM escrow_events e WHERE e.agreement_key = p.payment_key \
         AND e.event = 'AuthorizationUsed') ORDER BY valid_before LIMIT $2"
    );
    let rows = sqlx::query(&sql).bind(chain_time).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Confirmed payments mined above block `fork`: a reorganisation took their transfer away.
pub async fn confirmed_above(conn: &mut Conn, fork: u64) -> Result<Vec<Payment>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments WHERE status = 'confirmed' AND block_number > $1 \
         ORDER BY block_number, id"
    );
    let rows = sqlx::query(&sql).bind(signed(fork)).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Forgets the receipt of payment `id` (its transfer was reorganised away).
pub async fn withdraw_receipt(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET receipt_id = NULL, receipt_issued_at = NULL, receipt_signer = NULL, \
         receipt_signature = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The payment relayer job `job_id` carries was sent as `tx_hash`: `queued` → `submitted`
/// (a re-broadcast of a submitted payment records the hash only), announced.
pub async fn job_sent(conn: &mut Conn, job_id: &str, tx_hash: B256, at: i64) -> Result<()> {
    for payment in of_job(conn, job_id).await? {
        let change = Change { tx_hash: Some(tx_hash), ..Change::default() };
        let from = [PaymentStatus::Queued];
        let id = payment.id.as_str();
        if let Some(sent) =
            transition(conn, id, &from, PaymentStatus::Submitted, &change, at).await?
        {
            announce(conn, &sent, at).await?;
        }
    }
    Ok(())
}

/// The payment relayer job `job_id` carries failed for `reason` (refused before it was sent,
/// or reverted): `failed`, its hold released, announced — unless the chain read so far shows
/// its authorization spent, which the watcher judges instead (anyone may submit it).
pub async fn job_failed(conn: &mut Conn, job_id: &str, reason: &str, at: i64) -> Result<()> {
    for payment in of_job(conn, job_id).await? {
        if spent_on_chain(conn, payment.payment_key).await? {
            continue;
        }
        let change = Change { error: Some(reason), ..Change::default() };
        let from = [PaymentStatus::Queued, PaymentStatus::Submitted];
        let id = payment.id.as_str();
        if let Some(failed) =
            transition(conn, id, &from, PaymentStatus::Failed, &change, at).await?
        {
            announce(conn, &failed, at).await?;
        }
    }
    Ok(())
}

/// Whether the watcher has read an `AuthorizationUsed` of payment key `key` (confirmed or not).
pub async fn spent_on_chain(conn: &mut Conn, key: B256) -> Result<bool> {
    let row = sqlx::query(
        "SELECT 1 AS one FROM escrow_events WHERE agreement_key = $1 \
         AND event = 'AuthorizationUsed' LIMIT 1",
    )
    .bind(key.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

/// Records `payment`'s `payment.<status>` webhook event.
pub async fn announce(conn: &mut Conn, payment: &Payment, at: i64) -> Result<()> {
    use super::outbox::{self, EventType};
    let event = match payment.status {
        PaymentStatus::AwaitingSignature => EventType::PaymentCreated,
        PaymentStatus::PendingApproval => EventType::PaymentPendingApproval,
        PaymentStatus::Queued => EventType::PaymentQueued,
        PaymentStatus::Submitted => EventType::PaymentSubmitted,
        PaymentStatus::Confirmed => EventType::PaymentConfirmed,
        PaymentStatus::Failed => EventType::PaymentFailed,
        PaymentStatus::Expired => EventType::PaymentExpired,
        PaymentStatus::Blocked => EventType::PaymentBlocked,
    };
    outbox::record_for_agent(conn, &payment.agent_id, event, &event_data(payment), at).await?;
    Ok(())
}

/// The data of a `payment.*` webhook event.
pub fn event_data(payment: &Payment) -> serde_json::Value {
    serde_json::json!({
        "payment_id": payment.id,
        "agent_id": payment.agent_id,
        "status": payment.status.as_str(),
        "from": payment.from.to_checksum(None),
        "to": payment.to.to_checksum(None),
        "to_agent_id": payment.to_agent_id,
        "amount_cents": payment.amount_cents,
        "reservation_id": payment.reservation_id,
        "mandate_id": payment.mandate_id,
        "approval_id": payment.approval_id,
        "tx_hash": payment.tx_hash.map(|h| h.to_string()),
        "block_number": payment.block_number,
        "receipt_id": payment.receipt.as_ref().map(|r| r.0.to_string()),
        "error": payment.error,
    })
}
