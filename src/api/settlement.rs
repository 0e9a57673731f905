//! Usage and settlement: the seller records usage, the buyer signs cumulative vouchers, and
//! either party settles — from its own wallet with the unsigned calldata Pactum returns (the
//! direct path), or by signing an authorization Pactum relays, paying the gas (the sponsored
//! path). Every check here runs against the chain's current state with the pure rules of
//! `agreement::settlement`; the contract checks again on-chain.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall, SolStruct};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::activation::signature_error;
use super::agreements::load_for;
use super::error::{ApiError, ApiResult};
use super::extract::{AgentAuth, ApiJson, ApiPath, ApiPathPair};
use super::idempotency::{Idempotency, Write};
use super::status::usage_json;
use super::time::rfc3339;
use crate::agreement::ids::{JobId, SettlementActionId};
use crate::agreement::settlement::{self as rules, Action, EscrowState, Party, Plan, Refusal};
use crate::agreement::status::AgreementStatus;
use crate::agreement::terms::Terms;
use crate::chain::node_error::{NodeError, classify};
use crate::chain::revert;
use crate::escrow::bindings::UsageEscrow;
use crate::escrow::package::typed_data_json;
use crate::escrow::typed_data::{BuyerWithdraw, InitiateClose, SellerClaim, UsageVoucher};
use crate::escrow::verify;
use crate::money::TokenAmount;
use crate::relayer::worker::GAS_HEADROOM_PERCENT;
use crate::store::agents::Agent;
use crate::store::agreements::{self, AgreementRecord};
use crate::store::jobs::{self, Job};
use crate::store::settlement::{self as store, SettlementAction};
use crate::store::{StoreError, now, outbox};

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
    ApiError::new(StatusCode::FORBIDDEN, "wrong_party", message)
}

/// A refusal of the rules as an API error: 403 for the wrong party, 409 otherwise, with when
/// the action opens if time alone will open it.
fn refusal_error(refusal: Refusal) -> ApiError {
    let status =
        if refusal.code == "wrong_party" { StatusCode::FORBIDDEN } else { StatusCode::CONFLICT };
    let error = ApiError::new(status, refusal.code, refusal.message);
    match refusal.available_at {
        Some(at) => error.with_details(json!({
            "available_at": rfc3339(at as i64),
            "available_at_unix": at,
        })),
        None => error,
    }
}

/// The escrow on-chain now, and the chain's clock.
async fn on_chain(state: &AppState, key: B256) -> ApiResult<(EscrowState, u64)> {
    let chain = &state.chain;
    let (escrow, now) = tokio::try_join!(chain.escrow_state(key), chain.now())
        .map_err(ApiError::chain_unavailable)?;
    Ok((escrow, now))
}

fn escrow_summary(escrow: &EscrowState, terms: &Terms) -> Value {
    json!({
        "status": escrow.status.as_str(),
        "claimed_units": escrow.claimed_units,
        "buyer_withdrawn": escrow.buyer_withdrawn,
        "closes_at": (escrow.closes_at != 0).then(|| rfc3339(escrow.closes_at as i64)),
        "withdraw_opens_at": escrow.withdraw_opens_at(terms).map(|t| rfc3339(t as i64)),
        "remaining_amount": escrow.remaining(terms).to_string(),
    })
}

/// The buyer's voucher signature for `plan`, as the contract takes it (empty when none needed).
fn voucher_for(record: &AgreementRecord, plan: &Plan) -> Bytes {
    if !plan.needs_voucher {
        return Bytes::new();
    }
    record.voucher_signature.as_ref().map(canonical).unwrap_or_default()
}

/// `v` as 27/28, which the contract's ECDSA path takes; wallets may sign with 0/1.
fn canonical(signature: &Bytes) -> Bytes {
    verify::canonical_signature(signature).unwrap_or_else(|_| signature.clone())
}

