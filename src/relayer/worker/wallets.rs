//! Which sponsored claims, closes and withdraws may share a batch transaction
//! (`sellerClaimBatch`, or `batch` for closes and withdraws): only those whose buyer and seller
//! are both accounts without code.
//!
//! A batched claim's voucher and authorization are checked on-chain through the parties'
//! wallets. An ERC-1271 wallet (or an EIP-7702 delegated EOA) answers `isValidSignature` with
//! code it controls: it can pass the simulation and then refuse, revert or burn gas in the mined
//! transaction (its answer may depend on the block, the gas left, or a change it makes in
//! between). In a shared batch that costs the relayer the whole batch and holds the other
//! agreements' claims back; alone, it costs one claim. A key-only account's ECDSA check cannot
//! change between simulation and inclusion.
//!
//! The code is read each time a batch is formed, never cached: a wallet can be deployed at, or
//! an EOA delegated from, an address that had no code when the agreement began.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use alloy::sol_types::SolCall;

use crate::escrow::bindings::UsageEscrow;
use crate::escrow::wallet::{account_kind, have_code};
use crate::store::jobs::Job;

/// The buyer and the seller of a sponsored claim, close or withdraw job; `None` for any other
/// call.
fn parties(job: &Job) -> Option<[Address; 2]> {
    let terms = match UsageEscrow::sellerClaimWithAuthorizationCall::abi_decode(&job.calldata) {
        Ok(call) => call.terms,
        Err(_) => crate::escrow::calls::settlement_terms(&job.calldata)?,
    };
    Some([terms.buyer, terms.seller])
}

/// Reads in flight at once when a batch's parties are looked up one by one.
const CONCURRENT_READS: usize = 16;

/// Splits `claims` into those that may share a batch and those that must go alone: a claim
/// goes alone when a party has code, when its parties cannot be read from its call, or when
/// the node cannot say (sending alone is always safe). Every party's code is read in one call
/// ([`have_code`]); on a node that refuses it, each address once, up to [`CONCURRENT_READS`] at
/// a time.
pub(super) async fn split_by_wallets(
    provider: &DynProvider,
    claims: Vec<Job>,
) -> (Vec<Job>, Vec<Job>) {
    let addresses: Vec<Address> =
        claims.iter().filter_map(parties).flatten().collect::<HashSet<_>>().into_iter().collect();
    let keyless: HashMap<Address, bool> = match have_code(provider, &addresses).await {
        Some(codes) => addresses.iter().copied().zip(codes.into_iter().map(|code| !code)).collect(),
        None => read_each(provider, addresses).await,
    };
    let (mut shared, mut alone) = (Vec::new(), Vec::new());
    for job in claims {
        let key_only = parties(&job)
            .is_some_and(|both| both.iter().all(|p| keyless.get(p).copied().unwrap_or(false)));
        if key_only {
            shared.push(job);
        } else {
            tracing::info!(job_id = %job.id, "a party's wallet has code (or is unread); its claim goes alone");
            alone.push(job);
        }
    }
    (shared, alone)
}

/// Whether each of `addresses` is key-only, read one `eth_getCode` each; an address the node
/// does not answer for counts as having code.
async fn read_each(provider: &DynProvider, addresses: Vec<Address>) -> HashMap<Address, bool> {
    futures::stream::iter(addresses)
        .map(|party| async move {
            let key_only = match account_kind(provider, party).await {
                Ok(kind) => !kind.has_code(),
                Err(error) => {
                    tracing::warn!(%party, %error, "wallet code unread; claim goes alone");
                    false
                }
            };
            (party, key_only)
        })
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await
}
