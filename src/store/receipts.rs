//! Signed receipts, one per (transaction, log index), written by the chain watcher in the
//! transaction that applies the escrow event they record.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, StoreError, parse_column, unsigned};
use crate::agreement::ids::{AgentId, AgreementId, ReceiptId};
use crate::receipts::{Receipt, ReceiptKind};

const COLUMNS: &str = "id, kind, agreement_id, agreement_key, buyer_agent_id, seller_agent_id, \
    buyer_wallet, seller_wallet, amount, infra_fee, token, escrow_contract, chain_id, tx_hash, \
    block_number, block_hash, log_index, issued_at, signer, signature";

/// Stores `receipt` unless one for its (transaction, log index) exists; returns whether it was
/// stored. So an event applied twice (a retried pass, a second instance) keeps one receipt.
pub async fn insert(conn: &mut Conn, receipt: &Receipt) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO receipts (id, kind, agreement_id, agreement_key, buyer_agent_id, \
         seller_agent_id, buyer_wallet, seller_wallet, amount, infra_fee, token, escrow_contract, \
         chain_id, tx_hash, block_number, block_hash, log_index, issued_at, signer, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
         $19, $20) ON CONFLICT (tx_hash, log_index) DO NOTHING",
    )
    .bind(receipt.id.as_str())
    .bind(receipt.kind.as_str())
    .bind(receipt.agreement_id.as_str())
    .bind(receipt.agreement_key.to_string())
    .bind(receipt.buyer_agent_id.as_str())
    .bind(receipt.seller_agent_id.as_str())
    .bind(receipt.buyer_wallet.to_string())
    .bind(receipt.seller_wallet.to_string())
    .bind(receipt.amount.to_string())
    .bind(receipt.infra_fee.to_string())
    .bind(receipt.token.to_string())
    .bind(receipt.escrow.to_string())
    .bind(receipt.chain_id as i64)
    .bind(receipt.tx_hash.to_string())
    .bind(receipt.block_number as i64)
    .bind(receipt.block_hash.to_string())
    .bind(receipt.log_index as i64)
    .bind(receipt.issued_at)
    .bind(receipt.signer.to_string())
    .bind(receipt.signature.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The receipt with this id; `None` if there is none.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Receipt>> {
    let sql = format!("SELECT {COLUMNS} FROM receipts WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.map(|row| from_row(&row)).transpose()
}

/// Up to `limit` receipts of agreements where `agent` is buyer or seller, newest first (ids are
/// time-ordered); with `before`, only receipts whose id sorts before it (the next page).
pub async fn list_for_agent(
    pool: &AnyPool,
    agent: &AgentId,
    limit: u32,
    before: Option<&str>,
) -> Result<Vec<Receipt>> {
    let parties = "(buyer_agent_id = $1 OR seller_agent_id = $1)";
    let rows = match before {
        Some(before) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM receipts WHERE {parties} AND id < $2 \
                 ORDER BY id DESC LIMIT $3"
            );
            sqlx::query(&sql)
                .bind(agent.as_str())
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }
        None => {
            let sql =
                format!("SELECT {COLUMNS} FROM receipts WHERE {parties} ORDER BY id DESC LIMIT $2");
            sqlx::query(&sql).bind(agent.as_str()).bind(i64::from(limit)).fetch_all(pool).await?
        }
    };
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> Result<Receipt> {
    let kind: &str = row.get("kind");
    Ok(Receipt {
        id: ReceiptId(row.get("id")),
        kind: ReceiptKind::parse(kind).ok_or_else(|| StoreError::Corrupt {
            column: "kind",
            reason: format!("unknown receipt kind {kind:?}"),
        })?,
        agreement_id: AgreementId(row.get("agreement_id")),
        agreement_key: parse_column("agreement_key", row.get("agreement_key"))?,
        buyer_agent_id: AgentId(row.get("buyer_agent_id")),
        seller_agent_id: AgentId(row.get("seller_agent_id")),
        buyer_wallet: parse_column("buyer_wallet", row.get("buyer_wallet"))?,
        seller_wallet: parse_column("seller_wallet", row.get("seller_wallet"))?,
        amount: parse_column("amount", row.get("amount"))?,
        infra_fee: parse_column("infra_fee", row.get("infra_fee"))?,
        token: parse_column("token", row.get("token"))?,
        escrow: parse_column("escrow_contract", row.get("escrow_contract"))?,
        chain_id: unsigned("chain_id", row.get("chain_id"))?,
        tx_hash: parse_column("tx_hash", row.get("tx_hash"))?,
        block_number: unsigned("block_number", row.get("block_number"))?,
        block_hash: parse_column("block_hash", row.get("block_hash"))?,
        log_index: unsigned("log_index", row.get("log_index"))?,
        issued_at: row.get("issued_at"),
        signer: parse_column("signer", row.get("signer"))?,
        signature: parse_column("signature", row.get("signature"))?,
    })
}

/// Withdraws the receipts of events in blocks above `fork` (reorganised out of the chain; a
/// new receipt is issued when the event is mined again). Returns their ids by agreement.
pub async fn withdraw_above(conn: &mut Conn, fork: u64) -> Result<Vec<(AgreementId, ReceiptId)>> {
    let rows =
        sqlx::query("DELETE FROM receipts WHERE block_number > $1 RETURNING id, agreement_id")
            .bind(fork as i64)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .iter()
        .map(|row| (AgreementId(row.get("agreement_id")), ReceiptId(row.get("id"))))
        .collect())
}
