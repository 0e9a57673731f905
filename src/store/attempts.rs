//! Attempts: each signed transaction that carried a relayer job, saved before it is broadcast,
//! and what became of it (broadcast, mined, confirmed, replaced, failed). Every hash a job ever
//! had is kept and watched.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, Bytes};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::jobs::{JOB_COLUMNS, Job, JobStatus, clear_waiting, job_from_row, set_job_status};
use super::{Conn, Result, StoreError, parse_column, unsigned};
use crate::agreement::ids::JobId;
use crate::vocab::string_enum;

string_enum!(
    /// Where one signed transaction of a job stands.
    AttemptStatus {
        /// Saved, not yet taken by the node.
        Signed = "signed",
        /// The node took it.
        Broadcast = "broadcast",
        /// In a block, not yet deep enough.
        Mined = "mined",
        /// Mined and as deep as the confirmation depth.
        Confirmed = "confirmed",
        /// A replacement with the same nonce was saved (still watched: it may be the one mined).
        Replaced = "replaced",
        /// The node refused it, or its nonce went to another transaction.
        Failed = "failed",
    }
);

/// One signed transaction carrying a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The transaction hash.
    pub tx_hash: B256,
    /// The job carried.
    pub job_id: JobId,
    /// The relayer account that signed it.
    pub signer: Address,
    /// Its nonce.
    pub nonce: u64,
    /// The signed transaction, EIP-2718 encoded.
    pub raw_tx: Bytes,
    /// Its gas limit.
    pub gas_limit: u64,
    /// EIP-1559 fee cap, wei.
    pub max_fee_per_gas: u128,
    /// EIP-1559 tip cap, wei.
    pub max_priority_fee_per_gas: u128,
    /// Where it stands.
    pub status: AttemptStatus,
    /// The block it was mined in.
    pub block_number: Option<u64>,
    /// That block's hash.
    pub block_hash: Option<B256>,
    /// Whether it executed successfully, once mined.
    pub succeeded: Option<bool>,
}

/// The columns [`attempt_from_row`] reads, in the order `SELECT` lists them.
pub(super) const ATTEMPT_COLUMNS: &str = "tx_hash, job_id, signer, nonce, raw_tx, gas_limit, \
    max_fee_per_gas, max_priority_fee_per_gas, status, block_number, block_hash, succeeded";

/// The nonce the store says `signer` uses next; `None` if the signer never sent.
pub async fn stored_next_nonce(pool: &AnyPool, signer: Address) -> Result<Option<u64>> {
    let row = sqlx::query("SELECT next_nonce FROM relayer_signers WHERE address = $1")
        .bind(signer.to_string())
        .fetch_optional(pool)
        .await?;
    row.map(|row| unsigned("next_nonce", row.get("next_nonce"))).transpose()
}

/// Records a signed attempt, with the job moving to `signed`, in the transaction that allocated
/// its nonce ([`super::signers::allocate`]) or locked its signer for a replacement: once this
/// commits, the transaction can be broadcast and, after a crash, re-broadcast from the store.
pub async fn record_attempt(conn: &mut Conn, attempt: &Attempt, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO relayer_attempts (tx_hash, job_id, signer, nonce, raw_tx, gas_limit, \
         max_fee_per_gas, max_priority_fee_per_gas, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'signed', $9)",
    )
    .bind(attempt.tx_hash.to_string())
    .bind(attempt.job_id.as_str())
    .bind(attempt.signer.to_string())
    .bind(attempt.nonce as i64)
    .bind(attempt.raw_tx.to_string())
    .bind(attempt.gas_limit as i64)
    .bind(attempt.max_fee_per_gas.to_string())
    .bind(attempt.max_priority_fee_per_gas.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    set_job_status(conn, &attempt.job_id, JobStatus::Signed, None, now).await?;
    clear_waiting(conn, &attempt.job_id, now).await
}

