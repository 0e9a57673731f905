//! The audit log and each agent's violations, for the owner: `GET /v1/audit` and
//! `GET /agents/{agent_id}/violations`, cursor-paged, newest first.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::AppState;
use crate::api::auth::{OwnerAuth, owned_agent};
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiPath, ApiQuery};
use crate::api::page;
use crate::api::time::time_param;
use crate::store::governance::audit::{
    self, Actor, AuditDecision, AuditEntry, AuditFilter, AuditKind,
};

/// One audit row as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    /// `aud_…`.
    pub id: String,
    /// The agent concerned.
    pub agent_id: Option<String>,
    /// `check`, `activation`, `approval`, `halt`, `policy` or `mandate`.
    pub kind: AuditKind,
    /// `allow`, `block`, `escalate`, `approved`, `rejected`, `expired`, `halted`, `resumed`,
    /// `updated`, `created` or `revoked`.
    pub decision: AuditDecision,
    /// `owner`, `agent` or `system`.
    pub actor: Actor,
    /// The check, agreement, approval, agent, policy or mandate it is about.
    pub subject_id: Option<String>,
    /// The action type of a spending decision.
    pub action_type: Option<String>,
    /// Its amount in cents.
    pub amount_cents: Option<u64>,
    /// Its currency.
    pub currency: Option<String>,
    /// Its counterparty.
    pub counterparty: Option<String>,
    /// Why, when a rule decided.
    pub reason_code: Option<String>,
    /// The rule that decided.
    pub violated_rule_id: Option<String>,
    /// The policy version evaluated or written.
    pub policy_version: Option<u64>,
    /// Message, every rule that fired, reasons.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// UTC, RFC 3339.
    pub created_at: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(e: &AuditEntry) -> Self {
        AuditView {
            id: e.id.to_string(),
            agent_id: e.agent_id.clone(),
            kind: e.kind,
            decision: e.decision,
            actor: e.actor,
            subject_id: e.subject_id.clone(),
            action_type: e.action_type.clone(),
            amount_cents: e.amount_cents,
            currency: e.currency.clone(),
            counterparty: e.counterparty.clone(),
            reason_code: e.reason_code.clone(),
            violated_rule_id: e.violated_rule_id.clone(),
            policy_version: e.policy_version,
            detail: e.detail.clone(),
            created_at: crate::time::rfc3339(e.created_at),
        }
    }
}

/// A page of audit rows, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    /// The rows.
    pub data: Vec<AuditView>,
    /// The `cursor` of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/audit`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this agent's rows.
    pub agent_id: Option<String>,
    /// Only rows with this decision.
    pub decision: Option<String>,
    /// Only rows of this kind.
    pub kind: Option<String>,
    /// At or after (RFC 3339).
    pub from: Option<String>,
    /// Before (RFC 3339).
    pub to: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The query of `GET /agents/{agent_id}/violations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViolationQuery {
    /// At or after (RFC 3339).
    pub from: Option<String>,
    /// Before (RFC 3339).
    pub to: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An RFC 3339 time of a query, as unix seconds.
async fn page_of(
    state: &AppState,
    account: &str,
    filter: AuditFilter,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<AuditList> {
    let limit = page::limit(limit)?;
    let cursor = cursor.map(page::decode_cursor).transpose()?;
    let mut found = audit::list(
        state.store.reader(),
        account,
        &filter,
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut found, limit, |e| page::cursor_of(e.created_at, e.id.as_str()));
    Ok(AuditList { data: found.iter().map(AuditView::from).collect(), next_cursor })
}

/// `GET /v1/audit?agent_id=&decision=&kind=&from=&to=`: the account's audit log.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "list_audit",
    tag = "governance",
    params(
        ("agent_id" = Option<String>, Query, description = "Only this agent's rows"),
        ("decision" = Option<AuditDecision>, Query, description = "Only rows with this decision"),
        ("kind" = Option<AuditKind>, Query, description = "Only rows of this kind"),
        ("from" = Option<String>, Query, description = "At or after (RFC 3339)"),
        ("to" = Option<String>, Query, description = "Before (RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "A page of audit rows, newest first", body = AuditList)),
)]
pub async fn list(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    if let Some(agent_id) = &query.agent_id {
        owned_agent(&state, &account, agent_id).await?;
    }
    let decision = query
        .decision
        .as_deref()
        .map(|d| {
            AuditDecision::parse(d).ok_or_else(|| {
                ApiError::validation(
                    "decision",
                    "`decision` is not a decision the audit log records",
                )
            })
        })
        .transpose()?;
    let kind = query
        .kind
        .as_deref()
        .map(|k| {
            AuditKind::parse(k).ok_or_else(|| {
                ApiError::validation("kind", "`kind` is not a kind the audit log records")
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        agent_id: query.agent_id.clone(),
        decisions: decision.into_iter().collect(),
        kinds: kind.into_iter().collect(),
        from: time_param("from", query.from.as_deref())?,
        to: time_param("to", query.to.as_deref())?,
    };
    Ok(Json(
        page_of(&state, account.id.as_str(), filter, query.limit, query.cursor.as_deref()).await?,
    ))
}

/// `GET /agents/{agent_id}/violations`: the agent's blocked and escalated spends (checks and
/// activations), newest first.
#[utoipa::path(
    get,
    path = "/agents/{agent_id}/violations",
    operation_id = "list_violations",
    tag = "governance",
    params(
        ("agent_id" = String, Path, description = "An agent of the caller's account"),
        ("from" = Option<String>, Query, description = "At or after (RFC 3339)"),
        ("to" = Option<String>, Query, description = "Before (RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "A page of violations, newest first", body = AuditList)),
)]
pub async fn violations(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(agent_id): ApiPath,
    ApiQuery(query): ApiQuery<ViolationQuery>,
) -> ApiResult<Json<AuditList>> {
    owned_agent(&state, &account, &agent_id).await?;
    let filter = AuditFilter {
        agent_id: Some(agent_id),
        decisions: vec![AuditDecision::Block, AuditDecision::Escalate],
        kinds: vec![AuditKind::Check, AuditKind::Activation, AuditKind::Reservation],
        from: time_param("from", query.from.as_deref())?,
        to: time_param("to", query.to.as_deref())?,
    };
    Ok(Json(
        page_of(&state, account.id.as_str(), filter, query.limit, query.cursor.as_deref()).await?,
    ))
}
