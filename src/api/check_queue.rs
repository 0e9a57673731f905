//! The check queue: `POST /v1/checks` hands its decision to one task that decides whatever
//! checks have arrived in one transaction (up to [`BATCH`]), then answers each. Checks arrive
//! faster than a transaction commits, so the store's one writer (SQLite) or an agent's row lock
//! (Postgres) is taken once per batch instead of once per check: the per-check cost is its
//! share of a few statements, not a transaction of its own. A check is answered only after its
//! batch commits, so an answered decision is always in the audit log.
//!
//! Each batch keeps the semantics of one decision at a time: the checks of a batch are decided
//! in arrival order, each counting the ones before it ([`super::spend_gate::decide_batch`]).

use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{mpsc, oneshot};

use super::error::{ApiError, ApiResult, ErrorCode};
use super::idempotency::Idempotency;
use super::spend_gate::{self, CheckResponse, Gated, Spend};
use crate::governance::Decision;
use crate::store::Store;
use crate::store::governance::approvals::ApprovalKind;
use crate::store::governance::checks::{self, NewCheck};

/// Most checks decided in one transaction.
const BATCH: usize = 128;

/// Checks waiting for the queue at most; past this, `submit` waits for room.
const CAPACITY: usize = 4_096;

/// One check waiting to be decided.
#[derive(Debug)]
struct Job {
    spend: Spend,
    idempotency: Idempotency,
    reply: oneshot::Sender<ApiResult<CheckResponse>>,
}

/// The handle handlers submit checks through; the task it started ends when every handle is
/// dropped.
#[derive(Debug, Clone)]
pub struct CheckQueue {
    sender: mpsc::Sender<Job>,
}

impl CheckQueue {
    /// Starts the queue's task on `store`; escalated checks open approvals waiting
    /// `approval_ttl` seconds.
    pub fn start(store: Store, approval_ttl: u64) -> CheckQueue {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        let worker = Arc::new(Worker { store, approval_ttl });
        tokio::spawn(worker.run(receiver));
        CheckQueue { sender }
    }

    /// Decides `spend` (a check) and stores its answer with `idempotency`'s key, in the
    /// transaction of its batch; answers once that has committed.
    pub(crate) async fn decide(
        &self,
        spend: Spend,
        idempotency: Idempotency,
    ) -> ApiResult<CheckResponse> {
        let (reply, answer) = oneshot::channel();
        let gone = || ApiError::new(ErrorCode::Timeout, "the check was not decided; retry");
        self.sender.send(Job { spend, idempotency, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

#[derive(Debug)]
struct Worker {
    store: Store,
    approval_ttl: u64,
}

impl Worker {
    async fn run(self: Arc<Self>, mut receiver: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(BATCH);
        while receiver.recv_many(&mut jobs, BATCH).await > 0 {
            let batch = std::mem::take(&mut jobs);
            // Decided in a task of its own: a batch that panics drops its replies (its checks
            // answer 503 and roll back), not the queue, which goes on with the next batch.
            let worker = self.clone();
            let decided = tokio::spawn(async move {
                let replies = match worker.decide(&batch).await {
                    Ok(answers) => answers,
                    Err(error) => {
                        tracing::error!(error = %error.message, checks = batch.len(), "a batch of checks failed");
                        batch.iter().map(|_| Err(error.clone())).collect()
                    }
                };
                (batch, replies)
            });
            let Ok((batch, replies)) = decided.await else {
                tracing::error!("a batch of checks panicked");
                continue;
            };
            for (job, answer) in batch.into_iter().zip(replies) {
                // The handler may have gone (its client hung up); the decision stands.
                let _ = job.reply.send(answer);
            }
        }
    }

    /// Decides `batch` in one transaction; the answers in the batch's order.
    async fn decide(&self, batch: &[Job]) -> ApiResult<Vec<ApiResult<CheckResponse>>> {
        let spends: Vec<Spend> = batch.iter().map(|job| job.spend.clone()).collect();
        let mut tx = self.store.begin().await?;
        let mut decided = spend_gate::decide_batch(&mut tx, &spends).await?;
        let ttl = i64::try_from(self.approval_ttl).unwrap_or(i64::MAX);
        // Escalations open their approvals together.
        let escalated: Vec<usize> = (0..batch.len())
            .filter(|i| {
                decided[*i].as_ref().is_ok_and(|g| g.evaluation.decision == Decision::Escalate)
            })
            .collect();
        let openings: Vec<spend_gate::Opening<'_>> = escalated
            .iter()
            .filter_map(|i| {
                let gated = decided[*i].as_ref().ok()?;
                Some(spend_gate::Opening {
                    spend: &batch[*i].spend,
                    gated,
                    kind: ApprovalKind::Check,
                    subject_id: &gated.response.check_id,
                    expires_at: batch[*i].spend.request.at.saturating_add(ttl),
                })
            })
            .collect();
        let opened = spend_gate::open_approvals(&mut tx, &openings).await?;
        drop(openings);
        for (i, approval) in escalated.iter().zip(opened) {
            if let Ok(gated) = &mut decided[*i] {
                gated.response.approval_id = Some(approval.id.to_string());
            }
        }
        let mut kept: Vec<usize> = Vec::new();
        for (index, (job, outcome)) in batch.iter().zip(decided.iter_mut()).enumerate() {
            let Ok(gated) = outcome else { continue };
            gated.response.latency_ms =
                u64::try_from(job.spend.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            // A key whose lease ran out is answered 409 and its decision left out.
            match job.idempotency.save(&mut tx, StatusCode::OK, &gated.response).await {
                Ok(()) => kept.push(index),
                Err(refused) => *outcome = Err(refused),
            }
        }
        let recorded: Vec<&Gated> = kept.iter().filter_map(|i| decided[*i].as_ref().ok()).collect();
        spend_gate::record(&mut tx, &recorded).await?;
        let bodies: Vec<serde_json::Value> = recorded
            .iter()
            .map(|g| serde_json::to_value(&g.response))
            .collect::<Result<_, _>>()
            .map_err(ApiError::internal)?;
        let rows: Vec<NewCheck<'_>> = kept
            .iter()
            .zip(recorded.iter().zip(&bodies))
            .map(|(i, (gated, body))| NewCheck {
                id: &gated.response.check_id,
                account_id: &batch[*i].spend.account_id,
                agent_id: &batch[*i].spend.agent_id,
                response: body,
                at: batch[*i].spend.request.at,
            })
            .collect();
        checks::insert_many(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(decided.into_iter().map(|outcome| outcome.map(|g| g.response)).collect())
    }
}
