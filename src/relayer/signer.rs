//! One actor per relayer account in this process: it signs a job's transaction, saves it, and
//! only then broadcasts it, so a crash can never lose a transaction that might be mined.
//!
//! The account's nonces belong to the database, not to the actor: each is allocated in the
//! store transaction that saves the attempt signed with it, under the account's row lock
//! ([`signers::allocate`]), so several instances can share one account. The same lock guards
//! replacements and the reconciliation that moves the next nonce after drops.

use alloy::eips::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, Bytes};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

use super::actors::SignerFaults;
use super::fees::{self, Fees, Market};
use super::market::MarketSource;
use super::{RelayError, Result};
use crate::agreement::ids::JobId;
use crate::chain::node_error::{NodeError, classify};
use crate::metrics;
use crate::store::attempts::{self, Attempt, AttemptStatus};
use crate::store::jobs::{self, Job, JobKind, JobStatus};
use crate::store::signers::{self, Allocation};
use crate::store::{Store, StoreError};
use crate::time::now;

/// Gas of a no-op self-send: the intrinsic cost of a plain transfer.
const NO_OP_GAS: u64 = 21_000;

/// What the actor is asked to do.
#[derive(Debug)]
enum Request {
    /// Sign, save and broadcast a job, leased to `owner`, with a new nonce.
    Submit { job: Job, owner: String, gas_limit: u64, reply: oneshot::Sender<Result<Submitted>> },
    /// Replace a job's live attempt: same nonce, same call, higher fees.
    Replace {
        job: Box<Job>,
        old: Box<Attempt>,
        previous: Fees,
        market: Market,
        reply: oneshot::Sender<Result<Option<Attempt>>>,
    },
    /// Reconcile the account's next nonce (chain and store) before the next send.
    Reconcile,
    /// Use up `nonce` with a no-op self-send (a gap no saved attempt can fill).
    FillGap { nonce: u64, reply: oneshot::Sender<Result<Option<Attempt>>> },
}

/// What became of a job handed to [`SignerHandle::submit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Saved with a new nonce; `status` is `broadcast` when the node took it and `signed` when
    /// the node could not be reached (the worker re-broadcasts saved attempts).
    Sent(Box<Attempt>),
    /// The account already has its window of unmined transactions: nothing was signed.
    WindowFull,
    /// The job is no longer queued under the caller's lease (another instance took it over):
    /// nothing was signed, and the caller must leave it alone.
    NotLeased,
}

/// What an actor made of a job handed to it ([`SignerHandle::hand`]), once it has.
#[derive(Debug)]
pub struct Answer(oneshot::Receiver<Result<Submitted>>);

impl std::future::IntoFuture for Answer {
    type Output = Result<Submitted>;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.0.await.map_err(|_| RelayError::SignerGone)? })
    }
}

/// A handle to a signer's actor.
#[derive(Debug, Clone)]
pub struct SignerHandle {
    address: Address,
    requests: mpsc::Sender<Request>,
}

impl SignerHandle {
    /// The relayer account.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs, saves and broadcasts `job`, leased to `owner`, unless the account's window is
    /// full or the lease was lost (see [`Submitted`]). [`RelayError::FeesAboveCap`] when the
    /// market is above the fee cap: nothing was signed and no nonce taken.
    pub async fn submit(&self, job: Job, owner: &str, gas_limit: u64) -> Result<Submitted> {
        let answer = self.hand(job, owner, gas_limit).await.ok_or(RelayError::SignerGone)?;
        answer.await
    }

    /// Hands `job` to the actor and returns once it is in the actor's inbox, behind the jobs
    /// handed before it (so their nonces come first); the [`Answer`] resolves to what
    /// [`SignerHandle::submit`] returns. `None` when the actor is gone.
    pub async fn hand(&self, job: Job, owner: &str, gas_limit: u64) -> Option<Answer> {
        let (reply, answer) = oneshot::channel();
        let owner = owner.to_owned();
        let handed = self.requests.send(Request::Submit { job, owner, gas_limit, reply }).await;
        handed.ok().map(|()| Answer(answer))
    }

