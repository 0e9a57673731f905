//! Usage: the seller records delivered units, the buyer signs cumulative vouchers over them.

use alloy::primitives::{B256, Bytes, U256};
use alloy::sol_types::SolStruct;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::view::{Usage, UsageRecorded};
use super::{fixed_terms, party_of, require_usage_open, wrong_party};
use crate::agreement::settlement::Party;
use crate::api::AppState;
use crate::api::agreement_access::load_for;
use crate::api::auth::AgentAuth;
use crate::api::document_number::DocumentNumber;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::idempotency::Write;
use crate::api::signature::signature_error;
use crate::api::typed_data_view::TypedData;
use crate::escrow::package::typed_data_json;
use crate::escrow::typed_data::UsageVoucher;
use crate::escrow::verify;
use crate::store::agreements::{self, AgreementRecord};
use crate::store::outbox::EventType;
use crate::store::settlement as store;
use crate::store::{StoreError, now, outbox};

/// The body of `POST …/record-usage`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"units": 40, "description": "40 search calls"}))]
pub struct RecordUsage {
    /// Units delivered since the last record (at least 1). A count the seller states, not a
    /// value from a signed document, so a JSON number only.
    pub units: u64,
    /// What was delivered (optional, at most 500 characters).
    #[serde(default)]
    pub description: Option<String>,
}

/// `record`'s usage, with the `UsageVoucher` document to sign when recorded usage exceeds the
/// best voucher.
fn usage_of(state: &AppState, record: &AgreementRecord, key: B256) -> Usage {
    let voucher_to_sign = (record.usage_units > record.voucher_units).then(|| {
        let voucher =
            UsageVoucher { agreementKey: key, cumulativeUnits: U256::from(record.usage_units) };
        TypedData::from(typed_data_json(&voucher, &state.chain.escrow_domain()))
    });
    Usage::new(record, voucher_to_sign)
}

/// `POST …/record-usage` (seller): adds delivered units. The units are a delta, so an
/// `Idempotency-Key` is required: a retry must not count the delivery twice.
#[utoipa::path(
    post,
    path = "/usage-agreements/{agreement_id}/record-usage",
    operation_id = "record_usage",
    tag = "usage",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
        ("Idempotency-Key" = String, Header, description = "Required: recorded units add up, so only a keyed retry is safe"),
    ),
    request_body = RecordUsage,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Usage recorded", body = UsageRecorded),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn record_usage(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<RecordUsage>>,
) -> ApiResult<Response> {
    let units = body.units;
    let record = load_for(&state, &agent, &id).await?;
    if party_of(&record, &agent) != Party::Seller {
        return Err(wrong_party("only the seller records usage"));
    }
    idempotency.require(
        "recorded units add up, so `record-usage` needs an `Idempotency-Key` to be retried safely",
    )?;
    if units == 0 {
        return Err(ApiError::validation("units", "`units` must be at least 1"));
    }
    if body.description.as_ref().is_some_and(|d| d.chars().count() > 500 || d.contains('\0')) {
        return Err(ApiError::validation(
            "description",
            "`description` must be at most 500 characters, without NUL",
        ));
    }
    require_usage_open(&record, "given usage")?;
    let (_, key) = fixed_terms(&record)?;
    let at = now();
    let mut tx = state.store.begin().await?;
    let total = match agreements::record_usage(&mut tx, &record.id, units, at).await {
        Ok(total) => total,
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                ErrorCode::UsageExceedsQuantity,
                "these units would take recorded usage past the agreement's quantity",
            )
            .with_details(json!({
                "quantity": record.quantity,
                "recorded_units": record.usage_units,
                "remaining_units": record.quantity.saturating_sub(record.usage_units),
            })));
        }
        Err(other) => return Err(other.into()),
    };
    let record_id = store::insert_usage_record(
        &mut tx,
        &record.id,
        units,
        total,
        body.description.as_deref(),
        at,
    )
    .await?;
    let data = json!({ "usage_record_id": record_id, "units": units, "recorded_units": total });
    outbox::record(&mut tx, Some(&record.id), EventType::UsageRecorded, &data, at).await?;
    let updated = agreements::get_in(&mut tx, record.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("agreement vanished"))?;
    let response =
        UsageRecorded::new(usage_of(&state, &updated, key), record_id.to_string(), units);
    idempotency.save(&mut tx, StatusCode::CREATED, &response).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

