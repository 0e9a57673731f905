//! The activation package: everything a buyer signs to activate an agreement, as standard
//! `eth_signTypedData_v4` JSON documents.
//!
//! Each document is `{"types": {"EIP712Domain": [...], "<Primary>": [...]}, "primaryType": ...,
//! "domain": {...}, "message": {...}}` with integers as decimal strings, addresses checksummed and
//! bytes as `0x` hex, so viem, ethers, eth-account and `cast wallet sign --data` sign them
//! unchanged. [`digest_of`] hashes such a document the way a wallet does (the domain from the
//! document's own `EIP712Domain` type list), independently of the typed structs it was built
//! from; the tests hold the two equal.
//!
//! Pure: building and hashing do no I/O.

use alloy::dyn_abi::{DynSolValue, Resolver, TypedData};
use alloy::primitives::{Address, B256, hex};
use alloy::sol_types::{Eip712Domain, SolStruct, SolValue};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::typed_data::{self, Activation};
use crate::agreement::status::InfraFeeStatus;
use crate::money::TokenAmount;

/// Why a package could not be built or a document not hashed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// `quantity × unitPrice` does not fit 256 bits, so there is no deposit to authorize.
    #[error("the deposit (quantity × unit price) overflows 256 bits")]
    DepositOverflow,
    /// The JSON is not an EIP-712 typed-data document.
    #[error("not an EIP-712 typed-data document: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The document's types and message do not hash (missing type, value not of its type, …).
    #[error("cannot hash the typed data: {0}")]
    Hash(#[from] alloy::dyn_abi::Error),
    /// The `EIP712Domain` type list does not describe the `domain` object, so wallets would hash
    /// a different domain than the contract.
    #[error("the EIP712Domain type list does not match the domain fields")]
    DomainMismatch,
}

/// The result type of this module.
pub type Result<T, E = PackageError> = std::result::Result<T, E>;

/// What the buyer is given to sign to activate an agreement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivationPackage {
    /// The EIP-712 digest of the terms (`0x` hex): the agreement's identity on-chain.
    pub agreement_key: B256,
    /// The `Activation` terms, in the escrow's domain.
    pub activation: Value,
    /// The USDC `ReceiveWithAuthorization` for exactly the deposit, nonce the agreement key.
    pub funding: Value,
    /// The infra fee and the authorization that pays it; absent when the terms carry no fee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infra_fee: Option<InfraFeeBlock>,
}

/// The infra fee the escrow collects at activation, with the buyer's permit for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InfraFeeBlock {
    /// The fee in token base units (decimal string), equal to the terms' `infraFee`.
    pub amount: TokenAmount,
    /// Who the fee accrues to in the escrow (the recipient may hand its role on; this is the
    /// recipient when the package was built).
    #[serde(serialize_with = "checksummed")]
    pub recipient: Address,
    /// Where collection stands; a fresh package is always [`InfraFeeStatus::Pending`].
    pub status: InfraFeeStatus,
    /// The infra-fee permit: a USDC `ReceiveWithAuthorization` of exactly the fee to the escrow,
    /// its nonce derived from the agreement key, so it does not depend on the order in which the
    /// buyer's other authorizations are used.
    pub permit: Value,
}

/// Builds the activation package for `terms` against the escrow at `escrow` on `chain_id`,
/// funded in `token` (whose EIP-712 name is `token_name`, "USD Coin" for USDC on Base).
///
/// `fee_recipient` is the escrow's fee recipient; it matters only when `terms.infraFee > 0`.
/// Fails only when the deposit overflows.
pub fn activation_package(
    terms: &Activation,
    escrow: Address,
    chain_id: u64,
    token: Address,
    token_name: &str,
    fee_recipient: Address,
) -> Result<ActivationPackage> {
    let escrow_domain = typed_data::escrow_domain(chain_id, escrow);
    let token_domain = typed_data::token_domain(token_name.to_owned(), chain_id, token);
    let agreement_key = typed_data::agreement_key(terms, &escrow_domain);
    let funding = typed_data::funding_authorization(terms, escrow, agreement_key)
        .ok_or(PackageError::DepositOverflow)?;
    let infra_fee = (!terms.infraFee.is_zero()).then(|| InfraFeeBlock {
        amount: TokenAmount::new(terms.infraFee),
        recipient: fee_recipient,
        status: InfraFeeStatus::Pending,
        permit: typed_data_json(
            &typed_data::fee_authorization(terms, escrow, agreement_key),
            &token_domain,
        ),
    });
    Ok(ActivationPackage {
        agreement_key,
        activation: typed_data_json(terms, &escrow_domain),
        funding: typed_data_json(&funding, &token_domain),
        infra_fee,
    })
}

