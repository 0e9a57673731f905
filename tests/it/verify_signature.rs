//! Server-side signature checks against a real anvil: externally owned accounts by ECDSA, smart
//! wallets by ERC-1271, and a node that cannot answer told apart from a bad signature.

use crate::support::{DevChain, sign_hash};
use alloy::primitives::{B256, Bytes, U256, keccak256, uint};
use alloy::providers::ProviderBuilder;
use alloy::signers::local::PrivateKeySigner;
use pactum::chain::node_error::NodeError;
use pactum::escrow::bindings::MockSmartWallet;
use pactum::escrow::verify::{VerifyError, verify_signature};

/// secp256k1's group order n.
const N: U256 = uint!(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256);

fn digest() -> B256 {
    keccak256("an agreement key")
}

/// The malleable twin of a valid signature: `s` → `n − s`, `v` flipped. ECDSA alone recovers the
/// same address from it; the contract refuses it.
fn high_s_twin(signature: &Bytes) -> Bytes {
    let mut twin = signature.to_vec();
    let s = U256::from_be_slice(&twin[32..64]);
    twin[32..64].copy_from_slice(&(N - s).to_be_bytes::<32>());
    twin[64] = if twin[64] == 27 { 28 } else { 27 };
    twin.into()
}

#[tokio::test]
async fn an_eoa_signature_is_checked_by_ecdsa() {
    let chain = DevChain::start().await;
    let buyer = chain.buyer.address();
    let signature = sign_hash(&chain.buyer, digest());
    verify_signature(&chain.provider, buyer, digest(), &signature).await.unwrap();

    // v as 0/1 is the same signature.
    let mut low_v = signature.to_vec();
    low_v[64] -= 27;
    verify_signature(&chain.provider, buyer, digest(), &low_v).await.unwrap();

    let other = sign_hash(&chain.seller, digest());
    assert_eq!(
        verify_signature(&chain.provider, buyer, digest(), &other).await,
        Err(VerifyError::WrongSigner { expected: buyer, recovered: Some(chain.seller.address()) })
    );
    assert_eq!(
        verify_signature(&chain.provider, buyer, digest(), &high_s_twin(&signature)).await,
        Err(VerifyError::HighS)
    );
    assert_eq!(
        verify_signature(&chain.provider, buyer, digest(), &signature[..64]).await,
        Err(VerifyError::InvalidLength(64))
    );
}

#[tokio::test]
async fn a_smart_wallet_signature_is_checked_by_erc1271() {
    let chain = DevChain::start().await;
    let owner = &chain.buyer;
    let wallet = MockSmartWallet::deploy(chain.provider.clone(), owner.address()).await.unwrap();
    let wallet = *wallet.address();

    let signature = sign_hash(owner, digest());
    verify_signature(&chain.provider, wallet, digest(), &signature).await.unwrap();

    let stranger = PrivateKeySigner::random();
    let other = sign_hash(&stranger, digest());
    assert_eq!(
        verify_signature(&chain.provider, wallet, digest(), &other).await,
        Err(VerifyError::WrongSigner { expected: wallet, recovered: Some(stranger.address()) })
    );
    // The owner's signature of another digest, and the owner's high-s twin, are refused by the
    // wallet itself.
    assert!(matches!(
        verify_signature(&chain.provider, wallet, keccak256("other"), &signature).await,
        Err(VerifyError::WrongSigner { .. })
    ));
    assert_eq!(
        verify_signature(&chain.provider, wallet, digest(), &high_s_twin(&signature)).await,
        Err(VerifyError::WrongSigner { expected: wallet, recovered: None })
    );
}

#[tokio::test]
async fn a_node_that_cannot_answer_is_unavailable_not_a_refusal() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let provider = ProviderBuilder::new().connect_http(url.parse().unwrap());
    let signer = PrivateKeySigner::random();
    let stranger = PrivateKeySigner::random();

    // A good EOA signature needs no node at all.
    let signature = sign_hash(&signer, digest());
    verify_signature(&provider, signer.address(), digest(), &signature).await.unwrap();

    // Any other needs the signer's code, and the node is gone.
    let other = sign_hash(&stranger, digest());
    let err = verify_signature(&provider, signer.address(), digest(), &other).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Unavailable(NodeError::Unavailable(_))), "{err:?}");
}
