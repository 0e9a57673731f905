//! Approvals under the owner: list them (per agent, or account-wide), and approve or reject
//! one. Deciding is a conditional update from `pending`: a second decision answers 409
//! `approval_already_decided`, an expired approval 410 `approval_expired`. Approving
//! re-checks the agent (halted → 403) and its period budgets, then queues the activation it
//! held, in the transaction of the decision.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::AppState;
use crate::api::auth::{OwnerAuth, owned_agent};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiPath, ApiPathPair, ApiQuery, OptionalApiJson};
use crate::api::idempotency::Write;
use crate::api::page;
use crate::store::agents::Account;
use crate::store::governance::approvals::{self, Approval, ApprovalKind, ApprovalStatus};
use crate::store::governance::audit::Actor;
use crate::store::{self, now};

mod approve;

/// An approval as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApprovalView {
    /// `apr_…` (the seed paths call it `request_id`).
    pub id: String,
    /// The same id, under the seed's name.
    pub request_id: String,
    /// The agent that asked.
    pub agent_id: String,
    /// `activation` or `check`.
    pub kind: ApprovalKind,
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: ApprovalStatus,
    /// The agreement whose activation waits (kind `activation`).
    pub agreement_id: Option<String>,
    /// The check that escalated (kind `check`).
    pub check_id: Option<String>,
    /// The action type of the spend.
    pub action_type: String,
    /// Its amount in cents.
    pub amount_cents: u64,
    /// `USD` or `USDC`.
    pub currency: String,
    /// Its counterparty.
    pub counterparty: Option<String>,
    /// Why the policy escalated.
    pub reason_code: String,
    /// The rule that escalated.
    pub violated_rule_id: Option<String>,
    /// The policy's explanation.
    pub message: String,
    /// The policy version evaluated.
    pub policy_version: Option<u64>,
    /// After this it can no longer be approved (UTC, RFC 3339).
    pub expires_at: String,
    /// When it was decided or expired.
    pub decided_at: Option<String>,
    /// The owner's reason, or why it ended (`agent_revoked`).
    pub decision_reason: Option<String>,
    /// When it was opened.
    pub created_at: String,
}

impl From<&Approval> for ApprovalView {
    fn from(a: &Approval) -> Self {
        let subject = |kind| (a.kind == kind).then(|| a.subject_id.clone());
        ApprovalView {
            id: a.id.to_string(),
            request_id: a.id.to_string(),
            agent_id: a.agent_id.clone(),
            kind: a.kind,
            status: a.status,
            agreement_id: subject(ApprovalKind::Activation),
            check_id: subject(ApprovalKind::Check),
            action_type: a.action_type.clone(),
            amount_cents: a.amount_cents,
            currency: a.currency.clone(),
            counterparty: a.counterparty.clone(),
            reason_code: a.reason_code.clone(),
            violated_rule_id: a.violated_rule_id.clone(),
            message: a.message.clone(),
            policy_version: a.policy_version,
            expires_at: crate::time::rfc3339(a.expires_at),
            decided_at: a.decided_at.map(crate::time::rfc3339),
            decision_reason: a.decision_reason.clone(),
            created_at: crate::time::rfc3339(a.created_at),
        }
    }
}

/// A page of approvals, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalList {
    /// The approvals.
    pub data: Vec<ApprovalView>,
    /// The `cursor` of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query of approval lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    /// Only approvals in this status.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this agent's (account-wide list only).
    pub agent_id: Option<String>,
}

/// The optional body of approve and reject.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionReason {
    /// Why (kept with the approval and in the audit log; at most 1,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The body of `POST /approvals/{id}/decide`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// `approve` or `reject` (`approved`/`rejected` are read the same).
    pub decision: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The query of reject: `?reason=…`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonQuery {
    /// Why.
    pub reason: Option<String>,
}

/// An owner's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Approve,
    Reject,
}

async fn list_page(
    state: &AppState,
    account: &Account,
    agent_id: Option<&str>,
    query: &ApprovalQuery,
) -> ApiResult<ApprovalList> {
    let limit = page::limit(query.limit)?;
    let status =
        page::status_filter(query.status.as_deref(), ApprovalStatus::ALL, ApprovalStatus::as_str)?;
    let cursor = query.cursor.as_deref().map(page::decode_cursor).transpose()?;
    let mut found = approvals::list(
        state.store.reader(),
        account.id.as_str(),
        agent_id,
        status,
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut found, limit, |a| page::cursor_of(a.created_at, a.id.as_str()));
    Ok(ApprovalList { data: found.iter().map(ApprovalView::from).collect(), next_cursor })
}

