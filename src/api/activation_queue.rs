//! What `activate-escrow` and the approval of an escalated activation share: screening both
//! wallets, the relayer job of a signed activation, and what the activation commits of the
//! buyer's budgets. Resource modules import this; it imports none of them.

use alloy::primitives::{Bytes, U256};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorCode};
use crate::agreement::ids::JobId;
use crate::agreement::terms::Terms;
use crate::escrow::calls;
use crate::money::BASE_UNITS_PER_CENT;
use crate::screening::ScreeningError;
use crate::store::agreements::{self, AgreementRecord};
use crate::store::jobs::{self, Job, KIND_ACTIVATE};

/// The buyer's signatures as kept with the agreement (`activation_signatures`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSignatures {
    /// Of the `activation` document.
    pub activation_signature: Bytes,
    /// Of the funding authorization.
    pub funding_signature: Bytes,
    /// Of the infra fee authorization; absent without a fee.
    pub infra_fee_permit_signature: Option<Bytes>,
}

/// Cents an activation commits of its buyer's budgets: deposit plus infra fee, rounded up to
/// the whole cent (a fee may be a fraction of one), so a budget is never passed by rounding.
pub(crate) fn committed_cents(terms: &Terms) -> u64 {
    let total = terms.deposit().base_units().saturating_add(terms.infra_fee.base_units());
    let per_cent = U256::from(BASE_UNITS_PER_CENT);
    let cents = total.div_ceil(per_cent);
    u64::try_from(cents).unwrap_or(u64::MAX)
}

/// Screens `wallets`; a screener that cannot answer is 503 `screening_unavailable` (nothing was
/// `done`, the message says).
pub(crate) async fn screen_wallets(
    state: &AppState,
    wallets: &[alloy::primitives::Address],
    done: &str,
) -> ApiResult<crate::screening::ScreeningReport> {
    match state.screener.screen(wallets).await {
        Ok(report) => Ok(report),
        Err(ScreeningError::Unavailable(reason)) => {
            tracing::warn!(%reason, "screening unavailable");
            Err(ApiError::new(
                ErrorCode::ScreeningUnavailable,
                format!("wallet screening is unavailable; nothing was {done}, retry later"),
            ))
        }
        Err(other) => Err(ApiError::internal(other)),
    }
}

/// Screens buyer and seller wallets; returns the report to store. A sanctioned wallet records
/// the report and answers 403 `wallet_sanctioned`; an unavailable screener 503.
pub(crate) async fn screen(
    state: &AppState,
    record: &AgreementRecord,
    terms: &Terms,
) -> ApiResult<Value> {
    let report = screen_wallets(state, &[terms.buyer, terms.seller], "queued").await?;
    let report_json = serde_json::to_value(&report).map_err(ApiError::internal)?;
    let sanctioned = report.sanctioned();
    if !sanctioned.is_empty() {
        let mut tx = state.store.begin().await?;
        agreements::record_screening(&mut tx, &record.id, &report_json).await?;
        tx.commit().await?;
        tracing::warn!(agreement_id = %record.id, ?sanctioned, "activation refused: sanctioned wallet");
        return Err(ApiError::new(
            ErrorCode::WalletSanctioned,
            "a party's wallet is on a sanctions list; the agreement cannot be activated",
        )
        .with_details(json!({
            "wallets": sanctioned.iter().map(|a| a.to_checksum(None)).collect::<Vec<_>>(),
        })));
    }
    Ok(report_json)
}

/// The relayer job that activates `record` with the buyer's checked `signatures`.
pub(crate) fn activation_job(
    state: &AppState,
    record: &AgreementRecord,
    terms: &Terms,
    signatures: &StoredSignatures,
) -> Job {
    let signatures = calls::ActivationSignatures {
        activation: signatures.activation_signature.clone(),
        funding: signatures.funding_signature.clone(),
        fee_permit: signatures.infra_fee_permit_signature.clone().unwrap_or_default(),
    };
    Job {
        id: JobId::generate(),
        kind: KIND_ACTIVATE,
        agreement_id: Some(record.id.clone()),
        to: state.chain.escrow,
        calldata: calls::activate(terms.activation(), &signatures),
        status: jobs::JobStatus::Queued,
        error: None,
    }
}
