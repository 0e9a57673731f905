//! Agents' own wallets, non-custodial: `POST /v1/wallets` registers an address an agent holds
//! the key of (optionally with a signed `WalletOwnership` proving control), `GET` reads and
//! lists them, `…/balance` reads USDC and ether from the chain at the latest block (cached per
//! block), and `…/fund` mints demo USDC on a test deployment. `POST /activate` (seed 004) is the
//! same registration of the calling agent's primary wallet.
//!
//! Who may: an agent for itself (its key), or the owner for any agent of its account. An agent
//! sees only its own wallets; a wallet of another account (or of another agent, to an agent)
//! answers 404.

mod request;
mod view;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

pub use request::{ActivateAgent, FundWallet, RegisterWallet, WalletQuery};
pub use view::{WalletBalance, WalletFunding, WalletList, WalletView};

use super::AppState;
use super::auth::{AgentAuth, Checker, owned_agent, revoked_conflict};
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::idempotency::{Idempotency, Write};
use super::page;
use crate::agreement::ids::{AccountId, WalletId};
use crate::chain::faucet::{self, FaucetError};
use crate::escrow::verify::{self, VerifyError};
use crate::money::Cents;
use crate::store::agents::{Agent, AgentStatus};
use crate::store::outbox::{self, EventType};
use crate::store::{now, wallets};
use crate::wallets::balances::Balances;
use crate::wallets::{OwnershipProof, Wallet, funding_allowed, ownership};

/// `POST /v1/wallets`: registers a wallet of an agent.
///
/// An address is registered once per account (409 `wallet_already_registered`). With
/// `ownership_signature`, the wallet's signature of `WalletOwnership` is checked (ECDSA, or
/// ERC-1271 for a smart wallet) and a wrong one refused; without it the wallet is registered
/// with `ownership_proven: false`. Sends `wallet.registered` to the agent's webhooks.
#[utoipa::path(
    post,
    path = "/v1/wallets",
    operation_id = "register_wallet",
    tag = "wallets",
    request_body = RegisterWallet,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The wallet, registered", body = WalletView),
        (status = 200, description = "The agent's wallet with this address, made primary (`primary: true` on a wallet it has)", body = WalletView),
        (status = 403, description = "An agent key naming another agent", body = crate::api::error::ErrorBody),
        (status = 409, description = "`wallet_already_registered`, or the agent is revoked", body = crate::api::error::ErrorBody),
        (status = 422, description = "`validation_error` naming the field, or `invalid_signature`", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain could not check a smart wallet's signature", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    checker: Checker,
    Write(ApiJson(body), idempotency): Write<ApiJson<RegisterWallet>>,
) -> ApiResult<(StatusCode, Json<WalletView>)> {
    let (agent, _) = checker.agent(&state, body.agent_id.as_deref()).await?;
    register_for(&state, &agent, &body, &idempotency).await
}

/// `POST /activate` (seed 004): sets the calling agent's EVM address, registering it as the
/// agent's primary wallet (the same registration as `POST /v1/wallets` with `primary: true`).
/// An address the agent registered already becomes its primary (200).
#[utoipa::path(
    post,
    path = "/activate",
    operation_id = "activate_agent",
    tag = "wallets",
    request_body = ActivateAgent,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The agent's primary wallet, registered", body = WalletView),
        (status = 200, description = "A wallet the agent had, now its primary", body = WalletView),
        (status = 409, description = "`wallet_already_registered` (another agent's), or the agent is revoked", body = crate::api::error::ErrorBody),
        (status = 422, description = "`validation_error` naming the field, or `invalid_signature`", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain could not check a smart wallet's signature", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn activate(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Write(ApiJson(body), idempotency): Write<ApiJson<ActivateAgent>>,
) -> ApiResult<(StatusCode, Json<WalletView>)> {
    register_for(&state, &agent, &RegisterWallet::from(body), &idempotency).await
}

