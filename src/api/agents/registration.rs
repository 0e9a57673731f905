//! Agent self-registration (seed 004), on test deployments only: `POST /agents/register` takes
//! no credential and creates an `unclaimed` agent, answering its API key and a one-time claim
//! code; the owner's `POST /agents/claim` with that code moves the agent into the owner's
//! account and makes it `active`. Until then the agent authenticates but spends nothing (the
//! spend gate refuses it, `agent_unclaimed`). The rules are in [`crate::registration`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::request::{ClaimAgent, RegisterAgent};
use super::view::{AgentRegistration, AgentView};
use crate::agreement::ids::SecretKey;
use crate::api::AppState;
use crate::api::auth::OwnerAuth;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, OptionalApiJson};
use crate::api::idempotency::Write;
use crate::api::time::rfc3339;
use crate::registration::registration_open;
use crate::store::registrations::{self, Claim};
use crate::store::{agents, now};

/// Registers a new agent, with no credential: it starts `unclaimed`, its API key authenticates
/// at once, and it can spend nothing until an owner claims it with the claim code.
///
/// Only on a test deployment on a test chain (403 `self_registration_unavailable` elsewhere).
/// Limited per client IP address (`PACTUM_RATE_LIMIT_REGISTRATION`, 5 an hour by default). The
/// API key and the claim code are shown this once: only their hashes are kept, so a retry
/// registers another agent rather than replaying this answer.
#[utoipa::path(
    post,
    path = "/agents/register",
    operation_id = "register_agent",
    tag = "agents",
    request_body = Option<RegisterAgent>,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Ignored: the key and claim code are shown only once, so a retry registers another agent"),
    ),
    responses(
        (status = 201, description = "The unclaimed agent, with its API key and claim code shown this once", body = AgentRegistration),
        (status = 403, description = "`self_registration_unavailable`: not a test deployment on a test chain", body = crate::api::error::ErrorBody),
        (status = 429, description = "Too many registrations from this IP address; retry after `Retry-After`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    OptionalApiJson(body): OptionalApiJson<RegisterAgent>,
) -> ApiResult<(StatusCode, Json<AgentRegistration>)> {
    if !registration_open(state.environment, state.chain.chain_id) {
        return Err(ApiError::new(
            ErrorCode::SelfRegistrationUnavailable,
            "agents register themselves only on a test deployment; here an owner creates them \
             (`POST /v1/agents`)",
        )
        .with_details(json!({ "environment": state.environment.as_str() })));
    }
    let body = body.validated()?;
    let at = now();
    let (agent, key, code) = registrations::new_unclaimed(
        &body.name,
        body.description,
        body.capabilities,
        state.environment,
        at,
    );
    let expires_at = state.registration.expires_at(at);
    let mut tx = state.store.begin().await?;
    registrations::insert(&mut tx, &agent, &key.hash(), &code.hash(), expires_at).await?;
    tx.commit().await?;
    tracing::info!(agent_id = %agent.id, expires_at, "agent registered itself, unclaimed");
    Ok((
        StatusCode::CREATED,
        Json(AgentRegistration {
            agent_id: agent.id.to_string(),
            name: agent.name,
            description: agent.description,
            capabilities: agent.capabilities,
            status: agent.status,
            api_key: key.reveal().to_owned(),
            api_key_hint: agent.api_key_hint,
            claim_code: code.reveal().to_owned(),
            claim_url: state.registration.claim_url(code.reveal()),
            claim_expires_at: rfc3339(expires_at),
            created_at: rfc3339(agent.created_at),
        }),
    ))
}

/// Claims a self-registered agent for the caller's account with its one-time claim code: the
/// agent (and the wallets it registered) moves into the account and becomes `active`, spending
/// from then on within the policies the owner sets.
///
/// An unknown code answers 404, a used one 409 `claim_code_used` (whoever claimed it), an
/// expired one 410 `claim_code_expired`.
#[utoipa::path(
    post,
    path = "/agents/claim",
    operation_id = "claim_agent",
    tag = "agents",
    request_body = ClaimAgent,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agent, now the account's and active", body = AgentView),
        (status = 404, description = "No such claim code", body = crate::api::error::ErrorBody),
        (status = 409, description = "`claim_code_used`, or `wallet_already_registered`: the account has a wallet of the agent's already", body = crate::api::error::ErrorBody),
        (status = 410, description = "`claim_code_expired`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn claim(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    Write(ApiJson(body), idempotency): Write<ApiJson<ClaimAgent>>,
) -> ApiResult<Json<AgentView>> {
    body.validate()?;
    let code = SecretKey::from_presented(body.claim_code.trim());
    let mut tx = state.store.begin().await?;
    let agent_id = match registrations::claim(&mut tx, &code.hash(), &account.id, now()).await? {
        Claim::Claimed(agent_id) => agent_id,
        Claim::Unknown => return Err(ApiError::not_found("claim code")),
        Claim::Used => {
            return Err(ApiError::new(
                ErrorCode::ClaimCodeUsed,
                "this claim code was used already: its agent has been claimed",
            ));
        }
        Claim::Expired => {
            return Err(ApiError::new(
                ErrorCode::ClaimCodeExpired,
                "this claim code expired unclaimed; the agent must register again",
            ));
        }
        Claim::AddressTaken(wallet_id) => {
            return Err(ApiError::new(
                ErrorCode::WalletAlreadyRegistered,
                "this account has already registered a wallet address the agent registered, and \
                 an address is registered once per account (`details.wallet_id`)",
            )
            .with_details(json!({ "wallet_id": wallet_id })));
        }
    };
    let claimed = agents::get_agent_in(&mut tx, agent_id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("a claimed agent vanished"))?;
    let view = AgentView::from(&claimed);
    idempotency.save(&mut tx, StatusCode::OK, &view).await?;
    tx.commit().await?;
    // The agent's cached credential still names its holding account and status.
    state.credentials_seen.forget();
    tracing::info!(agent_id = %agent_id, account_id = %account.id, "agent claimed");
    Ok(Json(view))
}