/// The direct-path call of `action` by `party`.
fn direct_call(action: Action, terms: &Terms, plan: &Plan, voucher: Bytes) -> Bytes {
    let terms = terms.activation();
    match action {
        Action::InitiateClose => UsageEscrow::initiateCloseCall {
            terms,
            finalUnits: U256::from(plan.units),
            voucherSignature: voucher,
        }
        .abi_encode(),
        Action::SellerClaim => UsageEscrow::sellerClaimCall {
            terms,
            cumulativeUnits: U256::from(plan.units),
            voucherSignature: voucher,
        }
        .abi_encode(),
        Action::BuyerWithdraw => UsageEscrow::buyerWithdrawCall { terms }.abi_encode(),
    }
    .into()
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
) -> (Value, B256) {
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
            (typed_data_json(&s, &domain), s.eip712_signing_hash(&domain))
        }
        Action::SellerClaim => {
            let s = SellerClaim { agreementKey: key, cumulativeUnits: units, deadline };
            (typed_data_json(&s, &domain), s.eip712_signing_hash(&domain))
        }
        Action::BuyerWithdraw => {
            let s = BuyerWithdraw { agreementKey: key, deadline };
            (typed_data_json(&s, &domain), s.eip712_signing_hash(&domain))
        }
    }
}

/// The unsigned transaction `from` sends for `data`, with a gas limit of the estimate plus the
/// relayer's headroom. A call that would revert is refused with the contract's reason.
async fn unsigned_transaction(state: &AppState, from: Address, data: &Bytes) -> ApiResult<Value> {
    let chain = &state.chain;
    let call = TransactionRequest::default().from(from).to(chain.escrow).input(data.clone().into());
    let gas = match chain.provider.estimate_gas(call).await {
        Ok(gas) => gas.saturating_mul(100 + GAS_HEADROOM_PERCENT) / 100,
        Err(error) => {
            return Err(match classify(&error) {
                NodeError::Unavailable(e) => ApiError::chain_unavailable(e),
                _ => ApiError::new(
                    StatusCode::CONFLICT,
                    "simulation_reverted",
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
    Ok(json!({
        "from": from.to_checksum(None),
        "to": chain.escrow.to_checksum(None),
        "data": data,
        "value": "0",
        "chain_id": chain.chain_id,
        "gas": gas.to_string(),
    }))
}

// ------------------------------------------------------------------------------------- usage

/// The body of `POST …/record-usage`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"units": 40, "description": "40 search calls"}))]
pub struct RecordUsage {
    /// Units delivered since the last record (at least 1).
    pub units: u64,
    /// What was delivered (optional, at most 500 characters).
    #[serde(default)]
    pub description: Option<String>,
}

/// The `UsageVoucher` document for `units` on this agreement.
fn voucher_document(state: &AppState, key: B256, units: u64) -> Value {
    let voucher = UsageVoucher { agreementKey: key, cumulativeUnits: U256::from(units) };
    typed_data_json(&voucher, &state.chain.escrow_domain())
}

fn usage_body(state: &AppState, record: &AgreementRecord, key: B256) -> Value {
    let mut body = usage_json(record);
    body["agreement_id"] = json!(record.id);
    body["voucher_to_sign"] = if record.usage_units > record.voucher_units {
        voucher_document(state, key, record.usage_units)
    } else {
        Value::Null
    };
    body["best_voucher"] = match &record.voucher_signature {
        Some(signature) => {
            json!({ "cumulative_units": record.voucher_units, "signature": signature })
        }
        None => Value::Null,
    };
    body["submit_voucher_to"] = json!(format!("/usage-agreements/{}/usage-vouchers", record.id));
    body
}

/// `POST …/record-usage` (seller): adds delivered units. The units are a delta, so an
/// `Idempotency-Key` is required: a retry must not count the delivery twice.
#[utoipa::path(
    post,
    path = "/usage-agreements/{agreement_id}/record-usage",
    operation_id = "record_usage",
    tag = "usage",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
        ("Idempotency-Key" = String, Header, description = "Required: recorded units add up, so only a keyed retry is safe"),
    ),
    request_body = RecordUsage,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Usage recorded", body = crate::api::schema::UsageRecorded),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::schema::Error),
    ),
)]
pub async fn record_usage(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<RecordUsage>>,
) -> ApiResult<Response> {
    let record = load_for(&state, &agent, &id).await?;
    if party_of(&record, &agent) != Party::Seller {
        return Err(wrong_party("only the seller records usage"));
    }
    idempotency.require(
        "recorded units add up, so `record-usage` needs an `Idempotency-Key` to be retried safely",
    )?;
    if body.units == 0 {
        return Err(ApiError::validation("units", "`units` must be at least 1"));
    }
    if body.description.as_ref().is_some_and(|d| d.chars().count() > 500 || d.contains('\0')) {
        return Err(ApiError::validation(
            "description",
            "`description` must be at most 500 characters, without NUL",
        ));
    }
    require_usage_open(&record, "given usage")?;
    let (_, key) = fixed_terms(&record)?;
    let at = now();
    let mut tx = state.store.begin().await?;
    let total = match agreements::record_usage(&mut tx, &record.id, body.units, at).await {
        Ok(total) => total,
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "usage_exceeds_quantity",
                "these units would take recorded usage past the agreement's quantity",
            )
            .with_details(json!({
                "quantity": record.quantity,
                "recorded_units": record.usage_units,
                "remaining_units": record.quantity.saturating_sub(record.usage_units),
            })));
        }
        Err(other) => return Err(other.into()),
    };
    let record_id = store::insert_usage_record(
        &mut tx,
        &record.id,
        body.units,
        total,
        body.description.as_deref(),
        at,
    )
    .await?;
    let data =
        json!({ "usage_record_id": record_id, "units": body.units, "recorded_units": total });
    outbox::record(&mut tx, Some(&record.id), "usage.recorded", &data, at).await?;
    let updated = agreements::get_in(&mut tx, record.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("agreement vanished"))?;
    let mut response = usage_body(&state, &updated, key);
    response["usage_record_id"] = json!(record_id);
    response["units"] = json!(body.units);
    idempotency.save(&mut tx, StatusCode::CREATED, &response).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