/// The node refused replacement `new` of `old` (e.g. still underpriced): `new` is `failed` and
/// `old` is the live attempt again, to be replaced on a later pass.
pub async fn replacement_refused(conn: &mut Conn, new: &Attempt, old: &Attempt) -> Result<()> {
    sqlx::query("UPDATE relayer_attempts SET status = 'failed' WHERE tx_hash = $1")
        .bind(new.tx_hash.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE relayer_attempts SET status = 'broadcast' WHERE tx_hash = $1 \
         AND status = 'replaced'",
    )
    .bind(old.tx_hash.to_string())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE relayer_jobs SET status = 'broadcast' WHERE id = $1 AND status = 'signed'")
        .bind(old.job_id.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The nonce after the highest one `signer` used in an attempt that may still be (or was)
/// mined (anything but `failed`); `None` if there is none. Lower than the highest nonce ever
/// allocated when the last attempts were refused or dropped for good, so the nonce owner moves
/// down and leaves no gap.
pub async fn live_next_nonce(conn: &mut Conn, signer: Address) -> Result<Option<u64>> {
    let row = sqlx::query(
        "SELECT MAX(nonce) AS top FROM relayer_attempts WHERE signer = $1 AND status <> 'failed'",
    )
    .bind(signer.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.get::<Option<i64>, _>("top").map(|n| unsigned("nonce", n + 1)).transpose()
}

/// Puts a job whose nonce (`nonce` of `signer`) another transaction used back in the queue: its
/// attempts at that nonce (none of which can be mined any more) `failed`, the job `queued` for
/// a fresh nonce. Conditional on those attempts still being watched, so when two instances see
/// the same used nonce only one requeues, and a stale call never touches the attempt the job
/// got after it was requeued. Returns whether it requeued the job.
pub async fn requeue_nonce_used(
    conn: &mut Conn,
    job: &JobId,
    signer: Address,
    nonce: u64,
    now: i64,
) -> Result<bool> {
    let failed = sqlx::query(
        "UPDATE relayer_attempts SET status = 'failed' WHERE job_id = $1 AND signer = $2 \
         AND nonce = $3 AND status IN ('signed', 'broadcast', 'replaced')",
    )
    .bind(job.as_str())
    .bind(signer.to_string())
    .bind(nonce as i64)
    .execute(&mut *conn)
    .await?;
    if failed.rows_affected() == 0 {
        return Ok(false);
    }
    let note = format!("nonce {nonce} was used by another transaction; queued for a new nonce");
    let requeued = sqlx::query(
        "UPDATE relayer_jobs SET status = 'queued', error = $2, lease_owner = NULL, \
         lease_until = NULL, updated_at = $3 WHERE id = $1 AND status IN ('signed', 'broadcast')",
    )
    .bind(job.as_str())
    .bind(note)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(requeued.rows_affected() == 1)
}

/// The block each live attempt was first seen unmined at, for those the monitor has seen.
pub async fn first_seen_blocks(pool: &AnyPool) -> Result<HashMap<B256, u64>> {
    let rows = sqlx::query(
        "SELECT tx_hash, first_seen_block FROM relayer_attempts \
         WHERE status IN ('signed', 'broadcast') AND first_seen_block IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                parse_column("tx_hash", row.get("tx_hash"))?,
                unsigned("first_seen_block", row.get("first_seen_block"))?,
            ))
        })
        .collect()
}

