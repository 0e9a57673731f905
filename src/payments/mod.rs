//! Governed payments: a one-shot USDC transfer from an agent's own wallet to a payee, under the
//! agent's policy, budgets and mandate.
//!
//! Pactum never holds the wallet's key. It builds an EIP-3009 `TransferWithAuthorization` of
//! exactly the amount to the payee, with the payment key as its nonce and a bounded
//! `validBefore`; the wallet signs it with any wallet library (`eth_signTypedData_v4`); the
//! relayer submits `transferWithAuthorization` (sponsored gas); the chain watcher confirms the
//! payment from the token's `AuthorizationUsed(from, key)` log and the `Transfer` right after it
//! in the same transaction. Anyone may submit a signed authorization, so a payment is confirmed
//! by those logs whoever sent them, and the token spends each nonce once, so it moves at most
//! once.
//!
//! This module is pure: the statuses, the typed data, the call and reading the logs.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolCall, SolEvent, SolStruct};
use serde_json::Value;

use crate::vocab::string_enum;

string_enum!(
    /// Where a payment stands.
    PaymentStatus {
        /// Held on the agent's budgets; waits for the wallet's signature.
        AwaitingSignature = "awaiting_signature",
        /// Escalated by the policy: waits for the owner's approval (nothing held yet).
        PendingApproval = "pending_approval",
        /// Signed and checked; waits for the relayer.
        Queued = "queued",
        /// Sent; waits to be mined and confirmed.
        Submitted = "submitted",
        /// The transfer is on chain at the confirmation depth.
        Confirmed = "confirmed",
        /// Refused by the chain, or its authorization spent by another transfer.
        Failed = "failed",
        /// Not signed, approved or mined before it stopped being valid.
        Expired = "expired",
        /// Refused by the policy, or its approval rejected: nothing was held.
        Blocked = "blocked",
    }
);

sol! {
    /// USDC's EIP-3009 transfer authorization: what the paying wallet signs.
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    /// The token's entry points and events a payment uses.
    #[derive(Debug, PartialEq, Eq)]
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes signature
    ) external;

    /// Whether `nonce` of `authorizer` is used or cancelled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);

    /// Emitted when an authorization's nonce is spent.
    #[derive(Debug, PartialEq, Eq)]
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);

    /// ERC-20 transfer.
    #[derive(Debug, PartialEq, Eq)]
    event Transfer(address indexed from, address indexed to, uint256 value);
}

/// What a payment authorizes: from, to, how much, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// The agent's wallet.
    pub from: Address,
    /// The payee.
    pub to: Address,
    /// Token base units.
    pub value: U256,
    /// Unix seconds after which it may be used.
    pub valid_after: u64,
    /// Unix seconds before which it must be used.
    pub valid_before: u64,
    /// The payment key.
    pub nonce: B256,
}

impl Terms {
    /// The signed struct.
    pub fn message(&self) -> TransferWithAuthorization {
        TransferWithAuthorization {
            from: self.from,
            to: self.to,
            value: self.value,
            validAfter: U256::from(self.valid_after),
            validBefore: U256::from(self.valid_before),
            nonce: self.nonce,
        }
    }

    /// The digest the wallet signs in the token's domain.
    pub fn digest(&self, token_domain: &Eip712Domain) -> B256 {
        self.message().eip712_signing_hash(token_domain)
    }

    /// The `eth_signTypedData_v4` document the wallet signs, unchanged.
    pub fn document(&self, token_domain: &Eip712Domain) -> Value {
        crate::escrow::package::typed_data_json(&self.message(), token_domain)
    }

    /// The token call that spends the authorization with `signature` (ECDSA or ERC-1271: the
    /// `bytes` form of FiatToken v2.2).
    pub fn call(&self, signature: &[u8]) -> Bytes {
        transferWithAuthorizationCall {
            from: self.from,
            to: self.to,
            value: self.value,
            validAfter: U256::from(self.valid_after),
            validBefore: U256::from(self.valid_before),
            nonce: self.nonce,
            signature: Bytes::copy_from_slice(signature),
        }
        .abi_encode()
        .into()
    }
}

