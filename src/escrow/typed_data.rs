//! The EIP-712 structs and domains the parties sign: the escrow's own (`Activation` is in the
//! contract bindings), and USDC's EIP-3009 authorizations that fund the deposit and pay the infra fee.
//!
//! These are pure values; building and hashing them does no I/O.

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};

pub use super::bindings::UsageEscrow::Activation;

/// The escrow's EIP-712 domain name.
pub const ESCROW_DOMAIN_NAME: &str = "Pactum UsageEscrow";
/// The escrow's EIP-712 domain version.
pub const ESCROW_DOMAIN_VERSION: &str = "2";
/// USDC's EIP-712 domain version (FiatToken v2).
pub const USDC_DOMAIN_VERSION: &str = "2";

sol! {
    /// The buyer's attestation that `cumulativeUnits` units were delivered in all.
    #[derive(Debug, PartialEq, Eq)]
    struct UsageVoucher {
        bytes32 agreementKey;
        uint256 cumulativeUnits;
    }

    /// A party's authorization for anyone to close on its behalf.
    #[derive(Debug, PartialEq, Eq)]
    struct InitiateClose {
        bytes32 agreementKey;
        address party;
        uint256 finalUnits;
        uint256 deadline;
    }

    /// The seller's authorization for anyone to claim on its behalf.
    #[derive(Debug, PartialEq, Eq)]
    struct SellerClaim {
        bytes32 agreementKey;
        uint256 cumulativeUnits;
        uint256 deadline;
    }

    /// The buyer's authorization for anyone to withdraw on its behalf.
    #[derive(Debug, PartialEq, Eq)]
    struct BuyerWithdraw {
        bytes32 agreementKey;
        uint256 deadline;
    }

    /// USDC's EIP-3009 authorization, used to fund the escrow and to pay the infra fee into it.
    #[derive(Debug, PartialEq, Eq)]
    struct ReceiveWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }
}

/// The escrow deployment's EIP-712 domain.
pub fn escrow_domain(chain_id: u64, escrow: Address) -> Eip712Domain {
    eip712_domain! {
        name: ESCROW_DOMAIN_NAME,
        version: ESCROW_DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: escrow,
    }
}

/// The token's EIP-712 domain (`name` is the token's, "USD Coin" for USDC on Base).
pub fn token_domain(name: String, chain_id: u64, token: Address) -> Eip712Domain {
    eip712_domain! {
        name: name,
        version: USDC_DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: token,
    }
}

/// The agreement key: the EIP-712 digest of the activation terms, which is also what the buyer
/// signs.
pub fn agreement_key(terms: &Activation, domain: &Eip712Domain) -> B256 {
    terms.eip712_signing_hash(domain)
}

/// The deposit the terms escrow: `quantity × unitPrice`, or `None` on overflow.
pub fn deposit(terms: &Activation) -> Option<U256> {
    terms.quantity.checked_mul(terms.unitPrice)
}

/// The funding authorization the escrow asks for: exactly the deposit, valid until `activateBy`,
/// its nonce the agreement key so it funds these terms only.
pub fn funding_authorization(
    terms: &Activation,
    escrow: Address,
    key: B256,
) -> Option<ReceiveWithAuthorization> {
    Some(ReceiveWithAuthorization {
        from: terms.buyer,
        to: escrow,
        value: deposit(terms)?,
        validAfter: U256::ZERO,
        validBefore: terms.activateBy,
        nonce: key,
    })
}

/// The nonce of the infra-fee authorization for agreement `key`, as the escrow's
/// `infraFeeNonce(key)`: `keccak256(key ‖ "infra-fee")`. Derived from the key, so it is unordered
/// and no other authorization the buyer signs can use it up.
pub fn infra_fee_nonce(key: B256) -> B256 {
    let mut preimage = [0u8; 32 + 9];
    preimage[..32].copy_from_slice(key.as_slice());
    preimage[32..].copy_from_slice(b"infra-fee");
    keccak256(preimage)
}

/// The infra-fee authorization the escrow asks for: a `ReceiveWithAuthorization` of exactly the
/// fee to the escrow, valid until `activateBy`, with the nonce [`infra_fee_nonce`] of the key.
pub fn fee_authorization(
    terms: &Activation,
    escrow: Address,
    key: B256,
) -> ReceiveWithAuthorization {
    ReceiveWithAuthorization {
        from: terms.buyer,
        to: escrow,
        value: terms.infraFee,
        validAfter: U256::ZERO,
        validBefore: terms.activateBy,
        nonce: infra_fee_nonce(key),
    }
}

/// Terms the unit tests share: 100 units at 0.10 USDC with a 0.10 USDC fee, anvil's accounts 1
/// and 2 as buyer and seller.
#[cfg(test)]
pub(crate) fn example_terms() -> Activation {
    use alloy::primitives::{address, keccak256};
    Activation {
        buyer: address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        seller: address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
        unitPrice: U256::from(100_000),
        quantity: U256::from(100),
        infraFee: U256::from(100_000),
        activateBy: U256::from(1_750_003_600u64),
        expiry: U256::from(1_750_086_400u64),
        closeWindow: U256::from(3600),
        salt: keccak256("salt"),
        agreementId: keccak256("agreement-1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{address, b256};

    fn terms() -> Activation {
        example_terms()
    }

    #[test]
    fn type_strings_match_the_contract() {
        // The contract hashes these exact strings into its typehashes.
        assert_eq!(
            Activation::eip712_encode_type(),
            "Activation(address buyer,address seller,uint256 unitPrice,uint256 quantity,\
             uint256 infraFee,uint256 activateBy,uint256 expiry,uint256 closeWindow,\
             bytes32 salt,bytes32 agreementId)"
        );
        assert_eq!(
            UsageVoucher::eip712_encode_type(),
            "UsageVoucher(bytes32 agreementKey,uint256 cumulativeUnits)"
        );
        assert_eq!(
            InitiateClose::eip712_encode_type(),
            "InitiateClose(bytes32 agreementKey,address party,uint256 finalUnits,uint256 deadline)"
        );
        assert_eq!(
            ReceiveWithAuthorization::eip712_encode_type(),
            "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,\
             uint256 validBefore,bytes32 nonce)"
        );
    }

    #[test]
    fn agreement_key_depends_on_every_term_and_the_domain() {
        let escrow = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
        let domain = escrow_domain(31337, escrow);
        let base = agreement_key(&terms(), &domain);
        let mut changed = terms();
        changed.quantity += U256::from(1);
        assert_ne!(agreement_key(&changed, &domain), base);
        assert_ne!(agreement_key(&terms(), &escrow_domain(8453, escrow)), base);
        assert_ne!(agreement_key(&terms(), &escrow_domain(31337, Address::ZERO)), base);
    }

    #[test]
    fn funding_is_exactly_the_deposit_and_bound_to_the_key() {
        let key = b256!("0x1111111111111111111111111111111111111111111111111111111111111111");
        let escrow = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
        let auth = funding_authorization(&terms(), escrow, key).unwrap();
        assert_eq!(auth.value, U256::from(10_000_000));
        assert_eq!(auth.nonce, key);
        assert_eq!(auth.validBefore, terms().activateBy);
        let mut huge = terms();
        huge.quantity = U256::MAX;
        assert!(funding_authorization(&huge, escrow, key).is_none());
    }
}
