//! Deploying Pactum's contracts from the committed `abi/` bytecode, through the `sol!` bindings.
//!
//! [`deploy_local`] stands up the whole stack on a dev chain (mock USDC behind its proxy, mock
//! sanctions oracle, escrow); [`deploy_escrow`] deploys only the escrow, for a chain where the
//! token and the oracle already exist (USDC and Chainalysis on Base); [`deploy_transfer_batch`]
//! deploys the stateless payment batcher, which nothing deploys by default. Each deployment waits
//! for its receipt, so the next one can use the address.

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::SolCall;
use alloy::transports::TransportError;
use serde::{Deserialize, Serialize, Serializer};

use crate::escrow::bindings::{
    MockSanctionsOracle, MockUSDC, MockUSDCProxy, TransferBatch, UsageEscrow,
};

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A contract's creation transaction could not be sent, was not mined, or reverted.
    #[error("deploying {contract}: {source}")]
    Deploy {
        /// The contract being deployed.
        contract: &'static str,
        /// What the node or the contract said.
        #[source]
        source: alloy::contract::Error,
    },
    /// The chain id could not be read.
    #[error("reading the chain id: {0}")]
    ChainId(#[source] TransportError),
}

/// The result type of this module.
pub type Result<T, E = DeployError> = std::result::Result<T, E>;

/// What [`deploy_local`] put on the chain; written out as JSON for the service's configuration,
/// addresses checksummed as `anvil/deploy.sh` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The chain the contracts live on.
    pub chain_id: u64,
    /// The `UsageEscrow` contract.
    #[serde(serialize_with = "checksummed")]
    pub usage_escrow: Address,
    /// The token the escrow holds: on a dev chain the `MockUSDCProxy` in front of `MockUSDC`,
    /// as USDC's address on Base is its proxy's.
    #[serde(serialize_with = "checksummed")]
    pub usdc: Address,
    /// The `MockUSDC` implementation behind the proxy (never called directly).
    #[serde(serialize_with = "checksummed")]
    pub usdc_implementation: Address,
    /// The sanctions oracle the escrow consults (`MockSanctionsOracle` on a dev chain).
    #[serde(serialize_with = "checksummed")]
    pub sanctions_oracle: Address,
    /// Where infra fees are paid.
    #[serde(serialize_with = "checksummed")]
    pub fee_recipient: Address,
}

/// The accounts a local deployment names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRoles {
    /// The provider's default signer, which sends every deployment: it owns the mock token (mints,
    /// pauses, blacklists) and the mock oracle.
    pub deployer: Address,
    /// The admin of the mock USDC proxy. It may not call the token through the proxy, so it must
    /// not be the deployer or any party.
    pub usdc_proxy_admin: Address,
    /// Where infra fees are paid.
    pub fee_recipient: Address,
}

/// Deploys mock USDC behind its proxy ([`deploy_mock_usdc`]), `MockSanctionsOracle` and
/// `UsageEscrow(usdc proxy, oracle, fee_recipient)`, all from the provider's default signer.
pub async fn deploy_local(provider: &DynProvider, roles: LocalRoles) -> Result<Deployment> {
    let chain_id = provider.get_chain_id().await.map_err(DeployError::ChainId)?;
    let (usdc, usdc_implementation) =
        deploy_mock_usdc(provider, roles.deployer, roles.usdc_proxy_admin).await?;
    let oracle = MockSanctionsOracle::deploy(provider.clone())
        .await
        .map_err(failed("MockSanctionsOracle"))?;
    let usage_escrow =
        deploy_escrow(provider, usdc, *oracle.address(), roles.fee_recipient).await?;
    Ok(Deployment {
        chain_id,
        usage_escrow,
        usdc,
        usdc_implementation,
        sanctions_oracle: *oracle.address(),
        fee_recipient: roles.fee_recipient,
    })
}

/// Deploys the `MockUSDC` implementation and a `MockUSDCProxy` in front of it whose constructor
/// initializes the token ("USD Coin", "USDC", `owner` as owner, pauser and blacklister), as USDC
/// is deployed on Base. Returns the proxy's address (the token's) and the implementation's.
pub async fn deploy_mock_usdc(
    provider: &DynProvider,
    owner: Address,
    proxy_admin: Address,
) -> Result<(Address, Address)> {
    let implementation =
        *MockUSDC::deploy(provider.clone()).await.map_err(failed("MockUSDC"))?.address();
    let initialize = MockUSDC::initializeCall {
        tokenName: "USD Coin".into(),
        tokenSymbol: "USDC".into(),
        owner_: owner,
        pauser_: owner,
        blacklister_: owner,
    };
    let proxy = MockUSDCProxy::deploy(
        provider.clone(),
        implementation,
        proxy_admin,
        initialize.abi_encode().into(),
    )
    .await
    .map_err(failed("MockUSDCProxy"))?;
    Ok((*proxy.address(), implementation))
}

/// Deploys `UsageEscrow(usdc, oracle, fee_recipient)` against an existing token and oracle and
/// returns its address. The constructor refuses a zero address for any of them.
pub async fn deploy_escrow(
    provider: &DynProvider,
    usdc: Address,
    oracle: Address,
    fee_recipient: Address,
) -> Result<Address> {
    let escrow = UsageEscrow::deploy(provider.clone(), usdc, oracle, fee_recipient)
        .await
        .map_err(failed("UsageEscrow"))?;
    Ok(*escrow.address())
}

/// Deploys `TransferBatch`, which submits many signed `transferWithAuthorization`s in one
/// transaction, and returns its address. It has no constructor arguments, owner or state, so one
/// deployment serves every token and every relayer on a chain.
pub async fn deploy_transfer_batch(provider: &DynProvider) -> Result<Address> {
    let batch = TransferBatch::deploy(provider.clone()).await.map_err(failed("TransferBatch"))?;
    Ok(*batch.address())
}

fn checksummed<S: Serializer>(address: &Address, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&address.to_checksum(None))
}

fn failed(contract: &'static str) -> impl FnOnce(alloy::contract::Error) -> DeployError {
    move |source| DeployError::Deploy { contract, source }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::address;

    use super::*;

    #[test]
    fn deployment_serializes_with_snake_case_fields() {
        let deployment = Deployment {
            chain_id: 31337,
            usage_escrow: address!("0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"),
            usdc: address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
            usdc_implementation: address!("0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"),
            sanctions_oracle: address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
            fee_recipient: address!("0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"),
        };
        let json = serde_json::to_value(deployment).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "chain_id": 31337,
                "usage_escrow": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
                "usdc": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "usdc_implementation": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
                "sanctions_oracle": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
                "fee_recipient": "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
            })
        );
        assert_eq!(serde_json::from_value::<Deployment>(json).unwrap(), deployment);
    }
}
