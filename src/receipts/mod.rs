//! Signed receipts: each confirmed on-chain movement of an agreement's funds (the activation's
//! deposit and fee, a seller claim, a buyer withdraw) is recorded once, with the transaction,
//! block and log that prove it, and signed by the service's receipt key as EIP-712 typed data
//! ([`typed`]) so anyone can check it offline.
//!
//! Building a receipt from an escrow event and signing it are pure; the chain watcher stores it
//! (`store::receipts`) in the transaction that applies the event.

pub mod typed;

use std::fmt;

use alloy::primitives::{Address, B256, Bytes};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;

use crate::agreement::ids::{AgentId, AgreementId, ReceiptId};
use crate::money::TokenAmount;
use crate::secret::Secret;

/// Base mainnet's chain id: there a receipt key must be configured.
const BASE_MAINNET: u64 = 8453;

/// What moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptKind {
    /// The buyer's deposit went into the escrow (and the infra fee, which accrues there for its
    /// recipient).
    Activation,
    /// The seller was paid for usage.
    SellerClaim,
    /// The buyer took back what was not used.
    BuyerWithdraw,
    /// A governed payment moved from the agent's wallet to the payee.
    Payment,
}

impl ReceiptKind {
    /// `activation`, `seller_claim` or `buyer_withdraw`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Activation => "activation",
            ReceiptKind::SellerClaim => "seller_claim",
            ReceiptKind::BuyerWithdraw => "buyer_withdraw",
            ReceiptKind::Payment => "payment",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "activation" => ReceiptKind::Activation,
            "seller_claim" => ReceiptKind::SellerClaim,
            "buyer_withdraw" => ReceiptKind::BuyerWithdraw,
            "payment" => ReceiptKind::Payment,
            _ => return None,
        })
    }

    /// The kind of receipt the escrow event `event` gives, if it moves money.
    ///
    /// `CloseInitiated` and `AgreementSettled` move nothing themselves: when a close pays the
    /// seller, the contract emits `UsageClaimed` for it in the same transaction, and that is
    /// the receipt; a receipt for the settlement summary would count the same money twice.
    pub fn of_event(event: &str) -> Option<Self> {
        Some(match event {
            "EscrowActivated" => ReceiptKind::Activation,
            "UsageClaimed" => ReceiptKind::SellerClaim,
            "BuyerWithdrawn" => ReceiptKind::BuyerWithdraw,
            _ => return None,
        })
    }

    /// The escrow event that proves a receipt of this kind.
    pub fn event_name(self) -> &'static str {
        match self {
            ReceiptKind::Activation => "EscrowActivated",
            ReceiptKind::SellerClaim => "UsageClaimed",
            ReceiptKind::BuyerWithdraw => "BuyerWithdrawn",
            ReceiptKind::Payment => "Transfer",
        }
    }
}

impl fmt::Display for ReceiptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A receipt: what moved, between whom, and where on the chain it is proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Its id (`rcpt_…`), time-ordered.
    pub id: ReceiptId,
    /// What moved.
    pub kind: ReceiptKind,
    /// The agreement.
    pub agreement_id: AgreementId,
    /// The agreement's on-chain key.
    pub agreement_key: B256,
    /// The buyer agent.
    pub buyer_agent_id: AgentId,
    /// The seller agent.
    pub seller_agent_id: AgentId,
    /// The buyer's wallet.
    pub buyer_wallet: Address,
    /// The seller's wallet.
    pub seller_wallet: Address,
    /// What moved, in token base units: the deposit, the seller's pay or the buyer's refund.
    pub amount: TokenAmount,
    /// The infra fee taken with an activation; zero for other kinds.
    pub infra_fee: TokenAmount,
    /// The token.
    pub token: Address,
    /// The escrow contract.
    pub escrow: Address,
    /// The chain.
    pub chain_id: u64,
    /// The transaction that moved it.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
    /// Its block's hash.
    pub block_hash: B256,
    /// The escrow event's index among the block's logs.
    pub log_index: u64,
    /// Unix seconds.
    pub issued_at: i64,
    /// The receipt key's address.
    pub signer: Address,
    /// The receipt key's EIP-712 signature, 65 bytes `r ‖ s ‖ v`.
    pub signature: Bytes,
}

