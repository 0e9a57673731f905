//! `GET /v1/spend-guard/usage/summary`: what the spend guard did in a window — decisions by
//! kind and outcome, cents reserved, captured, released and expired, approvals by outcome, and
//! leases — in total and grouped by agent, UTC day or decision.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::auth::Checker;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::ApiQuery;
use crate::api::time::time_param;
use crate::store::governance::usage::{self, Tally};

/// The longest window a summary covers: a year and a day.
const MAX_WINDOW_SECS: i64 = 366 * 86_400;
/// The window when none is given: the last 30 days.
const DEFAULT_WINDOW_SECS: i64 = 30 * 86_400;

/// The query of the usage summary.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// At or after (RFC 3339; default 30 days before `to`).
    pub from: Option<String>,
    /// Before (RFC 3339; default now).
    pub to: Option<String>,
    /// Only this agent's (an agent key sees only its own).
    pub agent_id: Option<String>,
    /// `agent`, `day` or `decision`.
    pub group_by: Option<String>,
}

/// Cents by what happened to reservations.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReservationTotals {
    /// Held (a reservation made, approved, or held again after a reorganisation).
    pub reserved_cents: u64,
    /// Captured.
    pub captured_cents: u64,
    /// Released before being spent.
    pub released_cents: u64,
    /// Expired before being captured or released.
    pub expired_cents: u64,
    /// Given back after capture (a buyer's unused deposit).
    pub credited_cents: u64,
    /// Reservation changes by event.
    pub events: BTreeMap<String, u64>,
}

/// Leases by status, as granted in the window.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct LeaseGrantTotals {
    /// Leases granted.
    pub granted: u64,
    /// Their capacity in cents.
    pub granted_cents: u64,
    /// Of those, by status now.
    pub by_status: BTreeMap<String, u64>,
}

/// One summary: totals, or one group's.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SpendTotals {
    /// Decisions by kind (`check`, `reservation`, `activation`, `lease`, `intent`) and outcome
    /// (`allow`, `block`, `escalate`).
    pub decisions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Reservation amounts.
    pub reservations: ReservationTotals,
    /// Approvals opened in the window, by status now.
    pub approvals: BTreeMap<String, u64>,
    /// Leases granted in the window.
    pub leases: LeaseGrantTotals,
}

impl SpendTotals {
    fn add(&mut self, tally: &Tally) {
        match tally.section.as_str() {
            "decision" => {
                *self
                    .decisions
                    .entry(tally.kind.clone())
                    .or_default()
                    .entry(tally.outcome.clone())
                    .or_default() += tally.count;
            }
            "reservation" => {
                let r = &mut self.reservations;
                let cents = match tally.outcome.as_str() {
                    "reserved" | "reheld" => Some(&mut r.reserved_cents),
                    "captured" => Some(&mut r.captured_cents),
                    "released" | "rejected" => Some(&mut r.released_cents),
                    "expired" => Some(&mut r.expired_cents),
                    "credited" => Some(&mut r.credited_cents),
                    _ => None,
                };
                if let Some(cents) = cents {
                    *cents = cents.saturating_add(tally.cents);
                }
                *r.events.entry(tally.outcome.clone()).or_default() += tally.count;
            }
            "approval" => *self.approvals.entry(tally.outcome.clone()).or_default() += tally.count,
            _ => {
                let l = &mut self.leases;
                l.granted += tally.count;
                l.granted_cents = l.granted_cents.saturating_add(tally.cents);
                *l.by_status.entry(tally.outcome.clone()).or_default() += tally.count;
            }
        }
    }
}

/// One group of the summary.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SpendSummaryGroup {
    /// The agent id, the day (`YYYY-MM-DD`, UTC) or the decision.
    pub key: String,
    /// The group's summary.
    #[serde(flatten)]
    pub summary: SpendTotals,
}

/// The usage summary.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SpendSummary {
    /// The window's start (RFC 3339).
    pub from: String,
    /// The window's end.
    pub to: String,
    /// The agent it is limited to, if any.
    pub agent_id: Option<String>,
    /// How `groups` is grouped, if it is.
    pub group_by: Option<String>,
    /// Everything in the window.
    pub totals: SpendTotals,
    /// Per group, in key order (empty without `group_by`; by `decision`, only decisions).
    pub groups: Vec<SpendSummaryGroup>,
}

/// `GET /v1/spend-guard/usage/summary?from=&to=&agent_id=&group_by=agent|day|decision`.
#[utoipa::path(
    get,
    path = "/v1/spend-guard/usage/summary",
    operation_id = "spend_guard_usage_summary",
    tag = "spend-guard",
    params(
        ("from" = Option<String>, Query, description = "At or after (RFC 3339; default 30 days before `to`)"),
        ("to" = Option<String>, Query, description = "Before (RFC 3339; default now)"),
        ("agent_id" = Option<String>, Query, description = "Only this agent's"),
        ("group_by" = Option<String>, Query, description = "`agent`, `day` or `decision`"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The summary", body = SpendSummary),
        (status = 404, description = "`agent_id` is not an agent of the caller", body = crate::api::error::ErrorBody),
        (status = 422, description = "A bad time, window or `group_by`", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn summary(
    State(state): State<AppState>,
    checker: Checker,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> ApiResult<Json<SpendSummary>> {
    let group_by = query.group_by.as_deref();
    if group_by.is_some_and(|g| !["agent", "day", "decision"].contains(&g)) {
        return Err(ApiError::validation(
            "group_by",
            "`group_by` must be `agent`, `day` or `decision`",
        ));
    }
    let to = time_param("to", query.to.as_deref())?.unwrap_or_else(|| crate::store::now() + 1);
    let from = time_param("from", query.from.as_deref())?.unwrap_or(to - DEFAULT_WINDOW_SECS);
    if from >= to || to - from > MAX_WINDOW_SECS {
        return Err(ApiError::validation(
            "from",
            "the window must be non-empty and at most 366 days",
        ));
    }
    let (account, agent_id) = checker.listing(&state, query.agent_id.as_deref()).await?;
    let tallies =
        usage::tallies(state.store.reader(), &account, agent_id.as_deref(), from, to).await?;
    let mut totals = SpendTotals::default();
    let mut groups: BTreeMap<String, SpendTotals> = BTreeMap::new();
    for tally in &tallies {
        totals.add(tally);
        let key = match group_by {
            Some("agent") => Some(tally.agent_id.clone()),
            Some("day") => Some(crate::time::rfc3339(tally.day * 86_400)[..10].to_owned()),
            Some("decision") if tally.section == "decision" => Some(tally.outcome.clone()),
            _ => None,
        };
        if let Some(key) = key {
            groups.entry(key).or_default().add(tally);
        }
    }
    Ok(Json(SpendSummary {
        from: crate::time::rfc3339(from),
        to: crate::time::rfc3339(to),
        agent_id,
        group_by: group_by.map(str::to_owned),
        totals,
        groups: groups
            .into_iter()
            .map(|(key, summary)| SpendSummaryGroup { key, summary })
            .collect(),
    }))
}