/// Records the block at which each of `seen` was first seen unmined (kept if already set), so
/// the replacement countdown goes on after a restart.
pub async fn mark_first_seen(conn: &mut Conn, seen: &[(B256, u64)]) -> Result<()> {
    for (tx_hash, block) in seen {
        sqlx::query(
            "UPDATE relayer_attempts SET first_seen_block = $2 \
             WHERE tx_hash = $1 AND first_seen_block IS NULL",
        )
        .bind(tx_hash.to_string())
        .bind(i64::try_from(*block).map_err(|_| StoreError::Conflict)?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Every attempt the watcher must look for: the live ones and those they replaced, of jobs not
/// yet final.
pub async fn attempts_watched(pool: &AnyPool) -> Result<Vec<Attempt>> {
    let columns = ATTEMPT_COLUMNS
        .split(", ")
        .map(|c| format!("a.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns} FROM relayer_attempts a JOIN relayer_jobs j ON j.id = a.job_id \
         WHERE a.status IN ('signed', 'broadcast', 'replaced') \
         AND j.status IN ('signed', 'broadcast', 'mined') ORDER BY a.signer, a.nonce"
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter().map(attempt_from_row).collect()
}

/// The live attempt (`signed` or `broadcast`) of every job in flight, by signer and nonce.
pub async fn live_attempts(pool: &AnyPool) -> Result<Vec<Attempt>> {
    let columns = ATTEMPT_COLUMNS
        .split(", ")
        .map(|c| format!("a.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns} FROM relayer_attempts a JOIN relayer_jobs j ON j.id = a.job_id \
         WHERE a.status IN ('signed', 'broadcast') AND j.status IN ('signed', 'broadcast') \
         ORDER BY a.signer, a.nonce"
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter().map(attempt_from_row).collect()
}

/// Whether the attempt `tx_hash` is still live (see [`live_attempts`]): read again just
/// before a dropped transaction is sent again, since another process may have given it up
/// after the monitor's pass began.
pub async fn attempt_is_live(pool: &AnyPool, tx_hash: B256) -> Result<bool> {
    let live: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM relayer_attempts a JOIN relayer_jobs j ON j.id = a.job_id \
         WHERE a.tx_hash = $1 AND a.status IN ('signed', 'broadcast') \
         AND j.status IN ('signed', 'broadcast')",
    )
    .bind(tx_hash.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(live.is_some())
}

/// Every attempt of `job`, oldest first.
pub async fn attempts_of_job(pool: &AnyPool, job: &JobId) -> Result<Vec<Attempt>> {
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM relayer_attempts WHERE job_id = $1 \
         ORDER BY created_at"
    );
    let rows = sqlx::query(&sql).bind(job.as_str()).fetch_all(pool).await?;
    let mut attempts = rows.iter().map(attempt_from_row).collect::<Result<Vec<_>>>()?;
    // A replacement always pays more, so within a second the fee cap orders them too.
    attempts.sort_by_key(|a| a.max_fee_per_gas);
    Ok(attempts)
}

/// Marks an attempt (and its job) broadcast: the node accepted it, or already had it.
pub async fn attempt_broadcast(conn: &mut Conn, attempt: &Attempt, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE relayer_attempts SET status = 'broadcast', broadcast_at = $2 \
         WHERE tx_hash = $1 AND status = 'signed'",
    )
    .bind(attempt.tx_hash.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE relayer_jobs SET status = 'broadcast', updated_at = $2 \
         WHERE id = $1 AND status = 'signed'",
    )
    .bind(attempt.job_id.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Attempts in any of `statuses`, by signer and nonce.
pub async fn attempts_in(pool: &AnyPool, statuses: &[AttemptStatus]) -> Result<Vec<Attempt>> {
    // The statuses are this module's own enum, never client input.
    let list = statuses.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM relayer_attempts WHERE status IN ({list}) \
         ORDER BY signer, nonce"
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter().map(attempt_from_row).collect()
}

/// Records that an attempt was mined in `block` (number and hash), successfully or not.
pub async fn attempt_mined(
    conn: &mut Conn,
    tx_hash: B256,
    block_number: u64,
    block_hash: B256,
    succeeded: bool,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE relayer_attempts SET status = 'mined', block_number = $2, block_hash = $3, \
         succeeded = $4 WHERE tx_hash = $1",
    )
    .bind(tx_hash.to_string())
    .bind(block_number as i64)
    .bind(block_hash.to_string())
    .bind(i64::from(succeeded))
    .execute(&mut *conn)
    .await?;
    // The job's other attempts share the nonce, so they can no longer be mined.
    sqlx::query(
        "UPDATE relayer_attempts SET status = 'replaced' WHERE tx_hash <> $1 \
         AND status IN ('signed', 'broadcast') \
         AND job_id = (SELECT job_id FROM relayer_attempts WHERE tx_hash = $1)",
    )
    .bind(tx_hash.to_string())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE relayer_jobs SET status = 'mined', updated_at = $2 \
         WHERE id = (SELECT job_id FROM relayer_attempts WHERE tx_hash = $1)",
    )
    .bind(tx_hash.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records what a mined attempt cost, from its receipt: `gas_used` at `effective_gas_price`
/// wei, seen mined at `now`. Kept apart from [`attempt_mined`] because only the watcher, which
/// holds the receipt, knows it; a reorganisation leaves it (the re-mined receipt overwrites it).
pub async fn attempt_gas(
    conn: &mut Conn,
    tx_hash: B256,
    gas_used: u64,
    effective_gas_price: u128,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE relayer_attempts SET gas_used = $2, effective_gas_price = $3, mined_at = $4 \
         WHERE tx_hash = $1",
    )
    .bind(tx_hash.to_string())
    .bind(gas_used as i64)
    .bind(effective_gas_price.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The gas a mined attempt used, as [`attempt_gas`] recorded it from its receipt; `None` when
/// it was not recorded (or there is no such attempt).
pub async fn gas_used(pool: &AnyPool, tx_hash: B256) -> Result<Option<u64>> {
    let row = sqlx::query("SELECT gas_used FROM relayer_attempts WHERE tx_hash = $1")
        .bind(tx_hash.to_string())
        .fetch_optional(pool)
        .await?;
    row.and_then(|row| row.get::<Option<i64>, _>("gas_used"))
        .map(|n| unsigned("gas_used", n))
        .transpose()
}

/// Records that a mined attempt is as deep as the confirmation depth: the attempt `confirmed`,
/// its job `confirmed` (or `failed` with `error` when the transaction reverted). `false` when
/// the attempt was no longer `mined` in that block (another watcher confirmed it first, or a
/// reorganisation moved it): nothing is changed then.
pub async fn attempt_confirmed(
    conn: &mut Conn,
    attempt: &Attempt,
    error: Option<&str>,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE relayer_attempts SET status = 'confirmed' WHERE tx_hash = $1 \
         AND status = 'mined' AND block_hash = $2",
    )
    .bind(attempt.tx_hash.to_string())
    .bind(attempt.block_hash.map(|h| h.to_string()))
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let status = if error.is_some() { JobStatus::Failed } else { JobStatus::Confirmed };
    set_job_status(conn, &attempt.job_id, status, error, now).await?;
    Ok(true)
}

/// Undoes what blocks above `fork` did to the relayer's transactions (they were reorganised
/// away): each attempt mined or confirmed there goes back to `broadcast` (watched again, and
/// re-broadcast by the worker if the node no longer has it), and its job back in flight with
/// its error cleared. Returns those jobs.
pub async fn unmine_above(conn: &mut Conn, fork: u64, now: i64) -> Result<Vec<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM relayer_jobs WHERE id IN (SELECT job_id FROM relayer_attempts \
         WHERE status IN ('mined', 'confirmed') AND block_number > $1) ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql).bind(fork as i64).fetch_all(&mut *conn).await?;
    let jobs = rows.iter().map(job_from_row).collect::<Result<Vec<Job>>>()?;
    sqlx::query(
        "UPDATE relayer_attempts SET status = 'broadcast', block_number = NULL, \
         block_hash = NULL, succeeded = NULL \
         WHERE status IN ('mined', 'confirmed') AND block_number > $1",
    )
    .bind(fork as i64)
    .execute(&mut *conn)
    .await?;
    for job in &jobs {
        sqlx::query(
            "UPDATE relayer_jobs SET status = 'broadcast', error = NULL, updated_at = $2 \
             WHERE id = $1",
        )
        .bind(job.id.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(jobs)
}

/// An attempt from a row that has [`ATTEMPT_COLUMNS`].
pub(super) fn attempt_from_row(row: &AnyRow) -> Result<Attempt> {
    Ok(Attempt {
        tx_hash: parse_column("tx_hash", row.get("tx_hash"))?,
        job_id: JobId(row.get("job_id")),
        signer: parse_column("signer", row.get("signer"))?,
        nonce: unsigned("nonce", row.get("nonce"))?,
        raw_tx: parse_column("raw_tx", row.get("raw_tx"))?,
        gas_limit: unsigned("gas_limit", row.get("gas_limit"))?,
        max_fee_per_gas: parse_column("max_fee_per_gas", row.get("max_fee_per_gas"))?,
        max_priority_fee_per_gas: parse_column(
            "max_priority_fee_per_gas",
            row.get("max_priority_fee_per_gas"),
        )?,
        status: parse_column("status", row.get("status"))?,
        block_number: row
            .get::<Option<i64>, _>("block_number")
            .map(|n| unsigned("block_number", n))
            .transpose()?,
        block_hash: row
            .get::<Option<&str>, _>("block_hash")
            .map(|h| parse_column("block_hash", h))
            .transpose()?,
        succeeded: row.get::<Option<i64>, _>("succeeded").map(|s| s != 0),
    })
}

/// Records that the node refused a saved attempt outright (it will never be mined): the attempt
/// `failed`, and its nonce handed back when it was the signer's last, so no gap is left.
pub async fn attempt_rejected(conn: &mut Conn, attempt: &Attempt) -> Result<()> {
    sqlx::query("UPDATE relayer_attempts SET status = 'failed' WHERE tx_hash = $1")
        .bind(attempt.tx_hash.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE relayer_signers SET next_nonce = $2 WHERE address = $1 AND next_nonce = $3",
    )
    .bind(attempt.signer.to_string())
    .bind(attempt.nonce as i64)
    .bind(attempt.nonce as i64 + 1)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Puts a mined attempt whose block was reorganised away back to `broadcast`, so the watcher
/// looks for it again (it may be re-mined in another block).
pub async fn attempt_unmined(conn: &mut Conn, attempt: &Attempt) -> Result<()> {
    sqlx::query(
        "UPDATE relayer_attempts SET status = 'broadcast', block_number = NULL, \
         block_hash = NULL, succeeded = NULL WHERE tx_hash = $1",
    )
    .bind(attempt.tx_hash.to_string())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE relayer_jobs SET status = 'broadcast' WHERE id = $1")
        .bind(attempt.job_id.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
