//! Deploying from `abi/` on a real anvil: the local stack wired together as the constructor was
//! told, and the escrow alone against an existing token and oracle.

use crate::support::{DevChain, USDC_PROXY_ADMIN};
use alloy::primitives::Address;
use alloy::providers::Provider;
use pactum::chain::deploy::{self, DeployError};
use pactum::escrow::bindings::{MockSanctionsOracle, MockUSDC, MockUSDCProxy, UsageEscrow};

#[tokio::test]
async fn deploy_local_wires_the_escrow_to_the_token_and_the_oracle() {
    // DevChain deploys through deploy_local; deploy a second stack beside it to inspect.
    let chain = DevChain::start().await;
    let admin = chain.anvil.addresses()[USDC_PROXY_ADMIN];
    let roles = deploy::LocalRoles {
        deployer: chain.deployer.address(),
        usdc_proxy_admin: admin,
        fee_recipient: chain.fee_recipient,
    };
    let deployment = deploy::deploy_local(&chain.provider, roles).await.unwrap();
    assert_eq!(deployment.chain_id, chain.chain_id);
    assert_eq!(deployment.fee_recipient, chain.fee_recipient);
    for address in [
        deployment.usage_escrow,
        deployment.usdc,
        deployment.usdc_implementation,
        deployment.sanctions_oracle,
    ] {
        assert!(!chain.provider.get_code_at(address).await.unwrap().is_empty());
    }
    assert_ne!(deployment.usage_escrow, *chain.escrow.address());

    let escrow = UsageEscrow::new(deployment.usage_escrow, chain.provider.clone());
    assert_eq!(escrow.token().call().await.unwrap(), deployment.usdc);
    assert_eq!(escrow.sanctionsOracle().call().await.unwrap(), deployment.sanctions_oracle);
    assert_eq!(escrow.feeRecipient().call().await.unwrap(), deployment.fee_recipient);

    // The deployer (the provider's default signer) owns the mocks; the token is the proxy,
    // initialized through it, in front of the implementation.
    let deployer = chain.deployer.address();
    let usdc = MockUSDC::new(deployment.usdc, chain.provider.clone());
    assert_eq!(usdc.owner().call().await.unwrap(), deployer);
    assert_eq!(usdc.pauser().call().await.unwrap(), deployer);
    assert_eq!(usdc.blacklister().call().await.unwrap(), deployer);
    assert_eq!(usdc.name().call().await.unwrap(), "USD Coin");
    assert_eq!(usdc.symbol().call().await.unwrap(), "USDC");
    let proxy = MockUSDCProxy::new(deployment.usdc, chain.provider.clone());
    let implementation = proxy.implementation().from(admin).call().await.unwrap();
    assert_eq!(implementation, deployment.usdc_implementation);
    // The admin reaches only the proxy's own functions, never the token.
    assert!(usdc.balanceOf(deployer).from(admin).call().await.is_err());
    // The bare implementation cannot be initialized by anyone.
    let bare = MockUSDC::new(deployment.usdc_implementation, chain.provider.clone());
    let taken = bare.initialize("X".into(), "X".into(), deployer, deployer, deployer);
    assert!(taken.call().await.is_err());
    let oracle = MockSanctionsOracle::new(deployment.sanctions_oracle, chain.provider.clone());
    assert_eq!(oracle.owner().call().await.unwrap(), deployer);
}

#[tokio::test]
async fn deploy_escrow_uses_an_existing_token_and_oracle() {
    let chain = DevChain::start().await;
    let escrow = deploy::deploy_escrow(
        &chain.provider,
        *chain.usdc.address(),
        *chain.oracle.address(),
        chain.fee_recipient,
    )
    .await
    .unwrap();
    let escrow = UsageEscrow::new(escrow, chain.provider.clone());
    assert_eq!(escrow.token().call().await.unwrap(), *chain.usdc.address());
    assert_eq!(escrow.sanctionsOracle().call().await.unwrap(), *chain.oracle.address());

    // The constructor refuses a zero address, and the failure names the contract.
    let err = deploy::deploy_escrow(
        &chain.provider,
        *chain.usdc.address(),
        *chain.oracle.address(),
        Address::ZERO,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DeployError::Deploy { contract: "UsageEscrow", .. }), "{err}");
}
