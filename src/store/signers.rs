//! Relayer signers' nonces, owned by the database: each relayer account has one row in
//! `relayer_signers` holding the next nonce to hand out, and every write that touches the
//! account's nonces (allocating one, replacing an attempt, moving the next nonce after drops)
//! first locks that row, so several instances sharing the account and the database take turns.
//!
//! The lock is a plain `UPDATE … RETURNING` of the row, the first statement of the transaction:
//! on Postgres it holds the row lock until commit, and a second instance's `UPDATE` waits for
//! it and then reads the committed row; on SQLite every write transaction is serialised
//! already. Statements after the lock see everything committed before it (Postgres runs each
//! statement of a READ COMMITTED transaction on a fresh snapshot), so counts and checks made
//! under the lock are current.

use std::collections::HashMap;

use alloy::primitives::Address;
use sqlx::{AnyPool, Row};

use super::attempts::{self, Attempt};
use super::jobs;
use super::{Conn, Result, StoreError, parse_column, unsigned};
use crate::agreement::ids::JobId;

/// What [`allocate`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// The nonce to sign with; the signer's row now says the next one is this plus one.
    Nonce(u64),
    /// The signer already has its window of unmined transactions: no nonce was taken.
    WindowFull,
    /// The job is no longer queued under this owner's lease (another instance took it over,
    /// or it was already signed): it must not be sent.
    NotLeased,
    /// The signer has no row yet: call [`reconcile`] first.
    Unknown,
}

/// Locks `signer`'s row for the rest of the transaction and returns its next nonce; `None` if
/// the signer has no row.
pub async fn lock(conn: &mut Conn, signer: Address) -> Result<Option<u64>> {
    let row = sqlx::query(
        "UPDATE relayer_signers SET next_nonce = next_nonce WHERE address = $1 \
         RETURNING next_nonce",
    )
    .bind(signer.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| unsigned("next_nonce", row.get("next_nonce"))).transpose()
}

/// Allocates `signer`'s next nonce to `job`, leased to `owner`, unless the signer already has
/// `max_in_flight` unmined transactions (its live attempts, from every instance). Under the
/// signer's row lock; the caller signs with the nonce and records the attempt
/// ([`attempts::record_attempt`]) in the same transaction, so the nonce is taken if and only if the
/// attempt is saved.
pub async fn allocate(
    conn: &mut Conn,
    signer: Address,
    job: &JobId,
    owner: &str,
    max_in_flight: u64,
) -> Result<Allocation> {
    let Some(next) = lock(conn, signer).await? else { return Ok(Allocation::Unknown) };
    if !hold(conn, job, owner).await? {
        return Ok(Allocation::NotLeased);
    }
    if in_flight_of(conn, signer).await? >= max_in_flight {
        return Ok(Allocation::WindowFull);
    }
    let after = i64::try_from(next + 1).map_err(|_| StoreError::Conflict)?;
    sqlx::query("UPDATE relayer_signers SET next_nonce = $2 WHERE address = $1")
        .bind(signer.to_string())
        .bind(after)
        .execute(&mut *conn)
        .await?;
    Ok(Allocation::Nonce(next))
}

/// Moves `signer`'s next nonce to the higher of `pending` (the node's pending transaction
/// count, read before this call) and the nonce after the highest attempt that may still be (or
/// was) mined, creating the row if needed; returns it. The result can be lower than the stored
/// value (attempts refused or dropped for good leave no gap) and, since saved attempts count,
/// never hands out a nonce another instance holds, however stale `pending` is. Under the
/// signer's row lock.
pub async fn reconcile(conn: &mut Conn, signer: Address, pending: u64) -> Result<u64> {
    sqlx::query(
        "INSERT INTO relayer_signers (address, next_nonce) VALUES ($1, 0) \
         ON CONFLICT (address) DO NOTHING",
    )
    .bind(signer.to_string())
    .execute(&mut *conn)
    .await?;
    let current = lock(conn, signer).await?.ok_or(StoreError::Conflict)?;
    let stored = attempts::live_next_nonce(&mut *conn, signer).await?.unwrap_or(0);
    let next = pending.max(stored);
    if next != current {
        tracing::info!(%signer, from = current, to = next, "relayer next nonce reconciled");
        sqlx::query("UPDATE relayer_signers SET next_nonce = $2 WHERE address = $1")
            .bind(signer.to_string())
            .bind(i64::try_from(next).map_err(|_| StoreError::Conflict)?)
            .execute(&mut *conn)
            .await?;
    }
    Ok(next)
}

