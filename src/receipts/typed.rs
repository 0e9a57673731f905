//! The EIP-712 form of a receipt: the `Receipt` struct, signed in the "Pactum Receipts" domain
//! (version "1", the chain's id, no verifying contract), so any wallet library can check a
//! receipt offline. The type is documented in `docs/receipts.md`; changing a field here changes
//! every receipt's hash, so it needs a new domain version.
//!
//! Pure: building, hashing and recovering do no I/O.

use alloy::primitives::{Address, B256, Signature, U256};
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};
use serde_json::Value;

use super::Receipt as Record;
use crate::escrow::package::typed_data_json;

/// The receipts domain's name.
pub const DOMAIN_NAME: &str = "Pactum Receipts";
/// The receipts domain's version.
pub const DOMAIN_VERSION: &str = "1";

sol! {
    /// A confirmed on-chain movement of funds of one agreement, as Pactum attests it.
    #[derive(Debug, PartialEq, Eq)]
    struct Receipt {
        string receiptId;
        string kind;
        string agreementId;
        bytes32 agreementKey;
        string buyerAgentId;
        string sellerAgentId;
        address buyer;
        address seller;
        uint256 amount;
        uint256 infraFee;
        address token;
        address escrow;
        bytes32 txHash;
        uint256 blockNumber;
        bytes32 blockHash;
        uint256 logIndex;
        uint256 issuedAt;
    }
}

/// The receipts domain on `chain_id`.
pub fn domain(chain_id: u64) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
    }
}

/// The signed struct of `receipt` (its `signer` and `signature` are not part of it).
pub fn message(receipt: &Record) -> Receipt {
    Receipt {
        receiptId: receipt.id.0.clone(),
        kind: receipt.kind.as_str().to_owned(),
        agreementId: receipt.agreement_id.0.clone(),
        agreementKey: receipt.agreement_key,
        buyerAgentId: receipt.buyer_agent_id.0.clone(),
        sellerAgentId: receipt.seller_agent_id.0.clone(),
        buyer: receipt.buyer_wallet,
        seller: receipt.seller_wallet,
        amount: receipt.amount.base_units(),
        infraFee: receipt.infra_fee.base_units(),
        token: receipt.token,
        escrow: receipt.escrow,
        txHash: receipt.tx_hash,
        blockNumber: U256::from(receipt.block_number),
        blockHash: receipt.block_hash,
        logIndex: U256::from(receipt.log_index),
        // Issue times are set by this service's clock, never negative.
        issuedAt: U256::from(receipt.issued_at.max(0) as u64),
    }
}

/// The EIP-712 signing hash of `receipt`: what the receipt key signs.
pub fn signing_hash(receipt: &Record) -> B256 {
    message(receipt).eip712_signing_hash(&domain(receipt.chain_id))
}

/// `receipt` as an `eth_signTypedData_v4` document, for checking with any wallet library.
pub fn document(receipt: &Record) -> Value {
    typed_data_json(&message(receipt), &domain(receipt.chain_id))
}

/// The address whose key made `signature` (65 bytes `r ‖ s ‖ v`) over `receipt`'s fields as
/// they are now; `None` when the signature does not parse or recover.
pub fn recover(receipt: &Record, signature: &[u8]) -> Option<Address> {
    let signature = Signature::try_from(signature).ok()?;
    signature.recover_address_from_prehash(&signing_hash(receipt)).ok()
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{address, b256};
    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::agreement::ids::{AgentId, AgreementId, ReceiptId};
    use crate::money::TokenAmount;
    use crate::receipts::{ReceiptKey, ReceiptKind};

    fn example() -> Record {
        Record {
            id: ReceiptId("rcpt_0001".into()),
            kind: ReceiptKind::SellerClaim,
            agreement_id: AgreementId("ua_0001".into()),
            agreement_key: b256!(
                "0x1111111111111111111111111111111111111111111111111111111111111111"
            ),
            buyer_agent_id: AgentId("agt_buyer".into()),
            seller_agent_id: AgentId("agt_seller".into()),
            buyer_wallet: address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
            seller_wallet: address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
            amount: TokenAmount::from_base_units(4_500_000),
            infra_fee: TokenAmount::ZERO,
            token: address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
            escrow: address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
            chain_id: 31337,
            tx_hash: b256!("0x2222222222222222222222222222222222222222222222222222222222222222"),
            block_number: 42,
            block_hash: b256!("0x3333333333333333333333333333333333333333333333333333333333333333"),
            log_index: 3,
            issued_at: 1_750_000_000,
            signer: Address::ZERO,
            signature: Default::default(),
        }
    }

    #[test]
    fn the_type_is_the_documented_one() {
        assert_eq!(
            Receipt::eip712_encode_type(),
            "Receipt(string receiptId,string kind,string agreementId,bytes32 agreementKey,\
             string buyerAgentId,string sellerAgentId,address buyer,address seller,\
             uint256 amount,uint256 infraFee,address token,address escrow,bytes32 txHash,\
             uint256 blockNumber,bytes32 blockHash,uint256 logIndex,uint256 issuedAt)"
        );
        let domain = domain(31337);
        assert_eq!(domain.name.as_deref(), Some("Pactum Receipts"));
        assert_eq!(domain.version.as_deref(), Some("1"));
        assert_eq!(domain.verifying_contract, None);
    }

    #[test]
    fn a_signed_receipt_recovers_its_signer_and_the_document_hashes_the_same() {
        let key = ReceiptKey::new(PrivateKeySigner::random());
        let receipt = key.sign(example());
        assert_eq!(receipt.signer, key.address());
        assert_eq!(recover(&receipt, &receipt.signature), Some(key.address()));
        // A wallet hashing the typed-data document reaches the same digest.
        let digest = crate::escrow::package::digest_of(&document(&receipt)).unwrap();
        assert_eq!(digest, signing_hash(&receipt));
    }

    #[test]
    fn any_changed_field_or_chain_breaks_the_signature() {
        let key = ReceiptKey::new(PrivateKeySigner::random());
        let receipt = key.sign(example());
        let mut tampered = receipt.clone();
        tampered.amount = TokenAmount::from_base_units(4_500_001);
        assert_ne!(recover(&tampered, &receipt.signature), Some(key.address()));
        let mut tampered = receipt.clone();
        tampered.log_index = 4;
        assert_ne!(recover(&tampered, &receipt.signature), Some(key.address()));
        let mut tampered = receipt.clone();
        tampered.chain_id = 8453;
        assert_ne!(recover(&tampered, &receipt.signature), Some(key.address()));
        assert_eq!(recover(&receipt, b"not a signature"), None);
    }
}
