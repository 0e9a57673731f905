//! One actor per relayer account: the only code that allocates that account's nonces. It signs
//! a job's transaction, saves it (allocating the nonce in the same store transaction), and only
//! then broadcasts it, so a crash can never lose a transaction that might be mined.

use alloy::eips::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, Bytes};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::node_error::{NodeError, classify};
use super::{RelayError, Result};
use crate::store::jobs::{self, Attempt, Job};
use crate::store::{Store, now};

/// A job to sign and send with a gas limit the worker estimated.
#[derive(Debug)]
struct Submit {
    job: Job,
    gas_limit: u64,
    reply: oneshot::Sender<Result<Attempt>>,
}

/// A handle to a signer's actor.
#[derive(Debug, Clone)]
pub struct SignerHandle {
    address: Address,
    requests: mpsc::Sender<Submit>,
}

impl SignerHandle {
    /// The relayer account.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs, saves and broadcasts `job`. Returns the attempt once saved; its `status` is
    /// `broadcast` when the node took it and `signed` when the node could not be reached (the
    /// worker re-broadcasts saved attempts).
    pub async fn submit(&self, job: Job, gas_limit: u64) -> Result<Attempt> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Submit { job, gas_limit, reply })
            .await
            .map_err(|_| RelayError::SignerGone)?;
        answer.await.map_err(|_| RelayError::SignerGone)?
    }
}

/// Starts the actor for `signer`; it runs until every handle is dropped.
pub fn spawn(
    signer: PrivateKeySigner,
    provider: DynProvider,
    chain_id: u64,
    store: Store,
) -> (SignerHandle, tokio::task::JoinHandle<()>) {
    let address = signer.address();
    let (requests, mut inbox) = mpsc::channel::<Submit>(64);
    let mut actor = Actor {
        address,
        wallet: EthereumWallet::from(signer),
        provider,
        chain_id,
        store,
        next_nonce: None,
    };
    let task = tokio::spawn(
        async move {
            while let Some(Submit { job, gas_limit, reply }) = inbox.recv().await {
                let result = actor.send(job, gas_limit).await;
                if result.is_err() {
                    // Re-read the nonce next time: the chain is the authority after a failure.
                    actor.next_nonce = None;
                }
                let _ = reply.send(result);
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
    chain_id: u64,
    store: Store,
    next_nonce: Option<u64>,
}

impl Actor {
    /// The nonce to use next: the higher of what the store allocated and what the node counts
    /// as pending, so neither a restart nor a transaction sent from elsewhere reuses a nonce.
    async fn nonce(&mut self) -> Result<u64> {
        if let Some(nonce) = self.next_nonce {
            return Ok(nonce);
        }
        let pending = self
            .provider
            .get_transaction_count(self.address)
            .pending()
            .await
            .map_err(|e| RelayError::Node(classify(&e)))?;
        let stored = jobs::stored_next_nonce(self.store.reader(), self.address).await?;
        let nonce = pending.max(stored.unwrap_or(0));
        self.next_nonce = Some(nonce);
        Ok(nonce)
    }

    async fn send(&mut self, job: Job, gas_limit: u64) -> Result<Attempt> {
        let nonce = self.nonce().await?;
        let fees = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| RelayError::Node(classify(&e)))?;
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
        let mut attempt = Attempt {
            tx_hash: *envelope.tx_hash(),
            job_id: job.id.clone(),
            signer: self.address,
            nonce,
            raw_tx: Bytes::from(envelope.encoded_2718()),
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            status: "signed".into(),
            block_number: None,
            block_hash: None,
            succeeded: None,
        };

        // Save before broadcast: from here on the transaction exists, whatever happens next.
        let mut tx = self.store.begin().await?;
        jobs::record_attempt(&mut tx, &attempt, now()).await?;
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        self.next_nonce = Some(nonce + 1);
        tracing::info!(job_id = %job.id, nonce, tx_hash = %attempt.tx_hash, "transaction saved");

        match broadcast(&self.provider, &self.store, &attempt).await {
            Ok(()) => attempt.status = "broadcast".into(),
            Err(NodeError::Unavailable(reason)) => {
                // Saved, so the worker's re-broadcast pass will send it when the node is back.
                tracing::warn!(tx_hash = %attempt.tx_hash, %reason, "broadcast deferred");
            }
            Err(error) => {
                let mut tx = self.store.begin().await?;
                jobs::attempt_rejected(&mut tx, &attempt).await?;
                tx.commit().await.map_err(crate::store::StoreError::from)?;
                return Err(RelayError::Node(error));
            }
        }
        Ok(attempt)
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
    jobs::attempt_broadcast(&mut tx, attempt, now())
        .await
        .map_err(|e| NodeError::Unavailable(format!("store: {e}")))?;
    tx.commit().await.map_err(|e| NodeError::Unavailable(format!("store: {e}")))?;
    Ok(())
}