/// `GET …/usage`: recorded usage, the buyer's best voucher, and the voucher to sign next.
#[utoipa::path(
    get,
    path = "/usage-agreements/{agreement_id}/usage",
    operation_id = "get_usage",
    tag = "usage",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Usage and vouchers", body = Usage),
        (status = 409, description = "The current state does not allow it, or a concurrent duplicate", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn usage(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<Usage>> {
    let record = load_for(&state, &agent, &id).await?;
    let (_, key) = fixed_terms(&record)?;
    Ok(Json(usage_of(&state, &record, key)))
}

/// The body of `POST …/usage-vouchers`: a `UsageVoucher` the buyer signed.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cumulative_units": 40, "signature": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a1b"}))]
pub struct SubmitVoucher {
    /// The voucher's `cumulativeUnits`: usage in all, not since the last voucher (a number, or
    /// the decimal string of the signed document).
    pub cumulative_units: DocumentNumber,
    /// The buyer's signature of the `UsageVoucher` document.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub signature: Bytes,
}

/// `POST …/usage-vouchers` (buyer): keeps the voucher if it is the highest so far. The same
/// voucher again changes nothing and answers the same; a lower one is refused.
#[utoipa::path(
    post,
    path = "/usage-agreements/{agreement_id}/usage-vouchers",
    operation_id = "submit_voucher",
    tag = "usage",
    params(
        ("agreement_id" = String, Path, description = "The agreement"),
    ),
    request_body = SubmitVoucher,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The voucher was kept (or was already)", body = Usage),
        (status = 403, description = "The caller is not the party allowed to do this", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain or screening is unavailable, or the request timed out", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn submit_voucher(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<SubmitVoucher>>,
) -> ApiResult<Response> {
    let cumulative_units = body.cumulative_units.get("cumulative_units")?;
    let record = load_for(&state, &agent, &id).await?;
    if party_of(&record, &agent) != Party::Buyer {
        return Err(wrong_party("only the buyer signs usage vouchers"));
    }
    require_usage_open(&record, "given vouchers")?;
    let (terms, key) = fixed_terms(&record)?;
    if cumulative_units == 0 {
        return Err(ApiError::validation(
            "cumulative_units",
            "`cumulative_units` must be at least 1",
        ));
    }
    if cumulative_units > terms.quantity {
        return Err(ApiError::new(
            ErrorCode::UnitsExceedQuantity,
            "a voucher cannot attest more units than the agreement's quantity",
        )
        .with_details(
            json!({ "quantity": terms.quantity, "cumulative_units": cumulative_units }),
        ));
    }
    let voucher = UsageVoucher { agreementKey: key, cumulativeUnits: U256::from(cumulative_units) };
    let digest = voucher.eip712_signing_hash(&state.chain.escrow_domain());
    verify::verify_signature(&state.chain.provider, terms.buyer, digest, &body.signature)
        .await
        .map_err(|e| signature_error("usage_voucher", terms.buyer, e))?;
    if cumulative_units < record.voucher_units {
        return Err(ApiError::new(
            ErrorCode::VoucherRegression,
            "vouchers are cumulative: this one attests fewer units than one already kept",
        )
        .with_details(json!({ "voucher_units": record.voucher_units })));
    }
    let at = now();
    let mut tx = state.store.begin().await?;
    if agreements::keep_voucher(&mut tx, &record.id, cumulative_units, &body.signature, at).await? {
        let data = json!({ "cumulative_units": cumulative_units });
        outbox::record(&mut tx, Some(&record.id), EventType::UsageVoucherAccepted, &data, at)
            .await?;
    }
    let updated = agreements::get_in(&mut tx, record.id.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("agreement vanished"))?;
    if updated.voucher_units > cumulative_units {
        // A higher voucher was kept concurrently; nothing changed (the transaction is dropped).
        return Err(ApiError::new(
            ErrorCode::VoucherRegression,
            "vouchers are cumulative: this one attests fewer units than one already kept",
        )
        .with_details(json!({ "voucher_units": updated.voucher_units })));
    }
    let response = usage_of(&state, &updated, key);
    idempotency.save(&mut tx, StatusCode::OK, &response).await?;
    tx.commit().await?;
    Ok(Json(response).into_response())
}
