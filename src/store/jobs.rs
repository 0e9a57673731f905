//! The relayer's durable queue of jobs (what to send), leased to one worker at a time; each
//! signed transaction that carried a job is an attempt ([`super::attempts`]).

use alloy::primitives::{Address, Bytes};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, in_list, parse_column, skip_locked};
use crate::agreement::ids::{AgreementId, JobId};
use crate::vocab::string_enum;

string_enum!(
    /// What a relayer job does.
    JobKind {
        /// Activates an escrow.
        Activate = "activate",
        /// A sponsored `initiateCloseWithAuthorization`.
        InitiateClose = "initiate_close",
        /// A sponsored `sellerClaimWithAuthorization`; batchable.
        SellerClaim = "seller_claim",
        /// A sponsored `buyerWithdrawWithAuthorization`.
        BuyerWithdraw = "buyer_withdraw",
        /// Several sponsored seller claims in one `sellerClaimBatch`.
        SellerClaimBatch = "seller_claim_batch",
        /// Several sponsored closes and withdraws in one non-atomic `batch`: a call the
        /// contract refuses is skipped (`BatchCallFailed`), the others go through.
        SettlementBatch = "settlement_batch",
        /// A no-op self-send that uses up a relayer nonce no other transaction can fill (a gap
        /// that would hold every later transaction of the account back).
        NonceFill = "nonce_fill",
        /// A governed payment: the token's `transferWithAuthorization` with the wallet's
        /// signature.
        Payment = "payment",
        /// Several governed payments in one `TransferBatch.transferAll`.
        PaymentBatch = "payment_batch",
    }
);

string_enum!(
    /// Where a relayer job stands.
    JobStatus {
        /// Waiting for a worker (maybe leased to one).
        Queued = "queued",
        /// An attempt is saved, not yet taken by the node.
        Signed = "signed",
        /// The node took an attempt.
        Broadcast = "broadcast",
        /// An attempt is in a block, not yet as deep as the confirmation depth.
        Mined = "mined",
        /// Mined and deep enough.
        Confirmed = "confirmed",
        /// Refused (simulation, node or on-chain revert); see `error`.
        Failed = "failed",
        /// Its call went out inside a batch job.
        Batched = "batched",
    }
);

/// A job activating an escrow.
pub const KIND_ACTIVATE: JobKind = JobKind::Activate;
/// A sponsored `initiateCloseWithAuthorization`.
pub const KIND_INITIATE_CLOSE: JobKind = JobKind::InitiateClose;
/// A sponsored `sellerClaimWithAuthorization`; batchable.
pub const KIND_SELLER_CLAIM: JobKind = JobKind::SellerClaim;
/// A sponsored `buyerWithdrawWithAuthorization`.
pub const KIND_BUYER_WITHDRAW: JobKind = JobKind::BuyerWithdraw;
/// Several sponsored seller claims in one `sellerClaimBatch`.
pub const KIND_SELLER_CLAIM_BATCH: JobKind = JobKind::SellerClaimBatch;
/// A no-op self-send filling a nonce gap.
pub const KIND_NONCE_FILL: JobKind = JobKind::NonceFill;

/// A transaction Pactum's relayer must get mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What it does ([`KIND_ACTIVATE`], [`KIND_SELLER_CLAIM`], …).
    pub kind: JobKind,
    /// The agreement it serves.
    pub agreement_id: Option<AgreementId>,
    /// The contract called.
    pub to: Address,
    /// The call.
    pub calldata: Bytes,
    /// Where it stands.
    pub status: JobStatus,
    /// Why it failed.
    pub error: Option<String>,
}

/// Queues a job.
pub async fn enqueue(conn: &mut Conn, job: &Job, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO relayer_jobs (id, kind, agreement_id, to_address, calldata, status, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6)",
    )
    .bind(job.id.as_str())
    .bind(job.kind.as_str())
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

/// Leases to `owner` the jobs among `ids` that are queued and not leased to anyone now (the
/// jobs this process's API handed to its relayer), in id order, each with when it was queued
/// (unix seconds); those another owner holds or that are no longer queued are left out. On
/// Postgres a row another transaction is leasing is waited for, then left out when that
/// transaction took it.
pub async fn lease_ids(
    conn: &mut Conn,
    ids: &[JobId],
    owner: &str,
    lease_until: i64,
    now: i64,
) -> Result<Vec<(Job, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = in_list(4, ids.len());
    let sql = format!(
        "UPDATE relayer_jobs SET lease_owner = $1, lease_until = $2, updated_at = $3 \
         WHERE id IN ({list}) AND status = 'queued' AND (lease_until IS NULL OR lease_until < $3) \
         RETURNING {JOB_COLUMNS}, created_at"
    );
    let mut query = sqlx::query(&sql).bind(owner).bind(lease_until).bind(now);
    for id in ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(conn).await?;
    let mut jobs = rows
        .iter()
        .map(|row| Ok((job_from_row(row)?, row.try_get::<i64, _>("created_at")?)))
        .collect::<Result<Vec<_>>>()?;
    jobs.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(jobs)
}

/// Leases up to `limit` more queued jobs of `kind` to `owner`, oldest first (the batch that
/// goes with one already claimed).
pub async fn claim_more(
    conn: &mut Conn,
    kind: JobKind,
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
        .bind(kind.as_str())
        .bind(limit as i64)
        .fetch_all(conn)
        .await?;
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(jobs)
}

pub(super) const JOB_COLUMNS: &str = "id, kind, agreement_id, to_address, calldata, status, error";

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
    status: JobStatus,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE relayer_jobs SET status = $2, error = $3, updated_at = $4 WHERE id = $1")
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(error)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets the status of every job in `ids` at once (a batch's members, `batched`).
pub async fn set_status_of_all(
    conn: &mut Conn,
    ids: &[JobId],
    status: JobStatus,
    now: i64,
) -> Result<()> {
    super::set_where_job_in(conn, ("relayer_jobs", "status", "id"), status.as_str(), ids, now).await
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
pub(super) async fn clear_waiting(conn: &mut Conn, job: &JobId, now: i64) -> Result<()> {
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

pub(super) fn job_from_row(row: &AnyRow) -> Result<Job> {
    Ok(Job {
        id: JobId(row.get("id")),
        kind: parse_column("kind", row.get("kind"))?,
        agreement_id: row.get::<Option<String>, _>("agreement_id").map(AgreementId),
        to: parse_column("to_address", row.get("to_address"))?,
        calldata: parse_column("calldata", row.get("calldata"))?,
        status: parse_column("status", row.get("status"))?,
        error: row.get("error"),
    })
}
