//! The numbers behind the console's charts: activations and settlements per hour over the last
//! day, relayer gas spent per day over the last week, and approvals waiting now.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::auth::OwnerAuth;
use crate::api::error::ApiResult;
use crate::api::time::rfc3339;
use crate::store::outbox::EventType;
use crate::store::{console, now};

/// Hours in the per-hour series.
const HOURS: i64 = 24;
/// Days in the per-day series.
const DAYS: i64 = 7;

/// `GET /v1/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// The last 24 hours, oldest first, the current hour last.
    pub hourly: Vec<HourCount>,
    /// The last 7 days (UTC), oldest first, today last.
    pub gas_per_day: Vec<DayGas>,
    /// Approvals of the account waiting for a decision now.
    pub approvals_waiting: u64,
    /// Whether the gas figures are the whole deployment's (the operator) or only the account's
    /// agreements.
    pub scope: StatsScope,
}

crate::vocab::string_enum!(
    /// Whose relayer gas the stats count.
    StatsScope {
        /// Only transactions of the caller's agreements.
        Account = "account",
        /// Every transaction the relayer sent (the operator).
        Deployment = "deployment",
    }
);

/// Activations and settlements confirmed in one hour.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HourCount {
    /// The hour's start (RFC 3339).
    pub hour: String,
    /// Activations confirmed on-chain.
    pub activations: u64,
    /// Agreements settled (both sides paid out).
    pub settlements: u64,
}

/// Relayer gas spent on one UTC day.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayGas {
    /// The day's start (RFC 3339).
    pub day: String,
    /// Wei spent: gas used × effective gas price of each mined transaction (decimal string).
    pub gas_wei: String,
    /// Transactions counted.
    pub transactions: u64,
}

/// `GET /v1/stats`: the account's activity; the operator's gas figure covers the deployment.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "console_stats",
    tag = "console",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Counts behind the console's charts", body = Stats),
    ),
)]
pub async fn stats(
    State(state): State<AppState>,
    OwnerAuth(account): OwnerAuth,
) -> ApiResult<Json<Stats>> {
    let pool = state.store.reader();
    let at = now();
    let this_hour = at - at.rem_euclid(3_600);
    let first_hour = this_hour - (HOURS - 1) * 3_600;
    let mut hourly: Vec<HourCount> = (0..HOURS)
        .map(|i| HourCount {
            hour: rfc3339(first_hour + i * 3_600),
            activations: 0,
            settlements: 0,
        })
        .collect();
    let mine = Some(account.id.as_str());
    for at in console::event_times(pool, mine, EventType::ActivationConfirmed, first_hour).await? {
        if let Some(slot) = hourly.get_mut(((at - first_hour) / 3_600) as usize) {
            slot.activations += 1;
        }
    }
    for at in console::event_times(pool, mine, EventType::AgreementSettled, first_hour).await? {
        if let Some(slot) = hourly.get_mut(((at - first_hour) / 3_600) as usize) {
            slot.settlements += 1;
        }
    }

    let operator = state.operator_account.as_ref() == Some(&account.id);
    let scope = if operator { StatsScope::Deployment } else { StatsScope::Account };
    let today = at - at.rem_euclid(86_400);
    let first_day = today - (DAYS - 1) * 86_400;
    let mut days: Vec<(u128, u64)> = vec![(0, 0); DAYS as usize];
    for (mined_at, wei) in
        console::gas_spent(pool, if operator { None } else { mine }, first_day).await?
    {
        if let Some(slot) = days.get_mut(((mined_at - first_day) / 86_400) as usize) {
            slot.0 = slot.0.saturating_add(wei);
            slot.1 += 1;
        }
    }
    let gas_per_day = days
        .iter()
        .enumerate()
        .map(|(i, (wei, n))| DayGas {
            day: rfc3339(first_day + i as i64 * 86_400),
            gas_wei: wei.to_string(),
            transactions: *n,
        })
        .collect();

    Ok(Json(Stats {
        hourly,
        gas_per_day,
        approvals_waiting: console::approvals_waiting(pool, account.id.as_str(), at).await?,
        scope,
    }))
}
