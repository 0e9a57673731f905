//! The monitor pass over every transaction in flight: drops sent again, stuck ones replaced
//! with bumped fees, nonce gaps filled, and jobs whose nonce another transaction used queued
//! again.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::primitives::{Address, B256};
use alloy::providers::Provider;

use super::{FULL_DROP_CHECK_EVERY, NONCE_USED_DEPTH, Relay};
use crate::agreement::status::ActivationStatus;
use crate::chain::node_error::NodeError;
use crate::metrics;
use crate::relayer::fees::{Fees, Market};
use crate::relayer::signer::{self, SignerHandle};
use crate::relayer::{RelayError, Result};
use crate::store::StoreError;
use crate::store::attempts::{self, Attempt, AttemptStatus};
use crate::store::jobs::{self, JobKind, JobStatus};
use crate::time::now;

/// The monitor's view of one relayer account this pass.
struct Account {
    /// `eth_getTransactionCount` at `latest`: nonces below are used on-chain.
    latest: u64,
    /// At `pending`: what the node's pool holds on top.
    pending: u64,
    /// The highest nonce of a live attempt.
    top: u64,
}

impl Relay {
    /// One monitor pass over the live attempt of every job in flight (RPC calls: the block
    /// number, two nonce counts per relayer account, at most one `eth_feeHistory`, and a hash
    /// lookup per live attempt only when the pending count shows a gap or every
    /// [`FULL_DROP_CHECK_EVERY`] passes):
    /// - its nonce used on-chain but none of the job's hashes mined: the job goes back to the
    ///   queue for a fresh nonce;
    /// - dropped by the node (hash unknown, nonce unused): the saved raw transaction is sent
    ///   again, or replaced when the node wants higher fees;
    /// - unmined `replace_after_blocks` blocks after it was first seen: replaced through its
    ///   signer with the same nonce and bumped fees (or the job says it waits for fees).
    ///
    /// `seen` holds the block each live hash was first seen at.
    pub(super) async fn monitor(
        &self,
        seen: &mut HashMap<B256, u64>,
        gaps: &mut HashSet<(Address, u64)>,
        pass: u64,
    ) -> Result<()> {
        let live = attempts::live_attempts(self.store.reader()).await?;
        seen.retain(|hash, _| live.iter().any(|a| a.tx_hash == *hash));
        if live.is_empty() {
            return Ok(());
        }
        let head = match self.provider.get_block_number().await {
            Ok(head) => head,
            Err(error) => {
                tracing::warn!(%error, "monitor pass skipped: node unavailable");
                return Ok(());
            }
        };
        let mut accounts: BTreeMap<Address, Account> = BTreeMap::new();
        for attempt in &live {
            if let Some(account) = accounts.get_mut(&attempt.signer) {
                account.top = account.top.max(attempt.nonce);
                continue;
            }
            let counts = async {
                let latest = self.provider.get_transaction_count(attempt.signer).latest().await?;
                let pending = self.provider.get_transaction_count(attempt.signer).pending().await?;
                Ok::<_, alloy::transports::TransportError>((latest, pending))
            };
            let Ok((latest, pending)) = counts.await else {
                tracing::warn!("monitor pass skipped: node unavailable");
                return Ok(());
            };
            accounts.insert(attempt.signer, Account { latest, pending, top: attempt.nonce });
        }
        self.fill_gaps(&live, &accounts, gaps).await?;
        let full_check = pass.is_multiple_of(FULL_DROP_CHECK_EVERY);
        let mut market: Option<Market> = None;
        // Per account, the nonce count `NONCE_USED_DEPTH` blocks below the head, read only
        // when an attempt's nonce shows used.
        let mut deep_counts: HashMap<Address, u64> = HashMap::new();
        for attempt in live {
            let first_seen = match seen.get(&attempt.tx_hash) {
                Some(block) => *block,
                None => {
                    let mut tx = self.store.begin().await?;
                    attempts::mark_first_seen(&mut tx, &[(attempt.tx_hash, head)]).await?;
                    tx.commit().await.map_err(StoreError::from)?;
                    *seen.entry(attempt.tx_hash).or_insert(head)
                }
            };
            let Some(account) = accounts.get(&attempt.signer) else { continue };
            if attempt.nonce < account.latest {
                let deep = match deep_counts.get(&attempt.signer) {
                    Some(deep) => *deep,
                    None => {
                        let at = head.saturating_sub(NONCE_USED_DEPTH);
                        let count = self
                            .provider
                            .get_transaction_count(attempt.signer)
                            .block_id(at.into())
                            .await;
                        let Ok(count) = count else { return Ok(()) };
                        *deep_counts.entry(attempt.signer).or_insert(count)
                    }
                };
                if attempt.nonce < deep {
                    self.nonce_used(&attempt).await?;
                }
                continue;
            }
            let mut underpriced = false;
            if attempt.status == AttemptStatus::Broadcast
                && (account.pending <= account.top || full_check)
            {
                match self.provider.get_transaction_by_hash(attempt.tx_hash).await {
                    Ok(None)
                        if !attempts::attempt_is_live(self.store.reader(), attempt.tx_hash)
                            .await? =>
                    {
                        continue;
                    }
                    Ok(None) => {
                        match signer::broadcast(&self.provider, &self.store, &attempt).await {
                            Ok(()) => {
                                tracing::warn!(tx_hash = %attempt.tx_hash, nonce = attempt.nonce, "dropped transaction sent again");
                                metrics::registry().count(
                                    "pactum_relayer_dropped_rebroadcasts_total",
                                    &[],
                                    1,
                                );
                                seen.insert(attempt.tx_hash, head);
                                if let Some(signer) = self.signer_of(attempt.signer) {
                                    signer.reconcile().await?;
                                }
                                continue;
                            }
                            Err(NodeError::ReplacementUnderpriced) => underpriced = true,
                            Err(NodeError::Unavailable(_)) => return Ok(()),
                            Err(error) => {
                                tracing::warn!(tx_hash = %attempt.tx_hash, ?error, "dropped transaction refused");
                                continue;
                            }
                        }
                    }
                    Ok(Some(_)) => {}
                    Err(_) => return Ok(()),
                }
            }
            if !underpriced && head.saturating_sub(first_seen) < self.replace_after_blocks {
                continue;
            }
            let market = match market {
                Some(market) => market,
                None => match crate::relayer::market::history_market(&self.provider).await {
                    Ok(fresh) => *market.insert(fresh),
                    Err(error) => {
                        tracing::warn!(?error, "monitor: no fee history");
                        return Ok(());
                    }
                },
            };
            if let Some(new) = self.replace(&attempt, market).await? {
                seen.insert(new, head);
            }
        }
        Ok(())
    }