/// `GET …/usage`: recorded usage, the buyer's best voucher, and the voucher to sign next.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/usage",
    operation_id = "get_usage",
    tag = "usage",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Usage and vouchers", body = crate::api::schema::Usage),
        (status = 409, description = "The current state does not allow it, or a concurrent duplicate", body = crate::api::schema::Error),
    ),
)]
pub async fn usage(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Value>> {
    let record = load_for(&state, &agent, &id).await?;
    let (_, key) = fixed_terms(&record)?;
    Ok(Json(usage_body(&state, &record, key)))
}

/// The body of `POST …/usage-vouchers`: a `UsageVoucher` the buyer signed.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cumulative_units": 40, "signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b"}))]
pub struct SubmitVoucher {
    /// The voucher's `cumulativeUnits`: usage in all, not since the last voucher.
    pub cumulative_units: u64,
    /// The buyer's signature of the `UsageVoucher` document.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub signature: Bytes,
}

/// `POST …/usage-vouchers` (buyer): keeps the voucher if it is the highest so far. The same
/// voucher again changes nothing and answers the same; a lower one is refused.
#[utoipa::path(
    post,
    path = "/usage-agreements/{agreement_id}/usage-vouchers",
    operation_id = "submit_voucher",
    tag = "usage",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    request_body = SubmitVoucher,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The voucher was kept (or was already)", body = crate::api::schema::Usage),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::schema::Error),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::schema::Error),
    ),
)]
pub async fn submit_voucher(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<SubmitVoucher>>,
) -> ApiResult<Response> {
    let record = load_for(&state, &agent, &id).await?;
    if party_of(&record, &agent) != Party::Buyer {
        return Err(wrong_party("only the buyer signs usage vouchers"));
    }
    require_usage_open(&record, "given vouchers")?;
    let (terms, key) = fixed_terms(&record)?;
    if body.cumulative_units == 0 {
        return Err(ApiError::validation(
            "cumulative_units",
            "`cumulative_units` must be at least 1",
        ));
    }
    if body.cumulative_units > terms.quantity {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "units_exceed_quantity",
            "a voucher cannot attest more units than the agreement's quantity",
        )
        .with_details(
            json!({ "quantity": terms.quantity, "cumulative_units": body.cumulative_units }),
        ));
    }
    let voucher =
        UsageVoucher { agreementKey: key, cumulativeUnits: U256::from(body.cumulative_units) };
    let digest = voucher.eip712_signing_hash(&state.chain.escrow_domain());
    verify::verify_signature(&state.chain.provider, terms.buyer, digest, &body.signature)
        .await
        .map_err(|e| signature_error("usage_voucher", terms.buyer, e))?;
    if body.cumulative_units < record.voucher_units {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "voucher_regression",
            "vouchers are cumulative: this one attests fewer units than one already kept",
        )
        .with_details(json!({ "voucher_units": record.voucher_units })));
    }
    let at = now();
    let mut tx = state.store.begin().await?;
    if agreements::keep_voucher(&mut tx, &record.id, body.cumulative_units, &body.signature, at)
        .await?
    {
        let data = json!({ "cumulative_units": body.cumulative_units });
        outbox::record(&mut tx, Some(&record.id), "usage.voucher_accepted", &data, at).await?;
    }
    let updated = agreements::get_in(&mut tx, record.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("agreement vanished"))?;
    if updated.voucher_units > body.cumulative_units {
        // A higher voucher was kept concurrently; nothing changed (the transaction is dropped).
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "voucher_regression",
            "vouchers are cumulative: this one attests fewer units than one already kept",
        )
        .with_details(json!({ "voucher_units": updated.voucher_units })));
    }
    let response = usage_body(&state, &updated, key);
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    Ok(Json(response).into_response())
}

