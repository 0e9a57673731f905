//! Signing and verifying a packet with the receipt key.
//!
//! `packet_hash` is keccak256 of the packet's canonical JSON ([`super::canonical`]) with its
//! `signature` member removed. The receipt key signs the EIP-712 struct
//! `GoNoGoPacket(string runId,string verdict,bytes32 packetHash,uint256 finishedAt)` in the
//! receipts domain ("Pactum Receipts", version "1", the chain's id, as receipts are), so any
//! EIP-712 tool checks it from the `typed_data` document the packet carries.
//!
//! Pure: hashing, signing with a key in memory and recovering do no I/O.

use alloy::primitives::{Address, B256, Signature, U256, keccak256};
use alloy::sol;
use alloy::sol_types::SolStruct;

use super::{Packet, PacketSignature, canonical};
use crate::escrow::package::typed_data_json;
use crate::receipts::ReceiptKey;
use crate::receipts::typed::domain;

sol! {
    /// A go/no-go packet, as the receipt key attests it.
    #[derive(Debug, PartialEq, Eq)]
    struct GoNoGoPacket {
        string runId;
        string verdict;
        bytes32 packetHash;
        uint256 finishedAt;
    }
}

/// Why a packet does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The packet carries no signature.
    #[error("the packet is not signed")]
    Unsigned,
    /// The packet's content does not hash to the signed `packet_hash`: it was changed.
    #[error("the packet was changed after signing: it hashes to {found}, {signed} was signed")]
    Altered {
        /// What the packet hashes to now.
        found: B256,
        /// What was signed.
        signed: String,
    },
    /// The signature does not parse or recovers no signer.
    #[error("the signature is malformed")]
    Malformed,
    /// The signature recovers another address than the packet's `signer`.
    #[error("the signature recovers {recovered}, not the stated signer {stated}")]
    WrongSigner {
        /// Who signed.
        recovered: Address,
        /// Who the packet says signed.
        stated: String,
    },
}

/// keccak256 of `packet`'s canonical JSON without its `signature`.
pub fn packet_hash(packet: &Packet) -> B256 {
    let mut value = serde_json::to_value(packet).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("signature");
    }
    keccak256(canonical::to_string(&value).as_bytes())
}

fn message(packet: &Packet, hash: B256) -> GoNoGoPacket {
    GoNoGoPacket {
        runId: packet.run_id.clone(),
        verdict: packet.verdict.as_str().to_owned(),
        packetHash: hash,
        finishedAt: U256::from(packet.finished_at.max(0) as u64),
    }
}

/// The EIP-712 signing hash of `packet` (what the receipt key signs).
pub fn signing_hash(packet: &Packet) -> B256 {
    message(packet, packet_hash(packet)).eip712_signing_hash(&domain(packet.deployment.chain_id))
}

/// `packet` signed by `key`: its `signature` set.
pub fn sign(mut packet: Packet, key: &ReceiptKey) -> Packet {
    packet.signature = None;
    let hash = packet_hash(&packet);
    let typed = message(&packet, hash);
    let typed_data = typed_data_json(&typed, &domain(packet.deployment.chain_id));
    let signature = key.sign_hash(&typed.eip712_signing_hash(&domain(packet.deployment.chain_id)));
    packet.signature = Some(PacketSignature {
        signer: key.address().to_checksum(None),
        packet_hash: hash.to_string(),
        typed_data,
        signature: alloy::hex::encode_prefixed(signature),
    });
    packet
}

/// The address that signed `packet`, once its hash, its signed fields and its stated signer
/// all check out. The caller compares it with the receipt signer it trusts.
pub fn verify(packet: &Packet) -> Result<Address, VerifyError> {
    let signed = packet.signature.as_ref().ok_or(VerifyError::Unsigned)?;
    let found = packet_hash(packet);
    if signed.packet_hash.parse::<B256>().ok() != Some(found) {
        return Err(VerifyError::Altered { found, signed: signed.packet_hash.clone() });
    }
    let bytes = alloy::hex::decode(&signed.signature).map_err(|_| VerifyError::Malformed)?;
    let signature = Signature::try_from(bytes.as_slice()).map_err(|_| VerifyError::Malformed)?;
    let recovered = signature
        .recover_address_from_prehash(&signing_hash(packet))
        .map_err(|_| VerifyError::Malformed)?;
    if signed.signer.parse::<Address>().ok() != Some(recovered) {
        return Err(VerifyError::WrongSigner { recovered, stated: signed.signer.clone() });
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::gonogo::{Deployment, Section, SectionReport, Verdict};

    fn packet() -> Packet {
        let sections = Section::ALL
            .iter()
            .map(|s| SectionReport::new(*s, Verdict::Go, "ok", &serde_json::json!({"n": 1})))
            .collect();
        let deployment = Deployment {
            chain_id: 31337,
            escrow: Address::repeat_byte(5).to_checksum(None),
            environment: "test".into(),
            binary_version: "0.1.0".into(),
        };
        Packet::new("gng_1".into(), deployment, 10, 20, sections)
    }

    #[test]
    fn a_signed_packet_recovers_its_signer_and_any_change_breaks_it() {
        let key = ReceiptKey::new(PrivateKeySigner::random());
        let signed = sign(packet(), &key);
        assert_eq!(verify(&signed), Ok(key.address()));
        // The digest a third party recomputes from the typed data is the one signed.
        let typed = &signed.signature.as_ref().unwrap().typed_data;
        assert_eq!(crate::escrow::package::digest_of(typed).unwrap(), signing_hash(&signed));

        let mut changed = signed.clone();
        changed.sections[3].summary = "edited".into();
        assert!(matches!(verify(&changed), Err(VerifyError::Altered { .. })));

        let mut flipped = signed.clone();
        flipped.verdict = Verdict::NoGo;
        assert!(matches!(verify(&flipped), Err(VerifyError::Altered { .. })));

        let mut claimed = signed;
        claimed.signature.as_mut().unwrap().signer = Address::repeat_byte(1).to_checksum(None);
        assert!(matches!(verify(&claimed), Err(VerifyError::WrongSigner { .. })));
        assert_eq!(verify(&packet()), Err(VerifyError::Unsigned));
    }
}
