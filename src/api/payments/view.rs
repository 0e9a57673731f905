//! What the payment routes take and answer: a new payment, the wallet's signature, a payment
//! with the document its wallet signs (while it waits for the signature) and its receipt (once
//! confirmed), and the list and its query.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::receipts::ReceiptView;
use crate::api::typed_data_view::TypedData;
use crate::payments::{Payment, PaymentStatus};

/// The body of `POST /v1/payments`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// The paying agent: an agent key may name only itself (or leave it out); the owner names
    /// any agent of its account.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The payee: a `0x…` address, or an agent id (paid to that agent's primary wallet).
    pub to: String,
    /// Cents, 1 to $10 billion.
    pub amount_cents: u64,
    /// `USD` (default) or `USDC`.
    #[serde(default)]
    pub currency: Option<String>,
    /// What is bought (matched by category rules and mandates).
    #[serde(default)]
    pub category: Option<String>,
    /// The mandate the payment is made under (an execution token minted for a mandate names
    /// it by itself).
    #[serde(default)]
    pub mandate_id: Option<String>,
    /// A reservation of the agent (`reserved`, of at least this amount, for this payee) the
    /// payment spends: no second policy decision; the reservation follows the payment.
    #[serde(default)]
    pub reservation_id: Option<String>,
    /// A note for the payer's records (at most 256 characters).
    #[serde(default)]
    pub memo: Option<String>,
    /// Anything else, kept with the payment (at most 4 KiB as JSON).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Seconds the authorization stays valid (its `validBefore`): 60 to 86,400, default 900.
    #[serde(default)]
    pub valid_for_seconds: Option<u64>,
}

/// The body of `POST /v1/payments/{payment_id}/authorize`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The wallet's signature of `typed_data`, `0x` hex: 65 bytes of ECDSA, or what a smart
    /// wallet's ERC-1271 check accepts.
    pub signature: String,
}

/// A governed payment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    /// `pay_…`.
    pub id: String,
    /// The paying agent.
    pub agent_id: String,
    /// Where it stands.
    #[schema(value_type = String, example = "awaiting_signature")]
    pub status: PaymentStatus,
    /// The agent's wallet it is paid from.
    pub from: String,
    /// The payee's address.
    pub to: String,
    /// The payee agent, when it was named by agent id.
    pub to_agent_id: Option<String>,
    /// Cents.
    pub amount_cents: u64,
    /// Token base units (6 decimals), as a decimal string.
    pub amount: String,
    /// `USD` or `USDC`.
    pub currency: String,
    /// The authorization's nonce: the payment key.
    pub payment_key: String,
    /// When the authorization becomes valid.
    pub valid_after: String,
    /// When it stops being valid.
    pub valid_before: String,
    /// The hold on the agent's budgets (`rsv_…`).
    pub reservation_id: Option<String>,
    /// The mandate it was made under.
    pub mandate_id: Option<String>,
    /// The approval it waits (or waited) for.
    pub approval_id: Option<String>,
    /// The policy decision (`chk_…`).
    pub check_id: Option<String>,
    /// The payer's note.
    pub memo: Option<String>,
    /// The caller's object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// The transaction that carries (or moved) it.
    pub tx_hash: Option<String>,
    /// The block it was confirmed in.
    pub block_number: Option<u64>,
    /// Why it failed, was blocked or expired.
    pub error: Option<String>,
    /// While `awaiting_signature`: the `TransferWithAuthorization` document the wallet signs
    /// with `eth_signTypedData_v4`, unchanged.
    pub typed_data: Option<TypedData>,
    /// Once confirmed: the signed receipt.
    pub receipt: Option<ReceiptView>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

impl PaymentView {
    /// `payment` as answered; `document` is its typed data (shown while it waits for the
    /// signature) and `receipt` its receipt.
    pub fn new(payment: &Payment, document: Option<Value>, receipt: Option<ReceiptView>) -> Self {
        let time = |secs: u64| crate::time::rfc3339(i64::try_from(secs).unwrap_or(i64::MAX));
        PaymentView {
            id: payment.id.to_string(),
            agent_id: payment.agent_id.clone(),
            status: payment.status,
            from: payment.from.to_checksum(None),
            to: payment.to.to_checksum(None),
            to_agent_id: payment.to_agent_id.clone(),
            amount_cents: payment.amount_cents,
            amount: payment.value().to_string(),
            currency: payment.currency.clone(),
            payment_key: payment.payment_key.to_string(),
            valid_after: time(payment.valid_after),
            valid_before: time(payment.valid_before),
            reservation_id: payment.reservation_id.clone(),
            mandate_id: payment.mandate_id.clone(),
            approval_id: payment.approval_id.clone(),
            check_id: payment.check_id.clone(),
            memo: payment.memo.clone(),
            metadata: payment.metadata.clone(),
            tx_hash: payment.tx_hash.map(|h| h.to_string()),
            block_number: payment.block_number,
            error: payment.error.clone(),
            typed_data: document
                .filter(|_| payment.status == PaymentStatus::AwaitingSignature)
                .map(TypedData::from),
            receipt,
            created_at: crate::time::rfc3339(payment.created_at),
            updated_at: crate::time::rfc3339(payment.updated_at),
        }
    }
}

/// The answer to a new payment: the payment and the policy's decision.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentCreated {
    /// The payment.
    #[serde(flatten)]
    pub payment: PaymentView,
    /// The decision (absent when it spends a reservation decided before).
    pub decision: Option<crate::api::spend_gate::CheckResponse>,
}

/// A page of payments, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentList {
    /// The payments.
    pub data: Vec<PaymentView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/payments`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentQuery {
    /// Only this agent's (an agent key sees only its own anyway).
    pub agent_id: Option<String>,
    /// Only payments in this status.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
