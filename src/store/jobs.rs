//! The relayer's durable queue: jobs (what to send) and attempts (each signed transaction that
//! carried a job, saved before it is broadcast).

use std::collections::HashMap;

use alloy::primitives::{Address, B256, Bytes};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, StoreError, parse_column, skip_locked, unsigned};
use crate::agreement::ids::{AgreementId, JobId};

/// A job activating an escrow.
pub const KIND_ACTIVATE: &str = "activate";
/// A sponsored `initiateCloseWithAuthorization`.
pub const KIND_INITIATE_CLOSE: &str = "initiate_close";
/// A sponsored `sellerClaimWithAuthorization`; batchable.
pub const KIND_SELLER_CLAIM: &str = "seller_claim";
/// A sponsored `buyerWithdrawWithAuthorization`.
pub const KIND_BUYER_WITHDRAW: &str = "buyer_withdraw";
/// Several sponsored seller claims in one `sellerClaimBatch`.
pub const KIND_SELLER_CLAIM_BATCH: &str = "seller_claim_batch";
/// A no-op self-send that uses up a relayer nonce no other transaction can fill (a gap that
/// would hold every later transaction of the account back).
pub const KIND_NONCE_FILL: &str = "nonce_fill";

/// A transaction Pactum's relayer must get mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What it does ([`KIND_ACTIVATE`], [`KIND_SELLER_CLAIM`], …).
    pub kind: String,
    /// The agreement it serves.
    pub agreement_id: Option<AgreementId>,
    /// The contract called.
    pub to: Address,
    /// The call.
    pub calldata: Bytes,
    /// `queued`, `signed`, `broadcast`, `mined`, `confirmed` or `failed`; `batched` when its
    /// call went out inside a batch job.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
}

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
    /// `signed`, `broadcast`, `mined`, `confirmed`; `replaced` once a replacement with the same
    /// nonce is saved (still watched), `failed` when the node refused it.
    pub status: String,
    /// The block it was mined in.
    pub block_number: Option<u64>,
    /// That block's hash.
    pub block_hash: Option<B256>,
    /// Whether it executed successfully, once mined.
    pub succeeded: Option<bool>,
}

