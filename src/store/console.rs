//! Reads for the operator console: an agreement's relayer attempts, each relayer key's
//! activity, and the counts behind its charts. Nothing here writes.

use std::collections::HashMap;

use alloy::primitives::Address;
use sqlx::{AnyPool, Row};

use super::attempts::{ATTEMPT_COLUMNS, Attempt, AttemptStatus, attempt_from_row};
use super::jobs::{JobKind, JobStatus, WAITING_FOR_FEES};
use super::outbox::EventType;
use super::{Result, parse_column, unsigned};
use crate::agreement::ids::AgreementId;

/// One relayer attempt of a job that carried an agreement's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementAttempt {
    /// What the job does.
    pub job_kind: JobKind,
    /// Where the job stands.
    pub job_status: JobStatus,
    /// The attempt as the relayer keeps it.
    pub attempt: Attempt,
    /// Gas used, from its receipt.
    pub gas_used: Option<u64>,
    /// Effective gas price (wei), from its receipt.
    pub effective_gas_price: Option<u128>,
    /// When it was saved (unix seconds).
    pub created_at: i64,
    /// When the node took it.
    pub broadcast_at: Option<i64>,
}

/// Every attempt of every job of `agreement`, oldest first.
pub async fn attempts_of_agreement(
    pool: &AnyPool,
    agreement: &AgreementId,
) -> Result<Vec<AgreementAttempt>> {
    let attempt_columns: Vec<String> =
        ATTEMPT_COLUMNS.split(", ").map(|column| format!("a.{}", column.trim())).collect();
    let rows = sqlx::query(&format!(
        "SELECT {}, j.kind, j.status AS job_status, a.gas_used, a.effective_gas_price, \
         a.created_at, a.broadcast_at \
         FROM relayer_attempts a JOIN relayer_jobs j ON j.id = a.job_id \
         WHERE j.agreement_id = $1 ORDER BY a.created_at, a.nonce, a.tx_hash",
        attempt_columns.join(", ")
    ))
    .bind(agreement.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AgreementAttempt {
                job_kind: parse_column("kind", row.get("kind"))?,
                job_status: parse_column("job_status", row.get("job_status"))?,
                attempt: attempt_from_row(row)?,
                gas_used: row
                    .get::<Option<i64>, _>("gas_used")
                    .map(|n| unsigned("gas_used", n))
                    .transpose()?,
                effective_gas_price: row
                    .get::<Option<&str>, _>("effective_gas_price")
                    .map(|p| parse_column("effective_gas_price", p))
                    .transpose()?,
                created_at: row.get("created_at"),
                broadcast_at: row.get("broadcast_at"),
            })
        })
        .collect()
}

/// What one relayer key is doing, from the stored attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerActivity {
    /// Attempts saved or broadcast, not yet mined (replaced ones included: any may be mined).
    pub in_flight: u64,
    /// Of those, broadcast before the `stuck_before` time and still not mined.
    pub stuck: u64,
    /// Jobs with an attempt of this key held back now because fees are above the cap.
    pub waiting_for_fees: u64,
}

/// Activity of every key that ever signed an attempt; `stuck_before` is unix seconds.
pub async fn signer_activity(
    pool: &AnyPool,
    stuck_before: i64,
) -> Result<HashMap<Address, SignerActivity>> {
    let rows = sqlx::query(
        "SELECT a.signer, a.status, a.broadcast_at, j.error FROM relayer_attempts a \
         JOIN relayer_jobs j ON j.id = a.job_id \
         WHERE a.status IN ('signed', 'broadcast', 'replaced') \
         AND j.status NOT IN ('mined', 'confirmed', 'failed')",
    )
    .fetch_all(pool)
    .await?;
    let mut activity: HashMap<Address, SignerActivity> = HashMap::new();
    for row in &rows {
        let signer: Address = parse_column("signer", row.get("signer"))?;
        let entry = activity.entry(signer).or_default();
        entry.in_flight += 1;
        let status: AttemptStatus = parse_column("status", row.get("status"))?;
        let broadcast_at: Option<i64> = row.get("broadcast_at");
        if status == AttemptStatus::Broadcast && broadcast_at.is_some_and(|at| at < stuck_before) {
            entry.stuck += 1;
        }
        let error: Option<&str> = row.get("error");
        if error.is_some_and(|e| e.starts_with(WAITING_FOR_FEES)) {
            entry.waiting_for_fees += 1;
        }
    }
    Ok(activity)
}

/// Jobs held back now because fees are above the cap, whether or not one was ever signed.
pub async fn jobs_waiting_for_fees(pool: &AnyPool) -> Result<u64> {
    let like = format!("{WAITING_FOR_FEES}%");
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM relayer_jobs WHERE error LIKE $1 \
         AND status NOT IN ('mined', 'confirmed', 'failed')",
    )
    .bind(like)
    .fetch_one(pool)
    .await?;
    unsigned("n", row.get("n"))
}

/// The SQL condition "the agreement column `column` has a party in account `$1`", or
/// always-true for the deployment (`$1` empty).
fn of_account(column: &str) -> String {
    format!(
        "($1 = '' OR {column} IN (SELECT id FROM usage_agreements WHERE \
         buyer_agent_id IN (SELECT id FROM agents WHERE account_id = $1) \
         OR seller_agent_id IN (SELECT id FROM agents WHERE account_id = $1)))"
    )
}

/// When each outbox event of `event_type` since `since` (unix seconds) was written, for the
/// agreements of `account` (`None`: the whole deployment).
pub async fn event_times(
    pool: &AnyPool,
    account: Option<&str>,
    event_type: EventType,
    since: i64,
) -> Result<Vec<i64>> {
    let sql = format!(
        "SELECT created_at FROM outbox_events WHERE event_type = $2 AND created_at >= $3 AND {}",
        of_account("agreement_id")
    );
    let rows = sqlx::query(&sql)
        .bind(account.unwrap_or(""))
        .bind(event_type.as_str())
        .bind(since)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(|row| row.get("created_at")).collect())
}

/// Gas spent by relayer attempts mined since `since` (unix seconds): when each was mined and
/// what it cost in wei (gas used × effective price), for the agreements of `account` (`None`:
/// the whole deployment, jobs carrying no agreement included).
pub async fn gas_spent(
    pool: &AnyPool,
    account: Option<&str>,
    since: i64,
) -> Result<Vec<(i64, u128)>> {
    let sql = format!(
        "SELECT a.mined_at, a.gas_used, a.effective_gas_price FROM relayer_attempts a \
         JOIN relayer_jobs j ON j.id = a.job_id \
         WHERE a.mined_at >= $2 AND a.gas_used IS NOT NULL \
         AND a.status IN ('mined', 'confirmed') AND {}",
        of_account("j.agreement_id")
    );
    let rows = sqlx::query(&sql).bind(account.unwrap_or("")).bind(since).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let gas = u128::from(unsigned("gas_used", row.get("gas_used"))?);
            let price: u128 = parse_column("effective_gas_price", row.get("effective_gas_price"))?;
            Ok((row.get("mined_at"), gas.saturating_mul(price)))
        })
        .collect()
}

/// Approvals of `account` waiting for a decision now (`pending`, not yet expired at `now`).
pub async fn approvals_waiting(pool: &AnyPool, account: &str, now: i64) -> Result<u64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM approvals WHERE account_id = $1 AND status = 'pending' \
         AND expires_at > $2",
    )
    .bind(account)
    .bind(now)
    .fetch_one(pool)
    .await?;
    unsigned("n", row.get("n"))
}
