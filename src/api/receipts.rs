//! `GET /receipts` and `GET /receipts/verify/{receipt_id}`: the signed receipts of an agent's
//! agreements, and their check against the signature and the chain.
//!
//! Any credential of an account one of whose agents is a party may read and verify a receipt:
//! the agent's own API key or the account's owner credential. Receipts of other accounts
//! answer 404, never 403.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::Log as PrimitiveLog;
use alloy::providers::Provider;
use alloy::sol_types::SolEvent;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{AgentAuth, OwnerAuth};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::ApiPath;
use super::page;
use super::time::rfc3339;
use crate::agreement::ids::{AccountId, AgentId};
use crate::escrow::bindings::UsageEscrow;
use crate::receipts::{Receipt, ReceiptKind, typed};
use crate::store::{agents, receipts};

/// Who is calling: an agent (with its account) or an account's owner.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The account the credential belongs to.
    pub account: AccountId,
    /// The agent, when the credential is an agent API key.
    pub agent: Option<AgentId>,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let agent_error = match AgentAuth::from_request_parts(parts, state).await {
            Ok(AgentAuth(agent)) => {
                return Ok(Viewer { account: agent.account_id, agent: Some(agent.id) });
            }
            Err(error) => error,
        };
        if agent_error.code != ErrorCode::InvalidCredential {
            // No bearer credential at all, or a store failure: the same answer either way.
            return Err(agent_error);
        }
        match OwnerAuth::from_request_parts(parts, state).await {
            Ok(OwnerAuth(account)) => Ok(Viewer { account: account.id, agent: None }),
            Err(error) if error.code == ErrorCode::InvalidCredential => {
                Err(ApiError::new(ErrorCode::InvalidCredential, "unknown or revoked credential"))
            }
            Err(error) => Err(error),
        }
    }
}

/// Whether `agent` exists and belongs to `account`.
async fn of_account(state: &AppState, account: &AccountId, agent: &AgentId) -> ApiResult<bool> {
    Ok(agents::get_agent(state.store.reader(), agent.as_str())
        .await?
        .is_some_and(|agent| &agent.account_id == account))
}

