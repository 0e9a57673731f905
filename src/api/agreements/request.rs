//! The request bodies and query of the agreement routes, and their checks.

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ApiResult};
use crate::api::validate::{text, wallet};

/// The body of `POST /usage-agreements`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"seller_agent_id": "agt_9e8d7c6b5a4938274f3c2a1b", "service_id": "svc_search", "quantity": 100, "unit": "api_calls", "price_per_unit_cents": 10, "payment_method": {"rail": "stablecoin", "provider": "x402"}, "settlement_model": "bilateral_escrow", "activation_version": "v2", "buyer_wallet_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}))]
pub struct Propose {
    /// The agent selling.
    pub seller_agent_id: String,
    /// The seller's service.
    pub service_id: String,
    /// Units bought (at least 1).
    pub quantity: u64,
    /// What a unit is.
    pub unit: String,
    /// Price of a unit in cents (at least 1).
    pub price_per_unit_cents: u64,
    /// `{"rail": "stablecoin", "provider": …}`.
    pub payment_method: PaymentMethod,
    /// `bilateral_escrow`.
    pub settlement_model: String,
    /// `v2`.
    pub activation_version: String,
    /// The wallet that funds the escrow and signs the activation.
    pub buyer_wallet_address: String,
}

/// How the agreement is paid.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    /// `stablecoin`.
    pub rail: String,
    /// The payment protocol (`x402`, …), informational.
    #[serde(default)]
    pub provider: Option<String>,
}

/// The body of `PUT …/accept`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"seller_wallet_address": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"}))]
pub struct Accept {
    /// The wallet the seller is paid to.
    pub seller_wallet_address: String,
}

/// The body of `PUT …/reject` (optional).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "capacity exhausted this month"}))]
pub struct Reject {
    /// Why, shown to the buyer.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `?limit=&cursor=` of the list endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Propose {
    pub(super) fn validate(&self) -> ApiResult<Address> {
        text("seller_agent_id", &self.seller_agent_id, 64)?;
        text("service_id", &self.service_id, 128)?;
        text("unit", &self.unit, 64)?;
        if self.quantity == 0 || i64::try_from(self.quantity).is_err() {
            return Err(ApiError::validation("quantity", "`quantity` must be 1 to 2^63 − 1"));
        }
        if self.price_per_unit_cents == 0 || i64::try_from(self.price_per_unit_cents).is_err() {
            return Err(ApiError::validation(
                "price_per_unit_cents",
                "`price_per_unit_cents` must be 1 to 2^63 − 1",
            ));
        }
        if self.payment_method.rail != "stablecoin" {
            return Err(ApiError::validation(
                "payment_method.rail",
                "only the `stablecoin` rail is supported",
            ));
        }
        if self.settlement_model != "bilateral_escrow" {
            return Err(ApiError::validation(
                "settlement_model",
                "only `bilateral_escrow` is supported",
            ));
        }
        if self.activation_version != "v2" {
            return Err(ApiError::validation(
                "activation_version",
                "only activation version `v2` is supported",
            ));
        }
        wallet("buyer_wallet_address", &self.buyer_wallet_address)
    }
}