/// Saves `new`, a replacement of `old` (same signer and nonce, higher fees), and marks `old`
/// `replaced` (still watched, since either may be mined), under the signer's row lock. Returns
/// `false`, saving nothing, when `old` is no longer the live attempt of a job in flight (it was
/// mined, or another instance replaced it first): the test is a conditional update on `old`'s
/// row, so of two instances replacing it at once exactly one wins.
pub async fn replace(conn: &mut Conn, new: &Attempt, old: &Attempt, now: i64) -> Result<bool> {
    lock(conn, old.signer).await?;
    let replaced = sqlx::query(
        "UPDATE relayer_attempts SET status = 'replaced' WHERE tx_hash = $1 \
         AND status IN ('signed', 'broadcast') \
         AND job_id IN (SELECT id FROM relayer_jobs WHERE status IN ('signed', 'broadcast'))",
    )
    .bind(old.tx_hash.to_string())
    .execute(&mut *conn)
    .await?;
    if replaced.rows_affected() != 1 {
        return Ok(false);
    }
    attempts::record_attempt(conn, new, now).await?;
    Ok(true)
}

/// Saves `fill`, a no-op transaction of `job` (a self-send of nothing, [`jobs::KIND_NONCE_FILL`])
/// at a nonce no attempt holds, with its job, under the signer's row lock. Returns `false`,
/// saving nothing, when an attempt that may still be (or was) mined holds that nonce by now
/// (another instance filled it, or a job was given it meanwhile).
pub async fn fill_gap(conn: &mut Conn, job: &jobs::Job, fill: &Attempt, now: i64) -> Result<bool> {
    lock(conn, fill.signer).await?;
    let taken: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM relayer_attempts WHERE signer = $1 AND nonce = $2 \
         AND status IN ('signed', 'broadcast', 'replaced', 'mined', 'confirmed')",
    )
    .bind(fill.signer.to_string())
    .bind(i64::try_from(fill.nonce).map_err(|_| StoreError::Conflict)?)
    .fetch_one(&mut *conn)
    .await?;
    if taken > 0 {
        return Ok(false);
    }
    jobs::enqueue(conn, job, now).await?;
    attempts::record_attempt(conn, fill, now).await?;
    Ok(true)
}

/// Unmined transactions of `signer`: the live attempts (`signed` or `broadcast`) of its jobs
/// in flight, from every instance.
async fn in_flight_of(conn: &mut Conn, signer: Address) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM relayer_attempts a JOIN relayer_jobs j ON j.id = a.job_id \
         WHERE a.signer = $1 AND a.status IN ('signed', 'broadcast') \
         AND j.status IN ('signed', 'broadcast')",
    )
    .bind(signer.to_string())
    .fetch_one(&mut *conn)
    .await?;
    unsigned("in_flight", count)
}

/// Unmined transactions per signer (as [`allocate`] counts them), for every signer that has
/// any; a signer missing from the map has none.
pub async fn in_flight(pool: &AnyPool) -> Result<HashMap<Address, u64>> {
    let rows = sqlx::query(
        "SELECT a.signer AS signer, COUNT(*) AS n FROM relayer_attempts a \
         JOIN relayer_jobs j ON j.id = a.job_id \
         WHERE a.status IN ('signed', 'broadcast') AND j.status IN ('signed', 'broadcast') \
         GROUP BY a.signer",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let signer = parse_column("signer", row.get::<&str, _>("signer"))?;
            Ok((signer, unsigned("in_flight", row.get("n"))?))
        })
        .collect()
}

/// Whether `job` is still queued under `owner`'s lease (a lease that ran out may have been taken
/// by another instance meanwhile), locking the job's row for the rest of the transaction when
/// it is: a conditional update, so a claim racing with it waits and then finds whatever this
/// transaction made of the job. Every write that acts on a leased, unsent job checks this
/// first.
pub async fn hold(conn: &mut Conn, job: &JobId, owner: &str) -> Result<bool> {
    let held = sqlx::query(
        "UPDATE relayer_jobs SET updated_at = updated_at \
         WHERE id = $1 AND status = 'queued' AND lease_owner = $2",
    )
    .bind(job.as_str())
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(held.rows_affected() == 1)
}

/// Whether every job in `jobs` (distinct ids) is still queued under `owner`'s lease, locking
/// their rows for the rest of the transaction as [`hold`] does, in one statement.
pub async fn hold_all(conn: &mut Conn, jobs: &[JobId], owner: &str) -> Result<bool> {
    if jobs.is_empty() {
        return Ok(true);
    }
    let sql = format!(
        "UPDATE relayer_jobs SET updated_at = updated_at \
         WHERE id IN ({}) AND status = 'queued' AND lease_owner = $1",
        super::in_list(2, jobs.len())
    );
    let mut query = sqlx::query(&sql).bind(owner);
    for job in jobs {
        query = query.bind(job.as_str());
    }
    let held = query.execute(&mut *conn).await?;
    Ok(held.rows_affected() == jobs.len() as u64)
}

/// Hands a job leased to `owner` back to the queue at once (every signer's window was full):
/// nothing was signed, so it is simply free for the next claim.
pub async fn release(conn: &mut Conn, job: &JobId, owner: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE relayer_jobs SET lease_owner = NULL, lease_until = NULL, updated_at = $3 \
         WHERE id = $1 AND status = 'queued' AND lease_owner = $2",
    )
    .bind(job.as_str())
    .bind(owner)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
