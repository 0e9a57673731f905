//! The activation package as the API returns it.

use alloy::primitives::{Address, B256};
use serde::Serialize;
use utoipa::ToSchema;

use crate::agreement::ids::AgreementId;
use crate::agreement::status::InfraFeeStatus;
use crate::agreement::terms::Terms;
use crate::api::time::rfc3339;
use crate::api::typed_data_view::TypedData;
use crate::chain::context::ChainContext;
use crate::escrow::package;
use crate::money::TokenAmount;
use crate::store::agreements::AgreementRecord;

/// `GET …/activation-package`: what the buyer signs and where to send the signatures.
///
/// Fields in alphabetical order, the order this body has always had on the wire.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationPackage {
    /// RFC 3339: activate before this.
    pub activate_by: String,
    /// The `Activation` terms to sign.
    pub activation: TypedData,
    /// The agreement.
    #[schema(value_type = String, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: AgreementId,
    /// The EIP-712 hash of the terms.
    #[schema(value_type = String, pattern = "^0x[0-9a-f]{64}$")]
    pub agreement_key: B256,
    /// The chain.
    pub chain_id: u64,
    /// Token base units (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub deposit_amount: TokenAmount,
    /// The escrow contract.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub escrow_contract: String,
    /// The USDC `ReceiveWithAuthorization` for exactly the deposit.
    pub funding: TypedData,
    /// The fee and its permit; absent when the terms carry no fee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infra_fee: Option<PackageInfraFee>,
    /// Where to `POST` the signatures.
    pub submit_to: String,
    /// The token.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: String,
}

/// The infra fee block of an activation package.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageInfraFee {
    /// Token base units (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub amount: TokenAmount,
    /// The infra-fee permit: a USDC `ReceiveWithAuthorization` of exactly the fee to the escrow,
    /// its nonce derived from the agreement key (`infraFeeNonce`).
    pub permit: TypedData,
    /// Who the fee accrues to in the escrow (as of when the package was built).
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub recipient: String,
    /// Where collection stands.
    pub status: InfraFeeStatus,
}

impl ActivationPackage {
    /// The package `built` for `record`'s accepted `terms` on `chain`, with the fee's status as
    /// the store has it.
    pub fn new(
        record: &AgreementRecord,
        terms: &Terms,
        built: package::ActivationPackage,
        chain: &ChainContext,
    ) -> Self {
        let checksummed = |a: Address| a.to_checksum(None);
        ActivationPackage {
            activate_by: rfc3339(terms.activate_by as i64),
            activation: built.activation.into(),
            agreement_id: record.id.clone(),
            agreement_key: built.agreement_key,
            chain_id: chain.chain_id,
            deposit_amount: terms.deposit(),
            escrow_contract: checksummed(chain.escrow),
            funding: built.funding.into(),
            infra_fee: built.infra_fee.map(|fee| PackageInfraFee {
                amount: fee.amount,
                permit: fee.permit.into(),
                recipient: checksummed(fee.recipient),
                status: record.infra_fee_status,
            }),
            submit_to: format!("/usage-agreements/{}/activate-escrow", record.id),
            token: checksummed(chain.token),
        }
    }
}
