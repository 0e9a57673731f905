//! What the intent routes take and answer. The seed's field names are kept where the seed has
//! them (`allowed`, `intent_id`, `blockReason`, `blockDetail`, `declineMessage`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::api::error::ErrorDetail;
use crate::governance::ReasonCode;
use crate::intents::{IntentAction, IntentStatus, Verdict};
use crate::store::intents::Intent;

/// The body of `POST /validate`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "transfer", "to": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "amount_cents": 1250, "metadata": {"invoice": "inv_42"}}))]
pub struct ValidateRequest {
    /// `transfer`: a USDC transfer from the agent's registered wallet.
    pub action: String,
    /// The recipient's address.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: String,
    /// Cents, 1 to $10 billion; the transfer must move exactly this many (× 10,000 base units).
    pub amount_cents: u64,
    /// The token's address; when given, it must be the deployment's USDC.
    #[serde(default)]
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Option<String>,
    /// The chain; when given, it must be the deployment's.
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// `category`, `country`, and anything else (kept with the intent; at most 4 KiB as JSON).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Seconds the intent waits for its transaction, from now and again from the posting of
    /// its hash (default 900, at most 86,400).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `POST /validate` allowed the transfer: the intent and its hold.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Validated {
    /// `true`.
    pub allowed: bool,
    /// `int_…`: post the transaction hash to `/intents/{intent_id}/events`.
    pub intent_id: String,
    /// Null when allowed.
    #[serde(rename = "blockReason")]
    #[schema(required = true)]
    pub block_reason: Option<ReasonCode>,
    /// Null when allowed.
    #[serde(rename = "blockDetail")]
    #[schema(required = true)]
    pub block_detail: Option<String>,
    /// Null when allowed.
    #[serde(rename = "declineMessage")]
    #[schema(required = true)]
    pub decline_message: Option<String>,
    /// `validated`.
    pub status: IntentStatus,
    /// The hold on the agent's budgets (`rsv_…`), captured when the transfer confirms.
    pub reservation_id: String,
    /// The policy decision (`chk_…`).
    pub check_id: String,
    /// The policy version evaluated.
    pub policy_version: u64,
    /// When the intent expires unless its transaction hash is posted (RFC 3339).
    pub expires_at: String,
}

/// `POST /validate` refused: a policy block (422, `policy_blocked`; escalations included) or a
/// halted agent (403, `agent_halted`) carries the seed's fields beside the error; any other
/// refusal (a field that fails validation, …) is the error alone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRefused {
    /// `false`.
    pub allowed: Option<bool>,
    /// Null: nothing was held.
    pub intent_id: Option<String>,
    /// The engine's reason code (`per_tx_limit_exceeded`, `agent_halted`, …).
    #[serde(rename = "blockReason")]
    pub block_reason: Option<ReasonCode>,
    /// What the rule found, in words.
    #[serde(rename = "blockDetail")]
    pub block_detail: Option<String>,
    /// A short counter-message for the agent's model; it never repeats text of the request.
    #[serde(rename = "declineMessage")]
    pub decline_message: Option<String>,
    /// The recorded decision (`chk_…`).
    pub check_id: Option<String>,
    /// The same refusal in the API's one error shape.
    pub error: ErrorDetail,
}

/// The body of `POST /intents/{intentId}/events`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tx_hash": "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"}))]
pub struct IntentEvent {
    /// The hash of the transaction the agent broadcast from its wallet.
    #[schema(pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: String,
}

/// An intent as `GET /intents/{intentId}/status` and the events route answer it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntentView {
    /// `int_…`.
    pub intent_id: String,
    /// The agent that validated it.
    pub agent_id: String,
    /// `validated`, `broadcast`, `confirmed`, `mismatched`, `failed` or `expired`.
    pub status: IntentStatus,
    /// `transfer`.
    pub action: IntentAction,
    /// The recipient validated (checksummed).
    pub to: String,
    /// The amount validated, in cents.
    pub amount_cents: u64,
    /// The same amount in token base units (decimal string).
    pub amount: String,
    /// The token that must move (checksummed).
    pub token: String,
    /// The chain it must move on.
    pub chain_id: u64,
    /// The transaction hash the agent posted.
    #[schema(required = true)]
    pub tx_hash: Option<String>,
    /// The block the transaction was found in (null until mined, and after a reorganisation).
    #[schema(required = true)]
    pub block_number: Option<u64>,
    /// What the mined transaction did against what was validated: `matched`, `reverted`,
    /// `no_transfer`, `wrong_sender`, `wrong_recipient` or `wrong_amount`.
    #[schema(required = true)]
    pub verdict: Option<Verdict>,
    /// The hold on the agent's budgets (`rsv_…`).
    pub reservation_id: String,
    /// The policy decision (`chk_…`).
    pub check_id: String,
    /// The agent's metadata.
    #[schema(required = true, value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// When it expires unless its transaction is found mined (RFC 3339).
    pub expires_at: String,
    /// When it reached its final status (RFC 3339).
    #[schema(required = true)]
    pub resolved_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Intent> for IntentView {
    fn from(intent: &Intent) -> Self {
        let rfc3339 = crate::time::rfc3339;
        IntentView {
            intent_id: intent.id.clone(),
            agent_id: intent.agent_id.clone(),
            status: intent.status,
            action: intent.action,
            to: intent.to.to_checksum(None),
            amount_cents: intent.amount_cents,
            amount: crate::money::Cents(intent.amount_cents).to_token_amount().to_string(),
            token: intent.token.to_checksum(None),
            chain_id: intent.chain_id,
            tx_hash: intent.tx_hash.map(|h| h.to_string()),
            block_number: intent.mined.map(|m| m.block_number),
            verdict: intent.mined.map(|m| m.verdict),
            reservation_id: intent.reservation_id.clone(),
            check_id: intent.check_id.clone(),
            metadata: intent.metadata.clone(),
            expires_at: rfc3339(intent.expires_at),
            resolved_at: intent.resolved_at.map(rfc3339),
            created_at: rfc3339(intent.created_at),
            updated_at: rfc3339(intent.updated_at),
        }
    }
}
