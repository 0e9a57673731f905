//! Usage agreements: one row each, moved between statuses only by conditional updates that name
//! the status they expect, so two concurrent transitions cannot both win.

use alloy::primitives::{Address, B256, Bytes};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, StoreError, parse_column, parse_json, unsigned};
use crate::agreement::ids::{AgentId, AgreementId};
use crate::agreement::settlement::{EscrowState, EscrowStatus};
use crate::agreement::status::InfraFeeStatus;
use crate::agreement::status::{ActivationStatus, AgreementStatus};
use crate::agreement::terms::Terms;

/// An agreement as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AgreementRecord {
    /// Its id.
    pub id: AgreementId,
    /// The proposing (paying) agent.
    pub buyer_agent_id: AgentId,
    /// The providing agent.
    pub seller_agent_id: AgentId,
    /// The seller's service being bought.
    pub service_id: String,
    /// Units bought.
    pub quantity: u64,
    /// What a unit is (`api_calls`, `tokens`, …).
    pub unit: String,
    /// Price of one unit in cents.
    pub price_per_unit_cents: u64,
    /// The payment method object as proposed.
    pub payment_method: Value,
    /// `bilateral_escrow`.
    pub settlement_model: String,
    /// `v2`.
    pub activation_version: String,
    /// The buyer's wallet.
    pub buyer_wallet: Address,
    /// The seller's wallet, given at acceptance.
    pub seller_wallet: Option<Address>,
    /// The agreement status.
    pub status: AgreementStatus,
    /// The activation status.
    pub activation_status: ActivationStatus,
    /// Why the activation failed.
    pub activation_error: Option<String>,
    /// The activation transaction, once broadcast.
    pub activation_tx_hash: Option<B256>,
    /// The seller's reason for rejecting.
    pub rejection_reason: Option<String>,
    /// The on-chain terms, fixed at acceptance.
    pub terms: Option<Terms>,
    /// The EIP-712 hash of the terms.
    pub agreement_key: Option<B256>,
    /// Where the infra fee stands.
    pub infra_fee_status: InfraFeeStatus,
    /// The last screening report.
    pub screening: Option<Value>,
    /// The escrow as the chain watcher last confirmed it.
    pub escrow: Option<EscrowSeen>,
    /// Units the seller recorded as delivered, in all.
    pub usage_units: u64,
    /// The highest cumulative units the buyer signed a voucher for.
    pub voucher_units: u64,
    /// The buyer's signature of that voucher.
    pub voucher_signature: Option<Bytes>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The escrow's on-chain state as of a confirmed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowSeen {
    /// The escrow's state after the last confirmed event.
    pub state: EscrowState,
    /// The block of that event.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// The transaction that emitted it.
    pub tx_hash: Option<B256>,
}

/// What a buyer proposes: everything a new agreement starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The proposing (paying) agent.
    pub buyer_agent_id: AgentId,
    /// The providing agent.
    pub seller_agent_id: AgentId,
    /// The seller's service being bought.
    pub service_id: String,
    /// Units bought.
    pub quantity: u64,
    /// What a unit is.
    pub unit: String,
    /// Price of one unit in cents.
    pub price_per_unit_cents: u64,
    /// The payment method object as proposed.
    pub payment_method: Value,
    /// The buyer's wallet.
    pub buyer_wallet: Address,
}

