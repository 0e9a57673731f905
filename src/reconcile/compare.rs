//! The comparison itself, with no I/O: what the store believes against what the chain holds at
//! one block, to the list of mismatches and the balance check.

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::Eip712Domain;

use super::report::{Balance, BlockRange, Mismatch, MismatchKind, Report, RpcUse, Scope};
use crate::agreement::settlement::{EscrowState, EscrowStatus};
use crate::agreement::status::AgreementStatus;
use crate::escrow::typed_data;
use crate::money::TokenAmount;
use crate::store::agreements::KeyedAgreement;

/// An `EscrowActivated` event: what the chain escrowed for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activated {
    /// The agreement key.
    pub key: B256,
    /// `deposit`: quantity × unit price.
    pub deposit: TokenAmount,
    /// `unitPrice`.
    pub unit_price: TokenAmount,
    /// The block it was mined in.
    pub block_number: u64,
}

/// The chain at one block, as far as a reconciliation reads it.
#[derive(Debug, Clone, Default)]
pub struct ChainView {
    /// The chain's id.
    pub chain_id: u64,
    /// The escrow contract.
    pub escrow: Address,
    /// The block everything was read at.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
    /// `escrowOf(key)` of every key read (the store's and the scanned activations').
    pub escrows: HashMap<B256, EscrowState>,
    /// The activations found in the scanned blocks; `None` when none were scanned.
    pub activations: Option<(BlockRange, HashMap<B256, Activated>)>,
    /// `token.balanceOf(escrow)` and `accruedFees()`; `None` when not read.
    pub balance: Option<(U256, U256)>,
}

