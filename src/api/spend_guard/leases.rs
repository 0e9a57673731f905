//! Budget leases under the owner: `POST /v1/spend-guard/budget-leases` carves capacity out of
//! a parent agent's budgets for a child (the parent's policy decides, and the amount is held on
//! the parent in the same transaction); the child's spending counts against the lease, and so
//! against every ancestor; release gives the unspent rest back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::agreement::ids::{BudgetLeaseId, ReservationId};
use crate::api::AppState;
use crate::api::auth::{OwnerAuth, owned_agent};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery, OptionalApiJson};
use crate::api::idempotency::Write;
use crate::api::page;
use crate::api::spend_gate::{self, Spend};
use crate::governance::{ActionType, Confidence, Decision, Metadata, Request};
use crate::store::agents::AgentStatus;
use crate::store::governance::audit::{self, Actor, AuditDecision, AuditEntry, AuditKind};
use crate::store::governance::guard;
use crate::store::governance::holds::{self, Hold, HoldSource, HoldStatus};
use crate::store::governance::leases::{self, Lease, LeaseStatus, MAX_DEPTH};
use crate::store::outbox::{self, EventType};
use crate::store::{self, now};

/// The body of `POST /v1/spend-guard/budget-leases`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Whose budgets it comes out of.
    pub parent_agent_id: String,
    /// Who spends it (an agent of the same account, holding no active lease).
    pub child_agent_id: String,
    /// Its capacity in cents.
    pub amount_cents: u64,
    /// When it ends by itself (RFC 3339), if ever.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The optional body of release.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRelease {
    /// Why (at most 1,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A lease as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LeaseView {
    /// `bls_…`.
    pub id: String,
    /// Whose budgets it comes out of.
    pub parent_agent_id: String,
    /// Who spends it.
    pub child_agent_id: String,
    /// `active`, `released` or `expired`.
    pub status: LeaseStatus,
    /// Its capacity in cents.
    pub amount_cents: u64,
    /// Held or spent by the child under it.
    pub spent_cents: u64,
    /// What the child may still spend (0 once ended).
    pub remaining_cents: u64,
    /// 1 for a lease from an agent that holds none; at most 3.
    pub depth: u64,
    /// The parent's reservation that carves it out.
    pub reservation_id: String,
    /// When it ends by itself.
    pub expires_at: Option<String>,
    /// When it ended.
    pub released_at: Option<String>,
    /// Why it ended.
    pub release_reason: Option<String>,
    /// When it was granted.
    pub created_at: String,
}

/// A page of leases, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LeaseList {
    /// The leases.
    pub data: Vec<LeaseView>,
    /// The `cursor` of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query of the lease list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseQuery {
    /// Only leases this agent granted or holds.
    pub agent_id: Option<String>,
    /// Only leases in this status.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

async fn view(conn: &mut store::Conn, lease: &Lease) -> ApiResult<LeaseView> {
    let spent = holds::counted_under_lease(conn, lease.id.as_str()).await?;
    let active = lease.status == LeaseStatus::Active;
    Ok(LeaseView {
        id: lease.id.to_string(),
        parent_agent_id: lease.parent_agent_id.clone(),
        child_agent_id: lease.child_agent_id.clone(),
        status: lease.status,
        amount_cents: lease.amount_cents,
        spent_cents: spent,
        remaining_cents: if active { lease.amount_cents.saturating_sub(spent) } else { 0 },
        depth: lease.depth,
        reservation_id: lease.hold_id.clone(),
        expires_at: lease.expires_at.map(crate::time::rfc3339),
        released_at: lease.released_at.map(crate::time::rfc3339),
        release_reason: lease.release_reason.clone(),
        created_at: crate::time::rfc3339(lease.created_at),
    })
}

