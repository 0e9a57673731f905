//! Usage agreements: one row each, moved between statuses only by conditional updates that name
//! the status they expect, so two concurrent transitions cannot both win.

use alloy::primitives::{Address, B256, Bytes};
use serde_json::Value;

mod escrow;
mod on_chain;
mod read;
mod transitions;

pub use escrow::{
    activation_unconfirmed, escrow_activated, escrow_changed, keep_voucher, record_usage,
};
pub use on_chain::{KeyedAgreement, StoredEscrow, keyed};
pub use read::{
    activation_signatures, get, get_by_key, get_in, insert, list_for_account, list_for_agent,
};
pub use transitions::{
    accept, activation_failed, activation_progress, approve_activation, await_approval,
    end_awaiting_approval, expire_due, record_screening, reject, submit_activation,
};

use crate::agreement::ids::{AgentId, AgreementId};
use crate::agreement::settlement::EscrowState;
use crate::agreement::status::InfraFeeStatus;
use crate::agreement::status::{ActivationStatus, AgreementStatus};
use crate::agreement::terms::Terms;

/// An agreement as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AgreementRecord {
    /// Its id.
    pub id: AgreementId,
    /// The proposing (paying) agent.
    pub buyer_agent_id: AgentId,
    /// The providing agent.
    pub seller_agent_id: AgentId,
    /// The seller's service being bought.
    pub service_id: String,
    /// Units bought.
    pub quantity: u64,
    /// What a unit is (`api_calls`, `tokens`, …).
    pub unit: String,
    /// Price of one unit in cents.
    pub price_per_unit_cents: u64,
    /// The payment method object as proposed.
    pub payment_method: Value,
    /// `bilateral_escrow`.
    pub settlement_model: String,
    /// `v2`.
    pub activation_version: String,
    /// The buyer's wallet.
    pub buyer_wallet: Address,
    /// The seller's wallet, given at acceptance.
    pub seller_wallet: Option<Address>,
    /// The agreement status.
    pub status: AgreementStatus,
    /// The activation status.
    pub activation_status: ActivationStatus,
    /// Why the activation failed.
    pub activation_error: Option<String>,
    /// The activation transaction, once broadcast.
    pub activation_tx_hash: Option<B256>,
    /// The seller's reason for rejecting.
    pub rejection_reason: Option<String>,
    /// The on-chain terms, fixed at acceptance.
    pub terms: Option<Terms>,
    /// The EIP-712 hash of the terms.
    pub agreement_key: Option<B256>,
    /// Where the infra fee stands.
    pub infra_fee_status: InfraFeeStatus,
    /// The last screening report.
    pub screening: Option<Value>,
    /// The escrow as the chain watcher last confirmed it.
    pub escrow: Option<EscrowSeen>,
    /// Units the seller recorded as delivered, in all.
    pub usage_units: u64,
    /// The highest cumulative units the buyer signed a voucher for.
    pub voucher_units: u64,
    /// The buyer's signature of that voucher.
    pub voucher_signature: Option<Bytes>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The escrow's on-chain state as of a confirmed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowSeen {
    /// The escrow's state after the last confirmed event.
    pub state: EscrowState,
    /// The block of that event.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// The transaction that emitted it.
    pub tx_hash: Option<B256>,
}

/// What a buyer proposes: everything a new agreement starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The proposing (paying) agent.
    pub buyer_agent_id: AgentId,
    /// The providing agent.
    pub seller_agent_id: AgentId,
    /// The seller's service being bought.
    pub service_id: String,
    /// Units bought.
    pub quantity: u64,
    /// What a unit is.
    pub unit: String,
    /// Price of one unit in cents.
    pub price_per_unit_cents: u64,
    /// The payment method object as proposed.
    pub payment_method: Value,
    /// The buyer's wallet.
    pub buyer_wallet: Address,
}

impl AgreementRecord {
    /// A new agreement in `proposed`, created at `now` (bilateral escrow, activation v2: the
    /// only kinds there are).
    pub fn proposed(proposal: Proposal, now: i64) -> Self {
        Self {
            id: AgreementId::generate(),
            buyer_agent_id: proposal.buyer_agent_id,
            seller_agent_id: proposal.seller_agent_id,
            service_id: proposal.service_id,
            quantity: proposal.quantity,
            unit: proposal.unit,
            price_per_unit_cents: proposal.price_per_unit_cents,
            payment_method: proposal.payment_method,
            settlement_model: "bilateral_escrow".into(),
            activation_version: "v2".into(),
            buyer_wallet: proposal.buyer_wallet,
            seller_wallet: None,
            status: AgreementStatus::Proposed,
            activation_status: ActivationStatus::NotStarted,
            activation_error: None,
            activation_tx_hash: None,
            rejection_reason: None,
            terms: None,
            agreement_key: None,
            infra_fee_status: InfraFeeStatus::None,
            screening: None,
            escrow: None,
            usage_units: 0,
            voucher_units: 0,
            voucher_signature: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether `agent` is the buyer or the seller.
    pub fn is_party(&self, agent: &AgentId) -> bool {
        &self.buyer_agent_id == agent || &self.seller_agent_id == agent
    }
}