/// Compares `store` (every keyed agreement in `scope`) with `chain`; `domain` is the escrow's
/// EIP-712 domain, against which stored terms must hash to their key. The report's RPC use is
/// left at zero for the caller to fill in.
pub fn compare(
    scope: Scope,
    store: &[KeyedAgreement],
    chain: &ChainView,
    domain: &Eip712Domain,
) -> Report {
    let mut mismatches = Vec::new();
    let mut pending = 0;
    // What each on-chain escrow holds in the token: (deposit, unit price), from its event when
    // it was scanned, else from the store's terms.
    let mut priced: BTreeMap<B256, (TokenAmount, TokenAmount)> = BTreeMap::new();
    let events = chain.activations.as_ref().map(|(_, events)| events);

    for agreement in store {
        let key = agreement.key;
        let on_chain = chain.escrows.get(&key).copied().unwrap_or(EscrowState::NONE);
        let event = events.and_then(|events| events.get(&key));
        let mut differ = |kind, store: String, chain: String, message: String| {
            mismatches.push(Mismatch {
                kind,
                agreement_id: Some(agreement.id.to_string()),
                agreement_key: Some(key),
                store: Some(store),
                chain: Some(chain),
                message,
            })
        };

        match &agreement.terms {
            None => differ(
                MismatchKind::TermsKey,
                "no terms".into(),
                key.to_string(),
                "the agreement has a key but no stored terms".into(),
            ),
            Some(terms) => {
                let hashed = typed_data::agreement_key(&terms.activation(), domain);
                if hashed != key {
                    differ(
                        MismatchKind::TermsKey,
                        hashed.to_string(),
                        key.to_string(),
                        "the stored terms hash to another key than the stored one: they are not \
                         the terms escrowed under it"
                            .into(),
                    );
                }
                if let Some(event) = event
                    && event.deposit != terms.deposit()
                {
                    differ(
                        MismatchKind::Deposit,
                        terms.deposit().to_string(),
                        event.deposit.to_string(),
                        format!(
                            "the stored terms escrow {} base units; EscrowActivated in block {} \
                             says {}",
                            terms.deposit(),
                            event.block_number,
                            event.deposit
                        ),
                    );
                }
                if on_chain.status != EscrowStatus::None {
                    let from_event = event.map(|e| (e.deposit, e.unit_price));
                    priced.insert(key, from_event.unwrap_or((terms.deposit(), terms.unit_price)));
                }
            }
        }

        let stored = agreement.escrow;
        let stored_status = stored.map_or(EscrowStatus::None, |e| e.status);
        if stored_status == EscrowStatus::None
            && on_chain.status == EscrowStatus::None
            && agreement.status == AgreementStatus::Activating
            && agreement.activation_tx_hash.is_some()
        {
            pending += 1;
        }
        if stored_status != on_chain.status {
            differ(
                MismatchKind::EscrowStatus,
                stored_status.as_str().into(),
                on_chain.status.as_str().into(),
                format!(
                    "the store has the escrow {} (agreement {}, activation {}); the chain has it {}",
                    stored_status.as_str(),
                    agreement.status.as_str(),
                    agreement.activation_status.as_str(),
                    on_chain.status.as_str()
                ),
            );
        }
        if let Some(expected) = on_chain.status.agreement_status()
            && agreement.status != expected
        {
            differ(
                MismatchKind::AgreementStatus,
                agreement.status.as_str().into(),
                expected.as_str().into(),
                format!(
                    "an escrow {} on-chain makes the agreement {}, the store has it {}",
                    on_chain.status.as_str(),
                    expected.as_str(),
                    agreement.status.as_str()
                ),
            );
        }
        if let Some(stored) = stored
            && on_chain.status != EscrowStatus::None
        {
            if stored.claimed_units != on_chain.claimed_units {
                let price = agreement.terms.as_ref().map(|t| t.unit_price.base_units());
                let amount = |units: u64| match price {
                    Some(price) => format!(" ({} base units)", price * U256::from(units)),
                    None => String::new(),
                };
                differ(
                    MismatchKind::ClaimedUnits,
                    stored.claimed_units.to_string(),
                    on_chain.claimed_units.to_string(),
                    format!(
                        "the store has {} unit(s) claimed{}, the chain {}{}",
                        stored.claimed_units,
                        amount(stored.claimed_units),
                        on_chain.claimed_units,
                        amount(on_chain.claimed_units)
                    ),
                );
            }
            if stored.buyer_withdrawn != on_chain.buyer_withdrawn {
                differ(
                    MismatchKind::BuyerWithdrawn,
                    stored.buyer_withdrawn.to_string(),
                    on_chain.buyer_withdrawn.to_string(),
                    format!(
                        "the store says the buyer {} withdrawn, the chain that it {}",
                        if stored.buyer_withdrawn { "has" } else { "has not" },
                        if on_chain.buyer_withdrawn { "has" } else { "has not" },
                    ),
                );
            }
        }
    }

    if let Some((_, events)) = &chain.activations {
        let known: std::collections::HashSet<B256> = store.iter().map(|a| a.key).collect();
        let mut unknown: Vec<&Activated> =
            events.values().filter(|e| !known.contains(&e.key)).collect();
        unknown.sort_by_key(|e| (e.block_number, e.key));
        for event in unknown {
            let state = chain.escrows.get(&event.key).copied().unwrap_or(EscrowState::NONE);
            if state.status != EscrowStatus::None {
                priced.insert(event.key, (event.deposit, event.unit_price));
            }
            mismatches.push(Mismatch {
                kind: MismatchKind::UnknownToStore,
                agreement_id: None,
                agreement_key: Some(event.key),
                store: None,
                chain: Some(state.status.as_str().into()),
                message: format!(
                    "activated in block {} with a deposit of {} base units; no agreement of \
                     the store has this key",
                    event.block_number, event.deposit
                ),
            });
        }
    }

    let balance = chain.balance.map(|(token_balance, accrued_fees)| {
        let mut open = U256::ZERO;
        for (key, (deposit, unit_price)) in &priced {
            let state = chain.escrows.get(key).copied().unwrap_or(EscrowState::NONE);
            if !state.buyer_withdrawn {
                let claimed =
                    unit_price.base_units().saturating_mul(U256::from(state.claimed_units));
                open = open.saturating_add(deposit.base_units().saturating_sub(claimed));
            }
        }
        let expected = open.saturating_add(accrued_fees);
        if expected != token_balance {
            let (word, gap) = if token_balance > expected {
                ("more", token_balance - expected)
            } else {
                ("less", expected - token_balance)
            };
            mismatches.push(Mismatch {
                kind: MismatchKind::TokenBalance,
                agreement_id: None,
                agreement_key: None,
                store: Some(expected.to_string()),
                chain: Some(token_balance.to_string()),
                message: format!(
                    "the escrow holds {gap} base units {word} than its open deposits ({open}) \
                     and accrued fees ({accrued_fees}) of the {} escrows known",
                    priced.len()
                ),
            });
        }
        Balance {
            token_balance: TokenAmount::new(token_balance),
            open_deposits: TokenAmount::new(open),
            accrued_fees: TokenAmount::new(accrued_fees),
            expected: TokenAmount::new(expected),
            escrows_counted: priced.len() as u64,
        }
    });

    Report {
        clean: mismatches.is_empty(),
        scope,
        chain_id: chain.chain_id,
        escrow: chain.escrow,
        block_number: chain.block_number,
        block_hash: chain.block_hash,
        agreements_checked: store.len() as u64,
        pending_activations: pending,
        activations_scanned: chain.activations.as_ref().map(|(range, _)| *range),
        balance,
        mismatches,
        rpc: RpcUse::default(),
    }
}

#[cfg(test)]
mod tests;
