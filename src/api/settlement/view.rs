//! What the usage and settlement routes answer. Fields are declared in alphabetical order: the
//! order these bodies have always had on the wire.

use crate::store::settlement::SettlementActionStatus;
use alloy::primitives::{Address, B256, Bytes};
use serde::Serialize;
use utoipa::ToSchema;

use crate::agreement::ids::AgreementId;
use crate::agreement::settlement::{Action, EscrowState, EscrowStatus as Lifecycle, Party};
use crate::agreement::terms::Terms;
use crate::api::agreement_view::UsageSummary;
use crate::api::time::rfc3339;
use crate::api::typed_data_view::TypedData;
use crate::money::TokenAmount;
use crate::store::agreements::AgreementRecord;

/// The buyer's best voucher.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BestVoucher {
    /// Its `cumulativeUnits`.
    pub cumulative_units: u64,
    /// The buyer's signature.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub signature: Bytes,
}

/// `GET …/usage` and `POST …/usage-vouchers`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// The agreement.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: AgreementId,
    /// The best voucher so far.
    #[schema(required = true)]
    pub best_voucher: Option<BestVoucher>,
    /// Units bought.
    pub quantity: u64,
    /// Units the seller recorded.
    pub recorded_units: u64,
    /// Where to `POST` a signed voucher.
    pub submit_voucher_to: String,
    /// Token base units (decimal string).
    #[schema(required = true, pattern = "^[0-9]+$")]
    pub voucher_amount: Option<String>,
    /// The `UsageVoucher` for the recorded usage, when it exceeds the best voucher.
    #[schema(required = true)]
    pub voucher_to_sign: Option<TypedData>,
    /// Units of the buyer's best voucher.
    pub voucher_units: u64,
}

impl Usage {
    /// `record`'s usage, with `voucher_to_sign` the document for its recorded units when they
    /// exceed the best voucher.
    pub fn new(record: &AgreementRecord, voucher_to_sign: Option<TypedData>) -> Self {
        let summary = UsageSummary::from(record);
        Usage {
            agreement_id: record.id.clone(),
            best_voucher: record.voucher_signature.as_ref().map(|signature| BestVoucher {
                cumulative_units: record.voucher_units,
                signature: signature.clone(),
            }),
            quantity: summary.quantity,
            recorded_units: summary.recorded_units,
            submit_voucher_to: format!("/usage-agreements/{}/usage-vouchers", record.id),
            voucher_amount: summary.voucher_amount,
            voucher_to_sign,
            voucher_units: summary.voucher_units,
        }
    }
}

/// `POST …/record-usage`: [`Usage`] plus the record made.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecorded {
    /// The agreement.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: AgreementId,
    /// The best voucher so far.
    #[schema(required = true)]
    pub best_voucher: Option<BestVoucher>,
    /// Units bought.
    pub quantity: u64,
    /// Units the seller recorded, in all.
    pub recorded_units: u64,
    /// Where to `POST` a signed voucher.
    pub submit_voucher_to: String,
    /// Units of this record.
    pub units: u64,
    /// The record's id.
    pub usage_record_id: String,
    /// Token base units (decimal string).
    #[schema(required = true, pattern = "^[0-9]+$")]
    pub voucher_amount: Option<String>,
    /// The `UsageVoucher` for the recorded usage.
    #[schema(required = true)]
    pub voucher_to_sign: Option<TypedData>,
    /// Units of the buyer's best voucher.
    pub voucher_units: u64,
}

impl UsageRecorded {
    /// `usage` after the record `usage_record_id` of `units`.
    pub fn new(usage: Usage, usage_record_id: String, units: u64) -> Self {
        UsageRecorded {
            agreement_id: usage.agreement_id,
            best_voucher: usage.best_voucher,
            quantity: usage.quantity,
            recorded_units: usage.recorded_units,
            submit_voucher_to: usage.submit_voucher_to,
            units,
            usage_record_id,
            voucher_amount: usage.voucher_amount,
            voucher_to_sign: usage.voucher_to_sign,
            voucher_units: usage.voucher_units,
        }
    }
}