/// `POST /v1/spend-guard/budget-leases`: grants the child `amount_cents` of the parent's
/// budgets. The parent's policy decides on the amount (its budgets and limits bind; an
/// escalation is the owner's own call and passes) and the amount is held on the parent.
#[utoipa::path(
    post,
    path = "/v1/spend-guard/budget-leases",
    operation_id = "create_budget_lease",
    tag = "spend-guard",
    request_body = LeaseRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Granted", body = LeaseView),
        (status = 404, description = "An agent is not of the caller's account", body = crate::api::error::ErrorBody),
        (status = 409, description = "`lease_exists`: the child already spends under a lease; `agent_revoked`", body = crate::api::error::ErrorBody),
        (status = 422, description = "`policy_blocked` (the parent's budgets cannot spare it), a cycle, too deep, or a field fails validation", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    Write(ApiJson(body), idempotency): Write<ApiJson<LeaseRequest>>,
) -> ApiResult<(StatusCode, Json<LeaseView>)> {
    let started = std::time::Instant::now();
    let parent = owned_agent(&state, &account, &body.parent_agent_id).await?;
    let child = owned_agent(&state, &account, &body.child_agent_id).await?;
    if parent.id == child.id {
        return Err(ApiError::validation("child_agent_id", "an agent cannot lease to itself"));
    }
    for agent in [&parent, &child] {
        if agent.status == AgentStatus::Revoked {
            return Err(ApiError::new(ErrorCode::AgentRevoked, "the agent is revoked")
                .with_details(json!({ "agent_id": agent.id })));
        }
    }
    if body.amount_cents == 0 || body.amount_cents > crate::api::spend_request::MAX_CENTS {
        return Err(ApiError::validation(
            "amount_cents",
            "`amount_cents` must be 1 to 1,000,000,000,000",
        ));
    }
    let at = now();
    let expires_at = crate::api::time::time_param("expires_at", body.expires_at.as_deref())?;
    if expires_at.is_some_and(|e| e <= at) {
        return Err(ApiError::validation("expires_at", "`expires_at` must be in the future"));
    }
    let mut tx = state.store.begin().await?;
    // The child's lock first, then the parent's (inside the decision): every lease write takes
    // them in this order, and a child that already holds a lease is refused before the
    // parent's lock is asked for.
    spend_gate_lock(&mut tx, child.id.as_str()).await?;
    if let Some(existing) = leases::active_of(&mut tx, child.id.as_str()).await? {
        return Err(ApiError::new(
            ErrorCode::LeaseExists,
            "the child already spends under an active budget lease; release it first",
        )
        .with_details(json!({ "lease_id": existing.id })));
    }
    // Depth and cycles: walk the parent's chain of leases upward.
    let mut depth = 1;
    let mut above = leases::active_of(&mut tx, parent.id.as_str()).await?;
    while let Some(lease) = above {
        depth += 1;
        if lease.parent_agent_id == child.id.as_str() {
            return Err(ApiError::validation(
                "child_agent_id",
                "the child is an ancestor of the parent: leases cannot form a cycle",
            ));
        }
        above = leases::active_of(&mut tx, &lease.parent_agent_id).await?;
    }
    // And downward: the leases the child granted come along under the new one.
    let below = depth_below(&mut tx, child.id.as_str()).await?;
    if depth + below > MAX_DEPTH {
        return Err(ApiError::validation(
            "parent_agent_id",
            format!("leases nest at most {MAX_DEPTH} deep"),
        ));
    }
    let spend = Spend {
        account_id: account.id.to_string(),
        agent_id: parent.id.to_string(),
        kind: AuditKind::Lease,
        actor: Actor::Owner,
        subject_id: None,
        currency: "USD".to_owned(),
        confidence: Confidence::High,
        request: Request {
            action_type: ActionType::Spend,
            amount_cents: body.amount_cents,
            counterparties: vec![child.id.to_string()],
            categories: Vec::new(),
            country: None,
            at,
            metadata: Metadata::default(),
        },
        expect_policy: None,
        mandate_id: None,
        budgets_only: true,
        started,
    };
    let gated = spend_gate::decide(&mut tx, &spend).await?;
    spend_gate::store_check(&mut tx, &spend, &gated).await?;
    if gated.evaluation.decision == Decision::Block {
        tx.commit().await?;
        return Err(gated.refusal());
    }
    let id = BudgetLeaseId::generate();
    let hold = Hold {
        id: ReservationId::generate(),
        account_id: account.id.to_string(),
        agent_id: parent.id.to_string(),
        source: HoldSource::Lease,
        subject_id: Some(id.to_string()),
        status: HoldStatus::Reserved,
        amount_cents: body.amount_cents,
        captured_cents: None,
        counted_cents: body.amount_cents,
        action_type: ActionType::Spend.as_str().to_owned(),
        currency: "USD".to_owned(),
        counterparty: Some(child.id.to_string()),
        category: None,
        metadata: None,
        mandate_id: None,
        lease_id: gated.lease_id.clone(),
        approval_id: None,
        check_id: Some(gated.response.check_id.clone()),
        ttl_seconds: None,
        expires_at: None,
        counted_at: at,
        created_at: at,
        updated_at: at,
    };
    holds::insert(&mut tx, &hold, Actor::Owner.as_str()).await?;
    let lease = Lease {
        id,
        account_id: account.id.to_string(),
        parent_agent_id: parent.id.to_string(),
        child_agent_id: child.id.to_string(),
        amount_cents: body.amount_cents,
        depth,
        status: LeaseStatus::Active,
        hold_id: hold.id.to_string(),
        expires_at,
        released_at: None,
        release_reason: None,
        created_at: at,
        updated_at: at,
    };
    leases::insert(&mut tx, &lease).await?;
    let mut entry = AuditEntry::new(
        account.id.as_str(),
        Some(parent.id.as_str()),
        AuditKind::Lease,
        AuditDecision::Created,
        Actor::Owner,
        at,
    );
    entry.subject_id = Some(lease.id.to_string());
    entry.amount_cents = Some(lease.amount_cents);
    entry.counterparty = Some(child.id.to_string());
    entry.detail = json!({ "depth": depth, "check_id": gated.response.check_id });
    audit::append(&mut tx, &entry).await?;
    let data = guard::lease_event(&lease, Some(lease.amount_cents));
    for agent in [&lease.parent_agent_id, &lease.child_agent_id] {
        outbox::record_for_agent(&mut tx, agent, EventType::BudgetLeaseCreated, &data, at).await?;
    }
    let response = view(&mut tx, &lease).await?;
    idempotency.save(&mut tx, StatusCode::CREATED, &response).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(response)))
}