/// A governed payment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    /// Its id (`pay_…`).
    pub id: crate::agreement::ids::PaymentId,
    /// The agent's account.
    pub account_id: String,
    /// The paying agent.
    pub agent_id: String,
    /// The agent's wallet it is paid from.
    pub from: Address,
    /// The payee.
    pub to: Address,
    /// The payee's agent, when it was named by agent id.
    pub to_agent_id: Option<String>,
    /// Cents.
    pub amount_cents: u64,
    /// `USD` or `USDC`.
    pub currency: String,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The authorization's nonce.
    pub payment_key: B256,
    /// Unix seconds after which the authorization may be used.
    pub valid_after: u64,
    /// Unix seconds before which it must be used.
    pub valid_before: u64,
    /// The hold on the agent's budgets.
    pub reservation_id: Option<String>,
    /// The mandate it was made under.
    pub mandate_id: Option<String>,
    /// The approval it waits for (or waited for).
    pub approval_id: Option<String>,
    /// The policy decision that let it through, escalated or blocked it.
    pub check_id: Option<String>,
    /// A note for the payer's records.
    pub memo: Option<String>,
    /// The caller's JSON object.
    pub metadata: Option<Value>,
    /// The wallet's signature, once authorized.
    pub signature: Option<Bytes>,
    /// The relayer job carrying it.
    pub job_id: Option<String>,
    /// The transaction that moved it (or carries it, once submitted).
    pub tx_hash: Option<B256>,
    /// Where it was mined (confirmed payments).
    pub block_number: Option<u64>,
    /// The block's hash.
    pub block_hash: Option<B256>,
    /// The `Transfer` log's index in its block.
    pub log_index: Option<u64>,
    /// Why it failed, was blocked or expired.
    pub error: Option<String>,
    /// The signed receipt of a confirmed payment: id, issue time, signer and signature.
    pub receipt: Option<(crate::agreement::ids::ReceiptId, i64, Address, Bytes)>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Payment {
    /// The amount in token base units.
    pub fn value(&self) -> U256 {
        crate::money::Cents(self.amount_cents).to_token_amount().base_units()
    }

    /// What the wallet authorizes.
    pub fn terms(&self) -> Terms {
        Terms {
            from: self.from,
            to: self.to,
            value: self.value(),
            valid_after: self.valid_after,
            valid_before: self.valid_before,
            nonce: self.payment_key,
        }
    }
}

