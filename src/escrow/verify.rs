//! Server-side signature checks, done before anything is queued, by the escrow's own rules
//! (`contracts/src/SignatureVerifier.sol`): ECDSA first, then ERC-1271 when the signer is a
//! contract. A signature the contract would refuse is refused here, so a bad one costs the
//! relayer no gas.
//!
//! The token's authorizations (USDC `receiveWithAuthorization`) are checked by the token's own
//! rule instead ([`verify_token_signature`]): USDC's `SignatureChecker` tries only ERC-1271 when
//! the signer has code, so an EIP-7702 delegated EOA's plain ECDSA signature passes there only if
//! its delegate implements ERC-1271 and accepts it.
//!
//! [`recover`] is pure; [`verify_signature`] asks the node about the signer's code and, for a
//! smart wallet, its `isValidSignature`. A node that cannot answer is [`VerifyError::Unavailable`],
//! which is never a verdict on the signature.

use alloy::primitives::{Address, B256, Bytes, Signature};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol;
use alloy::sol_types::SolCall;

use super::wallet::{self, AccountKind};
use crate::chain::node_error::{self, NodeError};

sol! {
    /// ERC-1271: a contract's answer to "is this signature yours?".
    interface IERC1271 {
        /// Returns the magic value 0x1626ba7e (this function's selector) when `signature` is
        /// valid for `hash`.
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4);
    }
}

/// Why a signature was refused or could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not 65 bytes `r ‖ s ‖ v`.
    #[error("signature is {0} bytes; expected 65 (r ‖ s ‖ v)")]
    InvalidLength(usize),
    /// `v` is not 27 or 28 (or 0 or 1).
    #[error("signature v is {0}; expected 27 or 28")]
    InvalidV(u8),
    /// `s` is in the upper half of the curve order: a malleable twin of a valid signature, which
    /// the contract (as OpenZeppelin's ECDSA) refuses.
    #[error("signature s is in the upper half of the curve order; sign again with a low s")]
    HighS,
    /// `r` or `s` is not a point the signature can be recovered from (zero, or past the order).
    #[error("signature recovers no address")]
    Unrecoverable,
    /// A well-formed signature by someone other than the expected signer, or one the signer's
    /// smart wallet refused.
    #[error(
        "signature is not {expected}'s{}",
        .recovered.map(|a| format!(" (ECDSA recovers {a})")).unwrap_or_default()
    )]
    WrongSigner {
        /// Who had to sign.
        expected: Address,
        /// Whom ECDSA recovers, if the signature is a well-formed ECDSA signature at all.
        recovered: Option<Address>,
    },
    /// The signer is an EIP-7702 delegated EOA that signed with its own key, but its delegate
    /// refused the signature through ERC-1271 (or does not implement it); a token that checks
    /// accounts with code only through ERC-1271 (USDC) would refuse it.
    #[error(
        "{account} is an EIP-7702 delegated account whose delegate {delegate} does not implement \
         ERC-1271 for this signature; USDC checks an account with code only through ERC-1271"
    )]
    DelegateRefused {
        /// The delegated account (the signer).
        account: Address,
        /// The contract its designator points at.
        delegate: Address,
    },
    /// The node could not answer, so the signature is neither accepted nor refused.
    #[error("could not check the signature: {0}")]
    Unavailable(#[source] NodeError),
}

/// The result type of this module.
pub type Result<T, E = VerifyError> = std::result::Result<T, E>;

/// The address whose key signed `digest`, from a 65-byte `r ‖ s ‖ v` signature.
///
/// `v` may be 27/28 or 0/1 (what some wallets and hardware signers produce); the contract takes
/// only 27/28, so submit [`canonical_signature`] of what was accepted here. High-`s` signatures
/// are refused.
pub fn recover(digest: B256, signature: &[u8]) -> Result<Address> {
    parse(signature)?.recover_address_from_prehash(&digest).map_err(|_| VerifyError::Unrecoverable)
}