impl AgreementRecord {
    /// A new agreement in `proposed`, created at `now` (bilateral escrow, activation v2: the
    /// only kinds there are).
    pub fn proposed(proposal: Proposal, now: i64) -> Self {
        Self {
            id: AgreementId::generate(),
            buyer_agent_id: proposal.buyer_agent_id,
            seller_agent_id: proposal.seller_agent_id,
            service_id: proposal.service_id,
            quantity: proposal.quantity,
            unit: proposal.unit,
            price_per_unit_cents: proposal.price_per_unit_cents,
            payment_method: proposal.payment_method,
            settlement_model: "bilateral_escrow".into(),
            activation_version: "v2".into(),
            buyer_wallet: proposal.buyer_wallet,
            seller_wallet: None,
            status: AgreementStatus::Proposed,
            activation_status: ActivationStatus::NotStarted,
            activation_error: None,
            activation_tx_hash: None,
            rejection_reason: None,
            terms: None,
            agreement_key: None,
            infra_fee_status: InfraFeeStatus::None,
            screening: None,
            escrow: None,
            usage_units: 0,
            voucher_units: 0,
            voucher_signature: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether `agent` is the buyer or the seller.
    pub fn is_party(&self, agent: &AgentId) -> bool {
        &self.buyer_agent_id == agent || &self.seller_agent_id == agent
    }
}

const COLUMNS: &str = "id, buyer_agent_id, seller_agent_id, service_id, quantity, unit, \
    price_per_unit_cents, payment_method, settlement_model, activation_version, \
    buyer_wallet_address, seller_wallet_address, status, activation_status, activation_error, \
    activation_tx_hash, rejection_reason, terms, agreement_key, infra_fee_status, screening, \
    escrow_status, escrow_claimed_units, escrow_block_number, escrow_block_hash, \
    escrow_closes_at, escrow_buyer_withdrawn, escrow_tx_hash, usage_units, voucher_units, \
    voucher_signature, created_at, updated_at";

/// Stores a new proposal.
pub async fn insert(conn: &mut Conn, record: &AgreementRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO usage_agreements (id, buyer_agent_id, seller_agent_id, service_id, quantity, \
         unit, price_per_unit_cents, payment_method, settlement_model, activation_version, \
         buyer_wallet_address, status, activation_status, infra_fee_status, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(record.id.as_str())
    .bind(record.buyer_agent_id.as_str())
    .bind(record.seller_agent_id.as_str())
    .bind(&record.service_id)
    .bind(record.quantity as i64)
    .bind(&record.unit)
    .bind(record.price_per_unit_cents as i64)
    .bind(record.payment_method.to_string())
    .bind(&record.settlement_model)
    .bind(&record.activation_version)
    .bind(record.buyer_wallet.to_string())
    .bind(record.status.as_str())
    .bind(record.activation_status.as_str())
    .bind(record.infra_fee_status.as_str())
    .bind(record.created_at)
    .bind(record.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The agreement with this id; `None` if there is none.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<AgreementRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM usage_agreements WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.map(|row| from_row(&row)).transpose()
}

/// [`get`] inside a write transaction.
pub async fn get_in(conn: &mut Conn, id: &str) -> Result<Option<AgreementRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM usage_agreements WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.map(|row| from_row(&row)).transpose()
}

/// The agreement whose on-chain key is `key`; `None` if Pactum has none.
pub async fn get_by_key(conn: &mut Conn, key: B256) -> Result<Option<AgreementRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM usage_agreements WHERE agreement_key = $1");
    let row = sqlx::query(&sql).bind(key.to_string()).fetch_optional(&mut *conn).await?;
    row.map(|row| from_row(&row)).transpose()
}

/// A page of the agreements `agent` is party to, newest first: at most `limit`, strictly after
/// the `(created_at, id)` cursor when one is given.
pub async fn list_for_agent(
    pool: &AnyPool,
    agent: &AgentId,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<AgreementRecord>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    // Each branch is served by its own index; the cursor compares (created_at, id) so pages
    // neither repeat nor skip rows created in the same second.
    let sql = format!(
        "SELECT {COLUMNS} FROM usage_agreements \
         WHERE (buyer_agent_id = $1 OR seller_agent_id = $1) \
         AND (created_at < $2 OR (created_at = $2 AND ($3 = '' OR id < $3))) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(agent.as_str())
        .bind(created_at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Moves a proposal to `accepted`, fixing the seller's wallet and the terms. Fails with
/// [`StoreError::Conflict`] unless the agreement is still `proposed`.
pub async fn accept(
    conn: &mut Conn,
    id: &AgreementId,
    seller_wallet: Address,
    terms: &Terms,
    agreement_key: B256,
    infra_fee_status: InfraFeeStatus,
    now: i64,
) -> Result<()> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET status = 'accepted', seller_wallet_address = $2, terms = $3, \
         agreement_key = $4, activate_by = $5, infra_fee_status = $6, updated_at = $7 \
         WHERE id = $1 AND status = 'proposed'",
    )
    .bind(id.as_str())
    .bind(seller_wallet.to_string())
    .bind(serde_json::to_string(terms).expect("terms serialize"))
    .bind(agreement_key.to_string())
    .bind(terms.activate_by as i64)
    .bind(infra_fee_status.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    expect_one(result.rows_affected())
}

/// Moves a proposal to `rejected`. Fails with [`StoreError::Conflict`] unless it is `proposed`.
pub async fn reject(
    conn: &mut Conn,
    id: &AgreementId,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET status = 'rejected', rejection_reason = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'proposed'",
    )
    .bind(id.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    expect_one(result.rows_affected())
}

/// Records a screening report, whatever its outcome.
pub async fn record_screening(conn: &mut Conn, id: &AgreementId, report: &Value) -> Result<()> {
    sqlx::query("UPDATE usage_agreements SET screening = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(report.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves the agreement from `from` to `activating` / `pending` with the buyer's signatures.
/// Fails with [`StoreError::Conflict`] if its status is no longer `from`.
pub async fn submit_activation(
    conn: &mut Conn,
    id: &AgreementId,
    from: AgreementStatus,
    signatures: &Value,
    now: i64,
) -> Result<()> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET status = 'activating', activation_status = 'pending', \
         activation_error = NULL, activation_tx_hash = NULL, activation_signatures = $3, \
         infra_fee_status = CASE WHEN infra_fee_status = 'none' THEN 'none' ELSE 'pending' END, \
         updated_at = $4 WHERE id = $1 AND status = $2",
    )
    .bind(id.as_str())
    .bind(from.as_str())
    .bind(signatures.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    expect_one(result.rows_affected())
}

/// Records the relayer's progress on an activation still `activating`: the new activation status
/// and, once broadcast, the transaction hash. Returns whether the agreement was updated (it is
/// not when the chain watcher already settled the activation either way, nor when nothing
/// changes: a transaction broadcast again reports no second `activation.submitted`).
pub async fn activation_progress(
    conn: &mut Conn,
    id: &AgreementId,
    activation_status: ActivationStatus,
    tx_hash: Option<B256>,
    now: i64,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET activation_status = $2, \
         activation_tx_hash = COALESCE($3, activation_tx_hash), updated_at = $4 \
         WHERE id = $1 AND status = 'activating' AND activation_status <> 'confirmed' \
         AND (activation_status <> $2 \
              OR COALESCE(activation_tx_hash, '') <> COALESCE($3, activation_tx_hash, ''))",
    )
    .bind(id.as_str())
    .bind(activation_status.as_str())
    .bind(tx_hash.map(|h| h.to_string()))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks an activation that is still `activating` as failed with `reason`; no fee was taken.
pub async fn activation_failed(
    conn: &mut Conn,
    id: &AgreementId,
    reason: &str,
    now: i64,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET status = 'failed', activation_status = 'failed', \
         activation_error = $2, \
         infra_fee_status = CASE WHEN infra_fee_status = 'none' THEN 'none' ELSE 'failed' END, \
         updated_at = $3 WHERE id = $1 AND status = 'activating'",
    )
    .bind(id.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records a confirmed `EscrowActivated` for the agreement with this key: `active`,
/// `confirmed`, the fee collected, and the escrow as of that block. Returns `false` if Pactum
/// has no agreement with this key.
pub async fn escrow_activated(
    conn: &mut Conn,
    key: B256,
    tx_hash: B256,
    block_number: u64,
    block_hash: B256,
    now: i64,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET status = 'active', activation_status = 'confirmed', \
         activation_error = NULL, activation_tx_hash = $2, \
         infra_fee_status = CASE WHEN infra_fee_status = 'none' THEN 'none' ELSE 'collected' END, \
         escrow_status = 'active', escrow_claimed_units = 0, escrow_closes_at = NULL, \
         escrow_buyer_withdrawn = 0, escrow_tx_hash = $2, escrow_block_number = $3, \
         escrow_block_hash = $4, updated_at = $5 \
         WHERE agreement_key = $1 AND status IN ('accepted', 'activating', 'failed', 'expired')",
    )
    .bind(key.to_string())
    .bind(tx_hash.to_string())
    .bind(block_number as i64)
    .bind(block_hash.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Takes back a confirmed activation whose block was reorganised out of the chain: the
/// agreement `activating` with its activation `submitted` again (the transaction is watched,
/// and sent again if the node dropped it), the escrow unknown, a collected fee `pending`.
/// `false` when the agreement is already settled by something else.
pub async fn activation_unconfirmed(conn: &mut Conn, id: &AgreementId, now: i64) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET status = 'activating', activation_status = 'submitted', \
         activation_error = NULL, \
         infra_fee_status = CASE WHEN infra_fee_status = 'none' THEN 'none' ELSE 'pending' END, \
         escrow_status = NULL, escrow_claimed_units = NULL, escrow_closes_at = NULL, \
         escrow_buyer_withdrawn = 0, escrow_tx_hash = NULL, escrow_block_number = NULL, \
         escrow_block_hash = NULL, updated_at = $2 \
         WHERE id = $1 AND activation_tx_hash IS NOT NULL \
         AND status IN ('active', 'closing', 'settled', 'failed')",
    )
    .bind(id.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Moves every agreement whose activation deadline passed before `now` without an activation
/// in flight to `expired`; returns their ids.
pub async fn expire_due(conn: &mut Conn, now: i64) -> Result<Vec<AgreementId>> {
    // The watcher runs this every pass: `agreements_by_expiry` keeps it a range search, not a
    // scan of every agreement ever stored.
    let rows = sqlx::query(
        "UPDATE usage_agreements SET status = 'expired', updated_at = $1 \
         WHERE status IN ('accepted', 'failed') AND activate_by <= $1 RETURNING id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|row| AgreementId(row.get("id"))).collect())
}

/// Records an escrow event confirmed for the agreement `id`: the escrow's new `state`, the
/// agreement `status` it implies, and where the event is on-chain.
pub async fn escrow_changed(
    conn: &mut Conn,
    id: &AgreementId,
    state: &EscrowState,
    status: AgreementStatus,
    at: (B256, u64, B256),
    now: i64,
) -> Result<()> {
    let (tx_hash, block_number, block_hash) = at;
    sqlx::query(
        "UPDATE usage_agreements SET status = $2, escrow_status = $3, escrow_claimed_units = $4, \
         escrow_closes_at = $5, escrow_buyer_withdrawn = $6, escrow_tx_hash = $7, \
         escrow_block_number = $8, escrow_block_hash = $9, updated_at = $10 WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(status.as_str())
    .bind(state.status.as_str())
    .bind(state.claimed_units as i64)
    .bind((state.closes_at != 0).then_some(state.closes_at as i64))
    .bind(i64::from(state.buyer_withdrawn))
    .bind(tx_hash.to_string())
    .bind(block_number as i64)
    .bind(block_hash.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds `units` to the seller's recorded usage unless that would pass `quantity`; returns the
/// new total, or [`StoreError::Conflict`] when it would pass (or the agreement changed).
pub async fn record_usage(conn: &mut Conn, id: &AgreementId, units: u64, now: i64) -> Result<u64> {
    let row = sqlx::query(
        "UPDATE usage_agreements SET usage_units = usage_units + $2, updated_at = $3 \
         WHERE id = $1 AND usage_units + $2 <= quantity RETURNING usage_units",
    )
    .bind(id.as_str())
    .bind(units as i64)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(StoreError::Conflict)?;
    unsigned("usage_units", row.get("usage_units"))
}

/// Keeps `units` and `signature` as the buyer's best voucher if `units` is above the one kept;
/// returns whether it was kept.
pub async fn keep_voucher(
    conn: &mut Conn,
    id: &AgreementId,
    units: u64,
    signature: &Bytes,
    now: i64,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET voucher_units = $2, voucher_signature = $3, updated_at = $4 \
         WHERE id = $1 AND voucher_units < $2",
    )
    .bind(id.as_str())
    .bind(units as i64)
    .bind(signature.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

fn expect_one(rows: u64) -> Result<()> {
    if rows == 1 { Ok(()) } else { Err(StoreError::Conflict) }
}

fn optional<T>(row: &AnyRow, column: &'static str) -> Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    row.get::<Option<&str>, _>(column).map(|v| parse_column(column, v)).transpose()
}

fn from_row(row: &AnyRow) -> Result<AgreementRecord> {
    let escrow = match row.get::<Option<&str>, _>("escrow_status") {
        None => None,
        Some(status) => Some(EscrowSeen {
            state: EscrowState {
                status: EscrowStatus::parse(status).ok_or_else(|| StoreError::Corrupt {
                    column: "escrow_status",
                    reason: format!("unknown status {status:?}"),
                })?,
                buyer_withdrawn: row.get::<i64, _>("escrow_buyer_withdrawn") != 0,
                closes_at: row
                    .get::<Option<i64>, _>("escrow_closes_at")
                    .map(|t| unsigned("escrow_closes_at", t))
                    .transpose()?
                    .unwrap_or(0),
                claimed_units: unsigned("escrow_claimed_units", row.get("escrow_claimed_units"))?,
            },
            block_number: unsigned("escrow_block_number", row.get("escrow_block_number"))?,
            block_hash: parse_column("escrow_block_hash", row.get("escrow_block_hash"))?,
            tx_hash: optional(row, "escrow_tx_hash")?,
        }),
    };
    Ok(AgreementRecord {
        id: AgreementId(row.get("id")),
        buyer_agent_id: AgentId(row.get("buyer_agent_id")),
        seller_agent_id: AgentId(row.get("seller_agent_id")),
        service_id: row.get("service_id"),
        quantity: unsigned("quantity", row.get("quantity"))?,
        unit: row.get("unit"),
        price_per_unit_cents: unsigned("price_per_unit_cents", row.get("price_per_unit_cents"))?,
        payment_method: parse_json("payment_method", row.get("payment_method"))?,
        settlement_model: row.get("settlement_model"),
        activation_version: row.get("activation_version"),
        buyer_wallet: parse_column("buyer_wallet_address", row.get("buyer_wallet_address"))?,
        seller_wallet: optional(row, "seller_wallet_address")?,
        status: parse_column("status", row.get("status"))?,
        activation_status: parse_column("activation_status", row.get("activation_status"))?,
        activation_error: row.get("activation_error"),
        activation_tx_hash: optional(row, "activation_tx_hash")?,
        rejection_reason: row.get("rejection_reason"),
        terms: row.get::<Option<&str>, _>("terms").map(|t| parse_json("terms", t)).transpose()?,
        agreement_key: optional(row, "agreement_key")?,
        infra_fee_status: parse_column("infra_fee_status", row.get("infra_fee_status"))?,
        screening: row
            .get::<Option<&str>, _>("screening")
            .map(|s| parse_json("screening", s))
            .transpose()?,
        escrow,
        usage_units: unsigned("usage_units", row.get("usage_units"))?,
        voucher_units: unsigned("voucher_units", row.get("voucher_units"))?,
        voucher_signature: optional(row, "voucher_signature")?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}
