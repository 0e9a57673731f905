//! Every call Pactum makes (or hands a party to make) on the escrow, encoded from the `sol!`
//! bindings: activation, the direct and sponsored close/claim/withdraw, and the seller's claim
//! batch. Pure functions: the API queues or returns their bytes, the relayer sends them.

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::SolCall;

use super::bindings::UsageEscrow;
use super::typed_data::Activation;
use super::verify;
use crate::agreement::settlement::Action;

/// `signature` as the contract takes it: `v` as 27/28 (wallets may sign with 0/1). Anything
/// that is not a 65-byte ECDSA signature (an ERC-1271 wallet's own format) passes unchanged.
pub fn canonical_signature(signature: &Bytes) -> Bytes {
    verify::canonical_signature(signature).unwrap_or_else(|_| signature.clone())
}

/// The buyer's signatures over an activation package, as accepted by the API.
#[derive(Debug, Clone)]
pub struct ActivationSignatures {
    /// The `activation` document's signature.
    pub activation: Bytes,
    /// The `funding` (`ReceiveWithAuthorization`) document's signature.
    pub funding: Bytes,
    /// The infra fee permit's signature; empty when the package has no fee.
    pub fee_permit: Bytes,
}

/// `activate(terms, …)` with every signature canonical (an absent fee permit stays empty).
pub fn activate(terms: Activation, signatures: &ActivationSignatures) -> Bytes {
    let fee_permit = if signatures.fee_permit.is_empty() {
        Bytes::new()
    } else {
        canonical_signature(&signatures.fee_permit)
    };
    UsageEscrow::activateCall {
        terms,
        buyerSignature: canonical_signature(&signatures.activation),
        fundingSignature: canonical_signature(&signatures.funding),
        feeSignature: fee_permit,
    }
    .abi_encode()
    .into()
}

/// The direct-path call of `action`, sent from the party's own wallet: a close over `units`
/// (`finalUnits`), a claim up to `units` (`cumulativeUnits`), or a withdrawal. `voucher` is the
/// buyer's voucher signature (canonicalised here; empty when the action needs none).
pub fn direct(action: Action, terms: Activation, units: u64, voucher: &Bytes) -> Bytes {
    let voucher = voucher_signature(voucher);
    match action {
        Action::InitiateClose => UsageEscrow::initiateCloseCall {
            terms,
            finalUnits: U256::from(units),
            voucherSignature: voucher,
        }
        .abi_encode(),
        Action::SellerClaim => UsageEscrow::sellerClaimCall {
            terms,
            cumulativeUnits: U256::from(units),
            voucherSignature: voucher,
        }
        .abi_encode(),
        Action::BuyerWithdraw => UsageEscrow::buyerWithdrawCall { terms }.abi_encode(),
    }
    .into()
}

/// A party's signed authorization of a sponsored action, as the relayer submits it.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The wallet that signed (the `party` of a close).
    pub signer: Address,
    /// The authorization's `deadline`, unix seconds.
    pub deadline: u64,
    /// The signature, as the party sent it.
    pub signature: Bytes,
}

/// The sponsored (`…WithAuthorization`) call of `action`, which the relayer sends and pays for.
pub fn sponsored(
    action: Action,
    terms: Activation,
    units: u64,
    voucher: &Bytes,
    authorization: &Authorization,
) -> Bytes {
    let voucher = voucher_signature(voucher);
    let deadline = U256::from(authorization.deadline);
    let signature = canonical_signature(&authorization.signature);
    match action {
        Action::InitiateClose => UsageEscrow::initiateCloseWithAuthorizationCall {
            terms,
            party: authorization.signer,
            finalUnits: U256::from(units),
            voucherSignature: voucher,
            deadline,
            authorization: signature,
        }
        .abi_encode(),
        Action::SellerClaim => UsageEscrow::sellerClaimWithAuthorizationCall {
            terms,
            cumulativeUnits: U256::from(units),
            voucherSignature: voucher,
            deadline,
            authorization: signature,
        }
        .abi_encode(),
        Action::BuyerWithdraw => UsageEscrow::buyerWithdrawWithAuthorizationCall {
            terms,
            deadline,
            authorization: signature,
        }
        .abi_encode(),
    }
    .into()
}

