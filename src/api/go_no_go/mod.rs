//! `POST /v1/go-no-go`, `GET /v1/go-no-go` and `GET /v1/go-no-go/{run_id}` (the operator
//! only): start a go/no-go run in this service and read its signed evidence packet
//! (docs/go-no-go.md).
//!
//! A run is a row (`store::gonogo`), so it survives a restart and every instance serves it;
//! the evidence is gathered by a task of the instance that took the `POST` ([`run`]), one
//! section after another, each bounded in time.

mod canary;
mod health;
mod provider;
mod rollback;
mod run;
mod webhook;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::OperatorAuth;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use crate::agreement::ids::GoNoGoRunId;
use crate::gonogo::{GoNoGoSettings, Packet, Verdict};
use crate::receipts::ReceiptKey;
use crate::secret::Secret;
use crate::store::gonogo::{self as rows, Run};
use crate::store::{StoreError, now};

pub use health::Recorder;

/// A run still `running` after this many seconds is taken as abandoned (its instance stopped):
/// a new `POST` starts another run instead of answering with it.
pub const RUN_STALE_SECS: i64 = 15 * 60;

/// What a run needs beyond the API's shared state: the receipt key (signing, canary keys), the
/// settings, the store's URL (the backup) and the URL this service answers on (the canary
/// drives the service through its own API).
#[derive(Debug, Clone)]
pub struct Equipment {
    /// Signs packets; canary secrets are derived from it.
    pub receipt_key: ReceiptKey,
    /// Contacts, logs, the live-canary switch.
    pub settings: GoNoGoSettings,
    /// The store's URL (`pg_dump` reads it; never shown with its credentials).
    pub database_url: Secret,
    /// `http://127.0.0.1:<port>`: this service's own API.
    pub self_url: String,
    /// This instance's name, on the readiness samples it records.
    pub instance: String,
}

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = GoNoGoRunStatus)]
pub enum RunStatus {
    /// Gathering evidence.
    Running,
    /// The packet is written.
    Complete,
}

impl RunStatus {
    /// `running` or `complete`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => rows::RUNNING,
            RunStatus::Complete => rows::COMPLETE,
        }
    }

    /// The status stored as `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        [RunStatus::Running, RunStatus::Complete].into_iter().find(|s| s.as_str() == name)
    }
}

/// A go/no-go run.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoNoGoRun {
    /// The run (`gng_…`).
    pub run_id: String,
    /// `running` or `complete`.
    pub status: RunStatus,
    /// `go` or `no_go` once complete; `null` while running.
    #[schema(required = true)]
    pub verdict: Option<Verdict>,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; `null` while running.
    #[schema(required = true)]
    pub finished_at: Option<i64>,
    /// The signed packet once complete; `null` while running.
    #[schema(required = true)]
    pub packet: Option<Packet>,
}

impl TryFrom<Run> for GoNoGoRun {
    type Error = StoreError;

    fn try_from(run: Run) -> Result<Self, StoreError> {
        let corrupt = |column, reason: String| StoreError::Corrupt { column, reason };
        let status = RunStatus::parse(&run.status)
            .ok_or_else(|| corrupt("go_no_go_runs.status", run.status.clone()))?;
        let verdict = run
            .verdict
            .as_deref()
            .map(|v| Verdict::parse(v).ok_or_else(|| corrupt("go_no_go_runs.verdict", v.into())))
            .transpose()?;
        let packet = run
            .packet
            .as_deref()
            .map(|p| {
                serde_json::from_str(p).map_err(|e| corrupt("go_no_go_runs.packet", e.to_string()))
            })
            .transpose()?;
        Ok(GoNoGoRun {
            run_id: run.id,
            status,
            verdict,
            started_at: run.started_at,
            finished_at: run.finished_at,
            packet,
        })
    }
}

/// `POST /v1/go-no-go`: starts a run (or answers with the one already running).
#[utoipa::path(
    post,
    path = "/v1/go-no-go",
    operation_id = "start_go_no_go",
    tag = "go-no-go",
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "The run, `running`: poll `GET /v1/go-no-go` until `complete`. A run already running is answered instead of starting another", body = GoNoGoRun),
        (status = 404, description = "Not the operator: the route does not exist for this caller", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    OperatorAuth(account): OperatorAuth,
) -> ApiResult<(StatusCode, Json<GoNoGoRun>)> {
    let started_at = now();
    let mut tx = state.store.begin().await?;
    if let Some(running) = rows::running_since(&mut tx, started_at - RUN_STALE_SECS).await? {
        return Ok((StatusCode::ACCEPTED, Json(running.try_into()?)));
    }
    let id = GoNoGoRunId::generate();
    rows::insert_run(&mut tx, id.as_str(), account.id.as_str(), started_at).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(run_id = %id, "go/no-go run started");
    tokio::spawn(run::run(state.clone(), id.to_string(), account, started_at));
    let view = GoNoGoRun {
        run_id: id.to_string(),
        status: RunStatus::Running,
        verdict: None,
        started_at,
        finished_at: None,
        packet: None,
    };
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// `GET /v1/go-no-go`: the latest run, with its packet once complete.
#[utoipa::path(
    get,
    path = "/v1/go-no-go",
    operation_id = "latest_go_no_go",
    tag = "go-no-go",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The latest run", body = GoNoGoRun),
        (status = 404, description = "No run yet, or not the operator", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn latest(
    State(state): State<AppState>,
    OperatorAuth(_): OperatorAuth,
) -> ApiResult<Json<GoNoGoRun>> {
    let run = rows::latest_run(state.store.reader()).await?;
    Ok(Json(run.ok_or_else(|| ApiError::not_found("go/no-go run"))?.try_into()?))
}

/// `GET /v1/go-no-go/{run_id}`: one run.
#[utoipa::path(
    get,
    path = "/v1/go-no-go/{run_id}",
    operation_id = "get_go_no_go",
    tag = "go-no-go",
    security(("bearerAuth" = [])),
    params(("run_id" = String, Path, description = "The run (`gng_…`)")),
    responses(
        (status = 200, description = "The run", body = GoNoGoRun),
        (status = 404, description = "No such run, or not the operator", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    OperatorAuth(_): OperatorAuth,
    ApiPath(run_id): ApiPath,
) -> ApiResult<Json<GoNoGoRun>> {
    let run = rows::get_run(state.store.reader(), &run_id).await?;
    Ok(Json(run.ok_or_else(|| ApiError::not_found("go/no-go run"))?.try_into()?))
}
