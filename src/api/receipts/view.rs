//! What the receipt routes answer: a receipt with the typed-data document that was signed, a
//! page of them, and a receipt checked four ways.

use alloy::primitives::{Address, B256, Bytes};
use serde::Serialize;
use utoipa::ToSchema;

use crate::agreement::ids::{AgentId, AgreementId, ReceiptId};
use crate::api::time::rfc3339;
use crate::api::typed_data_view::TypedData;
use crate::money::TokenAmount;
use crate::receipts::{Receipt, ReceiptKind, typed};

/// What a receipt records (the spelling of [`ReceiptKind::as_str`]).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ReceiptKind)]
pub enum ReceiptKindName {
    /// The escrow was funded.
    Activation,
    /// The seller was paid.
    SellerClaim,
    /// The buyer took back the rest.
    BuyerWithdraw,
    /// A governed payment moved (`agreement_id` is the payment's id).
    Payment,
}

impl From<ReceiptKind> for ReceiptKindName {
    fn from(kind: ReceiptKind) -> Self {
        match kind {
            ReceiptKind::Activation => ReceiptKindName::Activation,
            ReceiptKind::SellerClaim => ReceiptKindName::SellerClaim,
            ReceiptKind::BuyerWithdraw => ReceiptKindName::BuyerWithdraw,
            ReceiptKind::Payment => ReceiptKindName::Payment,
        }
    }
}

/// A signed receipt of a settlement event.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Receipt)]
pub struct ReceiptView {
    /// Its id.
    #[schema(value_type = String, pattern = "^rcpt_[0-9A-Za-z_]+$")]
    pub id: ReceiptId,
    /// What it records.
    pub kind: ReceiptKindName,
    /// The agreement (a `payment` receipt: the payment's id).
    #[schema(value_type = String, pattern = "^(ua|pay)_[0-9A-Za-z_]+$")]
    pub agreement_id: AgreementId,
    /// The EIP-712 hash of the agreement's terms (a `payment` receipt: the payment key).
    #[schema(value_type = String, pattern = "^0x[0-9a-f]{64}$")]
    pub agreement_key: B256,
    /// The buyer agent.
    #[schema(value_type = String, pattern = "^agt_[0-9A-Za-z_]+$")]
    pub buyer_agent_id: AgentId,
    /// The seller agent (a `payment` receipt: the payee agent, empty when the payee was named by
    /// address).
    #[schema(value_type = String, pattern = "^(agt_[0-9A-Za-z_]+)?$")]
    pub seller_agent_id: AgentId,
    /// The buyer's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub buyer_wallet_address: Address,
    /// The seller's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub seller_wallet_address: Address,
    /// Token base units that moved (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub amount: String,
    /// The same in cents; `null` when not a whole number of cents.
    #[schema(required = true)]
    pub amount_cents: Option<u64>,
    /// The infra fee in token base units (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub infra_fee_amount: String,
    /// The same in cents; `null` when not a whole number of cents.
    #[schema(required = true)]
    pub infra_fee_cents: Option<u64>,
    /// The token.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    /// The escrow contract.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub escrow_contract: Address,
    /// The chain.
    pub chain_id: u64,
    /// The transaction of the event.
    #[schema(value_type = String, pattern = "^0x[0-9a-f]{64}$")]
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
    /// That block's hash.
    #[schema(value_type = String, pattern = "^0x[0-9a-f]{64}$")]
    pub block_hash: B256,
    /// The event's log index in the block.
    pub log_index: u64,
    /// RFC 3339.
    pub issued_at: String,
    /// The service's receipt key.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub signer: Address,
    /// The EIP-712 signature over `typed_data`, `0x` hex.
    #[schema(value_type = String, pattern = "^0x[0-9a-f]*$")]
    pub signature: Bytes,
    /// The `eth_signTypedData_v4` document that was signed.
    pub typed_data: TypedData,
}

/// Cents of `amount` when it is a whole number of cents.
fn cents(amount: TokenAmount) -> Option<u64> {
    amount.to_cents().ok().map(|c| c.0)
}

impl From<&Receipt> for ReceiptView {
    fn from(receipt: &Receipt) -> Self {
        ReceiptView {
            id: receipt.id.clone(),
            kind: receipt.kind.into(),
            agreement_id: receipt.agreement_id.clone(),
            agreement_key: receipt.agreement_key,
            buyer_agent_id: receipt.buyer_agent_id.clone(),
            seller_agent_id: receipt.seller_agent_id.clone(),
            buyer_wallet_address: receipt.buyer_wallet,
            seller_wallet_address: receipt.seller_wallet,
            amount: receipt.amount.to_string(),
            amount_cents: cents(receipt.amount),
            infra_fee_amount: receipt.infra_fee.to_string(),
            infra_fee_cents: cents(receipt.infra_fee),
            token: receipt.token,
            escrow_contract: receipt.escrow,
            chain_id: receipt.chain_id,
            tx_hash: receipt.tx_hash,
            block_number: receipt.block_number,
            block_hash: receipt.block_hash,
            log_index: receipt.log_index,
            issued_at: rfc3339(receipt.issued_at),
            signer: receipt.signer,
            signature: receipt.signature.clone(),
            typed_data: TypedData::from(typed::document(receipt)),
        }
    }
}

/// A page of receipts (`GET /receipts`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptList {
    /// Newest first.
    pub receipts: Vec<ReceiptView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Whether it holds.
    pub valid: bool,
    /// Why not; `null` when it holds.
    #[schema(required = true)]
    pub reason: Option<String>,
}

impl Check {
    /// A check that holds.
    pub fn pass() -> Self {
        Check { valid: true, reason: None }
    }

    /// A check that fails for `reason`.
    pub fn fail(reason: impl Into<String>) -> Self {
        Check { valid: false, reason: Some(reason.into()) }
    }
}

/// The four checks of a receipt.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksView {
    /// The signature recovers the service's receipt key.
    pub signature: Check,
    /// The transaction is on the chain and succeeded.
    pub transaction: Check,
    /// It is in the recorded block, still canonical.
    pub block: Check,
    /// The log is the escrow's event of this kind with these amounts.
    pub log: Check,
}

/// `GET /receipts/verify/{receipt_id}`: the receipt checked four ways.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptVerification {
    /// The receipt.
    #[schema(pattern = "^rcpt_[0-9A-Za-z_]+$")]
    pub receipt_id: String,
    /// Whether every check holds.
    pub valid: bool,
    /// Each check.
    pub checks: ChecksView,
    /// The receipt.
    pub receipt: ReceiptView,
}