    /// Fills each nonce gap seen on two passes in a row: a nonce between the chain's count and
    /// an account's highest live attempt that no live attempt holds and the node's pool does
    /// not have (its attempt was refused outright after a later nonce was taken). Every later
    /// transaction of the account waits on it, so it is used up with a no-op self-send.
    async fn fill_gaps(
        &self,
        live: &[Attempt],
        accounts: &BTreeMap<Address, Account>,
        gaps: &mut HashSet<(Address, u64)>,
    ) -> Result<()> {
        let mut found = HashSet::new();
        for (address, account) in accounts {
            let held: HashSet<u64> =
                live.iter().filter(|a| a.signer == *address).map(|a| a.nonce).collect();
            let from = account.latest.max(account.pending);
            found.extend((from..account.top).filter(|n| !held.contains(n)).map(|n| (*address, n)));
        }
        for (address, nonce) in &found {
            if !gaps.contains(&(*address, *nonce)) {
                continue;
            }
            let Some(signer) = self.signer_of(*address) else { continue };
            match signer.fill_gap(*nonce).await {
                Ok(_) => {}
                Err(RelayError::Node(error)) => {
                    tracing::warn!(%address, nonce, ?error, "nonce gap not filled");
                }
                Err(error) => return Err(error),
            }
        }
        *gaps = found;
        Ok(())
    }

