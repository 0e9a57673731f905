//! `POST /risk/check` (seed 004): the screening verdict on one address, from the operator's
//! denylist and the on-chain sanctions oracle (the same screener that screens activations),
//! saying which list has the address and when the lists were asked.
//!
//! Verdicts are kept briefly in memory ([`crate::screening::cache`]), so a burst of checks of
//! one counterparty asks the oracle once. An oracle that cannot answer is 503
//! `screening_unavailable`, never a clean verdict, even when activation screening is configured
//! fail-open; an address the denylist has is answered sanctioned all the same.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Checker;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::ApiJson;
use super::time::rfc3339;
use super::validate::wallet;
use crate::screening::cache::Verdict;
use crate::screening::{OracleStatus, ScreeningError, ScreeningSource};

/// The body of `POST /risk/check`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"address": "0x8576aCC5C05D6Ce88f4e49bf65BdF0C62F91353C"}))]
pub struct RiskCheckRequest {
    /// The address to screen.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub address: String,
}

/// The screening verdict on one address.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RiskCheck, example = json!({"address": "0x8576aCC5C05D6Ce88f4e49bf65BdF0C62F91353C", "sanctioned": true, "source": "oracle", "sources_checked": ["denylist", "oracle"], "oracle": "checked", "checked_at": "2026-01-01T00:00:00Z", "cached": false}))]
pub struct RiskCheck {
    /// The address, checksummed.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub address: String,
    /// Whether a list has it.
    pub sanctioned: bool,
    /// The list that has it (`denylist` first when both do); `null` when none does.
    #[schema(required = true)]
    pub source: Option<ScreeningSource>,
    /// The lists asked, in order.
    pub sources_checked: Vec<ScreeningSource>,
    /// `checked`, or `not_configured` when the deployment has no oracle; `unavailable` only on
    /// a sanctioned verdict the denylist gave while the oracle was down.
    pub oracle: OracleStatus,
    /// When the lists were asked (RFC 3339): earlier than now for a kept verdict.
    pub checked_at: String,
    /// Whether this verdict was kept from an earlier check (for at most 30 seconds).
    pub cached: bool,
}

impl RiskCheck {
    fn new(verdict: &Verdict, cached: bool) -> Self {
        RiskCheck {
            address: verdict.address.to_checksum(None),
            sanctioned: verdict.sanctioned,
            source: verdict.source,
            sources_checked: verdict.sources.clone(),
            oracle: verdict.oracle,
            checked_at: rfc3339(i64::try_from(verdict.checked_at).unwrap_or(i64::MAX)),
            cached,
        }
    }
}

/// `POST /risk/check`: screens an address against the denylist and the sanctions oracle.
///
/// Any agent key or the owner credential; it changes nothing, so a retry simply checks again
/// (or answers the kept verdict).
#[utoipa::path(
    post,
    path = "/risk/check",
    operation_id = "risk_check",
    tag = "risk",
    request_body = RiskCheckRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The verdict", body = RiskCheck),
        (status = 422, description = "`validation_error`: not an address (`details.field`)", body = crate::api::error::ErrorBody),
        (status = 503, description = "`screening_unavailable`: a list could not answer; never read as clean", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn check(
    State(state): State<AppState>,
    _checker: Checker,
    ApiJson(body): ApiJson<RiskCheckRequest>,
) -> ApiResult<Json<RiskCheck>> {
    let address = wallet("address", &body.address)?;
    let now = Instant::now();
    if let Some(kept) = state.risk_verdicts.get(address, now) {
        return Ok(Json(RiskCheck::new(&kept, true)));
    }
    let verdict = state.screener.verdict(address).await.map_err(|error| {
        tracing::warn!(%address, %error, "risk check: screening unavailable");
        let message = match error {
            ScreeningError::Unavailable(_) => {
                "the sanctions oracle is unavailable; no verdict, retry later"
            }
            ScreeningError::Denylist(_) => "the denylist is unreadable; no verdict, retry later",
        };
        ApiError::new(ErrorCode::ScreeningUnavailable, message)
    })?;
    state.risk_verdicts.put(verdict.clone(), now);
    Ok(Json(RiskCheck::new(&verdict, false)))
}