/// The query of `GET /receipts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The agent whose receipts to list; an agent key may leave it out (itself).
    pub agent_id: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /receipts?agent_id=…&limit=50`: receipts of agreements where the agent is a party,
/// newest first. An agent key may list only its own; the owner credential any agent of its
/// account. Anything else answers 404.
#[utoipa::path(
    get,
    path = "/receipts",
    operation_id = "list_receipts",
    tag = "receipts",
    params(
        ("agent_id" = Option<String>, Query, description = "Whose receipts; an agent key may leave it out"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of receipts, newest first", body = crate::api::schema::ReceiptList),
        (status = 404, description = "No such resource of the caller", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Viewer,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) =
        query.map_err(|e| ApiError::validation("query", format!("bad query string: {e}")))?;
    let limit = page::limit(query.limit)?;
    let agent = match (query.agent_id, &caller.agent) {
        (Some(named), Some(own)) if named != own.as_str() => {
            return Err(ApiError::not_found("agent"));
        }
        (_, Some(own)) => own.clone(),
        (Some(named), None) => {
            let named = AgentId(named);
            if !of_account(&state, &caller.account, &named).await? {
                return Err(ApiError::not_found("agent"));
            }
            named
        }
        (None, None) => {
            return Err(ApiError::validation("agent_id", "`agent_id` is required"));
        }
    };
    let mut page =
        receipts::list_for_agent(state.store.reader(), &agent, limit + 1, query.cursor.as_deref())
            .await?;
    let next_cursor = page::cut(&mut page, limit, |r| r.id.0.clone());
    Ok(Json(json!({
        "receipts": page.iter().map(receipt_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

/// `GET /receipts/verify/{receipt_id}`: the stored receipt checked four ways. `signature`: the
/// signature over the stored fields recovers the service's receipt key. `transaction`: the
/// transaction is on the chain and succeeded. `block`: it is in the recorded block, whose hash
/// is still canonical at that height. `log`: the log at `log_index` is the escrow's event of
/// this kind, with the same agreement key and amounts. `valid` when all four hold.
#[utoipa::path(
    get,
    path = "/receipts/verify/{receipt_id}",
    operation_id = "verify_receipt",
    tag = "receipts",
    params(
        ("receipt_id" = String, Path, description = "The receipt"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The receipt checked four ways", body = crate::api::schema::ReceiptVerification),
    ),
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Viewer,
    ApiPath(receipt_id): ApiPath,
) -> ApiResult<Json<Value>> {
    let receipt = receipts::get(state.store.reader(), &receipt_id)
        .await?
        .ok_or_else(|| ApiError::not_found("receipt"))?;
    let mine = of_account(&state, &caller.account, &receipt.buyer_agent_id).await?
        || of_account(&state, &caller.account, &receipt.seller_agent_id).await?;
    if !mine {
        return Err(ApiError::not_found("receipt"));
    }
    let signature = match typed::recover(&receipt, &receipt.signature) {
        Some(signer) if signer == state.receipt_signer => Check::pass(),
        Some(_) => Check::fail("the signature does not match the receipt's fields"),
        None => Check::fail("the signature does not parse"),
    };
    let (transaction, block, log) = on_chain(&state, &receipt).await?;
    let valid = [&signature, &transaction, &block, &log].iter().all(|c| c.valid);
    tracing::info!(receipt_id = %receipt.id, valid, "receipt verified");
    Ok(Json(json!({
        "receipt_id": receipt.id,
        "valid": valid,
        "checks": {
            "signature": signature.json(),
            "transaction": transaction.json(),
            "block": block.json(),
            "log": log.json(),
        },
        "receipt": receipt_json(&receipt),
    })))
}

/// One check's outcome.
struct Check {
    valid: bool,
    reason: Option<String>,
}

impl Check {
    fn pass() -> Self {
        Check { valid: true, reason: None }
    }

    fn fail(reason: impl Into<String>) -> Self {
        Check { valid: false, reason: Some(reason.into()) }
    }

    fn json(&self) -> Value {
        json!({ "valid": self.valid, "reason": self.reason })
    }
}

/// The transaction, block and log checks against the chain the service follows; an RPC
/// failure is 503 rather than a false "invalid".
async fn on_chain(state: &AppState, receipt: &Receipt) -> ApiResult<(Check, Check, Check)> {
    if receipt.chain_id != state.chain.chain_id || receipt.escrow != state.chain.escrow {
        let reason = "the receipt is for another chain or escrow than this service follows";
        return Ok((Check::fail(reason), Check::fail(reason), Check::fail(reason)));
    }
    let provider = &state.chain.provider;
    let found = provider
        .get_transaction_receipt(receipt.tx_hash)
        .await
        .map_err(ApiError::chain_unavailable)?;
    let Some(found) = found else {
        let reason = "the transaction is not on the chain";
        return Ok((Check::fail(reason), Check::fail(reason), Check::fail(reason)));
    };
    let transaction =
        if found.status() { Check::pass() } else { Check::fail("the transaction reverted") };
    let canonical = provider
        .get_block_by_number(BlockNumberOrTag::Number(receipt.block_number))
        .await
        .map_err(ApiError::chain_unavailable)?
        .map(|block| block.header.hash);
    let block = if found.block_number != Some(receipt.block_number)
        || found.block_hash != Some(receipt.block_hash)
    {
        Check::fail("the transaction is in another block than the receipt records")
    } else if canonical != Some(receipt.block_hash) {
        Check::fail("the recorded block is no longer canonical")
    } else {
        Check::pass()
    };
    let log = match found.inner.logs().iter().find(|l| l.log_index == Some(receipt.log_index)) {
        None => Check::fail("the transaction has no log at `log_index`"),
        Some(log) if log.address() != receipt.escrow => {
            Check::fail("the log at `log_index` is not the escrow's")
        }
        Some(log) if event_matches(&log.inner, receipt) => Check::pass(),
        Some(_) => Check::fail("the log at `log_index` is not this receipt's event and amount"),
    };
    Ok((transaction, block, log))
}

/// Whether `log` is the escrow event a receipt of its kind records, with its key and amounts.
fn event_matches(log: &PrimitiveLog, receipt: &Receipt) -> bool {
    let (amount, key) = (receipt.amount.base_units(), receipt.agreement_key);
    match receipt.kind {
        ReceiptKind::Activation => UsageEscrow::EscrowActivated::decode_log(log).is_ok_and(|e| {
            e.agreementKey == key
                && e.deposit == amount
                && e.infraFee == receipt.infra_fee.base_units()
                && e.buyer == receipt.buyer_wallet
                && e.seller == receipt.seller_wallet
        }),
        ReceiptKind::SellerClaim => UsageEscrow::UsageClaimed::decode_log(log)
            .is_ok_and(|e| e.agreementKey == key && e.amount == amount),
        ReceiptKind::BuyerWithdraw => UsageEscrow::BuyerWithdrawn::decode_log(log)
            .is_ok_and(|e| e.agreementKey == key && e.amount == amount),
    }
}

/// Cents of an amount when it is a whole number of cents; `null` otherwise.
fn cents(amount: crate::money::TokenAmount) -> Value {
    amount.to_cents().map_or(Value::Null, |c| json!(c.0))
}

/// A receipt as the API shows it, with the typed-data document that was signed.
pub fn receipt_json(receipt: &Receipt) -> Value {
    json!({
        "id": receipt.id,
        "kind": receipt.kind.as_str(),
        "agreement_id": receipt.agreement_id,
        "agreement_key": receipt.agreement_key,
        "buyer_agent_id": receipt.buyer_agent_id,
        "seller_agent_id": receipt.seller_agent_id,
        "buyer_wallet_address": receipt.buyer_wallet,
        "seller_wallet_address": receipt.seller_wallet,
        "amount": receipt.amount.to_string(),
        "amount_cents": cents(receipt.amount),
        "infra_fee_amount": receipt.infra_fee.to_string(),
        "infra_fee_cents": cents(receipt.infra_fee),
        "token": receipt.token,
        "escrow_contract": receipt.escrow,
        "chain_id": receipt.chain_id,
        "tx_hash": receipt.tx_hash,
        "block_number": receipt.block_number,
        "block_hash": receipt.block_hash,
        "log_index": receipt.log_index,
        "issued_at": rfc3339(receipt.issued_at),
        "signer": receipt.signer,
        "signature": receipt.signature,
        "typed_data": typed::document(receipt),
    })
}