/// Where a receipt's event happened: the deployment around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The chain.
    pub chain_id: u64,
    /// The escrow contract.
    pub escrow: Address,
    /// The token it holds.
    pub token: Address,
}

/// The parties of the agreement an event concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties {
    /// The agreement.
    pub agreement_id: AgreementId,
    /// The buyer agent.
    pub buyer_agent_id: AgentId,
    /// The seller agent.
    pub seller_agent_id: AgentId,
    /// The buyer's wallet.
    pub buyer_wallet: Address,
    /// The seller's wallet.
    pub seller_wallet: Address,
}

/// One confirmed escrow event, as the receipt needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts<'a> {
    /// The event's name (`EscrowActivated`, …).
    pub event: &'a str,
    /// The agreement key it carries.
    pub agreement_key: B256,
    /// Its fields as the watcher stored them (amounts as decimal strings).
    pub data: &'a serde_json::Value,
    /// The transaction.
    pub tx_hash: B256,
    /// The block number.
    pub block_number: u64,
    /// The block hash.
    pub block_hash: B256,
    /// The log's index in the block.
    pub log_index: u64,
}

/// The unsigned receipt `event` gives, or `None` when the event moves no money (or its amount
/// field is missing, which a stored event of that kind never is).
pub fn receipt_for(
    event: &EventFacts<'_>,
    parties: Parties,
    deployment: Deployment,
    issued_at: i64,
) -> Option<Receipt> {
    let kind = ReceiptKind::of_event(event.event)?;
    let amount = |field: &str| event.data[field].as_str()?.parse::<TokenAmount>().ok();
    let (amount, infra_fee) = match kind {
        ReceiptKind::Activation => (amount("deposit")?, amount("infra_fee")?),
        ReceiptKind::SellerClaim | ReceiptKind::BuyerWithdraw => {
            (amount("amount")?, TokenAmount::ZERO)
        }
        ReceiptKind::Payment => return None,
    };
    Some(Receipt {
        id: ReceiptId::generate(),
        kind,
        agreement_id: parties.agreement_id,
        agreement_key: event.agreement_key,
        buyer_agent_id: parties.buyer_agent_id,
        seller_agent_id: parties.seller_agent_id,
        buyer_wallet: parties.buyer_wallet,
        seller_wallet: parties.seller_wallet,
        amount,
        infra_fee,
        token: deployment.token,
        escrow: deployment.escrow,
        chain_id: deployment.chain_id,
        tx_hash: event.tx_hash,
        block_number: event.block_number,
        block_hash: event.block_hash,
        log_index: event.log_index,
        issued_at,
        signer: Address::ZERO,
        signature: Bytes::new(),
    })
}

/// The receipt of confirmed payment `payment`, as it was signed, in the same `Receipt` type as
/// escrow receipts: `agreementId` is the payment's id, `agreementKey` its payment key (the
/// authorization's nonce), buyer and seller the paying agent and wallet and the payee, no
/// infra fee, `escrow` the zero address (no escrow holds a payment), and the transaction,
/// block and `Transfer` log that moved it. `None` until it is confirmed and signed.
pub fn payment_receipt(
    payment: &crate::payments::Payment,
    deployment: Deployment,
) -> Option<Receipt> {
    let (id, issued_at, signer, signature) = payment.receipt.clone()?;
    Some(Receipt {
        id,
        kind: ReceiptKind::Payment,
        agreement_id: AgreementId(payment.id.to_string()),
        agreement_key: payment.payment_key,
        buyer_agent_id: AgentId(payment.agent_id.clone()),
        seller_agent_id: AgentId(payment.to_agent_id.clone().unwrap_or_default()),
        buyer_wallet: payment.from,
        seller_wallet: payment.to,
        amount: TokenAmount::new(payment.value()),
        infra_fee: TokenAmount::ZERO,
        token: deployment.token,
        escrow: Address::ZERO,
        chain_id: deployment.chain_id,
        tx_hash: payment.tx_hash?,
        block_number: payment.block_number?,
        block_hash: payment.block_hash?,
        log_index: payment.log_index?,
        issued_at,
        signer,
        signature,
    })
}