/// `GET /agents/{agent_id}/approvals?status=&limit=&cursor=`: the agent's approvals, newest
/// first.
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/approvals",
    operation_id = "list_agent_approvals",
    tag = "governance",
    params(
        ("agent_id" = String, Path, description = "An agent of the caller's account"),
        ("status" = Option<ApprovalStatus>, Query, description = "Only approvals in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "A page of approvals", body = ApprovalList)),
)]
pub async fn list_for_agent(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    ApiQuery(query): ApiQuery<ApprovalQuery>,
) -> ApiResult<Json<ApprovalList>> {
    owned_agent(&state, &account, &agent_id).await?;
    if query.agent_id.is_some() {
        return Err(ApiError::validation("agent_id", "the agent is already in the path"));
    }
    Ok(Json(list_page(&state, &account, Some(&agent_id), &query).await?))
}

/// `GET /approvals?status=&agent_id=&limit=&cursor=`: every approval of the account.
#[utoipa::path(
    get,
    path = "/approvals",
    operation_id = "list_approvals",
    tag = "governance",
    params(
        ("status" = Option<ApprovalStatus>, Query, description = "Only approvals in this status"),
        ("agent_id" = Option<String>, Query, description = "Only this agent's"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "A page of approvals", body = ApprovalList)),
)]
pub async fn list_all(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiQuery(query): ApiQuery<ApprovalQuery>,
) -> ApiResult<Json<ApprovalList>> {
    if let Some(agent_id) = &query.agent_id {
        owned_agent(&state, &account, agent_id).await?;
    }
    Ok(Json(list_page(&state, &account, query.agent_id.as_deref(), &query).await?))
}

/// `GET /approvals/{approval_id}`: one approval of the account.
#[utoipa::path(
    get,
    path = "/approvals/{approval_id}",
    operation_id = "get_approval",
    tag = "governance",
    params(("approval_id" = String, Path, description = "The approval")),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The approval", body = ApprovalView)),
)]
pub async fn get(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<ApprovalView>> {
    Ok(Json(ApprovalView::from(&owned_approval(&state, &account, None, &id).await?)))
}

/// The approval `id` of `account` (and of `agent_id` when given); 404 otherwise.
async fn owned_approval(
    state: &AppState,
    account: &Account,
    agent_id: Option<&str>,
    id: &str,
) -> ApiResult<Approval> {
    approvals::get(state.store.reader(), id)
        .await?
        .filter(|a| a.account_id == account.id.as_str())
        .filter(|a| agent_id.is_none_or(|agent| a.agent_id == agent))
        .ok_or_else(|| ApiError::not_found("approval"))
}

/// 409 `approval_already_decided` or 410 `approval_expired`, for an approval no longer
/// pending (`expired` covers one whose time ran out).
fn not_pending(approval: &Approval, at: i64) -> ApiError {
    if approval.status == ApprovalStatus::Expired
        || (approval.status == ApprovalStatus::Pending && approval.expires_at <= at)
    {
        return ApiError::new(
            ErrorCode::ApprovalExpired,
            "this approval expired before it was decided",
        )
        .with_details(json!({ "expires_at": crate::time::rfc3339(approval.expires_at) }));
    }
    ApiError::new(ErrorCode::ApprovalAlreadyDecided, "this approval was already decided")
        .with_details(json!({ "status": approval.status }))
}

fn checked_reason(reason: Option<String>) -> ApiResult<Option<String>> {
    let reason = reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 1_000) {
        return Err(ApiError::validation("reason", "`reason` must be at most 1,000 characters"));
    }
    Ok(reason)
}

/// Decides `approval` for its owner: the one code path of every approve and reject route.
async fn decide(
    state: &AppState,
    approval: Approval,
    verdict: Verdict,
    reason: Option<String>,
    idempotency: crate::api::idempotency::Idempotency,
) -> ApiResult<Json<ApprovalView>> {
    let at = now();
    if approval.status != ApprovalStatus::Pending || approval.expires_at <= at {
        if approval.status == ApprovalStatus::Pending {
            // Its time ran out but the sweeper has not come by yet: expire it now.
            let mut tx = state.store.begin().await?;
            store::governance::expire_due(&mut tx, at, 100).await?;
            tx.commit().await?;
        }
        return Err(not_pending(&approval, at));
    }
    let decided = match verdict {
        Verdict::Approve => approve::approve(state, &approval, reason, &idempotency, at).await?,
        Verdict::Reject => {
            let mut tx = state.store.begin().await?;
            let Some(decided) = approvals::decide(
                &mut tx,
                approval.id.as_str(),
                ApprovalStatus::Rejected,
                reason.as_deref(),
                at,
            )
            .await?
            else {
                drop(tx);
                return Err(lost_race(state, &approval, at).await);
            };
            store::governance::approval_ended(&mut tx, &decided, Actor::Owner, at).await?;
            idempotency.save(&mut tx, StatusCode::OK, &ApprovalView::from(&decided)).await?;
            tx.commit().await?;
            decided
        }
    };
    tracing::info!(approval_id = %decided.id, status = %decided.status, "approval decided");
    Ok(Json(ApprovalView::from(&decided)))
}

