//! The direct path: the unsigned transaction a party sends from its own wallet to close, claim
//! or withdraw.

use axum::Json;
use axum::extract::State;

use super::view::DirectInstructions;
use super::{
    fixed_terms, on_chain, party_of, refusal_error, unsigned_transaction, voucher_for, wallet_of,
};
use crate::agreement::settlement::{self as rules, Action};
use crate::api::AppState;
use crate::api::agreement_access::load_for;
use crate::api::auth::AgentAuth;
use crate::api::error::ApiResult;
use crate::api::extract::ApiPath;
use crate::escrow::calls;
use crate::store::agents::Agent;

async fn direct(
    state: &AppState,
    agent: &Agent,
    id: &str,
    action: Action,
) -> ApiResult<Json<DirectInstructions>> {
    let record = load_for(state, agent, id).await?;
    let party = party_of(&record, agent);
    let (terms, key) = fixed_terms(&record)?;
    // The direct routes read the chain now: they estimate the transaction's gas anyway.
    let (escrow, head) = on_chain(state, key).await?;
    let plan = rules::plan(action, party, &escrow, terms, record.voucher_units, head.timestamp)
        .map_err(refusal_error)?;
    let signer = wallet_of(terms, party);
    let voucher = voucher_for(&record, &plan);
    let data = calls::direct(action, terms.activation(), plan.units, &voucher);
    let transaction = unsigned_transaction(state, signer, data).await?;
    Ok(Json(DirectInstructions {
        action,
        agreement_id: record.id.clone(),
        amount: plan.amount.to_string(),
        chain_id: transaction.chain_id,
        data: transaction.data,
        from: transaction.from,
        gas: transaction.gas,
        party,
        recipient: plan.recipient,
        to: transaction.to,
        units: plan.units,
        value: transaction.value,
    }))
}

/// The direct-path handler for `action`: `GET …/initiate-close-calldata` (a seller's close
/// carries the buyer's best voucher and settles at once), `GET …/claim-instructions` (the
/// seller's `sellerClaim`) and `GET …/withdraw-instructions` (the buyer's `buyerWithdraw`).
pub fn direct_handler(
    action: Action,
) -> impl Fn(State<AppState>, AgentAuth, ApiPath) -> DirectFuture + Clone + Send + Sync + 'static {
    move |State(state), AgentAuth(agent), ApiPath(id)| {
        Box::pin(async move { direct(&state, &agent, &id, action).await })
    }
}

/// What [`direct_handler`]'s handlers return.
pub type DirectFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = ApiResult<Json<DirectInstructions>>> + Send>,
>;