    /// Replaces `old`, the live attempt of `job`, with the same nonce and fees bumped from
    /// `previous` (the highest the job's attempts offered, so a refused replacement is bumped
    /// again) against `market` (see [`fees::replacement_fees`]). `None` when `old` is no longer
    /// live (it, or another attempt of the job, was mined meanwhile).
    pub async fn replace(
        &self,
        job: Job,
        old: Attempt,
        previous: Fees,
        market: Market,
    ) -> Result<Option<Attempt>> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Replace {
                job: Box::new(job),
                old: Box::new(old),
                previous,
                market,
                reply,
            })
            .await
            .map_err(|_| RelayError::SignerGone)?;
        answer.await.map_err(|_| RelayError::SignerGone)?
    }

    /// Uses up `nonce`, which no saved attempt of this account can fill, with a no-op
    /// self-send (nothing sent, 21,000 gas) at the market's fees, which may be above the fee
    /// cap: the later transactions of the account wait on it. `None` when the nonce was taken
    /// meanwhile.
    pub async fn fill_gap(&self, nonce: u64) -> Result<Option<Attempt>> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::FillGap { nonce, reply })
            .await
            .map_err(|_| RelayError::SignerGone)?;
        answer.await.map_err(|_| RelayError::SignerGone)?
    }

    /// Asks the actor to reconcile the account's next nonce before its next send (after drops
    /// the chain may be lower).
    pub async fn reconcile(&self) -> Result<()> {
        self.requests.send(Request::Reconcile).await.map_err(|_| RelayError::SignerGone)
    }
}

/// What every signer actor of a worker is allowed to do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The chain the transactions are signed for.
    pub chain_id: u64,
    /// Most wei per gas a transaction may offer (a gap-filling no-op excepted).
    pub max_fee_per_gas: u128,
    /// Most unmined transactions per account, counted across instances.
    pub max_in_flight: u64,
}

/// Starts the actor for `signer` in `tasks`; it runs until every handle is dropped (or the set
/// is dropped, which aborts it). New transactions' fees come from `market`; `faults` is the
/// test-only hook of [`SignerFaults`].
pub fn spawn(
    signer: PrivateKeySigner,
    provider: DynProvider,
    market: MarketSource,
    store: Store,
    limits: Limits,
    faults: SignerFaults,
    tasks: &mut JoinSet<()>,
) -> (SignerHandle, AbortHandle) {
    let address = signer.address();
    let (requests, mut inbox) = mpsc::channel::<Request>(64);
    let mut actor = Actor {
        address,
        wallet: EthereumWallet::from(signer),
        provider,
        market,
        chain_id: limits.chain_id,
        store,
        max_fee_per_gas: limits.max_fee_per_gas,
        max_in_flight: limits.max_in_flight,
        reconcile_due: true,
    };
    let task = tasks.spawn(
        async move {
            while let Some(request) = inbox.recv().await {
                if faults.take(address) {
                    panic!("injected fault: the signer actor of {address} panics");
                }
                match request {
                    Request::Submit { job, owner, gas_limit, reply } => {
                        let result = actor.send(job, &owner, gas_limit).await;
                        if result.is_err() {
                            // A refused or unsent nonce may have to be handed out again.
                            actor.reconcile_due = true;
                        }
                        let _ = reply.send(result);
                    }
                    Request::Replace { job, old, previous, market, reply } => {
                        let _ = reply.send(actor.replace(*job, *old, previous, market).await);
                    }
                    Request::Reconcile => actor.reconcile_due = true,
                    Request::FillGap { nonce, reply } => {
                        let _ = reply.send(actor.fill_gap(nonce).await);
                    }
                }
            }
        }
        .instrument(tracing::info_span!("signer", %address)),
    );
    (SignerHandle { address, requests }, task)
}

struct Actor {
    address: Address,
    wallet: EthereumWallet,
    provider: DynProvider,
    /// Where new transactions' fees come from (the head, mostly; see [`MarketSource`]).
    market: MarketSource,
    chain_id: u64,
    store: Store,
    max_fee_per_gas: u128,
    max_in_flight: u64,
    /// Whether the account's next nonce must be reconciled before the next allocation (at
    /// start, after a failed send, when the worker saw a drop or a used nonce).
    reconcile_due: bool,
}

