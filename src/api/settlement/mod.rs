//! Usage and settlement: the seller records usage, the buyer signs cumulative vouchers, and
//! either party settles — from its own wallet with the unsigned calldata Pactum returns (the
//! direct path), or by signing an authorization Pactum relays, paying the gas (the sponsored
//! path). Every check here runs against the chain's current state with the pure rules of
//! `agreement::settlement`; the contract checks again on-chain.

pub mod actions;
pub mod direct;
pub mod options;
pub mod options_view;
pub mod sponsored;
pub mod usage;
pub mod view;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolStruct;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::time::rfc3339;
use crate::agreement::settlement::{
    self as rules, Action, EscrowState, Party, Plan, Refusal, RefusalCode,
};
use crate::agreement::status::AgreementStatus;
use crate::agreement::terms::Terms;
use crate::api::typed_data_view::TypedData;
use crate::chain::gas::estimate_gas_with_headroom;
use crate::chain::head::Head;
use crate::chain::node_error::{NodeError, classify};
use crate::chain::revert;
use crate::escrow::package::typed_data_json;
use crate::escrow::typed_data::{BuyerWithdraw, InitiateClose, SellerClaim};
use crate::store::agents::Agent;
use crate::store::agreements::AgreementRecord;
use view::UnsignedTransaction;

/// Which side `agent` is on (the caller is a party: [`load_for`] checked).
fn party_of(record: &AgreementRecord, agent: &Agent) -> Party {
    if record.buyer_agent_id == agent.id { Party::Buyer } else { Party::Seller }
}

/// The terms and key of an accepted agreement; 409 before acceptance.
fn fixed_terms(record: &AgreementRecord) -> ApiResult<(&Terms, B256)> {
    match (&record.terms, record.agreement_key) {
        (Some(terms), Some(key)) => Ok((terms, key)),
        _ => Err(ApiError::invalid_state(record.status, "settled before it is accepted")),
    }
}

/// The wallet that signs for `party`.
fn wallet_of(terms: &Terms, party: Party) -> Address {
    match party {
        Party::Buyer => terms.buyer,
        Party::Seller => terms.seller,
    }
}

/// 409 `invalid_state` unless usage can accrue (the escrow is active or closing).
fn require_usage_open(record: &AgreementRecord, action: &str) -> ApiResult<()> {
    match record.status {
        AgreementStatus::Active | AgreementStatus::Closing => Ok(()),
        other => Err(ApiError::invalid_state(other, action)),
    }
}

fn wrong_party(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::WrongParty, message)
}

/// A refusal of the rules as an API error: 403 for the wrong party, 409 otherwise, with when
/// the action opens if time alone will open it.
fn refusal_error(refusal: Refusal) -> ApiError {
    let error = ApiError::new(ErrorCode::from(refusal.code), refusal.message);
    match refusal.available_at {
        Some(at) => error.with_details(json!({
            "available_at": rfc3339(at as i64),
            "available_at_unix": at,
        })),
        None => error,
    }
}

/// The escrow on-chain now, and the chain's head, both read from the node.
async fn on_chain(state: &AppState, key: B256) -> ApiResult<(EscrowState, Head)> {
    let chain = &state.chain;
    let (escrow, head) = tokio::try_join!(chain.escrow_state(key), chain.read_head())
        .map_err(ApiError::chain_unavailable)?;
    Ok((escrow, head))
}

/// The escrow as Pactum has seen it, without asking the node: the state the watcher confirmed,
/// with the events it has read above the confirmation depth folded in by the contract's rules;
/// and the head the watcher read last (from the node only when that head is stale).
async fn seen(
    state: &AppState,
    record: &AgreementRecord,
    terms: &Terms,
    key: B256,
) -> ApiResult<(EscrowState, Head)> {
    let read = crate::store::chain::unapplied_events_of(state.store.reader(), key);
    let (events, head) = tokio::join!(read, state.chain.head());
    let head = head.map_err(ApiError::chain_unavailable)?;
    let confirmed = record.escrow.as_ref().map_or(EscrowState::NONE, |seen| seen.state);
    let escrow = events?
        .iter()
        .filter_map(|event| crate::watcher::chain_event(event, terms.buyer))
        .fold(confirmed, |escrow, event| escrow.apply(&event));
    Ok((escrow, head))
}

