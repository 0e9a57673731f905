//! Settlement: the seller's usage records and the sponsored settlement actions Pactum relays.

use alloy::primitives::{Address, B256, Bytes};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, parse_column, unsigned};
use crate::agreement::ids::{AgreementId, JobId, SettlementActionId, UsageRecordId};
use crate::agreement::settlement::{Action, Party};
use crate::money::TokenAmount;
use crate::vocab::string_enum;

/// Stores one usage record of the seller (`cumulative_units` is the total after it).
pub async fn insert_usage_record(
    conn: &mut Conn,
    agreement: &AgreementId,
    units: u64,
    cumulative_units: u64,
    description: Option<&str>,
    now: i64,
) -> Result<UsageRecordId> {
    let id = UsageRecordId::generate();
    sqlx::query(
        "INSERT INTO usage_records (id, agreement_id, units, cumulative_units, description, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(agreement.as_str())
    .bind(units as i64)
    .bind(cumulative_units as i64)
    .bind(description)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

string_enum!(
    /// Where a relayed settlement action stands: `pending` (queued) → `submitted` (broadcast)
    /// → `confirmed` | `failed`.
    SettlementActionStatus {
        /// Queued with its relayer job.
        Pending = "pending",
        /// Its job's transaction is broadcast.
        Submitted = "submitted",
        /// Its transaction is mined and deep enough.
        Confirmed = "confirmed",
        /// Refused or reverted; see `error`.
        Failed = "failed",
    }
);

/// A newly queued action's status.
pub const PENDING: SettlementActionStatus = SettlementActionStatus::Pending;

/// A party's signed settlement action relayed by Pactum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementAction {
    /// Its id.
    pub id: SettlementActionId,
    /// The agreement.
    pub agreement_id: AgreementId,
    /// What it does.
    pub action: Action,
    /// Who signed it.
    pub party: Party,
    /// The signing wallet.
    pub signer: Address,
    /// `finalUnits` of a close, `cumulativeUnits` of a claim, 0 otherwise.
    pub units: u64,
    /// What was expected to move when it was accepted, in token base units.
    pub amount: TokenAmount,
    /// The authorization's deadline (unix seconds).
    pub deadline: u64,
    /// The EIP-712 digest the party signed.
    pub authorization_digest: B256,
    /// The party's signature.
    pub authorization_signature: Bytes,
    /// The relayer job carrying it.
    pub job_id: JobId,
    /// Where it stands.
    pub status: SettlementActionStatus,
    /// The transaction, once broadcast.
    pub tx_hash: Option<B256>,
    /// The block it was confirmed in.
    pub block_number: Option<u64>,
    /// Why it failed (a decoded revert reason, or why the relayer refused it).
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, agreement_id, action, party, signer, units, amount, deadline, \
    authorization_digest, authorization_signature, job_id, status, tx_hash, block_number, error, \
    created_at, updated_at";

/// Stores a new action (in the transaction that queues its job).
pub async fn insert_action(conn: &mut Conn, action: &SettlementAction) -> Result<()> {
    sqlx::query(
        "INSERT INTO settlement_actions (id, agreement_id, action, party, signer, units, amount, \
         deadline, authorization_digest, authorization_signature, job_id, status, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(action.id.as_str())
    .bind(action.agreement_id.as_str())
    .bind(action.action.as_str())
    .bind(action.party.as_str())
    .bind(action.signer.to_string())
    .bind(action.units as i64)
    .bind(action.amount.to_string())
    .bind(action.deadline as i64)
    .bind(action.authorization_digest.to_string())
    .bind(action.authorization_signature.to_string())
    .bind(action.job_id.as_str())
    .bind(action.status.as_str())
    .bind(action.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The action with this id on `agreement`.
pub async fn get_action(
    pool: &AnyPool,
    agreement: &AgreementId,
    id: &str,
) -> Result<Option<SettlementAction>> {
    let sql =
        format!("SELECT {COLUMNS} FROM settlement_actions WHERE id = $1 AND agreement_id = $2");
    let row = sqlx::query(&sql).bind(id).bind(agreement.as_str()).fetch_optional(pool).await?;
    row.map(|row| from_row(&row)).transpose()
}

/// The action already relayed for the authorization with this digest, if any.
pub async fn by_digest(conn: &mut Conn, digest: B256) -> Result<Option<SettlementAction>> {
    let sql = format!("SELECT {COLUMNS} FROM settlement_actions WHERE authorization_digest = $1");
    let row = sqlx::query(&sql).bind(digest.to_string()).fetch_optional(&mut *conn).await?;
    row.map(|row| from_row(&row)).transpose()
}

/// Every action of `agreement`, oldest first.
pub async fn actions_of(pool: &AnyPool, agreement: &AgreementId) -> Result<Vec<SettlementAction>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM settlement_actions WHERE agreement_id = $1 ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql).bind(agreement.as_str()).fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// The actions carried by `job`.
pub async fn actions_of_job(conn: &mut Conn, job: &JobId) -> Result<Vec<SettlementAction>> {
    let sql = format!("SELECT {COLUMNS} FROM settlement_actions WHERE job_id = $1 ORDER BY id");
    let rows = sqlx::query(&sql).bind(job.as_str()).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Moves the actions carried by `jobs` to the batch job `batch`.
pub async fn move_to_job(conn: &mut Conn, jobs: &[JobId], batch: &JobId, now: i64) -> Result<()> {
    let columns = ("settlement_actions", "job_id", "job_id");
    super::set_where_job_in(conn, columns, batch.as_str(), jobs, now).await
}

/// Records the relayer's progress on the actions `job` carries: `submitted` with the
/// transaction hash. Final statuses are left alone.
pub async fn job_submitted(conn: &mut Conn, job: &JobId, tx_hash: B256, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE settlement_actions SET status = 'submitted', tx_hash = $2, updated_at = $3 \
         WHERE job_id = $1 AND status IN ('pending', 'submitted')",
    )
    .bind(job.as_str())
    .bind(tx_hash.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Finishes one action: `confirmed` (in `block_number`, by `tx_hash`) or `failed` with `error`.
pub async fn finish(
    conn: &mut Conn,
    id: &SettlementActionId,
    error: Option<&str>,
    tx_hash: Option<B256>,
    block_number: Option<u64>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE settlement_actions SET status = $2, error = $3, \
         tx_hash = COALESCE($4, tx_hash), block_number = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(
        if error.is_some() {
            SettlementActionStatus::Failed
        } else {
            SettlementActionStatus::Confirmed
        }
        .as_str(),
    )
    .bind(error)
    .bind(tx_hash.map(|h| h.to_string()))
    .bind(block_number.map(|n| n as i64))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn from_row(row: &AnyRow) -> Result<SettlementAction> {
    Ok(SettlementAction {
        id: SettlementActionId(row.get("id")),
        agreement_id: AgreementId(row.get("agreement_id")),
        action: parse_column("action", row.get("action"))?,
        party: parse_column("party", row.get("party"))?,
        signer: parse_column("signer", row.get("signer"))?,
        units: unsigned("units", row.get("units"))?,
        amount: parse_column("amount", row.get("amount"))?,
        deadline: unsigned("deadline", row.get("deadline"))?,
        authorization_digest: parse_column(
            "authorization_digest",
            row.get("authorization_digest"),
        )?,
        authorization_signature: parse_column(
            "authorization_signature",
            row.get("authorization_signature"),
        )?,
        job_id: JobId(row.get("job_id")),
        status: parse_column("status", row.get("status"))?,
        tx_hash: row
            .get::<Option<&str>, _>("tx_hash")
            .map(|h| parse_column("tx_hash", h))
            .transpose()?,
        block_number: row
            .get::<Option<i64>, _>("block_number")
            .map(|n| unsigned("block_number", n))
            .transpose()?,
        error: row.get("error"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// Puts the actions `job` carries back to `submitted` (its transaction was reorganised out of
/// the chain; it is watched again): their outcome and block are cleared. Returns how many.
pub async fn reopen_job(conn: &mut Conn, job: &JobId, now: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE settlement_actions SET status = 'submitted', error = NULL, block_number = NULL, \
         updated_at = $2 WHERE job_id = $1 AND status IN ('confirmed', 'failed')",
    )
    .bind(job.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
