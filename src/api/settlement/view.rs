//! What the usage and settlement routes answer. Fields are declared in alphabetical order: the
//! order these bodies have always had on the wire.

use crate::store::settlement::SettlementActionStatus;
use alloy::primitives::{Address, B256, Bytes};
use serde::Serialize;
use utoipa::ToSchema;

use crate::agreement::ids::AgreementId;
use crate::agreement::settlement::{Action, Party};
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