impl Actor {
    /// Moves the account's stored next nonce to the higher of the node's pending count and
    /// the nonce after the highest attempt that may still be mined ([`signers::reconcile`]):
    /// down as well as up, so dropped or refused transactions leave no gap; never onto a
    /// nonce a saved attempt holds, whichever instance saved it.
    async fn reconcile(&mut self) -> Result<()> {
        let pending = self
            .provider
            .get_transaction_count(self.address)
            .pending()
            .await
            .map_err(|e| RelayError::Node(classify(&e)))?;
        let mut tx = self.store.begin().await?;
        signers::reconcile(&mut tx, self.address, pending).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.reconcile_due = false;
        Ok(())
    }

    /// Signs `job` with `nonce`, `gas_limit` and `fees` into an unsaved attempt.
    async fn sign(&self, job: &Job, nonce: u64, gas_limit: u64, fees: Fees) -> Result<Attempt> {
        let request = TransactionRequest::default()
            .with_from(self.address)
            .with_to(job.to)
            .with_input(job.calldata.clone())
            .with_nonce(nonce)
            .with_chain_id(self.chain_id)
            .with_gas_limit(gas_limit)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let envelope =
            request.build(&self.wallet).await.map_err(|e| RelayError::Sign(e.to_string()))?;
        Ok(Attempt {
            tx_hash: *envelope.tx_hash(),
            job_id: job.id.clone(),
            signer: self.address,
            nonce,
            raw_tx: Bytes::from(envelope.encoded_2718()),
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            status: AttemptStatus::Signed,
            block_number: None,
            block_hash: None,
            succeeded: None,
        })
    }

    async fn fill_gap(&mut self, nonce: u64) -> Result<Option<Attempt>> {
        let market = self.market.market().await.map_err(RelayError::Node)?;
        // The one transaction allowed above the cap: everything after it waits on it.
        let fees = fees::new_fees(market, u128::MAX).map_err(RelayError::FeesAboveCap)?;
        let job = Job {
            id: JobId::generate(),
            kind: JobKind::NonceFill,
            agreement_id: None,
            to: self.address,
            calldata: Bytes::new(),
            status: JobStatus::Queued,
            error: None,
        };
        let mut attempt = self.sign(&job, nonce, NO_OP_GAS, fees).await?;
        let mut tx = self.store.begin().await?;
        if !signers::fill_gap(&mut tx, &job, &attempt, now()).await? {
            return Ok(None);
        }
        tx.commit().await.map_err(StoreError::from)?;
        metrics::registry().count("pactum_relayer_nonce_fills_total", &[], 1);
        tracing::warn!(nonce, tx_hash = %attempt.tx_hash, job_id = %job.id, "nonce gap filled with a no-op self-send");
        if let Err(error) = self.broadcast_new(&mut attempt).await {
            let mut tx = self.store.begin().await?;
            let reason = error.to_string();
            jobs::set_job_status(&mut tx, &job.id, JobStatus::Failed, Some(&reason), now()).await?;
            tx.commit().await.map_err(StoreError::from)?;
            return Err(error);
        }
        Ok(Some(attempt))
    }

    async fn send(&mut self, job: Job, owner: &str, gas_limit: u64) -> Result<Submitted> {
        let market = self.market.market().await.map_err(RelayError::Node)?;
        let fees =
            fees::new_fees(market, self.max_fee_per_gas).map_err(RelayError::FeesAboveCap)?;
        if self.reconcile_due {
            self.reconcile().await?;
        }
        // Allocate, sign and save in one transaction under the account's row lock: the nonce
        // is taken if and only if the signed transaction is saved. No RPC call in between.
        let mut tx = self.store.begin().await?;
        let allocation =
            signers::allocate(&mut tx, self.address, &job.id, owner, self.max_in_flight).await?;
        let Allocation::Nonce(nonce) = allocation else {
            // Nothing taken: release the row lock at once.
            tx.rollback().await.map_err(StoreError::from)?;
            return match allocation {
                Allocation::WindowFull => Ok(Submitted::WindowFull),
                Allocation::NotLeased => {
                    tracing::warn!(job_id = %job.id, "job no longer leased to this instance; not sent");
                    Ok(Submitted::NotLeased)
                }
                // No row yet (it is created by reconciliation, due on the next send).
                _ => Err(RelayError::Store(StoreError::Conflict)),
            };
        };
        let mut attempt = self.sign(&job, nonce, gas_limit, fees).await?;
        // Save before broadcast: from here on the transaction exists, whatever happens next.
        attempts::record_attempt(&mut tx, &attempt, now()).await?;
        tx.commit().await.map_err(StoreError::from)?;
        metrics::attempt("new");
        tracing::info!(job_id = %job.id, nonce, tx_hash = %attempt.tx_hash, "transaction saved");

        self.broadcast_new(&mut attempt).await?;
        Ok(Submitted::Sent(Box::new(attempt)))
    }