/// Registers `body`'s wallet for `agent` (whose account and credential were already checked).
async fn register_for(
    state: &AppState,
    agent: &Agent,
    body: &RegisterWallet,
    idempotency: &Idempotency,
) -> ApiResult<(StatusCode, Json<WalletView>)> {
    let checked = body.check()?;
    if agent.status == AgentStatus::Revoked {
        return Err(revoked_conflict());
    }
    let at = now();
    let proof = match &checked.proof {
        None => OwnershipProof::None,
        Some((signature, issued_at)) => {
            prove(state, agent, checked.address, signature, *issued_at, at).await?
        }
    };
    let mut tx = state.store.begin().await?;
    if let Some(existing) =
        wallets::by_address_in(&mut tx, &agent.account_id, &checked.address).await?
    {
        if body.primary && existing.agent_id == agent.id {
            wallets::make_primary(&mut tx, &agent.id, &existing.id, at).await?;
            let wallet = wallets::get_in(&mut tx, &agent.account_id, existing.id.as_str())
                .await?
                .ok_or_else(|| ApiError::internal("a wallet vanished"))?;
            let view = WalletView::from(&wallet);
            idempotency.save(&mut tx, StatusCode::OK, &view).await?;
            tx.commit().await?;
            return Ok((StatusCode::OK, Json(view)));
        }
        return Err(already_registered(&existing.id));
    }
    let wallet = Wallet {
        id: WalletId::generate(),
        account_id: agent.account_id.clone(),
        agent_id: agent.id.clone(),
        address: checked.address,
        label: checked.label,
        primary: body.primary,
        ownership_proof: proof,
        ownership_issued_at: checked.proof.as_ref().map(|(_, issued_at)| *issued_at),
        created_at: at,
        updated_at: at,
    };
    if let Err(error) = wallets::insert(&mut tx, &wallet).await {
        if error.constraint() == Some(wallets::ONE_PRIMARY_INDEX) {
            // Another primary wallet was set for the agent at the same moment.
            return Err(ApiError::from(crate::store::StoreError::Conflict));
        }
        if error.is_unique_violation() {
            // A concurrent registration of the same address won.
            return Err(ApiError::new(
                ErrorCode::WalletAlreadyRegistered,
                "this account has registered this wallet address already",
            ));
        }
        return Err(error.into());
    }
    let view = WalletView::from(&wallet);
    let data = serde_json::to_value(&view).map_err(ApiError::internal)?;
    outbox::record_for_agent(&mut tx, agent.id.as_str(), EventType::WalletRegistered, &data, at)
        .await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &view).await?;
    tx.commit().await?;
    tracing::info!(wallet_id = %wallet.id, agent_id = %agent.id, proof = %proof,
        primary = wallet.primary, "wallet registered");
    Ok((StatusCode::CREATED, Json(view)))
}

/// 409 `wallet_already_registered`, naming the registration.
fn already_registered(existing: &WalletId) -> ApiError {
    ApiError::new(
        ErrorCode::WalletAlreadyRegistered,
        "this account has registered this wallet address already",
    )
    .with_details(json!({ "wallet_id": existing }))
}

/// Checks the wallet's `WalletOwnership` signature for `agent`: how it proved control, or 422
/// (`validation_error` on a stale `issued_at`, `invalid_signature` on a wrong signature), or 503
/// when the chain cannot answer for a smart wallet.
async fn prove(
    state: &AppState,
    agent: &Agent,
    address: alloy::primitives::Address,
    signature: &[u8],
    issued_at: i64,
    at: i64,
) -> ApiResult<OwnershipProof> {
    ownership::check_fresh(issued_at, at)
        .map_err(|error| ApiError::validation("ownership_issued_at", error.to_string()))?;
    let digest = ownership::digest(state.chain.chain_id, address, agent.id.as_str(), issued_at);
    match verify::verify_signature(&state.chain.provider, address, digest, signature).await {
        Ok(()) if verify::recover(digest, signature) == Ok(address) => Ok(OwnershipProof::Ecdsa),
        Ok(()) => Ok(OwnershipProof::Erc1271),
        Err(VerifyError::Unavailable(error)) => Err(ApiError::chain_unavailable(error)),
        Err(refused) => Err(ApiError::new(
            ErrorCode::InvalidSignature,
            format!("`ownership_signature` does not prove control of the wallet: {refused}"),
        )
        .with_details(json!({ "field": "ownership_signature" }))),
    }
}

/// The account whose wallets `checker` may see, and the one agent it is limited to (an agent
/// sees only its own).
fn scope(checker: &Checker) -> (AccountId, Option<&Agent>) {
    match checker {
        Checker::Agent(agent) => (agent.account_id.clone(), Some(agent)),
        Checker::Owner(account) => (account.id.clone(), None),
    }
}

/// The wallet `id` as `checker` may see it; 404 otherwise.
async fn visible_wallet(state: &AppState, checker: &Checker, id: &str) -> ApiResult<Wallet> {
    let (account, agent) = scope(checker);
    wallets::get(state.store.reader(), &account, id)
        .await?
        .filter(|wallet| agent.is_none_or(|agent| agent.id == wallet.agent_id))
        .ok_or_else(|| ApiError::not_found("wallet"))
}

/// `GET /v1/wallets/{wallet_id}`: one wallet.
#[utoipa::path(
    get,
    path = "/v1/wallets/{wallet_id}",
    operation_id = "get_wallet",
    tag = "wallets",
    params(("wallet_id" = String, Path, description = "The wallet")),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The wallet", body = WalletView)),
)]
pub async fn get(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(wallet_id): ApiPath,
) -> ApiResult<Json<WalletView>> {
    Ok(Json(WalletView::from(&visible_wallet(&state, &checker, &wallet_id).await?)))
}