// ----------------------------------------------------------------------------------- options

/// The query of `GET …/settlement-action-options`.
#[derive(Debug, Deserialize)]
pub struct OptionsQuery {
    /// `initiate_close`, `seller_claim` or `buyer_withdraw`.
    pub action: Option<String>,
}

/// `GET …/settlement-action-options?action=…`: for the calling party and the escrow as it is
/// on-chain now, whether the action is possible, why not and from when, what would move, the
/// direct transaction and the sponsored authorization to sign, and which path to take.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/settlement-action-options",
    operation_id = "settlement_action_options",
    tag = "settlement",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
        ("action" = String, Query, pattern = "^(initiate_close|seller_claim|buyer_withdraw)$", description = "`initiate_close`, `seller_claim` or `buyer_withdraw`"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Whether and how the action can be taken now", body = crate::api::schema::SettlementOptions),
        (status = 409, description = "The current state does not allow it, or a concurrent duplicate", body = crate::api::schema::Error),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::schema::Error),
    ),
)]
pub async fn options(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    query: Result<Query<OptionsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) =
        query.map_err(|e| ApiError::validation("query", format!("bad query string: {e}")))?;
    let action = query.action.as_deref().and_then(Action::parse).ok_or_else(|| {
        ApiError::validation(
            "action",
            "`action` must be `initiate_close`, `seller_claim` or `buyer_withdraw`",
        )
    })?;
    let record = load_for(&state, &agent, &id).await?;
    let party = party_of(&record, &agent);
    let (terms, key) = fixed_terms(&record)?;
    let (escrow, chain_now) = on_chain(&state, key).await?;
    let mut body = json!({
        "agreement_id": record.id,
        "action": action.as_str(),
        "party": party.as_str(),
        "signer": wallet_of(terms, party).to_checksum(None),
        "chain_id": state.chain.chain_id,
        "chain_time": rfc3339(chain_now as i64),
        "escrow": escrow_summary(&escrow, terms),
        "voucher_units": record.voucher_units,
    });
    let plan = match rules::plan(action, party, &escrow, terms, record.voucher_units, chain_now) {
        Ok(plan) => plan,
        Err(refusal) => {
            body["possible"] = json!(false);
            body["reason"] = json!({ "code": refusal.code, "message": refusal.message });
            body["available_at"] = json!(refusal.available_at.map(|t| rfc3339(t as i64)));
            body["available_at_unix"] = json!(refusal.available_at);
            body["paths"] =
                json!({ "direct": { "available": false }, "sponsored": { "available": false } });
            body["recommended_path"] = Value::Null;
            return Ok(Json(body));
        }
    };
    let signer = wallet_of(terms, party);
    let data = direct_call(action, terms, &plan, voucher_for(&record, &plan));
    let transaction = unsigned_transaction(&state, signer, &data).await?;
    let deadline = chain_now + state.authorization_ttl;
    let (typed_data, _) = authorization(&state, action, party, terms, key, plan.units, deadline);
    let gas: u64 = transaction["gas"].as_str().and_then(|g| g.parse().ok()).unwrap_or(0);
    let chain = &state.chain;
    let (balance, gas_price) = tokio::try_join!(chain.gas_balance(signer), async {
        chain.provider.get_gas_price().await.map_err(Into::into)
    })
    .map_err(ApiError::chain_unavailable)?;
    let cost = U256::from(gas) * U256::from(gas_price);
    let recommended = if balance < cost { "sponsored" } else { "direct" };
    body["possible"] = json!(true);
    body["reason"] = Value::Null;
    body["available_at"] = Value::Null;
    body["available_at_unix"] = Value::Null;
    body["units"] = json!(plan.units);
    body["amount"] = json!(plan.amount.to_string());
    body["recipient"] = json!(plan.recipient.as_str());
    body["paths"] = json!({
        "direct": {
            "available": true,
            "transaction": transaction,
            "signer_gas_balance": balance.to_string(),
            "estimated_cost_wei": cost.to_string(),
        },
        "sponsored": {
            "available": true,
            "typed_data": typed_data,
            "deadline": deadline,
            "submit_to": format!(
                "/usage-agreements/{}/sponsored-actions/{}",
                record.id,
                action.as_str().replace('_', "-")
            ),
        },
    });
    body["recommended_path"] = json!(recommended);
    Ok(Json(body))
}