/// The signature in the form the contract accepts: `r ‖ s ‖ v` with `v` 27 or 28.
pub fn canonical_signature(signature: &[u8]) -> Result<Bytes> {
    Ok(Bytes::from(parse(signature)?.as_bytes().to_vec()))
}

/// Checks that `signer` signed `digest`: ECDSA when it recovers `signer`; otherwise, when
/// `signer` has code, the ERC-1271 magic value from its `isValidSignature(digest, signature)`
/// (called with the signature exactly as given, since a smart wallet defines its own format).
pub async fn verify_signature<P: Provider>(
    provider: &P,
    signer: Address,
    digest: B256,
    signature: &[u8],
) -> Result<()> {
    let ecdsa = recover(digest, signature);
    if ecdsa.as_ref() == Ok(&signer) {
        return Ok(());
    }
    let code = provider.get_code_at(signer).await.map_err(unavailable)?;
    if code.is_empty() {
        // An externally owned account: the ECDSA answer is the verdict.
        return Err(match ecdsa {
            Ok(recovered) => {
                VerifyError::WrongSigner { expected: signer, recovered: Some(recovered) }
            }
            Err(malformed) => malformed,
        });
    }
    if erc1271_accepts(provider, signer, digest, signature).await? {
        Ok(())
    } else {
        Err(VerifyError::WrongSigner { expected: signer, recovered: ecdsa.ok() })
    }
}

/// Checks that `signer` signed `digest` the way USDC (FiatToken v2.2's `SignatureChecker`)
/// checks a `receiveWithAuthorization`: ECDSA alone when `signer` has no code, ERC-1271 alone
/// when it has any, an EIP-7702 delegation designator included. A delegated EOA whose delegate
/// refuses a signature that ECDSA recovers to the EOA is [`VerifyError::DelegateRefused`]: the
/// key is right, the account cannot authorize USDC this way.
///
/// `kind` is `signer`'s [`AccountKind`], read by the caller ([`signer_kind`]) once for all the
/// token signatures of one request.
pub async fn verify_token_signature<P: Provider>(
    provider: &P,
    signer: Address,
    kind: AccountKind,
    digest: B256,
    signature: &[u8],
) -> Result<()> {
    let ecdsa = recover(digest, signature);
    match kind {
        AccountKind::Eoa => match ecdsa {
            Ok(recovered) if recovered == signer => Ok(()),
            Ok(recovered) => {
                Err(VerifyError::WrongSigner { expected: signer, recovered: Some(recovered) })
            }
            Err(malformed) => Err(malformed),
        },
        _ if erc1271_accepts(provider, signer, digest, signature).await? => Ok(()),
        AccountKind::Delegated { delegate } if ecdsa.as_ref() == Ok(&signer) => {
            Err(VerifyError::DelegateRefused { account: signer, delegate })
        }
        _ => Err(VerifyError::WrongSigner { expected: signer, recovered: ecdsa.ok() }),
    }
}

/// `signer`'s account kind for [`verify_token_signature`]; a node that cannot answer is
/// [`VerifyError::Unavailable`].
pub async fn signer_kind<P: Provider>(provider: &P, signer: Address) -> Result<AccountKind> {
    wallet::account_kind(provider, signer).await.map_err(VerifyError::Unavailable)
}

/// The 65 bytes as a signature, refusing what the contract would refuse.
fn parse(signature: &[u8]) -> Result<Signature> {
    let bytes: &[u8; 65] =
        signature.try_into().map_err(|_| VerifyError::InvalidLength(signature.len()))?;
    let v = bytes[64];
    if !matches!(v, 0 | 1 | 27 | 28) {
        return Err(VerifyError::InvalidV(v));
    }
    let signature = Signature::from_bytes_and_parity(&bytes[..64], v % 27 == 1);
    if signature.normalize_s().is_some() {
        return Err(VerifyError::HighS);
    }
    Ok(signature)
}