/// Whether `party` can take `action`, decided on what Pactum has seen ([`seen`]); a refusal that
/// the chain could contradict (Pactum's view is up to a block or two behind) is decided again on
/// the chain as the node has it now, so the view never refuses what the chain would allow. An
/// action the view allows and the chain no longer would is refused by the contract, which checks
/// everything again: the relayer fails it saying why (a batch skips it).
async fn planned(
    state: &AppState,
    record: &AgreementRecord,
    action: Action,
    party: Party,
) -> ApiResult<(Result<Plan, Refusal>, EscrowState, Head)> {
    let (terms, key) = fixed_terms(record)?;
    let (escrow, head) = seen(state, record, terms, key).await?;
    let plan = rules::plan(action, party, &escrow, terms, record.voucher_units, head.timestamp);
    match &plan {
        Err(refusal) if refusal.code != RefusalCode::WrongParty => {
            let (escrow, head) = on_chain(state, key).await?;
            let plan =
                rules::plan(action, party, &escrow, terms, record.voucher_units, head.timestamp);
            Ok((plan, escrow, head))
        }
        _ => Ok((plan, escrow, head)),
    }
}

/// The buyer's voucher signature for `plan`, as the contract takes it (empty when none needed).
fn voucher_for(record: &AgreementRecord, plan: &Plan) -> Bytes {
    if !plan.needs_voucher {
        return Bytes::new();
    }
    record.voucher_signature.clone().unwrap_or_default()
}

/// The authorization `party` signs for `action` over `units` until `deadline`: the
/// `eth_signTypedData_v4` document and its digest.
fn authorization(
    state: &AppState,
    action: Action,
    party: Party,
    terms: &Terms,
    key: B256,
    units: u64,
    deadline: u64,
) -> (TypedData, B256) {
    let domain = state.chain.escrow_domain();
    let (units, deadline) = (U256::from(units), U256::from(deadline));
    match action {
        Action::InitiateClose => {
            let s = InitiateClose {
                agreementKey: key,
                party: wallet_of(terms, party),
                finalUnits: units,
                deadline,
            };
            (typed_data_json(&s, &domain).into(), s.eip712_signing_hash(&domain))
        }
        Action::SellerClaim => {
            let s = SellerClaim { agreementKey: key, cumulativeUnits: units, deadline };
            (typed_data_json(&s, &domain).into(), s.eip712_signing_hash(&domain))
        }
        Action::BuyerWithdraw => {
            let s = BuyerWithdraw { agreementKey: key, deadline };
            (typed_data_json(&s, &domain).into(), s.eip712_signing_hash(&domain))
        }
    }
}

/// The unsigned transaction `from` sends for `data`, with a gas limit of the estimate plus the
/// relayer's headroom. A call that would revert is refused with the contract's reason.
async fn unsigned_transaction(
    state: &AppState,
    from: Address,
    data: Bytes,
) -> ApiResult<UnsignedTransaction> {
    let chain = &state.chain;
    let gas = match estimate_gas_with_headroom(&chain.provider, from, chain.escrow, &data).await {
        Ok(gas) => gas,
        Err(error) => {
            return Err(match classify(&error) {
                NodeError::Unavailable(e) => ApiError::chain_unavailable(e),
                _ => ApiError::new(
                    ErrorCode::SimulationReverted,
                    "the call would revert on-chain now",
                )
                .with_details(json!({
                    "reason": revert::revert_data(&error)
                        .map(|d| revert::decode_revert(&d))
                        .unwrap_or_else(|| error.to_string()),
                })),
            });
        }
    };
    Ok(UnsignedTransaction::new(chain.chain_id, from, chain.escrow, data, gas))
}
