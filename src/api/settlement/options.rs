//! `GET …/settlement-action-options`: whether an action is possible now and both ways to take
//! it.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolStruct;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::options_view::{
    DirectPath, EscrowSummary, Recommendation, Refusal, SettlementOptions, SettlementPath,
    SettlementPaths, SponsoredPath,
};
use super::view::UnsignedTransaction;
use super::{authorization, fixed_terms, party_of, planned, voucher_for, wallet_of};
use crate::agreement::early_claim;
use crate::agreement::settlement::{Action, EscrowState, Party, Plan};
use crate::agreement::terms::Terms;
use crate::api::AppState;
use crate::api::agreement_access::load_for;
use crate::api::auth::AgentAuth;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiPath, ApiQuery};
use crate::api::time::rfc3339;
use crate::chain::gas;
use crate::chain::head::Head;
use crate::escrow::typed_data::UsageVoucher;
use crate::escrow::{calls, verify, wallet};
use crate::relayer::fees::{MIN_TIP, Market};
use crate::wallets::balances::GasBalance;

/// The seller's early-claim recommendation: when the unclaimed voucher value reaches the
/// threshold and the buyer's wallet has code (read now, so a wallet deployed or delegated since
/// activation counts). The code is read only when the value reaches the threshold.
async fn early_claim(
    state: &AppState,
    party: Party,
    terms: &Terms,
    escrow: &EscrowState,
    voucher_units: u64,
) -> ApiResult<Option<Recommendation>> {
    let threshold = state.early_claim_threshold;
    let unclaimed = match party {
        Party::Seller => early_claim::at_risk(escrow, terms, voucher_units, threshold),
        Party::Buyer => None,
    };
    let Some(unclaimed) = unclaimed else { return Ok(None) };
    let kind = wallet::account_kind(&state.chain.provider, terms.buyer)
        .await
        .map_err(ApiError::chain_unavailable)?;
    Ok(kind
        .has_code()
        .then(|| Recommendation::early_claim(terms.buyer, kind, unclaimed, threshold)))
}

/// The query of `GET …/settlement-action-options`.
#[derive(Debug, Deserialize)]
pub struct OptionsQuery {
    /// `initiate_close`, `seller_claim` or `buyer_withdraw`.
    pub action: Option<String>,
}

