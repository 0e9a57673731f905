//! Demo funding on a test chain: mints mock USDC to a wallet as the token's owner, through the
//! dev node's account impersonation (anvil's `anvil_impersonateAccount`), so Pactum holds no
//! minting key. A node that does not impersonate (a public testnet) or a token without an
//! `owner()` to mint as has no faucet: [`FaucetError::Unsupported`].
//!
//! Whether a deployment may fund at all is decided above this ([`crate::wallets::funding_allowed`]);
//! this module only does it.

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::SolCall;
use serde_json::json;

use super::node_error::{self, NodeError};
use crate::escrow::bindings::MockUSDC;

/// How often the receipt of a mint is looked for.
const RECEIPT_POLL: Duration = Duration::from_millis(100);
/// How long the receipt of a mint is waited for.
const RECEIPT_WAIT: Duration = Duration::from_secs(15);

/// Why nothing was minted.
#[derive(Debug, thiserror::Error)]
pub enum FaucetError {
    /// This chain or token cannot mint demo funds.
    #[error("no demo faucet here: {0}")]
    Unsupported(String),
    /// The node could not be reached.
    #[error("node unavailable: {0}")]
    Unavailable(NodeError),
    /// The mint was sent and reverted (a paused token, …).
    #[error("the mint reverted in transaction {0}")]
    Reverted(B256),
    /// The mint was sent but no receipt came in time (a node that does not mine by itself).
    #[error("the mint {0} was not mined in time")]
    NotMined(B256),
}

/// The result type of this module.
pub type Result<T, E = FaucetError> = std::result::Result<T, E>;

/// A mint that was mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minted {
    /// The mint transaction.
    pub tx_hash: B256,
    /// The block it was mined in.
    pub block_number: u64,
}

/// Mints `amount` base units of the mock token `token` to `to`, as the token's owner, and waits
/// for the receipt.
pub async fn mint_demo_usdc(
    provider: &DynProvider,
    token: Address,
    to: Address,
    amount: U256,
) -> Result<Minted> {
    let owner = MockUSDC::new(token, provider).owner().call().await.map_err(|err| match err {
        alloy::contract::Error::TransportError(transport) => classified(&transport),
        other => FaucetError::Unsupported(format!("the token has no owner() to mint as: {other}")),
    })?;
    let _: serde_json::Value = provider
        .raw_request("anvil_impersonateAccount".into(), (owner,))
        .await
        .map_err(|err| classified(&err))?;
    let call = MockUSDC::mintCall { to, amount };
    // The node fills nonce, gas and fees itself for an impersonated sender.
    let request = json!({
        "from": owner,
        "to": token,
        "data": alloy::primitives::Bytes::from(call.abi_encode()),
    });
    let tx_hash: B256 = provider
        .raw_request("eth_sendTransaction".into(), (request,))
        .await
        .map_err(|err| classified(&err))?;
    wait_mined(provider, tx_hash).await
}

/// Moves `amount` base units of `token` from the faucet wallet `faucet` to `to` with a plain
/// `transfer` the faucet signs, and waits for the receipt. A faucet that does not hold the
/// amount is [`FaucetError::Unsupported`] (nothing is sent).
pub async fn send_from_faucet(
    provider: &DynProvider,
    faucet: &alloy::signers::local::PrivateKeySigner,
    token: Address,
    to: Address,
    amount: U256,
) -> Result<Minted> {
    let held =
        MockUSDC::new(token, provider).balanceOf(faucet.address()).call().await.map_err(|err| {
            match err {
                alloy::contract::Error::TransportError(transport) => classified(&transport),
                other => FaucetError::Unsupported(format!("the token has no balanceOf(): {other}")),
            }
        })?;
    if held < amount {
        return Err(FaucetError::Unsupported(format!(
            "the faucet wallet {} holds {held} base units, less than {amount}",
            faucet.address()
        )));
    }
    let signing = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(faucet.clone()))
        .connect_provider(provider.clone());
    let token = MockUSDC::new(token, &signing);
    let pending = token.transfer(to, amount).send().await.map_err(|err| match err {
        alloy::contract::Error::TransportError(transport) => classified(&transport),
        other => FaucetError::Unsupported(other.to_string()),
    })?;
    let tx_hash = *pending.tx_hash();
    wait_mined(provider, tx_hash).await
}

/// Waits for the receipt of `tx_hash`: mined and successful, reverted, or not mined in time.
async fn wait_mined(provider: &DynProvider, tx_hash: B256) -> Result<Minted> {
    let deadline = tokio::time::Instant::now() + RECEIPT_WAIT;
    loop {
        let receipt = provider
            .get_transaction_receipt(tx_hash)
            .await
            .map_err(|err| FaucetError::Unavailable(node_error::classify(&err)))?;
        if let Some(receipt) = receipt {
            if !receipt.status() {
                return Err(FaucetError::Reverted(tx_hash));
            }
            let block_number = receipt.block_number.unwrap_or_default();
            return Ok(Minted { tx_hash, block_number });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FaucetError::NotMined(tx_hash));
        }
        tokio::time::sleep(RECEIPT_POLL).await;
    }
}

/// A node's refusal of a dev method or a mint as [`FaucetError::Unsupported`]; a node that
/// could not answer as [`FaucetError::Unavailable`].
fn classified(err: &alloy::transports::TransportError) -> FaucetError {
    match node_error::classify(err) {
        NodeError::Unavailable(reason) => FaucetError::Unavailable(NodeError::Unavailable(reason)),
        refused => FaucetError::Unsupported(refused.to_string()),
    }
}
