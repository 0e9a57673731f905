//! Reading and inserting agreement rows.

use alloy::primitives::B256;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{AgreementRecord, EscrowSeen};
use crate::agreement::ids::{AgentId, AgreementId};
use crate::agreement::settlement::{EscrowState, EscrowStatus};
use crate::store::{Conn, Result, StoreError, parse_column, parse_json, unsigned};

pub(super) const COLUMNS: &str = "id, buyer_agent_id, seller_agent_id, service_id, quantity, unit, \
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

/// The buyer's signed activation kept with agreement `id` (`None` if there is none, or no
/// agreement): kept so an activation waiting for approval can be queued once approved.
pub async fn activation_signatures(pool: &AnyPool, id: &str) -> Result<Option<serde_json::Value>> {
    let row = sqlx::query("SELECT activation_signatures FROM usage_agreements WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let Some(text) = row.and_then(|row| row.get::<Option<String>, _>("activation_signatures"))
    else {
        return Ok(None);
    };
    parse_json("activation_signatures", &text).map(Some)
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

/// A page of the agreements where a party is an agent of `account`, newest first, only in
/// `status` when given; at most `limit`, strictly after the `(created_at, id)` cursor.
pub async fn list_for_account(
    pool: &AnyPool,
    account: &str,
    status: Option<&str>,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<AgreementRecord>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    let sql = format!(
        "SELECT {COLUMNS} FROM usage_agreements \
         WHERE (buyer_agent_id IN (SELECT id FROM agents WHERE account_id = $1) \
             OR seller_agent_id IN (SELECT id FROM agents WHERE account_id = $1)) \
         AND ($2 = '' OR status = $2) \
         AND (created_at < $3 OR (created_at = $3 AND ($4 = '' OR id < $4))) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(account)
        .bind(status.unwrap_or(""))
        .bind(created_at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

pub(super) fn optional<T>(row: &AnyRow, column: &'static str) -> Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    row.get::<Option<&str>, _>(column).map(|v| parse_column(column, v)).transpose()
}

pub(super) fn from_row(row: &AnyRow) -> Result<AgreementRecord> {
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