/// Why the receipt key could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptKeyError {
    /// The configured key does not parse (the key itself is never printed).
    #[error("PACTUM_RECEIPT_PRIVATE_KEY is not a valid secp256k1 private key")]
    Invalid,
    /// No key is configured on a chain where receipts must outlive the process.
    #[error("PACTUM_RECEIPT_PRIVATE_KEY must be set on chain {0}")]
    Required(u64),
}

/// The service's receipt key. Its `Debug` shows the address only.
#[derive(Clone)]
pub struct ReceiptKey {
    signer: PrivateKeySigner,
}

impl fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReceiptKey({})", self.signer.address())
    }
}

impl ReceiptKey {
    /// Wraps a signer.
    pub fn new(signer: PrivateKeySigner) -> Self {
        Self { signer }
    }

    /// The key from the `PACTUM_RECEIPT_PRIVATE_KEY` setting. Without one, Base mainnet refuses
    /// to start; anywhere else a fresh key is made for this process, with a loud warning, since
    /// receipts it signs stop verifying once the process ends.
    pub fn from_setting(setting: Option<&Secret>, chain_id: u64) -> Result<Self, ReceiptKeyError> {
        match setting {
            Some(secret) => secret
                .expose()
                .parse::<PrivateKeySigner>()
                .map(Self::new)
                .map_err(|_| ReceiptKeyError::Invalid),
            None if chain_id == BASE_MAINNET => Err(ReceiptKeyError::Required(chain_id)),
            None => {
                let key = Self::new(PrivateKeySigner::random());
                tracing::warn!(
                    signer = %key.address(),
                    "PACTUM_RECEIPT_PRIVATE_KEY is not set: receipts are signed with a key made \
                     for this process only, and stop verifying after a restart; set it"
                );
                Ok(key)
            }
        }
    }

    /// The key's address: every receipt names it as `signer`.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// `hash` signed, 65 bytes `r ‖ s ‖ v` (the go/no-go packet's EIP-712 hash).
    pub fn sign_hash(&self, hash: &B256) -> Vec<u8> {
        // A local secp256k1 key signs any 32-byte hash; this cannot fail.
        self.signer.sign_hash_sync(hash).map(|s| s.as_bytes().to_vec()).unwrap_or_default()
    }

    /// A secret derived from this key for `purpose` alone: keccak256 of a domain tag, the
    /// purpose and the key. Nothing derived reveals the key or another purpose's secret, and
    /// the same key gives the same secret after a restart, so nothing derived is stored.
    pub fn derive_secret(&self, purpose: &str) -> B256 {
        let mut input = b"pactum/derived-secret/v1\0".to_vec();
        input.extend_from_slice(purpose.as_bytes());
        input.push(0);
        input.extend_from_slice(self.signer.to_bytes().as_slice());
        alloy::primitives::keccak256(input)
    }