/// True when `wallet` answers the magic value, as the contract reads it: the first 32 bytes of
/// the return data are the selector, left-aligned. A revert, or any other answer, is a refusal.
async fn erc1271_accepts<P: Provider>(
    provider: &P,
    wallet: Address,
    digest: B256,
    signature: &[u8],
) -> Result<bool> {
    let call = IERC1271::isValidSignatureCall {
        hash: digest,
        signature: Bytes::copy_from_slice(signature),
    };
    let request = TransactionRequest::default().to(wallet).input(call.abi_encode().into());
    match provider.call(request).await {
        Ok(output) => {
            let magic = B256::right_padding_from(&IERC1271::isValidSignatureCall::SELECTOR);
            Ok(output.get(..32) == Some(magic.as_slice()))
        }
        Err(err) => match node_error::classify(&err) {
            NodeError::Reverted { .. } => Ok(false),
            other => Err(VerifyError::Unavailable(other)),
        },
    }
}

fn unavailable(err: alloy::transports::TransportError) -> VerifyError {
    VerifyError::Unavailable(node_error::classify(&err))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{U256, keccak256, uint};
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    use super::*;

    /// secp256k1's group order n.
    const N: U256 = uint!(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256);

    fn signed(digest: B256) -> (PrivateKeySigner, [u8; 65]) {
        let signer = PrivateKeySigner::random();
        let signature = signer.sign_hash_sync(&digest).unwrap().as_bytes();
        (signer, signature)
    }

    #[test]
    fn the_magic_value_is_the_selector() {
        assert_eq!(IERC1271::isValidSignatureCall::SELECTOR, [0x16, 0x26, 0xba, 0x7e]);
    }

    #[test]
    fn recovers_the_signer_with_v_27_28_or_0_1() {
        let digest = keccak256("terms");
        let (signer, mut signature) = signed(digest);
        assert!(matches!(signature[64], 27 | 28));
        assert_eq!(recover(digest, &signature), Ok(signer.address()));
        let canonical = signature;
        signature[64] -= 27;
        assert_eq!(recover(digest, &signature), Ok(signer.address()));
        assert_eq!(canonical_signature(&signature).unwrap().as_ref(), canonical.as_slice());
    }

    #[test]
    fn another_digest_recovers_another_address() {
        let (signer, signature) = signed(keccak256("terms"));
        assert_ne!(recover(keccak256("other terms"), &signature), Ok(signer.address()));
    }

    #[test]
    fn refuses_high_s_twin() {
        let digest = keccak256("terms");
        let (_, mut signature) = signed(digest);
        let s = U256::from_be_slice(&signature[32..64]);
        signature[32..64].copy_from_slice(&(N - s).to_be_bytes::<32>());
        signature[64] = if signature[64] == 27 { 28 } else { 27 };
        assert_eq!(recover(digest, &signature), Err(VerifyError::HighS));
    }

    #[test]
    fn refuses_bad_v_and_length() {
        let digest = keccak256("terms");
        let (_, mut signature) = signed(digest);
        signature[64] = 29;
        assert_eq!(recover(digest, &signature), Err(VerifyError::InvalidV(29)));
        signature[64] = 37; // an EIP-155 transaction v, not a message signature's
        assert_eq!(recover(digest, &signature), Err(VerifyError::InvalidV(37)));
        assert_eq!(recover(digest, &signature[..64]), Err(VerifyError::InvalidLength(64)));
        assert_eq!(recover(digest, &[]), Err(VerifyError::InvalidLength(0)));
    }

    #[test]
    fn refuses_zero_r() {
        let mut signature = [0u8; 65];
        signature[63] = 1;
        signature[64] = 27;
        assert_eq!(recover(keccak256("terms"), &signature), Err(VerifyError::Unrecoverable));
    }
}
