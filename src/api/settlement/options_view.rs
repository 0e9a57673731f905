//! What `settlement-action-options` answers. Fields are declared in alphabetical order: the
//! order this body has always had on the wire.

use alloy::primitives::Address;
use serde::Serialize;
use utoipa::ToSchema;

use super::view::UnsignedTransaction;
use crate::agreement::early_claim::{RecommendationReason, Unclaimed};
use crate::agreement::ids::AgreementId;
use crate::agreement::settlement::{Action, EscrowState, EscrowStatus as Lifecycle, Party};
use crate::agreement::terms::Terms;
use crate::api::time::rfc3339;
use crate::api::typed_data_view::TypedData;
use crate::escrow::wallet::AccountKind;
use crate::money::TokenAmount;

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

/// A recommendation to the seller to act before the close: today only an early claim, when
/// the buyer's wallet has code and could revoke vouchers worth at least the operator's threshold.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recommendation {
    /// What to do: `seller_claim`.
    pub action: Action,
    /// Why, in words.
    pub message: String,
    /// Why, as a stable code.
    pub reason: RecommendationReason,
    /// `PACTUM_EARLY_CLAIM_THRESHOLD`: the unclaimed value from which a claim is recommended,
    /// in token base units (decimal string).
    #[schema(pattern = "^[0-9]+$")]
    pub threshold_amount: String,
    /// What the buyer's best voucher attests beyond what was claimed, in token base units
    /// (decimal string).
    #[schema(pattern = "^[0-9]+$")]
    pub unclaimed_amount: String,
    /// The units behind `unclaimed_amount`.
    pub unclaimed_units: u64,
}

impl Recommendation {
    /// Claim `unclaimed` now: the buyer's wallet has code (`buyer` of `kind`), so the vouchers
    /// behind it can be revoked before the close.
    pub fn early_claim(
        buyer: Address,
        kind: AccountKind,
        unclaimed: Unclaimed,
        threshold: TokenAmount,
    ) -> Self {
        let wallet = match kind {
            AccountKind::Delegated { delegate } => {
                format!("an EIP-7702 account delegated to {}", delegate.to_checksum(None))
            }
            _ => "a contract wallet".to_owned(),
        };
        Recommendation {
            action: Action::SellerClaim,
            message: format!(
                "claim now: the buyer's wallet {} is {wallet}, which can revoke the signatures \
                 of its vouchers (by changing its owners or its code) and then withdraw after the \
                 close window, and a voucher is checked only when it is claimed; {} base units \
                 ({} units) are not claimed yet",
                buyer.to_checksum(None),
                unclaimed.amount,
                unclaimed.units,
            ),
            reason: RecommendationReason::RevocableBuyerWallet,
            threshold_amount: threshold.to_string(),
            unclaimed_amount: unclaimed.amount.to_string(),
            unclaimed_units: unclaimed.units,
        }
    }
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
    /// For the seller: claim early, and why; `null` when nothing is recommended (always for the
    /// buyer).
    #[schema(required = true)]
    pub recommendation: Option<Recommendation>,
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