/// `value` in `domain` as an `eth_signTypedData_v4` document (every `sol!` struct is both a
/// [`SolStruct`] and a [`SolValue`]).
pub fn typed_data_json<T: SolStruct + SolValue>(value: &T, domain: &Eip712Domain) -> Value {
    let mut resolver = Resolver::from_struct::<T>();
    resolver
        .ingest_string(domain.encode_type())
        .expect("the domain's own type string always parses");
    // Go through the ABI encoding to reach the values field by field, for any struct. Decoding
    // what was just encoded, under the type the struct itself declares, cannot fail.
    let ty = resolver.resolve(T::NAME).expect("a `sol!` struct's types always resolve");
    let message = ty
        .abi_decode(&value.abi_encode())
        .expect("a struct's own encoding decodes under its own type");
    json!({
        "types": serde_json::to_value(&resolver).expect("type lists are plain strings"),
        "primaryType": T::NAME,
        "domain": domain_json(domain),
        "message": value_json(&message),
    })
}

/// The EIP-712 signing hash of an `eth_signTypedData_v4` document, computed as a wallet does:
/// the domain separator from the document's `EIP712Domain` type list and `domain` object, the
/// struct hash from its types and `message`.
///
/// Fails on a malformed document, or when the domain's type list does not describe the domain
/// fields (a wallet and the contract would then disagree).
pub fn digest_of(json: &Value) -> Result<B256> {
    let typed: TypedData = serde_json::from_value(json.clone())?;
    let domain_as_struct = TypedData {
        domain: typed.domain.clone(),
        resolver: typed.resolver.clone(),
        primary_type: Eip712Domain::NAME.to_owned(),
        message: json.get("domain").cloned().unwrap_or(Value::Null),
    };
    let separator = domain_as_struct.hash_struct()?;
    if separator != typed.domain.separator() {
        return Err(PackageError::DomainMismatch);
    }
    let mut preimage = Vec::with_capacity(66);
    preimage.extend_from_slice(&[0x19, 0x01]);
    preimage.extend_from_slice(separator.as_slice());
    preimage.extend_from_slice(typed.hash_struct()?.as_slice());
    Ok(alloy::primitives::keccak256(preimage))
}

/// The domain object: only the fields the domain has, in their EIP-712 order.
fn domain_json(domain: &Eip712Domain) -> Value {
    let mut object = Map::new();
    if let Some(name) = &domain.name {
        object.insert("name".into(), Value::from(name.as_ref()));
    }
    if let Some(version) = &domain.version {
        object.insert("version".into(), Value::from(version.as_ref()));
    }
    if let Some(chain_id) = domain.chain_id {
        // A number, as wallets compare it with the connected chain's; a decimal string past
        // JSON's exact range.
        let value = u64::try_from(chain_id)
            .ok()
            .filter(|id| *id < (1 << 53))
            .map_or_else(|| Value::from(chain_id.to_string()), Value::from);
        object.insert("chainId".into(), value);
    }
    if let Some(contract) = domain.verifying_contract {
        object.insert("verifyingContract".into(), Value::from(contract.to_checksum(None)));
    }
    if let Some(salt) = domain.salt {
        object.insert("salt".into(), Value::from(salt.to_string()));
    }
    Value::Object(object)
}