// ------------------------------------------------------------------------------- direct path

async fn direct(
    state: &AppState,
    agent: &Agent,
    id: &str,
    action: Action,
) -> ApiResult<Json<Value>> {
    let record = load_for(state, agent, id).await?;
    let party = party_of(&record, agent);
    let (terms, key) = fixed_terms(&record)?;
    let (escrow, chain_now) = on_chain(state, key).await?;
    let plan = rules::plan(action, party, &escrow, terms, record.voucher_units, chain_now)
        .map_err(refusal_error)?;
    let signer = wallet_of(terms, party);
    let data = direct_call(action, terms, &plan, voucher_for(&record, &plan));
    let mut body = unsigned_transaction(state, signer, &data).await?;
    body["agreement_id"] = json!(record.id);
    body["action"] = json!(action.as_str());
    body["party"] = json!(party.as_str());
    body["units"] = json!(plan.units);
    body["amount"] = json!(plan.amount.to_string());
    body["recipient"] = json!(plan.recipient.as_str());
    Ok(Json(body))
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
pub type DirectFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<Json<Value>>> + Send>>;

// ---------------------------------------------------------------------------- sponsored path

/// The body of a sponsored action: the party's signed authorization.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"deadline": 1767229200, "authorization_signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b", "units": 40}))]
pub struct SponsoredBody {
    /// The authorization's `deadline` (unix seconds), as signed.
    pub deadline: u64,
    /// The party's signature of the authorization document.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub authorization_signature: Bytes,
    /// A close's `finalUnits` or a claim's `cumulativeUnits`, as signed (default: what
    /// `settlement-action-options` offered — the buyer's best voucher; 0 for a buyer's close).
    #[serde(default)]
    pub units: Option<u64>,
}

async fn sponsored(
    state: &AppState,
    agent: &Agent,
    id: &str,
    idempotency: Idempotency,
    body: SponsoredBody,
    action: Action,
) -> ApiResult<Response> {
    let record = load_for(state, agent, id).await?;
    let party = party_of(&record, agent);
    let (terms, key) = fixed_terms(&record)?;
    let (escrow, chain_now) = on_chain(state, key).await?;
    let plan = rules::plan(action, party, &escrow, terms, record.voucher_units, chain_now)
        .map_err(refusal_error)?;
    let units = body.units.unwrap_or(plan.units);
    if units != plan.units && !(action == Action::InitiateClose && party == Party::Buyer) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "units_mismatch",
            "the signed units must be the buyer's best voucher, which Pactum submits with it",
        )
        .with_details(json!({ "expected_units": plan.units, "received_units": units })));
    }
    if body.deadline <= chain_now {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "authorization_expired",
            "the authorization's deadline has passed by the chain's clock; sign a new one",
        )
        .with_details(json!({ "deadline": body.deadline, "chain_time": chain_now })));
    }
    let signer = wallet_of(terms, party);
    let (_, digest) = authorization(state, action, party, terms, key, units, body.deadline);
    verify::verify_signature(&state.chain.provider, signer, digest, &body.authorization_signature)
        .await
        .map_err(|e| signature_error(action.as_str(), signer, e))?;

    let voucher = voucher_for(&record, &plan);
    let auth = canonical(&body.authorization_signature);
    let activation = terms.activation();
    let deadline = U256::from(body.deadline);
    let (kind, calldata): (jobs::JobKind, Bytes) = match action {
        Action::InitiateClose => (
            jobs::KIND_INITIATE_CLOSE,
            UsageEscrow::initiateCloseWithAuthorizationCall {
                terms: activation,
                party: signer,
                finalUnits: U256::from(units),
                voucherSignature: voucher,
                deadline,
                authorization: auth,
            }
            .abi_encode()
            .into(),
        ),
        Action::SellerClaim => (
            jobs::KIND_SELLER_CLAIM,
            UsageEscrow::sellerClaimWithAuthorizationCall {
                terms: activation,
                cumulativeUnits: U256::from(units),
                voucherSignature: voucher,
                deadline,
                authorization: auth,
            }
            .abi_encode()
            .into(),
        ),
        Action::BuyerWithdraw => (
            jobs::KIND_BUYER_WITHDRAW,
            UsageEscrow::buyerWithdrawWithAuthorizationCall {
                terms: activation,
                deadline,
                authorization: auth,
            }
            .abi_encode()
            .into(),
        ),
    };
    let job = Job {
        id: JobId::generate(),
        kind,
        agreement_id: Some(record.id.clone()),
        to: state.chain.escrow,
        calldata,
        status: jobs::JobStatus::Queued,
        error: None,
    };
    let at = now();
    let settlement_action = SettlementAction {
        id: SettlementActionId::generate(),
        agreement_id: record.id.clone(),
        action,
        party,
        signer,
        units,
        amount: TokenAmount::new(plan.amount),
        deadline: body.deadline,
        authorization_digest: digest,
        authorization_signature: body.authorization_signature.clone(),
        job_id: job.id.clone(),
        status: store::PENDING,
        tx_hash: None,
        block_number: None,
        error: None,
        created_at: at,
        updated_at: at,
    };
    let replayed = |existing: Option<&SettlementAction>| {
        ApiError::new(
            StatusCode::CONFLICT,
            "authorization_replayed",
            "this signed authorization was already submitted; each is relayed once",
        )
        .with_details(json!({ "settlement_action_id": existing.map(|a| a.id.clone()) }))
    };
    let mut tx = state.store.begin().await?;
    if let Some(existing) = store::by_digest(&mut tx, digest).await? {
        return Err(replayed(Some(&existing)));
    }
    jobs::enqueue(&mut tx, &job, at).await?;
    store::insert_action(&mut tx, &settlement_action)
        .await
        .map_err(|e| if e.is_unique_violation() { replayed(None) } else { e.into() })?;
    let response = action_json(&settlement_action);
    let data = json!({
        "settlement_action_id": settlement_action.id,
        "action": action.as_str(),
        "party": party.as_str(),
        "amount": settlement_action.amount,
    });
    outbox::record(&mut tx, Some(&record.id), "settlement_action.queued", &data, at).await?;
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &response).await?;
    tx.commit().await?;
    state.relayer_wake.notify_one();
    tracing::info!(agreement_id = %record.id, settlement_action_id = %settlement_action.id, action = action.as_str(), "sponsored action queued");
    Ok((StatusCode::ACCEPTED, Json(response)).into_response())
}