/// `GET …/settlement-action-options?action=…`: for the calling party and the escrow as Pactum
/// last saw it on-chain (a refusal is checked again on the chain as it is now), whether the action is possible, why not and from when, what would move, the
/// direct transaction and the sponsored authorization to sign, and which path to take.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/settlement-action-options",
    operation_id = "settlement_action_options",
    tag = "settlement",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
        ("action" = Action, Query, description = "`initiate_close`, `seller_claim` or `buyer_withdraw`"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Whether and how the action can be taken now", body = SettlementOptions),
        (status = 409, description = "The current state does not allow it, or a concurrent duplicate", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn options(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<OptionsQuery>,
) -> ApiResult<Json<SettlementOptions>> {
    let action = query.action.as_deref().and_then(Action::parse).ok_or_else(|| {
        ApiError::validation(
            "action",
            "`action` must be `initiate_close`, `seller_claim` or `buyer_withdraw`",
        )
    })?;
    let record = load_for(&state, &agent, &id).await?;
    let party = party_of(&record, &agent);
    let (terms, key) = fixed_terms(&record)?;
    let (plan, escrow, head) = planned(&state, &record, action, party).await?;
    let chain_now = head.timestamp;
    let signer = wallet_of(terms, party);
    let mut body = SettlementOptions {
        action,
        agreement_id: record.id.clone(),
        amount: None,
        available_at: None,
        available_at_unix: None,
        chain_id: state.chain.chain_id,
        chain_time: rfc3339(chain_now as i64),
        escrow: EscrowSummary::new(&escrow, terms),
        party,
        paths: SettlementPaths::default(),
        possible: false,
        reason: None,
        recipient: None,
        recommendation: early_claim(&state, party, terms, &escrow, record.voucher_units).await?,
        recommended_path: None,
        signer: signer.to_checksum(None),
        units: None,
        voucher_units: record.voucher_units,
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(refusal) => {
            body.reason = Some(Refusal { code: refusal.code, message: refusal.message });
            body.available_at = refusal.available_at.map(|t| rfc3339(t as i64));
            body.available_at_unix = refusal.available_at;
            return Ok(Json(body));
        }
    };
    let voucher = voucher_for(&record, &plan);
    let data = calls::direct(action, terms.activation(), plan.units, &voucher);
    // The gas limit from the table of measured costs, not an estimate: the plan above already
    // checked what the contract will (the direct-instructions routes still estimate).
    let gas = gas::direct_gas_limit(
        action,
        party,
        voucher_needs_erc1271(&state, terms, key, &plan, &voucher),
    );
    let transaction =
        UnsignedTransaction::new(state.chain.chain_id, signer, state.chain.escrow, data, gas);
    let deadline = chain_now + state.authorization_ttl;
    let (typed_data, _) = authorization(&state, action, party, terms, key, plan.units, deadline);
    let (balance, fee_per_gas) =
        tokio::try_join!(gas_balance(&state, signer, head.number), fee_per_gas(&state, &head))?;
    let cost = U256::from(gas) * U256::from(fee_per_gas);
    body.possible = true;
    body.units = Some(plan.units);
    body.amount = Some(plan.amount.to_string());
    body.recipient = Some(plan.recipient);
    body.paths = SettlementPaths {
        direct: DirectPath {
            available: true,
            estimated_cost_wei: Some(cost.to_string()),
            signer_gas_balance: Some(balance.to_string()),
            transaction: Some(transaction),
        },
        sponsored: SponsoredPath {
            available: true,
            deadline: Some(deadline),
            submit_to: Some(format!(
                "/usage-agreements/{}/sponsored-actions/{}",
                record.id,
                action.as_str().replace('_', "-")
            )),
            typed_data: Some(typed_data),
        },
    };
    body.recommended_path =
        Some(if balance < cost { SettlementPath::Sponsored } else { SettlementPath::Direct });
    Ok(Json(body))
}

/// Whether the contract will check the voucher sent with `plan` by ERC-1271 (its signature does
/// not recover the buyer by ECDSA: a contract wallet's), which the gas limit must allow for.
fn voucher_needs_erc1271(
    state: &AppState,
    terms: &Terms,
    key: alloy::primitives::B256,
    plan: &Plan,
    voucher: &[u8],
) -> bool {
    if !plan.needs_voucher {
        return false;
    }
    let document = UsageVoucher { agreementKey: key, cumulativeUnits: U256::from(plan.units) };
    let digest = document.eip712_signing_hash(&state.chain.escrow_domain());
    verify::recover(digest, voucher).ok() != Some(terms.buyer)
}

/// `signer`'s ether at block `number`: read once per wallet and block, since options are asked
/// for many agreements of one party.
async fn gas_balance(state: &AppState, signer: Address, number: u64) -> ApiResult<U256> {
    if let Some(kept) = state.gas_balances.get(signer, number) {
        return Ok(kept.eth);
    }
    let eth =
        state.chain.gas_balance_at(signer, number).await.map_err(ApiError::chain_unavailable)?;
    state.gas_balances.put(signer, GasBalance { block_number: number, eth });
    Ok(eth)
}

/// What a transaction sent now may pay per gas: twice the head's base fee plus the least tip, as
/// the relayer offers ([`Market::fees`]); the node's gas price on a chain without a base fee.
async fn fee_per_gas(state: &AppState, head: &Head) -> ApiResult<u128> {
    match head.base_fee_per_gas {
        Some(base_fee) => {
            Ok(Market { base_fee: u128::from(base_fee), tip: MIN_TIP }.fees().max_fee_per_gas)
        }
        None => state.chain.provider.get_gas_price().await.map_err(ApiError::chain_unavailable),
    }
}