    fn signer_of(&self, address: Address) -> Option<&SignerHandle> {
        self.signers.iter().find(|s| s.address() == address)
    }

    /// Replaces `attempt` through its signer; the new hash when one was saved.
    async fn replace(&self, attempt: &Attempt, market: Market) -> Result<Option<B256>> {
        let Some(signer) = self.signer_of(attempt.signer) else {
            tracing::warn!(signer = %attempt.signer, "no key for this relayer account; not replaced");
            return Ok(None);
        };
        let Some(job) = jobs::get(self.store.reader(), attempt.job_id.as_str()).await? else {
            return Ok(None);
        };
        // Bump from the highest any attempt offered: a refused replacement is bumped again.
        let attempts = attempts::attempts_of_job(self.store.reader(), &job.id).await?;
        let previous = Fees {
            max_fee_per_gas: attempts.iter().map(|a| a.max_fee_per_gas).max().unwrap_or(0),
            max_priority_fee_per_gas: attempts
                .iter()
                .map(|a| a.max_priority_fee_per_gas)
                .max()
                .unwrap_or(0),
        };
        match signer.replace(job.clone(), attempt.clone(), previous, market).await {
            Ok(Some(new)) => {
                if new.status == AttemptStatus::Broadcast {
                    self.progress(&job, ActivationStatus::Submitted, Some(new.tx_hash)).await?;
                }
                Ok(Some(new.tx_hash))
            }
            Ok(None) => Ok(None),
            Err(RelayError::FeesAboveCap(waiting)) => {
                let reason = waiting.to_string();
                if job.error.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(job_id = %job.id, %reason, "replacement waits for fees");
                    let mut tx = self.store.begin().await?;
                    jobs::job_waiting(&mut tx, &job.id, &reason, now()).await?;
                    tx.commit().await.map_err(StoreError::from)?;
                }
                Ok(None)
            }
            Err(RelayError::Node(error)) => {
                // `ReplacementUnderpriced` included: the next pass bumps again.
                tracing::warn!(job_id = %job.id, ?error, "replacement refused");
                Ok(None)
            }
            Err(RelayError::Sign(reason)) => {
                tracing::warn!(job_id = %job.id, %reason, "replacement not signed");
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// `attempt`'s nonce is used on-chain. When one of its job's hashes has a receipt, the
    /// watcher confirms it; when none has, another transaction took the nonce and the job goes
    /// back to the queue for a fresh one (none of its attempts can be mined any more, so it is
    /// never live under two nonces).
    async fn nonce_used(&self, attempt: &Attempt) -> Result<()> {
        let attempts = attempts::attempts_of_job(self.store.reader(), &attempt.job_id).await?;
        for each in &attempts {
            match self.provider.get_transaction_receipt(each.tx_hash).await {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {}
                Err(_) => return Ok(()),
            }
        }
        let mut tx = self.store.begin().await?;
        let requeued = attempts::requeue_nonce_used(
            &mut tx,
            &attempt.job_id,
            attempt.signer,
            attempt.nonce,
            now(),
        )
        .await?;
        let job = jobs::get_in(&mut tx, attempt.job_id.as_str()).await?;
        if requeued && job.is_some_and(|j| j.kind == JobKind::NonceFill) {
            // A fill has nothing to send again: the gap it was for is gone.
            let note = "the nonce was used by another transaction: no gap left to fill";
            jobs::set_job_status(&mut tx, &attempt.job_id, JobStatus::Failed, Some(note), now())
                .await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        if !requeued {
            // Another instance (or an earlier pass) dealt with it.
            return Ok(());
        }
        tracing::warn!(job_id = %attempt.job_id, nonce = attempt.nonce, "nonce used by another transaction; job queued again");
        if let Some(signer) = self.signer_of(attempt.signer) {
            signer.reconcile().await?;
        }
        self.inbox.wake.notify_one();
        Ok(())
    }
}