/// A value as `eth_signTypedData_v4` JSON: integers as decimal strings, since uint256 exceeds
/// JSON's exact range; addresses checksummed; bytes as `0x` hex; structs as objects.
fn value_json(value: &DynSolValue) -> Value {
    match value {
        DynSolValue::Bool(b) => Value::Bool(*b),
        DynSolValue::Int(i, _) => Value::from(i.to_string()),
        DynSolValue::Uint(u, _) => Value::from(u.to_string()),
        DynSolValue::FixedBytes(word, size) => Value::from(hex::encode_prefixed(&word[..*size])),
        DynSolValue::Address(address) => Value::from(address.to_checksum(None)),
        DynSolValue::Function(function) => Value::from(function.to_string()),
        DynSolValue::Bytes(bytes) => Value::from(hex::encode_prefixed(bytes)),
        DynSolValue::String(s) => Value::from(s.as_str()),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) | DynSolValue::Tuple(items) => {
            Value::Array(items.iter().map(value_json).collect())
        }
        DynSolValue::CustomStruct { prop_names, tuple, .. } => {
            Value::Object(prop_names.iter().cloned().zip(tuple.iter().map(value_json)).collect())
        }
    }
}

fn checksummed<S: Serializer>(address: &Address, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&address.to_checksum(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{U256, address, b256, keccak256};
    use alloy::sol;

    const ESCROW: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
    const TOKEN: Address = address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512");
    const FEE_RECIPIENT: Address = address!("0x90F79bf6EB2c4f870365E785982E1f101E93b906");
    const CHAIN_ID: u64 = 31337;

    fn terms() -> Activation {
        typed_data::example_terms()
    }

    fn package(terms: &Activation) -> ActivationPackage {
        activation_package(terms, ESCROW, CHAIN_ID, TOKEN, "USD Coin", FEE_RECIPIENT).unwrap()
    }

    #[test]
    fn each_document_hashes_to_what_the_contract_and_the_token_hash() {
        let terms = terms();
        let package = package(&terms);
        let escrow_domain = typed_data::escrow_domain(CHAIN_ID, ESCROW);
        let token_domain = typed_data::token_domain("USD Coin".into(), CHAIN_ID, TOKEN);
        let key = terms.eip712_signing_hash(&escrow_domain);

        assert_eq!(digest_of(&package.activation).unwrap(), key);
        assert_eq!(package.agreement_key, key);

        let funding = typed_data::funding_authorization(&terms, ESCROW, key).unwrap();
        assert_eq!(
            digest_of(&package.funding).unwrap(),
            funding.eip712_signing_hash(&token_domain)
        );

        let fee = package.infra_fee.expect("the terms carry a fee");
        let permit = typed_data::fee_authorization(&terms, ESCROW, key);
        assert_eq!(digest_of(&fee.permit).unwrap(), permit.eip712_signing_hash(&token_domain));
    }

    #[test]
    fn the_agreement_key_matches_an_independent_implementation() {
        // Computed outside Rust and alloy: a hand-written EIP-712 encoder in node over js-sha3's
        // keccak256 (the terms above, escrow domain on 31337), and confirmed by
        // `cast wallet sign --data` giving the same signature as `cast wallet sign --no-hash` of
        // this digest.
        let expected = b256!("0x1b2e64761522fa5da78ee44e5a29440011b899a8dfe7b325c72b437a1195a010");
        assert_eq!(package(&terms()).agreement_key, expected);
    }

    #[test]
    fn documents_are_in_the_wallet_json_format() {
        let package = package(&terms());
        let activation = &package.activation;
        assert_eq!(activation["primaryType"], "Activation");
        assert_eq!(
            activation["domain"],
            json!({
                "name": "Pactum UsageEscrow",
                "version": "2",
                "chainId": 31337,
                "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            })
        );
        assert_eq!(
            activation["types"]["EIP712Domain"],
            json!([
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ])
        );
        assert_eq!(
            activation["types"]["Activation"][0],
            json!({"name": "buyer", "type": "address"})
        );
        assert_eq!(activation["types"].as_object().unwrap().len(), 2);
        let message = &activation["message"];
        assert_eq!(message["buyer"], "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
        assert_eq!(message["unitPrice"], "100000");
        assert_eq!(message["activateBy"], "1750003600");
        assert_eq!(message["salt"], keccak256("salt").to_string());

        assert_eq!(package.funding["primaryType"], "ReceiveWithAuthorization");
        assert_eq!(package.funding["domain"]["name"], "USD Coin");
        assert_eq!(package.funding["message"]["value"], "10000000");
        assert_eq!(package.funding["message"]["validAfter"], "0");
        assert_eq!(package.funding["message"]["nonce"], package.agreement_key.to_string());
    }

    #[test]
    fn the_package_serializes_with_a_pending_fee_block() {
        let package = package(&terms());
        let json = serde_json::to_value(&package).unwrap();
        assert_eq!(json["agreement_key"], package.agreement_key.to_string());
        assert_eq!(json["infra_fee"]["amount"], "100000");
        assert_eq!(json["infra_fee"]["recipient"], "0x90F79bf6EB2c4f870365E785982E1f101E93b906");
        assert_eq!(json["infra_fee"]["status"], "pending");
        assert_eq!(json["infra_fee"]["permit"]["primaryType"], "ReceiveWithAuthorization");
        assert_eq!(
            json["infra_fee"]["permit"]["message"]["nonce"],
            typed_data::infra_fee_nonce(package.agreement_key).to_string()
        );
        assert_eq!(json["infra_fee"]["permit"]["message"]["validAfter"], "0");
        assert_eq!(json["infra_fee"]["permit"]["message"]["value"], "100000");
    }

    #[test]
    fn no_fee_means_no_fee_block() {
        let mut free = terms();
        free.infraFee = U256::ZERO;
        let package = package(&free);
        assert!(package.infra_fee.is_none());
        let json = serde_json::to_value(&package).unwrap();
        assert!(json.get("infra_fee").is_none());
    }

    #[test]
    fn a_deposit_that_overflows_is_refused() {
        let mut huge = terms();
        huge.quantity = U256::MAX;
        let result = activation_package(&huge, ESCROW, CHAIN_ID, TOKEN, "USD Coin", FEE_RECIPIENT);
        assert!(matches!(result, Err(PackageError::DepositOverflow)));
    }

    #[test]
    fn digest_of_follows_every_field_and_refuses_a_domain_its_types_do_not_describe() {
        let package = package(&terms());
        let mut changed = package.activation.clone();
        changed["message"]["quantity"] = json!("101");
        assert_ne!(digest_of(&changed).unwrap(), package.agreement_key);

        let mut other_chain = package.activation.clone();
        other_chain["domain"]["chainId"] = json!(8453);
        assert_ne!(digest_of(&other_chain).unwrap(), package.agreement_key);

        // A wallet would hash a domain without `version`; the contract hashes one with it.
        let mut short_types = package.activation.clone();
        short_types["types"]["EIP712Domain"].as_array_mut().unwrap().remove(1);
        assert!(matches!(digest_of(&short_types), Err(PackageError::DomainMismatch)));

        let mut bad_value = package.activation.clone();
        bad_value["message"]["buyer"] = json!("not an address");
        assert!(matches!(digest_of(&bad_value), Err(PackageError::Hash(_))));
        assert!(matches!(digest_of(&json!({"message": {}})), Err(PackageError::Malformed(_))));
    }

    sol! {
        #[derive(Debug)]
        struct Leg {
            string memo;
            int64 delta;
        }

        #[derive(Debug)]
        struct Everything {
            bool flag;
            bytes blob;
            bytes4 tag;
            uint256[] amounts;
            Leg leg;
            Leg[2] legs;
        }
    }

    #[test]
    fn any_struct_round_trips_through_its_json() {
        let leg = |memo: &str, delta: i64| Leg { memo: memo.into(), delta };
        let value = Everything {
            flag: true,
            blob: vec![0xde, 0xad, 0xbe, 0xef].into(),
            tag: [1, 2, 3, 4].into(),
            amounts: vec![U256::MAX, U256::ZERO],
            leg: leg("café", -5),
            legs: [leg("a", i64::MIN), leg("", i64::MAX)],
        };
        let domain = alloy::sol_types::eip712_domain! {
            name: "Test",
            salt: keccak256("domain salt"),
        };
        let json = typed_data_json(&value, &domain);
        assert_eq!(digest_of(&json).unwrap(), value.eip712_signing_hash(&domain));
        assert_eq!(json["message"]["amounts"][0], U256::MAX.to_string());
        assert_eq!(json["message"]["leg"], json!({"memo": "café", "delta": "-5"}));
        assert_eq!(json["message"]["tag"], "0x01020304");
        assert_eq!(
            json["domain"],
            json!({"name": "Test", "salt": keccak256("domain salt").to_string()})
        );
    }
}
