//! What the chain and the parties' usage write onto an agreement: escrow state as the watcher
//! derives it, recorded usage and the buyer's latest voucher.

use alloy::primitives::{B256, Bytes};
use sqlx::Row;

use crate::agreement::ids::AgreementId;
use crate::agreement::settlement::EscrowState;
use crate::agreement::status::AgreementStatus;
use crate::store::{Conn, Result, StoreError, unsigned};

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
    if result.rows_affected() == 1 {
        let id: String = sqlx::query("SELECT id FROM usage_agreements WHERE agreement_key = $1")
            .bind(key.to_string())
            .fetch_one(&mut *conn)
            .await?
            .try_get("id")?;
        crate::store::governance::follow_activation(conn, &id, now).await?;
    }
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
    if result.rows_affected() == 1 {
        crate::store::governance::follow_activation(conn, id.as_str(), now).await?;
    }
    Ok(result.rows_affected() == 1)
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
    if state.buyer_withdrawn {
        // What the buyer took back was never spent: its budgets get it back.
        crate::store::governance::follow_activation(conn, id.as_str(), now).await?;
    }
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