/// `POST …/sponsored-actions/{action}`: `initiate-close`, `seller-claim` or `buyer-withdraw`.
#[utoipa::path(
    post,
    path = "/usage-agreements/{agreement_id}/sponsored-actions/{action}",
    operation_id = "sponsored_action",
    tag = "settlement",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
        ("action" = String, Path, pattern = "^(initiate-close|seller-claim|buyer-withdraw)$", description = "`initiate-close`, `seller-claim` or `buyer-withdraw`"),
    ),
    request_body = SponsoredBody,
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "Queued for the relayer", body = crate::api::schema::SettlementAction),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::schema::Error),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::schema::Error),
    ),
)]
pub async fn sponsored_action(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPathPair(id, action): ApiPathPair,
    Write(ApiJson(body), idempotency): Write<ApiJson<SponsoredBody>>,
) -> ApiResult<Response> {
    let action = Action::parse(&action.replace('-', "_"))
        .filter(|_| !action.contains('_'))
        .ok_or_else(|| ApiError::not_found("route"))?;
    sponsored(&state, &agent, &id, idempotency, body, action).await
}

/// A settlement action as the API returns it.
pub fn action_json(action: &SettlementAction) -> Value {
    json!({
        "id": action.id,
        "object": "settlement_action",
        "agreement_id": action.agreement_id,
        "action": action.action.as_str(),
        "party": action.party.as_str(),
        "path": "sponsored",
        "signer": action.signer.to_checksum(None),
        "units": action.units,
        "amount": action.amount,
        "deadline": action.deadline,
        "status": action.status,
        "tx_hash": action.tx_hash,
        "block_number": action.block_number,
        "error": action.error,
        "created_at": rfc3339(action.created_at),
        "updated_at": rfc3339(action.updated_at),
    })
}