/// The `TransferBatch.transferAll` call that submits every payment call in `calls` (each a
/// `transferWithAuthorization` of `token`, as [`Terms::call`] encodes it) in one transaction;
/// `None` if one of them is not such a call.
pub fn batch_call<'a>(token: Address, calls: impl IntoIterator<Item = &'a Bytes>) -> Option<Bytes> {
    use crate::escrow::bindings::TransferBatch::{Authorization, transferAllCall};
    let batch = calls
        .into_iter()
        .map(|call| {
            let c = transferWithAuthorizationCall::abi_decode(call).ok()?;
            Some(Authorization {
                from: c.from,
                to: c.to,
                value: c.value,
                validAfter: c.validAfter,
                validBefore: c.validBefore,
                nonce: c.nonce,
                signature: c.signature,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(transferAllCall { token, batch }.abi_encode().into())
}

/// Gas a batch of `payments` payments with `calldata_len` bytes of call is never sent with less
/// than: a payment costs about 52,000 inside a batch (docs/gas.md), so 64,000 each leaves room
/// for a smart wallet's ERC-1271 check; an estimate met with some payments refusing (cheap) must
/// not starve the same payments paying in the mined block.
pub fn batch_gas_floor(payments: usize, calldata_len: usize) -> u64 {
    crate::chain::gas::gas_floor(payments, calldata_len, 64_000)
}

/// A fresh payment key: 32 random bytes, the authorization's nonce.
pub fn new_key() -> B256 {
    B256::from(rand::random::<[u8; 32]>())
}

/// A spent authorization as the watcher read it: `AuthorizationUsed(authorizer, nonce)` and
/// the `Transfer` that came right after it in the same transaction (the token emits the two
/// together), if that transfer is from the authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpentAuthorization {
    /// Who authorized.
    pub authorizer: Address,
    /// The nonce spent: a payment key, when it is Pactum's.
    pub nonce: B256,
    /// The transfer it made, when it made one: payee, value and the `Transfer` log's index.
    pub transfer: Option<(Address, U256, u64)>,
}

/// The spent authorizations in one transaction's (or block's) token logs, in order. `logs` are
/// `(log index, transaction hash, topics, data)` of the token's logs.
pub fn spent_authorizations(logs: &[TokenLog]) -> Vec<(B256, u64, SpentAuthorization)> {
    let mut found = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let Ok(used) = AuthorizationUsed::decode_raw_log(log.topics.iter().copied(), &log.data)
        else {
            continue;
        };
        let transfer = logs
            .get(i + 1)
            .filter(|next| next.tx_hash == log.tx_hash && next.log_index == log.log_index + 1);
        let transfer = transfer
            .and_then(|next| {
                Transfer::decode_raw_log(next.topics.iter().copied(), &next.data)
                    .ok()
                    .map(|t| (t, next.log_index))
            })
            .filter(|(t, _)| t.from == used.authorizer)
            .map(|(t, index)| (t.to, t.value, index));
        found.push((
            log.tx_hash,
            log.log_index,
            SpentAuthorization { authorizer: used.authorizer, nonce: used.nonce, transfer },
        ));
    }
    found
}

/// One log of the token, as [`spent_authorizations`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLog {
    /// The log's index in its block.
    pub log_index: u64,
    /// Its transaction.
    pub tx_hash: B256,
    /// Its topics.
    pub topics: Vec<B256>,
    /// Its data.
    pub data: Bytes,
}

/// What a spent authorization means for the payment of the same key, from `from` to `to` of
/// `value`: `Ok(log index of the transfer)` when it is that very transfer, `Err(why)` when the
/// nonce was spent otherwise (another authorizer using the same nonce is not this payment and
/// is ignored by the caller).
pub fn judge(spent: &SpentAuthorization, to: Address, value: U256) -> Result<u64, String> {
    match spent.transfer {
        Some((payee, amount, index)) if payee == to && amount == value => Ok(index),
        Some((payee, amount, _)) => Err(format!(
            "the authorization was spent by a transfer of {amount} to {payee}, not this payment"
        )),
        None => Err("the authorization was spent without this payment's transfer".to_owned()),
    }
}

/// The topics the watcher asks the token for: `AuthorizationUsed` and `Transfer`.
pub fn watched_topics() -> [B256; 2] {
    [AuthorizationUsed::SIGNATURE_HASH, Transfer::SIGNATURE_HASH]
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{LogData, address};
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::escrow::typed_data::token_domain;

    fn terms(from: Address) -> Terms {
        Terms {
            from,
            to: address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
            value: U256::from(1_250_000u64),
            valid_after: 0,
            valid_before: 1_900_000_000,
            nonce: B256::repeat_byte(9),
        }
    }

    fn log(index: u64, tx: u8, data: LogData) -> TokenLog {
        TokenLog {
            log_index: index,
            tx_hash: B256::repeat_byte(tx),
            topics: data.topics().to_vec(),
            data: data.data,
        }
    }

    #[test]
    fn the_document_is_usdc_transfer_with_authorization_and_hashes_to_the_digest() {
        let signer = PrivateKeySigner::random();
        let domain = token_domain(
            "USD Coin".into(),
            31_337,
            address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        );
        let terms = terms(signer.address());
        let doc = terms.document(&domain);
        assert_eq!(doc["primaryType"], "TransferWithAuthorization");
        assert_eq!(doc["domain"]["version"], "2");
        assert_eq!(doc["message"]["value"], "1250000");
        let digest = crate::escrow::package::digest_of(&doc).unwrap();
        assert_eq!(digest, terms.digest(&domain));
        assert_eq!(
            TransferWithAuthorization::eip712_encode_type(),
            "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,\
             uint256 validBefore,bytes32 nonce)"
        );
        let signature = signer.sign_hash_sync(&digest).unwrap().as_bytes();
        assert_eq!(crate::escrow::verify::recover(digest, &signature), Ok(signer.address()));
    }

    #[test]
    fn the_call_carries_every_term_and_the_signature() {
        let terms = terms(Address::repeat_byte(1));
        let call = terms.call(&[7u8; 65]);
        let decoded = transferWithAuthorizationCall::abi_decode(&call).unwrap();
        assert_eq!(decoded.from, terms.from);
        assert_eq!(decoded.to, terms.to);
        assert_eq!(decoded.value, terms.value);
        assert_eq!(decoded.validBefore, U256::from(terms.valid_before));
        assert_eq!(decoded.nonce, terms.nonce);
        assert_eq!(decoded.signature.as_ref(), &[7u8; 65]);
    }

    #[test]
    fn a_batch_carries_every_payment_call_and_nothing_else() {
        use crate::escrow::bindings::TransferBatch::transferAllCall;
        let token = Address::repeat_byte(5);
        let (one, two) = (terms(Address::repeat_byte(1)), terms(Address::repeat_byte(2)));
        let calls = [one.call(&[1u8; 65]), two.call(&[2u8; 65])];
        let batch = batch_call(token, calls.iter()).unwrap();
        let decoded = transferAllCall::abi_decode(&batch).unwrap();
        assert_eq!(decoded.token, token);
        assert_eq!(decoded.batch.len(), 2);
        assert_eq!(decoded.batch[1].from, two.from);
        assert_eq!(decoded.batch[1].signature.as_ref(), &[2u8; 65]);
        assert_eq!(batch_call(token, [Bytes::from_static(b"nope")].iter()), None);
    }

    #[test]
    fn a_spent_authorization_pairs_with_the_transfer_right_after_it() {
        let (from, to) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let nonce = B256::repeat_byte(9);
        let used = AuthorizationUsed { authorizer: from, nonce }.encode_log_data();
        let moved = Transfer { from, to, value: U256::from(5u64) }.encode_log_data();
        let other = Transfer { from: to, to: from, value: U256::from(5u64) }.encode_log_data();
        let found = spent_authorizations(&[log(3, 1, used.clone()), log(4, 1, moved.clone())]);
        assert_eq!(found.len(), 1);
        let spent = found[0].2;
        assert_eq!(spent.transfer, Some((to, U256::from(5u64), 4)));
        assert_eq!(judge(&spent, to, U256::from(5u64)), Ok(4));
        assert!(judge(&spent, to, U256::from(6u64)).is_err());
        assert!(judge(&spent, from, U256::from(5u64)).is_err());
        // Not adjacent, another transaction, or a transfer from someone else: no transfer.
        for logs in [
            vec![log(3, 1, used.clone()), log(5, 1, moved.clone())],
            vec![log(3, 1, used.clone()), log(4, 2, moved)],
            vec![log(3, 1, used.clone()), log(4, 1, other)],
            vec![log(3, 1, used)],
        ] {
            let found = spent_authorizations(&logs);
            assert_eq!(found[0].2.transfer, None);
            assert!(judge(&found[0].2, to, U256::from(5u64)).is_err());
        }
    }
}