/// One `sellerClaimBatch` carrying every claim in `claims` (each the calldata of a
/// `sellerClaimWithAuthorization`); `None` if one of them is not.
pub fn seller_claim_batch<'a>(claims: impl IntoIterator<Item = &'a Bytes>) -> Option<Bytes> {
    let claims = claims
        .into_iter()
        .map(|calldata| {
            let call = UsageEscrow::sellerClaimWithAuthorizationCall::abi_decode(calldata).ok()?;
            Some(UsageEscrow::SponsoredClaim {
                terms: call.terms,
                cumulativeUnits: call.cumulativeUnits,
                voucherSignature: call.voucherSignature,
                deadline: call.deadline,
                authorization: call.authorization,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(UsageEscrow::sellerClaimBatchCall { claims }.abi_encode().into())
}

/// One non-atomic `batch` carrying every call in `calls`, each a sponsored
/// `initiateCloseWithAuthorization` or `buyerWithdrawWithAuthorization`; `None` if one is not.
/// The contract runs each on its own: a refused one emits `BatchCallFailed` and the rest go on.
pub fn settlement_batch<'a>(calls: impl IntoIterator<Item = &'a Bytes>) -> Option<Bytes> {
    let calls = calls
        .into_iter()
        .map(|call| settlement_terms(call).map(|_| call.clone()))
        .collect::<Option<Vec<_>>>()?;
    Some(UsageEscrow::batchCall { calls, atomic: false }.abi_encode().into())
}

/// The terms of a sponsored close or withdraw call; `None` for any other call.
pub fn settlement_terms(call: &Bytes) -> Option<Activation> {
    if let Ok(close) = UsageEscrow::initiateCloseWithAuthorizationCall::abi_decode(call) {
        return Some(close.terms);
    }
    UsageEscrow::buyerWithdrawWithAuthorizationCall::abi_decode(call).ok().map(|w| w.terms)
}

/// A voucher signature canonicalised, or empty when there is none.
fn voucher_signature(voucher: &Bytes) -> Bytes {
    if voucher.is_empty() { Bytes::new() } else { canonical_signature(voucher) }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, Bytes, U256};
    use alloy::sol_types::SolCall;

    use super::*;

    fn terms() -> Activation {
        Activation {
            buyer: Address::repeat_byte(0xb0),
            seller: Address::repeat_byte(0x5e),
            unitPrice: U256::from(100_000u64),
            quantity: U256::from(100u64),
            infraFee: U256::ZERO,
            activateBy: U256::from(1_000u64),
            expiry: U256::from(2_000u64),
            closeWindow: U256::from(60u64),
            salt: B256::repeat_byte(7),
            agreementId: B256::repeat_byte(9),
        }
    }

    /// A 65-byte signature whose `v` is `v`, with a low `s`.
    fn signature(v: u8) -> Bytes {
        let mut bytes = vec![0x11; 32];
        bytes.extend_from_slice(&[0x22; 32]);
        bytes.push(v);
        bytes.into()
    }

    #[test]
    fn canonical_signature_takes_v_to_27_28_and_leaves_other_formats() {
        assert_eq!(canonical_signature(&signature(0))[64], 27);
        assert_eq!(canonical_signature(&signature(1))[64], 28);
        assert_eq!(canonical_signature(&signature(28)), signature(28));
        let wallet_format = Bytes::from(vec![0xaa; 97]);
        assert_eq!(canonical_signature(&wallet_format), wallet_format);
    }

    #[test]
    fn activate_canonicalises_every_signature_and_keeps_an_absent_permit_empty() {
        let signatures = ActivationSignatures {
            activation: signature(0),
            funding: signature(1),
            fee_permit: Bytes::new(),
        };
        let call = UsageEscrow::activateCall::abi_decode(&activate(terms(), &signatures)).unwrap();
        assert_eq!(call.terms, terms());
        assert_eq!(call.buyerSignature[64], 27);
        assert_eq!(call.fundingSignature[64], 28);
        assert!(call.feeSignature.is_empty());
        let with_fee = ActivationSignatures { fee_permit: signature(0), ..signatures };
        let call = UsageEscrow::activateCall::abi_decode(&activate(terms(), &with_fee)).unwrap();
        assert_eq!(call.feeSignature[64], 27);
    }

    #[test]
    fn direct_calls_carry_units_and_the_voucher() {
        let voucher = signature(1);
        let close = UsageEscrow::initiateCloseCall::abi_decode(&direct(
            Action::InitiateClose,
            terms(),
            40,
            &voucher,
        ))
        .unwrap();
        assert_eq!(close.finalUnits, U256::from(40));
        assert_eq!(close.voucherSignature[64], 28);
        let claim = UsageEscrow::sellerClaimCall::abi_decode(&direct(
            Action::SellerClaim,
            terms(),
            30,
            &Bytes::new(),
        ))
        .unwrap();
        assert_eq!(claim.cumulativeUnits, U256::from(30));
        assert!(claim.voucherSignature.is_empty());
        let withdraw = direct(Action::BuyerWithdraw, terms(), 0, &voucher);
        assert_eq!(UsageEscrow::buyerWithdrawCall::abi_decode(&withdraw).unwrap().terms, terms());
    }

    #[test]
    fn sponsored_calls_carry_the_authorization() {
        let authorization = Authorization {
            signer: Address::repeat_byte(0x5e),
            deadline: 1_735_689_600,
            signature: signature(0),
        };
        let close = UsageEscrow::initiateCloseWithAuthorizationCall::abi_decode(&sponsored(
            Action::InitiateClose,
            terms(),
            40,
            &signature(1),
            &authorization,
        ))
        .unwrap();
        assert_eq!(close.party, authorization.signer);
        assert_eq!(close.finalUnits, U256::from(40));
        assert_eq!(close.deadline, U256::from(1_735_689_600u64));
        assert_eq!(close.authorization[64], 27);
        let withdraw = UsageEscrow::buyerWithdrawWithAuthorizationCall::abi_decode(&sponsored(
            Action::BuyerWithdraw,
            terms(),
            0,
            &Bytes::new(),
            &authorization,
        ))
        .unwrap();
        assert_eq!(withdraw.deadline, U256::from(1_735_689_600u64));
    }

    #[test]
    fn a_claim_batch_holds_every_sponsored_claim_and_nothing_else() {
        let authorization =
            Authorization { signer: Address::ZERO, deadline: 9, signature: signature(27) };
        let claims: Vec<Bytes> = [10, 20]
            .into_iter()
            .map(|units| {
                sponsored(Action::SellerClaim, terms(), units, &signature(27), &authorization)
            })
            .collect();
        let batch = seller_claim_batch(&claims).unwrap();
        let call = UsageEscrow::sellerClaimBatchCall::abi_decode(&batch).unwrap();
        assert_eq!(call.claims.len(), 2);
        assert_eq!(call.claims[1].cumulativeUnits, U256::from(20));
        let withdraw = sponsored(Action::BuyerWithdraw, terms(), 0, &Bytes::new(), &authorization);
        assert_eq!(seller_claim_batch(&[claims[0].clone(), withdraw]), None);
    }

    #[test]
    fn a_settlement_batch_holds_closes_and_withdraws_unchanged_and_never_atomic() {
        let authorization =
            Authorization { signer: Address::ZERO, deadline: 9, signature: signature(27) };
        let close = sponsored(Action::InitiateClose, terms(), 40, &signature(28), &authorization);
        let withdraw = sponsored(Action::BuyerWithdraw, terms(), 0, &Bytes::new(), &authorization);
        let batch = settlement_batch([&close, &withdraw]).unwrap();
        let call = UsageEscrow::batchCall::abi_decode(&batch).unwrap();
        assert!(!call.atomic, "a refused call must not sink the others");
        assert_eq!(call.calls, vec![close.clone(), withdraw.clone()]);
        assert_eq!(settlement_terms(&close).map(|t| t.quantity), Some(terms().quantity));
        let claim = sponsored(Action::SellerClaim, terms(), 10, &signature(27), &authorization);
        assert_eq!(settlement_terms(&claim), None);
        assert_eq!(settlement_batch([&close, &claim]), None);
    }
}