/// An unsigned transaction for the party's own wallet.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsignedTransaction {
    /// The chain.
    pub chain_id: u64,
    /// Calldata, `0x` hex.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub data: Bytes,
    /// The party's wallet.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Gas limit (estimate plus headroom), decimal string.
    #[schema(pattern = "^[0-9]+$")]
    pub gas: String,
    /// The escrow contract.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: String,
    /// Always `0`.
    #[schema(pattern = "^0$")]
    pub value: String,
}

impl UnsignedTransaction {
    /// `data` sent from `from` to `escrow` on `chain_id` with gas limit `gas`.
    pub fn new(chain_id: u64, from: Address, escrow: Address, data: Bytes, gas: u64) -> Self {
        UnsignedTransaction {
            chain_id,
            data,
            from: from.to_checksum(None),
            gas: gas.to_string(),
            to: escrow.to_checksum(None),
            value: "0".into(),
        }
    }
}

/// `GET …/initiate-close-calldata`, `…/claim-instructions`, `…/withdraw-instructions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectInstructions {
    /// The action.
    pub action: Action,
    /// The agreement.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: AgreementId,
    /// Token base units that move (decimal string).
    #[schema(pattern = "^[0-9]+$")]
    pub amount: String,
    /// The chain.
    pub chain_id: u64,
    /// Calldata, `0x` hex.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$")]
    pub data: Bytes,
    /// The party's wallet.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub from: String,
    /// Gas limit, decimal string.
    #[schema(pattern = "^[0-9]+$")]
    pub gas: String,
    /// The caller's side.
    pub party: Party,
    /// Who receives `amount`.
    pub recipient: Party,
    /// The escrow contract.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: String,
    /// Units signed for.
    pub units: u64,
    /// Always `0`.
    #[schema(pattern = "^0$")]
    pub value: String,
}

/// The escrow on-chain now, as the options endpoint read it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscrowSummary {
    /// Whether the buyer withdrew.
    pub buyer_withdrawn: bool,
    /// Units paid to the seller.
    pub claimed_units: u64,
    /// RFC 3339; `null` until a close.
    #[schema(required = true)]
    pub closes_at: Option<String>,
    /// Token base units still held (decimal string).
    #[schema(pattern = "^[0-9]+$")]
    pub remaining_amount: String,
    /// The escrow's lifecycle on-chain.
    #[schema(inline)]
    pub status: Lifecycle,
    /// RFC 3339; `null` while unknown.
    #[schema(required = true)]
    pub withdraw_opens_at: Option<String>,
}

impl EscrowSummary {
    /// `escrow` as read on-chain, under `terms`.
    pub fn new(escrow: &EscrowState, terms: &Terms) -> Self {
        EscrowSummary {
            buyer_withdrawn: escrow.buyer_withdrawn,
            claimed_units: escrow.claimed_units,
            closes_at: (escrow.closes_at != 0).then(|| rfc3339(escrow.closes_at as i64)),
            remaining_amount: escrow.remaining(terms).to_string(),
            status: escrow.status,
            withdraw_opens_at: escrow.withdraw_opens_at(terms).map(|t| rfc3339(t as i64)),
        }
    }
}

/// Why an action is not possible now.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// A stable code.
    pub code: crate::agreement::settlement::RefusalCode,
    /// Why.
    pub message: String,
}

/// The direct path of an option; only `available` when it is not.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectPath {
    /// Whether the party can send it now.
    pub available: bool,
    /// Estimated gas cost in wei (decimal string).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]+$")]
    pub estimated_cost_wei: Option<String>,
    /// The signer's ETH balance in wei (decimal string).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]+$")]
    pub signer_gas_balance: Option<String>,
    /// The transaction to send; absent when not available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<UnsignedTransaction>,
}

/// The sponsored path of an option; only `available` when it is not.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SponsoredPath {
    /// Whether Pactum can relay it now.
    pub available: bool,
    /// The authorization's deadline (unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    /// Where to `POST` the signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submit_to: Option<String>,
    /// The authorization to sign.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typed_data: Option<TypedData>,
}