/// Queues a job.
pub async fn enqueue(conn: &mut Conn, job: &Job, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO relayer_jobs (id, kind, agreement_id, to_address, calldata, status, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6)",
    )
    .bind(job.id.as_str())
    .bind(&job.kind)
    .bind(job.agreement_id.as_ref().map(|id| id.as_str().to_owned()))
    .bind(job.to.to_string())
    .bind(job.calldata.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores a job already leased to `owner` until `lease_until` (a batch the worker built and
/// sends at once).
pub async fn enqueue_leased(
    conn: &mut Conn,
    job: &Job,
    owner: &str,
    lease_until: i64,
    now: i64,
) -> Result<()> {
    enqueue(conn, job, now).await?;
    sqlx::query("UPDATE relayer_jobs SET lease_owner = $2, lease_until = $3 WHERE id = $1")
        .bind(job.id.as_str())
        .bind(owner)
        .bind(lease_until)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Leases up to `limit` more queued jobs of `kind` to `owner`, oldest first (the batch that
/// goes with one already claimed).
pub async fn claim_more(
    conn: &mut Conn,
    kind: &str,
    owner: &str,
    lease_until: i64,
    now: i64,
    limit: usize,
) -> Result<Vec<Job>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // The choice is a materialised CTE so it runs once: Postgres may run a locking `IN`
    // subquery again per row and so lease more than `limit` jobs.
    let skip = skip_locked(conn);
    let sql = format!(
        "WITH picked AS MATERIALIZED (SELECT id FROM relayer_jobs WHERE status = 'queued' \
                      AND kind = $4 AND (lease_until IS NULL OR lease_until < $3) \
                      ORDER BY created_at, id LIMIT $5{skip}) \
         UPDATE relayer_jobs SET lease_owner = $1, lease_until = $2, updated_at = $3 \
         WHERE id IN (SELECT id FROM picked) \
         AND status = 'queued' AND (lease_until IS NULL OR lease_until < $3) \
         RETURNING {JOB_COLUMNS}"
    );
    let rows = sqlx::query(&sql)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(kind)
        .bind(limit as i64)
        .fetch_all(conn)
        .await?;
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(jobs)
}

const JOB_COLUMNS: &str = "id, kind, agreement_id, to_address, calldata, status, error";

/// The owners of unexpired leases on queued jobs (claimed, not yet signed).
pub async fn lease_owners(conn: &mut Conn, now: i64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT DISTINCT lease_owner FROM relayer_jobs WHERE status = 'queued' \
         AND lease_owner IS NOT NULL AND lease_until >= $1",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|row| row.get("lease_owner")).collect())
}

/// Frees the leases `owner` holds on queued jobs (it is known to be gone); returns how many.
pub async fn release_leases_of(conn: &mut Conn, owner: &str) -> Result<u64> {
    let freed = sqlx::query(
        "UPDATE relayer_jobs SET lease_owner = NULL, lease_until = NULL \
         WHERE status = 'queued' AND lease_owner = $1",
    )
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(freed.rows_affected())
}

/// Leases the oldest queued job to `owner` until `lease_until`, or `None` if no queued job is
/// free. The lease is a conditional update, so of two instances racing for one job exactly one
/// gets it; on Postgres the choice skips a job another instance's open claim holds and takes the
/// next, so a claim never answers `None` just because it lost the oldest job. A lease that runs
/// out (its holder died before signing) frees the job again.
pub async fn claim_next(
    conn: &mut Conn,
    owner: &str,
    lease_until: i64,
    now: i64,
) -> Result<Option<Job>> {
    let skip = skip_locked(conn);
    let sql = format!(
        "UPDATE relayer_jobs SET lease_owner = $1, lease_until = $2, updated_at = $3 \
         WHERE id = (SELECT id FROM relayer_jobs WHERE status = 'queued' \
                     AND (lease_until IS NULL OR lease_until < $3) \
                     ORDER BY created_at, id LIMIT 1{skip}) \
         AND status = 'queued' AND (lease_until IS NULL OR lease_until < $3) \
         RETURNING {JOB_COLUMNS}"
    );
    let row =
        sqlx::query(&sql).bind(owner).bind(lease_until).bind(now).fetch_optional(conn).await?;
    row.map(|row| job_from_row(&row)).transpose()
}

/// The job with this id, read in the caller's transaction; `None` if there is none.
pub async fn get_in(conn: &mut Conn, id: &str) -> Result<Option<Job>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM relayer_jobs WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.map(|row| job_from_row(&row)).transpose()
}

/// The job with this id; `None` if there is none.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Job>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM relayer_jobs WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.map(|row| job_from_row(&row)).transpose()
}

/// When the job with this id was queued (unix seconds); `None` if there is no such job.
pub async fn queued_at(conn: &mut Conn, id: &JobId) -> Result<Option<i64>> {
    let sql = "SELECT created_at FROM relayer_jobs WHERE id = $1";
    Ok(sqlx::query_scalar(sql).bind(id.as_str()).fetch_optional(&mut *conn).await?)
}

/// Sets a job's status (and error), e.g. `failed` after a simulation revert.
pub async fn set_job_status(
    conn: &mut Conn,
    id: &JobId,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE relayer_jobs SET status = $2, error = $3, updated_at = $4 WHERE id = $1")
        .bind(id.as_str())
        .bind(status)
        .bind(error)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Fails, with `reason`, every job `agent` submitted that is still `queued` and not leased to a
/// relayer worker: activations of agreements it is the buyer of, and sponsored settlement
/// actions it signed as buyer or seller (still `pending`). Returns the jobs failed. A leased job
/// is being simulated or signed right now and a signed one may already be on the network, so
/// neither can be called back; the lease test is the same conditional update `claim_next` uses,
/// so a job is either taken by the worker or refused here, never both.
pub async fn refuse_queued_of_agent(
    conn: &mut Conn,
    agent: &crate::agreement::ids::AgentId,
    reason: &str,
    now: i64,
) -> Result<Vec<Job>> {
    let sql = format!(
        "UPDATE relayer_jobs SET status = 'failed', error = $2, updated_at = $3 \
         WHERE status = 'queued' AND (lease_until IS NULL OR lease_until < $3) AND id IN ( \
           SELECT j.id FROM relayer_jobs j JOIN usage_agreements a ON a.id = j.agreement_id \
           WHERE j.kind = '{KIND_ACTIVATE}' AND j.status = 'queued' AND a.buyer_agent_id = $1 \
           UNION \
           SELECT s.job_id FROM settlement_actions s \
           JOIN usage_agreements a ON a.id = s.agreement_id \
           WHERE s.status = 'pending' AND ((s.party = 'buyer' AND a.buyer_agent_id = $1) \
                 OR (s.party = 'seller' AND a.seller_agent_id = $1))) \
         RETURNING {JOB_COLUMNS}"
    );
    let rows =
        sqlx::query(&sql).bind(agent.as_str()).bind(reason).bind(now).fetch_all(&mut *conn).await?;
    let mut refused = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    refused.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(refused)
}

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
    set_job_status(conn, &attempt.job_id, "signed", None, now).await?;
    clear_waiting(conn, &attempt.job_id, now).await
}

/// The prefix of every "fees above the cap" reason ([`job_waiting`]).
pub const WAITING_FOR_FEES: &str = "waiting for fees";

/// Records why `job` is not being sent (or replaced) right now, without failing anything: the
/// job's `error`, the activation's `activation_error` while it is still activating, and the
/// `error` of each of its settlement actions still `pending` or `submitted`.
pub async fn job_waiting(conn: &mut Conn, job: &JobId, reason: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE relayer_jobs SET error = $2, updated_at = $3 WHERE id = $1")
        .bind(job.as_str())
        .bind(reason)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE usage_agreements SET activation_error = $2, updated_at = $3 \
         WHERE id = (SELECT agreement_id FROM relayer_jobs WHERE id = $1 AND kind = 'activate') \
         AND status = 'activating'",
    )
    .bind(job.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE settlement_actions SET error = $2, updated_at = $3 \
         WHERE job_id = $1 AND status IN ('pending', 'submitted')",
    )
    .bind(job.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Puts a job that waits for fees back in the queue, leased to nobody until `lease_until`, with
/// `reason` recorded as in [`job_waiting`].
pub async fn requeue_waiting(
    conn: &mut Conn,
    job: &JobId,
    reason: &str,
    lease_until: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE relayer_jobs SET status = 'queued', lease_owner = NULL, lease_until = $2 \
         WHERE id = $1",
    )
    .bind(job.as_str())
    .bind(lease_until)
    .execute(&mut *conn)
    .await?;
    job_waiting(conn, job, reason, now).await
}

/// Clears a "waiting for fees" reason from what `job` carries (its fees fit again).
async fn clear_waiting(conn: &mut Conn, job: &JobId, now: i64) -> Result<()> {
    let like = format!("{WAITING_FOR_FEES}%");
    sqlx::query(
        "UPDATE usage_agreements SET activation_error = NULL, updated_at = $3 \
         WHERE id = (SELECT agreement_id FROM relayer_jobs WHERE id = $1 AND kind = 'activate') \
         AND status = 'activating' AND activation_error LIKE $2",
    )
    .bind(job.as_str())
    .bind(&like)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE settlement_actions SET error = NULL, updated_at = $3 \
         WHERE job_id = $1 AND status IN ('pending', 'submitted') AND error LIKE $2",
    )
    .bind(job.as_str())
    .bind(&like)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
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

const ATTEMPT_COLUMNS: &str = "tx_hash, job_id, signer, nonce, raw_tx, gas_limit, \
    max_fee_per_gas, max_priority_fee_per_gas, status, block_number, block_hash, succeeded";

/// Attempts in any of `statuses`, by signer and nonce.
pub async fn attempts_in(pool: &AnyPool, statuses: &[&str]) -> Result<Vec<Attempt>> {
    // The statuses are this module's own constants, never client input.
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
    let status = if error.is_some() { "failed" } else { "confirmed" };
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

fn job_from_row(row: &AnyRow) -> Result<Job> {
    Ok(Job {
        id: JobId(row.get("id")),
        kind: row.get("kind"),
        agreement_id: row.get::<Option<String>, _>("agreement_id").map(AgreementId),
        to: parse_column("to_address", row.get("to_address"))?,
        calldata: parse_column("calldata", row.get("calldata"))?,
        status: row.get("status"),
        error: row.get("error"),
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<Attempt> {
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
        status: row.get("status"),
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