    /// `receipt` signed: its `signer` and `signature` set over the other fields.
    pub fn sign(&self, mut receipt: Receipt) -> Receipt {
        receipt.signer = self.address();
        let hash = typed::signing_hash(&receipt);
        // A local secp256k1 key signs any 32-byte hash; this cannot fail.
        let signature = self.signer.sign_hash_sync(&hash).map(|s| s.as_bytes().to_vec());
        receipt.signature = Bytes::from(signature.unwrap_or_default());
        receipt
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::address;
    use serde_json::json;

    use super::*;

    fn parties() -> Parties {
        Parties {
            agreement_id: AgreementId("ua_1".into()),
            buyer_agent_id: AgentId("agt_b".into()),
            seller_agent_id: AgentId("agt_s".into()),
            buyer_wallet: address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
            seller_wallet: address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
        }
    }

    fn facts<'a>(event: &'a str, data: &'a serde_json::Value) -> EventFacts<'a> {
        EventFacts {
            event,
            agreement_key: B256::repeat_byte(1),
            data,
            tx_hash: B256::repeat_byte(2),
            block_number: 7,
            block_hash: B256::repeat_byte(3),
            log_index: 4,
        }
    }

    const DEPLOYMENT: Deployment =
        Deployment { chain_id: 31337, escrow: Address::repeat_byte(5), token: Address::ZERO };

    #[test]
    fn money_moving_events_give_receipts_with_their_amounts() {
        let data = json!({ "deposit": "10000000", "infra_fee": "300000" });
        let receipt =
            receipt_for(&facts("EscrowActivated", &data), parties(), DEPLOYMENT, 9).unwrap();
        assert_eq!(receipt.kind, ReceiptKind::Activation);
        assert_eq!(receipt.amount, TokenAmount::from_base_units(10_000_000));
        assert_eq!(receipt.infra_fee, TokenAmount::from_base_units(300_000));
        assert_eq!((receipt.block_number, receipt.log_index), (7, 4));
        assert!(receipt.id.as_str().starts_with("rcpt_"));

        let data = json!({ "amount": "4500000" });
        let claim = receipt_for(&facts("UsageClaimed", &data), parties(), DEPLOYMENT, 9).unwrap();
        assert_eq!(claim.kind, ReceiptKind::SellerClaim);
        assert_eq!(claim.amount, TokenAmount::from_base_units(4_500_000));
        assert_eq!(claim.infra_fee, TokenAmount::ZERO);
        let back = receipt_for(&facts("BuyerWithdrawn", &data), parties(), DEPLOYMENT, 9).unwrap();
        assert_eq!(back.kind, ReceiptKind::BuyerWithdraw);
    }

    #[test]
    fn events_that_move_nothing_give_none() {
        let data = json!({ "seller_amount": "1", "buyer_amount": "2", "amount": "3" });
        for event in ["CloseInitiated", "AgreementSettled", "ClaimSkipped"] {
            assert_eq!(receipt_for(&facts(event, &data), parties(), DEPLOYMENT, 9), None);
        }
        // A malformed amount gives nothing rather than a wrong receipt.
        let bad = json!({ "amount": "-1" });
        assert_eq!(receipt_for(&facts("UsageClaimed", &bad), parties(), DEPLOYMENT, 9), None);
    }

    #[test]
    fn the_key_is_required_on_base_and_never_printed() {
        assert!(matches!(
            ReceiptKey::from_setting(None, BASE_MAINNET),
            Err(ReceiptKeyError::Required(8453))
        ));
        assert!(ReceiptKey::from_setting(None, 31337).is_ok());
        let secret =
            Secret::new("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
        let key = ReceiptKey::from_setting(Some(&secret), BASE_MAINNET).unwrap();
        assert_eq!(format!("{key:?}"), format!("ReceiptKey({})", key.address()));
        assert!(matches!(
            ReceiptKey::from_setting(Some(&Secret::new("nope")), 1),
            Err(ReceiptKeyError::Invalid)
        ));
        for kind in [ReceiptKind::Activation, ReceiptKind::SellerClaim, ReceiptKind::BuyerWithdraw]
        {
            assert_eq!(ReceiptKind::parse(kind.as_str()), Some(kind));
            assert_eq!(ReceiptKind::of_event(kind.event_name()), Some(kind));
        }
    }
}