    /// Broadcasts a newly saved attempt: `broadcast` once the node took it; left `signed` when
    /// the node could not be reached (saved, so the worker's re-broadcast pass sends it when
    /// the node is back); refused outright, the attempt is `failed` (its nonce handed back when
    /// it was the account's last) and the node's error returned.
    async fn broadcast_new(&self, attempt: &mut Attempt) -> Result<()> {
        match broadcast(&self.provider, &self.store, attempt).await {
            Ok(()) => attempt.status = AttemptStatus::Broadcast,
            Err(NodeError::Unavailable(reason)) => {
                tracing::warn!(tx_hash = %attempt.tx_hash, %reason, "broadcast deferred");
            }
            Err(error) => {
                let mut tx = self.store.begin().await?;
                attempts::attempt_rejected(&mut tx, attempt).await?;
                tx.commit().await.map_err(StoreError::from)?;
                return Err(RelayError::Node(error));
            }
        }
        Ok(())
    }

    async fn replace(
        &mut self,
        job: Job,
        old: Attempt,
        previous: Fees,
        market: Market,
    ) -> Result<Option<Attempt>> {
        let fees = fees::replacement_fees(previous, market, self.max_fee_per_gas)
            .map_err(RelayError::FeesAboveCap)?;
        let mut attempt = self.sign(&job, old.nonce, old.gas_limit, fees).await?;
        let mut tx = self.store.begin().await?;
        if !signers::replace(&mut tx, &attempt, &old, now()).await? {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(None);
        }
        tx.commit().await.map_err(StoreError::from)?;
        metrics::attempt("replacement");
        tracing::info!(
            job_id = %job.id,
            nonce = old.nonce,
            tx_hash = %attempt.tx_hash,
            replaces = %old.tx_hash,
            max_fee_per_gas = fees.max_fee_per_gas,
            "replacement saved"
        );
        match broadcast(&self.provider, &self.store, &attempt).await {
            Ok(()) => attempt.status = AttemptStatus::Broadcast,
            Err(NodeError::Unavailable(reason)) => {
                tracing::warn!(tx_hash = %attempt.tx_hash, %reason, "broadcast deferred");
            }
            Err(error) => {
                // Never taken by the node: the old attempt stays the live one.
                let mut tx = self.store.begin().await?;
                attempts::replacement_refused(&mut tx, &attempt, &old).await?;
                tx.commit().await.map_err(StoreError::from)?;
                return Err(RelayError::Node(error));
            }
        }
        Ok(Some(attempt))
    }
}

/// Sends a saved attempt's raw transaction and marks it broadcast. A node that already has it
/// (or already mined its nonce) counts as success: the watcher decides what was mined.
pub async fn broadcast(
    provider: &DynProvider,
    store: &Store,
    attempt: &Attempt,
) -> std::result::Result<(), NodeError> {
    match provider.send_raw_transaction(&attempt.raw_tx).await {
        Ok(_) => {}
        Err(error) => match classify(&error) {
            NodeError::AlreadyKnown | NodeError::NonceTooLow => {}
            other => return Err(other),
        },
    }
    let mut tx = store.begin().await.map_err(|e| NodeError::Unavailable(format!("store: {e}")))?;
    attempts::attempt_broadcast(&mut tx, attempt, now())
        .await
        .map_err(|e| NodeError::Unavailable(format!("store: {e}")))?;
    tx.commit().await.map_err(|e| NodeError::Unavailable(format!("store: {e}")))?;
    Ok(())
}
