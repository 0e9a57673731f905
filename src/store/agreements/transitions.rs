//! Moving an agreement through its statuses (accept, reject, activation, expiry), each a
//! conditional update that names the status it expects.

use alloy::primitives::{Address, B256};
use serde_json::Value;
use sqlx::Row;

use crate::agreement::ids::AgreementId;
use crate::agreement::status::{ActivationStatus, AgreementStatus, InfraFeeStatus};
use crate::agreement::terms::Terms;
use crate::store::{Conn, Result, StoreError};

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
         updated_at = $4 WHERE id = $1 AND status = $2 \
         AND activation_status <> 'awaiting_approval'",
    )
    .bind(id.as_str())
    .bind(from.as_str())
    .bind(signatures.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    expect_one(result.rows_affected())
}

/// Keeps the buyer's checked signatures with an agreement in `from` whose activation the
/// buyer's policy escalated: `activation_status` becomes `awaiting_approval` and nothing is
/// queued. Fails with [`super::super::StoreError::Conflict`] if the agreement moved on (or
/// already awaits approval).
pub async fn await_approval(
    conn: &mut Conn,
    id: &AgreementId,
    from: AgreementStatus,
    signatures: &Value,
    now: i64,
) -> Result<()> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET activation_status = 'awaiting_approval', \
         activation_error = NULL, activation_signatures = $3, updated_at = $4 \
         WHERE id = $1 AND status = $2 AND activation_status <> 'awaiting_approval'",
    )
    .bind(id.as_str())
    .bind(from.as_str())
    .bind(signatures.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    expect_one(result.rows_affected())
}

/// Queues an activation that waited for approval: `activating`/`pending`, like
/// [`submit_activation`]. Returns `false` (and changes nothing) if it no longer awaits
/// approval or its agreement can no longer be activated.
pub async fn approve_activation(conn: &mut Conn, id: &AgreementId, now: i64) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET status = 'activating', activation_status = 'pending', \
         activation_error = NULL, activation_tx_hash = NULL, \
         infra_fee_status = CASE WHEN infra_fee_status = 'none' THEN 'none' ELSE 'pending' END, \
         updated_at = $2 WHERE id = $1 AND activation_status = 'awaiting_approval' \
         AND status IN ('accepted', 'failed')",
    )
    .bind(id.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Ends an activation that waited for approval as `outcome` (`rejected` or `expired`) with
/// `reason`; nothing was sent. Returns whether it was still waiting.
pub async fn end_awaiting_approval(
    conn: &mut Conn,
    id: &AgreementId,
    outcome: ActivationStatus,
    reason: &str,
    now: i64,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE usage_agreements SET activation_status = $2, activation_error = $3, \
         updated_at = $4 WHERE id = $1 AND activation_status = 'awaiting_approval'",
    )
    .bind(id.as_str())
    .bind(outcome.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
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
    if result.rows_affected() == 1 {
        crate::store::governance::follow_activation(conn, id.as_str(), now).await?;
    }
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

pub(super) fn expect_one(rows: u64) -> Result<()> {
    if rows == 1 { Ok(()) } else { Err(StoreError::Conflict) }
}
