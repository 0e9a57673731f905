//! What the worker records about a job's progress: the activation's or settlement actions'
//! status with its outbox events, a failure before broadcast, and re-broadcasts.

use alloy::primitives::B256;
use serde_json::json;

use super::Relay;
use crate::agreement::status::{ActivationStatus, AgreementStatus};
use crate::chain::node_error::NodeError;
use crate::relayer::{Result, signer};
use crate::store::attempts::{self, AttemptStatus};
use crate::store::jobs::{self, Job, JobKind, JobStatus};
use crate::store::outbox::EventType;
use crate::store::{StoreError, agreements, outbox, settlement, signers};
use crate::time::now;

impl Relay {
    /// Records progress on what `job` carries: the activation's status, or its settlement
    /// actions `submitted` once there is a transaction hash.
    pub(super) async fn progress(
        &self,
        job: &Job,
        status: ActivationStatus,
        tx_hash: Option<B256>,
    ) -> Result<()> {
        let at = now();
        let mut tx = self.store.begin().await?;
        if job.kind == JobKind::Activate {
            let Some(agreement) = &job.agreement_id else { return Ok(()) };
            let moved =
                agreements::activation_progress(&mut tx, agreement, status, tx_hash, at).await?;
            if moved && status == ActivationStatus::Submitted {
                let data = json!({ "tx_hash": tx_hash });
                outbox::record(&mut tx, Some(agreement), EventType::ActivationSubmitted, &data, at)
                    .await?;
            }
        } else if matches!(job.kind, JobKind::Payment | JobKind::PaymentBatch) {
            if let Some(tx_hash) = tx_hash {
                crate::store::payments::job_sent(&mut tx, job.id.as_str(), tx_hash, at).await?;
            }
        } else if let Some(tx_hash) = tx_hash {
            for action in settlement::actions_of_job(&mut tx, &job.id).await? {
                if action.status == settlement::PENDING {
                    let data = json!({
                        "settlement_action_id": action.id,
                        "action": action.action.as_str(),
                        "tx_hash": tx_hash,
                    });
                    let event = EventType::SettlementActionSubmitted;
                    outbox::record(&mut tx, Some(&action.agreement_id), event, &data, at).await?;
                }
            }
            settlement::job_submitted(&mut tx, &job.id, tx_hash, at).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// What to do with `job` when simulating it was refused for `reason`. A settlement job
    /// refused because its escrow is not in the status it needs, while the store still holds
    /// the agreement active or its activation on its way, is refused by a chain state a
    /// reorganisation can undo: its escrow was taken out by a reorg the watcher has not rolled
    /// back yet, or is being mined again. It goes back to the queue
    /// and is simulated again after [`super::REFUSAL_PAUSE`], for up to
    /// [`super::REFUSAL_GRACE`] after it was queued. Any other refusal fails it.
    pub(super) async fn refused(&self, job: &Job, reason: &str) -> Result<()> {
        // The contract's refusal for an escrow not in the status the call needs (`status=0`:
        // no escrow at all); any other refusal was met with the escrow there, and holds.
        let escrow_missing = reason.starts_with("InvalidStatus(");
        if escrow_missing && job.kind != JobKind::Activate && self.may_go_through(job).await? {
            let at = now();
            let mut tx = self.store.begin().await?;
            if signers::hold(&mut tx, &job.id, &self.instance).await? {
                let waiting = format!("refused by the chain, retried: {reason}");
                tracing::warn!(job_id = %job.id, %reason, "job refused by a state that may be reorganised; retried");
                jobs::requeue_waiting(&mut tx, &job.id, &waiting, at + super::REFUSAL_PAUSE, at)
                    .await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            return Ok(());
        }
        self.fail(job, reason, true).await
    }

    /// Whether the store still expects settlement `job` to go through: queued within
    /// [`super::REFUSAL_GRACE`], and its agreement active or its activation on its way.
    async fn may_go_through(&self, job: &Job) -> Result<bool> {
        let Some(agreement_id) = &job.agreement_id else { return Ok(false) };
        let mut conn = self.store.reader().acquire().await.map_err(StoreError::from)?;
        let queued_at = jobs::queued_at(&mut conn, &job.id).await?;
        drop(conn);
        let Some(queued_at) = queued_at else { return Ok(false) };
        if now() - queued_at >= super::REFUSAL_GRACE {
            return Ok(false);
        }
        let Some(agreement) = agreements::get(self.store.reader(), agreement_id.as_str()).await?
        else {
            return Ok(false);
        };
        Ok(match agreement.status {
            AgreementStatus::Active => true,
            AgreementStatus::Activating => matches!(
                agreement.activation_status,
                ActivationStatus::Pending
                    | ActivationStatus::Submitting
                    | ActivationStatus::Submitted
            ),
            _ => false,
        })
    }

    /// Fails `job` before any broadcast, with what it carried: the activation, or each
    /// settlement action. `unsent`: the job was never signed, so it is failed only while this
    /// instance still holds its lease (another may have taken it over and sent it).
    pub(super) async fn fail(&self, job: &Job, reason: &str, unsent: bool) -> Result<()> {
        let at = now();
        let mut tx = self.store.begin().await?;
        if unsent && !signers::hold(&mut tx, &job.id, &self.instance).await? {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(());
        }
        tracing::warn!(%reason, job_id = %job.id, "job failed before broadcast");
        jobs::set_job_status(&mut tx, &job.id, JobStatus::Failed, Some(reason), at).await?;
        let data = json!({ "job_id": job.id, "kind": job.kind, "error": reason });
        outbox::record(&mut tx, job.agreement_id.as_ref(), EventType::RelayerJobFailed, &data, at)
            .await?;
        if matches!(job.kind, JobKind::Payment | JobKind::PaymentBatch) {
            crate::store::payments::job_failed(&mut tx, job.id.as_str(), reason, at).await?;
        } else if job.kind == JobKind::Activate {
            if let Some(agreement) = &job.agreement_id
                && agreements::activation_failed(&mut tx, agreement, reason, at).await?
            {
                let data = json!({ "error": reason });
                outbox::record(&mut tx, Some(agreement), EventType::ActivationFailed, &data, at)
                    .await?;
            }
        } else {
            for action in settlement::actions_of_job(&mut tx, &job.id).await? {
                settlement::finish(&mut tx, &action.id, Some(reason), None, None, at).await?;
                let data = json!({
                    "settlement_action_id": action.id,
                    "action": action.action.as_str(),
                    "error": reason,
                });
                let event = EventType::SettlementActionFailed;
                outbox::record(&mut tx, Some(&action.agreement_id), event, &data, at).await?;
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Sends again every saved attempt in `statuses` (after a restart: everything not yet
    /// mined; in steady state: what the node could not take when it was signed).
    pub(super) async fn rebroadcast(&self, statuses: &[AttemptStatus]) -> Result<()> {
        for attempt in attempts::attempts_in(self.store.reader(), statuses).await? {
            match signer::broadcast(&self.provider, &self.store, &attempt).await {
                Ok(()) => {
                    if let Some(job) =
                        jobs::get(self.store.reader(), attempt.job_id.as_str()).await?
                    {
                        self.progress(&job, ActivationStatus::Submitted, Some(attempt.tx_hash))
                            .await?;
                    }
                }
                Err(NodeError::Unavailable(_)) => break,
                Err(error) => {
                    tracing::warn!(tx_hash = %attempt.tx_hash, ?error, "re-broadcast refused");
                }
            }
        }
        Ok(())
    }
}