/// The answer for a decision that found the approval no longer pending.
async fn lost_race(state: &AppState, approval: &Approval, at: i64) -> ApiError {
    match approvals::get(state.store.reader(), approval.id.as_str()).await {
        Ok(Some(now)) => not_pending(&now, at),
        Ok(None) => ApiError::not_found("approval"),
        Err(error) => error.into(),
    }
}

/// `POST /agents/{agent_id}/approvals/{request_id}/approve`.
#[utoipa::path(
    post,
    path = "/agents/{agent_id}/approvals/{request_id}/approve",
    operation_id = "approve_approval",
    tag = "governance",
    params(
        ("agent_id" = String, Path, description = "An agent of the caller's account"),
        ("request_id" = String, Path, description = "The approval"),
    ),
    request_body = Option<DecisionReason>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Approved; an activation it held is queued", body = ApprovalView),
        (status = 403, description = "`agent_halted`", body = crate::api::error::ErrorBody),
        (status = 409, description = "`approval_already_decided`", body = crate::api::error::ErrorBody),
        (status = 410, description = "`approval_expired`", body = crate::api::error::ErrorBody),
        (status = 422, description = "`policy_blocked`: a budget no longer allows it", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn approve(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, id): ApiPathPair,
    Write(OptionalApiJson(body), idempotency): Write<OptionalApiJson<DecisionReason>>,
) -> ApiResult<Json<ApprovalView>> {
    owned_agent(&state, &account, &agent_id).await?;
    let approval = owned_approval(&state, &account, Some(&agent_id), &id).await?;
    let reason = checked_reason(body.reason)?;
    decide(&state, approval, Verdict::Approve, reason, idempotency).await
}

/// `POST /agents/{agent_id}/approvals/{request_id}/reject?reason=…` (or `{"reason"}`).
#[utoipa::path(
    post,
    path = "/agents/{agent_id}/approvals/{request_id}/reject",
    operation_id = "reject_approval",
    tag = "governance",
    params(
        ("agent_id" = String, Path, description = "An agent of the caller's account"),
        ("request_id" = String, Path, description = "The approval"),
        ("reason" = Option<String>, Query, description = "Why (or `reason` in the body)"),
    ),
    request_body = Option<DecisionReason>,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Rejected; an activation it held ends `rejected`", body = ApprovalView),
        (status = 409, description = "`approval_already_decided`", body = crate::api::error::ErrorBody),
        (status = 410, description = "`approval_expired`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn reject(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPathPair(agent_id, id): ApiPathPair,
    ApiQuery(query): ApiQuery<ReasonQuery>,
    Write(OptionalApiJson(body), idempotency): Write<OptionalApiJson<DecisionReason>>,
) -> ApiResult<Json<ApprovalView>> {
    owned_agent(&state, &account, &agent_id).await?;
    let approval = owned_approval(&state, &account, Some(&agent_id), &id).await?;
    let reason = match (query.reason, body.reason) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "reason",
                "send `reason` in the query or the body, not both",
            ));
        }
        (query, body) => checked_reason(query.or(body))?,
    };
    decide(&state, approval, Verdict::Reject, reason, idempotency).await
}

/// `POST /approvals/{approval_id}/decide` `{decision, reason}`: approve or reject by id.
#[utoipa::path(
    post,
    path = "/approvals/{approval_id}/decide",
    operation_id = "decide_approval",
    tag = "governance",
    params(("approval_id" = String, Path, description = "The approval")),
    request_body = Decide,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Decided", body = ApprovalView),
        (status = 409, description = "`approval_already_decided`", body = crate::api::error::ErrorBody),
        (status = 410, description = "`approval_expired`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn decide_by_id(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(id): ApiPath,
    Write(crate::api::extract::ApiJson(body), idempotency): Write<
        crate::api::extract::ApiJson<Decide>,
    >,
) -> ApiResult<Json<ApprovalView>> {
    let verdict = match body.decision.as_str() {
        "approve" | "approved" => Verdict::Approve,
        "reject" | "rejected" => Verdict::Reject,
        _ => {
            return Err(ApiError::validation(
                "decision",
                "`decision` must be `approve` or `reject`",
            ));
        }
    };
    let approval = owned_approval(&state, &account, None, &id).await?;
    let reason = checked_reason(body.reason)?;
    decide(&state, approval, verdict, reason, idempotency).await
}