/// How many levels of active leases hang below `agent_id` (0 if it granted none).
async fn depth_below(tx: &mut store::Conn, agent_id: &str) -> ApiResult<u64> {
    let mut deepest = 0;
    let mut level = vec![agent_id.to_owned()];
    while !level.is_empty() && deepest <= MAX_DEPTH {
        let mut next = Vec::new();
        for agent in &level {
            for lease in leases::active_granted_by(tx, agent).await? {
                next.push(lease.child_agent_id);
            }
        }
        if !next.is_empty() {
            deepest += 1;
        }
        level = next;
    }
    Ok(deepest)
}

/// Takes `agent_id`'s decision lock (404 if it vanished).
async fn spend_gate_lock(tx: &mut store::Conn, agent_id: &str) -> ApiResult<()> {
    crate::store::governance::lock_agent(tx, agent_id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// `POST /v1/spend-guard/budget-leases/{lease_id}/release`: ends an active lease: the child's
/// open holds under it are released and the unspent rest returns to the parent. Releasing a
/// released lease answers it again; an expired one is 409 `lease_not_active`.
#[utoipa::path(
    post,
    path = "/v1/spend-guard/budget-leases/{lease_id}/release",
    operation_id = "release_budget_lease",
    tag = "spend-guard",
    params(("lease_id" = String, Path, description = "`bls_…`")),
    request_body = LeaseRelease,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Released", body = LeaseView),
        (status = 404, description = "No such lease of the caller's account", body = crate::api::error::ErrorBody),
        (status = 409, description = "`lease_not_active`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn release(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(id): ApiPath,
    Write(OptionalApiJson(body), idempotency): Write<OptionalApiJson<LeaseRelease>>,
) -> ApiResult<Json<LeaseView>> {
    let lease = leases::get(state.store.reader(), &id)
        .await?
        .filter(|l| l.account_id == account.id.as_str())
        .ok_or_else(|| ApiError::not_found("budget lease"))?;
    let reason = body.reason.unwrap_or_else(|| "released".to_owned());
    if reason.chars().count() > 1_000 {
        return Err(ApiError::validation("reason", "`reason` is at most 1,000 characters"));
    }
    let at = now();
    let mut tx = state.store.begin().await?;
    let ended =
        guard::end_lease(&mut tx, &id, LeaseStatus::Released, &reason, Actor::Owner, at).await?;
    let lease = match ended {
        Some(ended) => ended,
        None => {
            let now = leases::get_in(&mut tx, &id).await?.unwrap_or(lease);
            if now.status != LeaseStatus::Released {
                return Err(ApiError::new(ErrorCode::LeaseNotActive, "the budget lease has ended")
                    .with_details(json!({ "status": now.status.as_str() })));
            }
            now
        }
    };
    let response = view(&mut tx, &lease).await?;
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    Ok(Json(response))
}

/// `GET /v1/spend-guard/budget-leases?agent_id=&status=&limit=&cursor=`: the account's leases
/// with what each has left, newest first.
#[utoipa::path(
    get,
    path = "/v1/spend-guard/budget-leases",
    operation_id = "list_budget_leases",
    tag = "spend-guard",
    params(
        ("agent_id" = Option<String>, Query, description = "Only leases this agent granted or holds"),
        ("status" = Option<LeaseStatus>, Query, description = "Only leases in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of leases", body = LeaseList),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiQuery(query): ApiQuery<LeaseQuery>,
) -> ApiResult<Json<LeaseList>> {
    let limit = page::limit(query.limit)?;
    let status =
        page::status_filter(query.status.as_deref(), LeaseStatus::ALL, LeaseStatus::as_str)?;
    if let Some(agent) = &query.agent_id {
        owned_agent(&state, &account, agent).await?;
    }
    let cursor = query.cursor.as_deref().map(page::decode_cursor).transpose()?;
    let mut found = leases::list(
        state.store.reader(),
        account.id.as_str(),
        query.agent_id.as_deref(),
        status,
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut found, limit, |l| page::cursor_of(l.created_at, l.id.as_str()));
    let mut conn = state.store.reader().acquire().await.map_err(store::StoreError::from)?;
    let mut data = Vec::with_capacity(found.len());
    for lease in &found {
        data.push(view(&mut conn, lease).await?);
    }
    Ok(Json(LeaseList { data, next_cursor }))
}