/// Both paths.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementPaths {
    /// From the party's wallet.
    pub direct: DirectPath,
    /// Relayed by Pactum.
    pub sponsored: SponsoredPath,
}

/// Which path an option recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementPath {
    /// From the party's own wallet (it holds enough gas).
    Direct,
    /// Relayed by Pactum, which pays the gas.
    Sponsored,
}

/// `GET …/settlement-action-options`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementOptions {
    /// The action asked about.
    pub action: Action,
    /// The agreement.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: AgreementId,
    /// Token base units that move (when possible).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]+$")]
    pub amount: Option<String>,
    /// RFC 3339: when time alone opens it.
    #[schema(required = true)]
    pub available_at: Option<String>,
    /// The same in unix seconds.
    #[schema(required = true)]
    pub available_at_unix: Option<u64>,
    /// The chain.
    pub chain_id: u64,
    /// RFC 3339: the chain's clock.
    pub chain_time: String,
    /// The escrow now.
    pub escrow: EscrowSummary,
    /// The caller's side.
    pub party: Party,
    /// Both paths.
    pub paths: SettlementPaths,
    /// Whether the action is possible now.
    pub possible: bool,
    /// Why not; `null` when possible.
    #[schema(required = true)]
    pub reason: Option<Refusal>,
    /// Who receives `amount` (when possible).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Party>,
    /// `direct` or `sponsored`; `null` when not possible.
    #[schema(required = true)]
    pub recommended_path: Option<SettlementPath>,
    /// The caller's wallet.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub signer: String,
    /// Units signed for (when possible).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<u64>,
    /// Units of the buyer's best voucher.
    pub voucher_units: u64,
}

/// How an action is carried out; every action Pactum records is relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelayPath {
    /// Relayed by Pactum.
    Sponsored,
}

/// What a settlement action is, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementActionObject {
    /// Always.
    SettlementAction,
}

/// A relayed settlement action.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementAction {
    /// The action.
    pub action: Action,
    /// The agreement.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: AgreementId,
    /// Token base units (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub amount: TokenAmount,
    /// The block it was confirmed in.
    #[schema(required = true)]
    pub block_number: Option<u64>,
    /// RFC 3339.
    pub created_at: String,
    /// Unix seconds.
    pub deadline: u64,
    /// Why it failed.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Its id.
    #[schema(pattern = "^sa_[0-9a-f]{28}$")]
    pub id: String,
    /// `settlement_action`.
    pub object: SettlementActionObject,
    /// The caller's side.
    pub party: Party,
    /// `sponsored`.
    pub path: RelayPath,
    /// The party's wallet.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub signer: String,
    /// Where it stands.
    pub status: SettlementActionStatus,
    /// The transaction, once sent.
    #[schema(value_type = Option<String>, required = true, pattern = "^0x[0-9a-f]{64}$")]
    pub tx_hash: Option<B256>,
    /// Units signed for.
    pub units: u64,
    /// RFC 3339.
    pub updated_at: String,
}

/// `GET …/settlement-actions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementActionList {
    /// Oldest first.
    pub data: Vec<SettlementAction>,
}

impl TryFrom<&crate::store::settlement::SettlementAction> for SettlementAction {
    type Error = crate::api::error::ApiError;

    /// The stored action as the API shows it; a stored status this build does not know is an
    /// internal error rather than a guess.
    fn try_from(action: &crate::store::settlement::SettlementAction) -> Result<Self, Self::Error> {
        let status = action.status;
        Ok(SettlementAction {
            action: action.action,
            agreement_id: action.agreement_id.clone(),
            amount: action.amount,
            block_number: action.block_number,
            created_at: rfc3339(action.created_at),
            deadline: action.deadline,
            error: action.error.clone(),
            id: action.id.to_string(),
            object: SettlementActionObject::SettlementAction,
            party: action.party,
            path: RelayPath::Sponsored,
            signer: action.signer.to_checksum(None),
            status,
            tx_hash: action.tx_hash,
            units: action.units,
            updated_at: rfc3339(action.updated_at),
        })
    }
}