/// `GET /v1/wallets?agent_id=&limit=&cursor=`: the wallets the caller may see, newest first.
#[utoipa::path(
    get,
    path = "/v1/wallets",
    operation_id = "list_wallets",
    tag = "wallets",
    params(
        ("agent_id" = Option<String>, Query, description = "Only this agent's (an agent key sees only its own)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of wallets", body = WalletList),
        (status = 403, description = "An agent key naming another agent", body = crate::api::error::ErrorBody),
        (status = 404, description = "`agent_id` names no agent of the account", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    checker: Checker,
    ApiQuery(query): ApiQuery<WalletQuery>,
) -> ApiResult<Json<WalletList>> {
    let limit = page::limit(query.limit)?;
    let agent = match (&checker, query.agent_id.as_deref()) {
        (Checker::Agent(_), named) => Some(checker.agent(&state, named).await?.0),
        (Checker::Owner(account), Some(named)) => Some(owned_agent(&state, account, named).await?),
        (Checker::Owner(_), None) => None,
    };
    let (account, _) = scope(&checker);
    let cursor = query.cursor.as_deref().map(page::decode_cursor).transpose()?;
    let mut found = wallets::list(
        state.store.reader(),
        &account,
        agent.as_ref().map(|agent| agent.id.as_str()),
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut found, limit, |w| page::cursor_of(w.created_at, w.id.as_str()));
    Ok(Json(WalletList { data: found.iter().map(WalletView::from).collect(), next_cursor }))
}

/// `GET /v1/wallets/{wallet_id}/balance`: USDC and ether at the latest block. Both are read at
/// the same block number; a second read at the same head answers from memory.
#[utoipa::path(
    get,
    path = "/v1/wallets/{wallet_id}/balance",
    operation_id = "get_wallet_balance",
    tag = "wallets",
    params(("wallet_id" = String, Path, description = "The wallet")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The balances at the latest block", body = WalletBalance),
        (status = 503, description = "The chain is unavailable", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn balance(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(wallet_id): ApiPath,
) -> ApiResult<Json<WalletBalance>> {
    let wallet = visible_wallet(&state, &checker, &wallet_id).await?;
    let chain = &state.chain;
    let block_number = chain.block_number().await.map_err(ApiError::chain_unavailable)?;
    let balances = match state.wallet_balances.get(wallet.address, block_number) {
        Some(cached) => cached,
        None => {
            let (usdc, eth) = chain
                .balances_at(wallet.address, block_number)
                .await
                .map_err(ApiError::chain_unavailable)?;
            let read = Balances { block_number, usdc, eth };
            state.wallet_balances.put(wallet.address, read);
            read
        }
    };
    Ok(Json(WalletBalance::new(&wallet, chain.chain_id, balances)))
}

/// `POST /v1/wallets/{wallet_id}/fund`: mints `amount_cents` of demo USDC to the wallet. Only
/// on a test deployment (`pk_test_`/`ok_test_` keys) on a test chain (31337, 1337, 84532)
/// whose token the node lets Pactum mint (anvil's mock USDC); otherwise 403
/// `funding_unavailable`, and nothing is sent.
#[utoipa::path(
    post,
    path = "/v1/wallets/{wallet_id}/fund",
    operation_id = "fund_wallet",
    tag = "wallets",
    params(("wallet_id" = String, Path, description = "The wallet")),
    request_body = FundWallet,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The mint, mined", body = WalletFunding),
        (status = 403, description = "`funding_unavailable`: a live deployment, or no faucet on this chain", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain is unavailable", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn fund(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(wallet_id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<FundWallet>>,
) -> ApiResult<Json<WalletFunding>> {
    body.check()?;
    let chain = &state.chain;
    if !funding_allowed(state.environment, chain.chain_id) {
        return Err(funding_unavailable(format!(
            "demo funding exists only on a test deployment on a test chain; this is a `{}` \
             deployment on chain {}",
            state.environment.as_str(),
            chain.chain_id
        )));
    }
    let wallet = visible_wallet(&state, &checker, &wallet_id).await?;
    let amount = Cents(body.amount_cents).to_token_amount();
    let minted = match &state.faucet {
        Some(faucet) => {
            faucet::send_from_faucet(
                &chain.provider,
                faucet,
                chain.token,
                wallet.address,
                amount.base_units(),
            )
            .await
        }
        None => {
            faucet::mint_demo_usdc(
                &chain.provider,
                chain.token,
                wallet.address,
                amount.base_units(),
            )
            .await
        }
    };
    let minted = minted.map_err(|error| match error {
        FaucetError::Unavailable(error) => ApiError::chain_unavailable(error),
        FaucetError::NotMined(hash) => {
            ApiError::chain_unavailable(format!("mint {hash} not mined in time"))
        }
        refused => funding_unavailable(refused.to_string()),
    })?;
    let response = WalletFunding {
        wallet_id: wallet.id.to_string(),
        address: wallet.address.to_checksum(None),
        amount_cents: body.amount_cents,
        usdc_amount: amount,
        tx_hash: minted.tx_hash.to_string(),
        block_number: minted.block_number,
    };
    let mut tx = state.store.begin().await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    tracing::info!(wallet_id = %wallet.id, amount_cents = body.amount_cents,
        tx_hash = %minted.tx_hash, "demo USDC minted");
    Ok(Json(response))
}

/// 403 `funding_unavailable`.
fn funding_unavailable(message: String) -> ApiError {
    ApiError::new(ErrorCode::FundingUnavailable, message)
}