/// `GET …/settlement-actions`: the agreement's sponsored actions, oldest first.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/settlement-actions",
    operation_id = "list_settlement_actions",
    tag = "settlement",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agreement's sponsored actions, oldest first", body = crate::api::schema::SettlementActionList),
    ),
)]
pub async fn list_actions(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Value>> {
    let record = load_for(&state, &agent, &id).await?;
    let actions = store::actions_of(state.store.reader(), &record.id).await?;
    Ok(Json(json!({ "data": actions.iter().map(action_json).collect::<Vec<_>>() })))
}

/// `GET …/settlement-actions/{action_id}`.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/settlement-actions/{action_id}",
    operation_id = "get_settlement_action",
    tag = "settlement",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
        ("action_id" = String, Path, description = "The settlement action"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The settlement action", body = crate::api::schema::SettlementAction),
    ),
)]
pub async fn get_action(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPathPair(id, action_id): ApiPathPair,
) -> ApiResult<Json<Value>> {
    let record = load_for(&state, &agent, &id).await?;
    let action = store::get_action(state.store.reader(), &record.id, &action_id)
        .await?
        .ok_or_else(|| ApiError::not_found("settlement action"))?;
    Ok(Json(action_json(&action)))
}

/// `GET …/events`: the agreement's status changes from the outbox, oldest first.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/events",
    operation_id = "agreement_events",
    tag = "agreements",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Status changes, oldest first", body = crate::api::schema::AgreementEventList),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Value>> {
    let record = load_for(&state, &agent, &id).await?;
    let events = outbox::for_agreement(state.store.reader(), &record.id).await?;
    let data: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "type": e.event_type,
                "agreement_id": e.agreement_id,
                "data": e.data,
                "created_at": rfc3339(e.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}
