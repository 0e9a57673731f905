//! `GET /receipts` and `GET /receipts/verify/{receipt_id}`: the signed receipts of an agent's
//! agreements, and their check against the signature and the chain.
//!
//! Any credential of an account one of whose agents is a party may read and verify a receipt:
//! the agent's own API key or the account's owner credential. Receipts of other accounts
//! answer 404, never 403.

mod chain;
mod view;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::Deserialize;

pub use view::{Check, ChecksView, ReceiptKindName, ReceiptList, ReceiptVerification, ReceiptView};

use super::AppState;
use super::auth::{AgentAuth, OwnerAuth};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiPath, ApiQuery};
use super::page;
use crate::agreement::ids::{AccountId, AgentId};
use crate::receipts::typed;
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
        ("agent_id" = Option<String>, Query, pattern = "^agt_[0-9A-Za-z_]+$", description = "Whose receipts: required with the owner credential; an agent key may leave it out (itself)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of receipts, newest first", body = ReceiptList),
        (status = 404, description = "No such resource of the caller", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Viewer,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<ReceiptList>> {
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
    Ok(Json(ReceiptList { receipts: page.iter().map(ReceiptView::from).collect(), next_cursor }))
}

/// The receipt `receipt_id` of a confirmed payment; 404 when there is none.
async fn payment_receipt(
    state: &AppState,
    receipt_id: &str,
) -> ApiResult<crate::receipts::Receipt> {
    let deployment = state.chain.deployment();
    crate::store::payments::by_receipt(state.store.reader(), receipt_id)
        .await?
        .and_then(|payment| crate::receipts::payment_receipt(&payment, deployment))
        .ok_or_else(|| ApiError::not_found("receipt"))
}

/// `GET /receipts/verify/{receipt_id}`: the stored receipt checked four ways. `signature`: the
/// signature over the stored fields recovers the service's receipt key. `transaction`: the
/// transaction is on the chain and succeeded. `block`: it is in the recorded block, whose hash
/// is still canonical at that height. `log`: the log at `log_index` is the escrow's event of
/// this kind, with the same agreement key and amounts (a payment's: the token's `Transfer` from
/// the paying wallet to the payee of the amount). `valid` when all four hold.
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
        (status = 200, description = "The receipt checked four ways", body = ReceiptVerification),
    ),
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Viewer,
    ApiPath(receipt_id): ApiPath,
) -> ApiResult<Json<ReceiptVerification>> {
    let receipt = match receipts::get(state.store.reader(), &receipt_id).await? {
        Some(receipt) => receipt,
        None => payment_receipt(&state, &receipt_id).await?,
    };
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
    let (transaction, block, log) = chain::on_chain(&state, &receipt).await?;
    let valid = [&signature, &transaction, &block, &log].iter().all(|c| c.valid);
    tracing::info!(receipt_id = %receipt.id, valid, "receipt verified");
    Ok(Json(ReceiptVerification {
        receipt_id: receipt.id.to_string(),
        valid,
        checks: ChecksView { signature, transaction, block, log },
        receipt: ReceiptView::from(&receipt),
    }))
}
