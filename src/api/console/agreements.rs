//! The owner's view of agreements: every agreement where a party is an agent of the account
//! (filtered by status, paged), and one agreement's timeline of events and relayer attempts.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::agreement::status::AgreementStatus;
use crate::api::AppState;
use crate::api::agreement_view::{Agreement, AgreementEvent};
use crate::api::auth::OwnerAuth;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiPath, ApiQuery};
use crate::api::page;
use crate::api::time::rfc3339;
use crate::store::agents::{self, Account};
use crate::store::agreements::{self, AgreementRecord};
use crate::store::attempts::AttemptStatus;
use crate::store::console::{self, AgreementAttempt};
use crate::store::jobs::{JobKind, JobStatus};
use crate::store::outbox;

/// `?status=&limit=&cursor=` of the owner's agreement list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgreementQuery {
    /// Only agreements in this status (`proposed`, `active`, …).
    pub status: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of the account's agreements.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerAgreementList {
    /// Newest first.
    pub agreements: Vec<Agreement>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/agreements`: the agreements where a party is an agent of the caller's account.
#[utoipa::path(
    get,
    path = "/v1/agreements",
    operation_id = "list_account_agreements",
    tag = "console",
    params(AgreementQuery),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The account's agreements, newest first", body = OwnerAgreementList),
        (status = 422, description = "A bad status, limit or cursor", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiQuery(query): ApiQuery<AgreementQuery>,
) -> ApiResult<Json<OwnerAgreementList>> {
    let status = page::status_filter(
        query.status.as_deref().filter(|s| !s.is_empty()),
        AgreementStatus::ALL,
        AgreementStatus::as_str,
    )?;
    let limit = page::limit(query.limit)?;
    let cursor = query.cursor.as_deref().map(page::decode_cursor).transpose()?;
    let mut records = agreements::list_for_account(
        state.store.reader(),
        account.id.as_str(),
        status.map(AgreementStatus::as_str),
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut records, limit, |r| page::cursor_of(r.created_at, r.id.as_str()));
    Ok(Json(OwnerAgreementList {
        agreements: records.iter().map(Agreement::from).collect(),
        next_cursor,
    }))
}

/// One agreement's history: what happened to it and every transaction the relayer sent for it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementTimeline {
    /// The agreement now.
    pub agreement: Agreement,
    /// Its status changes from the outbox, oldest first.
    pub events: Vec<AgreementEvent>,
    /// Every relayer attempt of every job carrying it, oldest first.
    pub transactions: Vec<TimelineTransaction>,
}

/// One signed relayer transaction of an agreement.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineTransaction {
    /// The job it carried.
    pub job_id: String,
    /// What the job does.
    pub job_kind: JobKind,
    /// Where the job stands.
    pub job_status: JobStatus,
    /// The transaction hash.
    pub tx_hash: String,
    /// The relayer key that signed it.
    pub signer: String,
    /// Its nonce.
    pub nonce: u64,
    /// EIP-1559 fee cap, wei (decimal string).
    pub max_fee_per_gas: String,
    /// EIP-1559 tip cap, wei (decimal string).
    pub max_priority_fee_per_gas: String,
    /// Where this attempt stands.
    pub status: AttemptStatus,
    /// The block it was mined in.
    #[schema(required = true)]
    pub block_number: Option<u64>,
    /// Gas used, once mined.
    #[schema(required = true)]
    pub gas_used: Option<u64>,
    /// Effective gas price, wei (decimal string), once mined.
    #[schema(required = true)]
    pub effective_gas_price: Option<String>,
    /// When it was signed and saved (RFC 3339).
    pub created_at: String,
    /// When the node took it (RFC 3339).
    #[schema(required = true)]
    pub broadcast_at: Option<String>,
}

/// `GET /v1/agreements/{agreement_id}/timeline`: the owner's view of one agreement.
#[utoipa::path(
    get,
    path = "/v1/agreements/{agreement_id}/timeline",
    operation_id = "agreement_timeline",
    tag = "console",
    params(("agreement_id" = String, Path, description = "The agreement")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The agreement, its events and its transactions", body = AgreementTimeline),
        (status = 404, description = "No agreement of this account has this id", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn timeline(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<AgreementTimeline>> {
    let record = owned_agreement(&state, &account, &id).await?;
    let events = outbox::for_agreement(state.store.reader(), &record.id).await?;
    let attempts = console::attempts_of_agreement(state.store.reader(), &record.id).await?;
    Ok(Json(AgreementTimeline {
        agreement: Agreement::from(&record),
        events: events
            .iter()
            .map(|e| AgreementEvent {
                agreement_id: record.id.clone(),
                created_at: rfc3339(e.created_at),
                data: e.data.clone(),
                id: e.id.to_string(),
                event_type: e.event_type,
            })
            .collect(),
        transactions: attempts.iter().map(TimelineTransaction::from).collect(),
    }))
}

impl From<&AgreementAttempt> for TimelineTransaction {
    fn from(a: &AgreementAttempt) -> Self {
        Self {
            job_id: a.attempt.job_id.to_string(),
            job_kind: a.job_kind,
            job_status: a.job_status,
            tx_hash: a.attempt.tx_hash.to_string(),
            signer: a.attempt.signer.to_string(),
            nonce: a.attempt.nonce,
            max_fee_per_gas: a.attempt.max_fee_per_gas.to_string(),
            max_priority_fee_per_gas: a.attempt.max_priority_fee_per_gas.to_string(),
            status: a.attempt.status,
            block_number: a.attempt.block_number,
            gas_used: a.gas_used,
            effective_gas_price: a.effective_gas_price.map(|p| p.to_string()),
            created_at: rfc3339(a.created_at),
            broadcast_at: a.broadcast_at.map(rfc3339),
        }
    }
}

/// The agreement `id` when a party is an agent of `account`; 404 otherwise, so ids of other
/// accounts cannot be probed.
async fn owned_agreement(
    state: &AppState,
    account: &Account,
    id: &str,
) -> ApiResult<AgreementRecord> {
    let record = agreements::get(state.store.reader(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("agreement"))?;
    for party in [record.buyer_agent_id.as_str(), record.seller_agent_id.as_str()] {
        let agent = agents::get_agent(state.store.reader(), party).await?;
        if agent.is_some_and(|agent| agent.account_id == account.id) {
            return Ok(record.clone());
        }
    }
    Err(ApiError::not_found("agreement"))
}
