//! Shared set-up for the integration tests: a fresh anvil per test with the contracts deployed
//! from `abi/` and funded demo parties.

pub mod conformance;
pub mod databases;
#[cfg(unix)]
pub mod docs_page;
pub mod faulty_rpc;
pub mod process;
pub mod router;
pub mod service;
pub mod settlement;
pub mod smart_wallet;
pub mod webdriver;

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolCall, SolStruct};
use pactum::chain::{deploy, toolchain};
use pactum::escrow::bindings::{MockSanctionsOracle, MockUSDC, UsageEscrow};
use pactum::escrow::typed_data::{self, Activation};

/// One USDC in base units.
pub const USDC: u64 = 1_000_000;
/// The dev account that administers the mock USDC proxy (and so may not call the token).
pub const USDC_PROXY_ADMIN: usize = 8;

/// A local chain with the escrow, mock USDC and the mock oracle deployed.
pub struct DevChain {
    /// The anvil process (killed when dropped).
    pub anvil: AnvilInstance,
    /// A provider on it with the deployer, buyer, seller and relayer keys as signers.
    pub provider: DynProvider,
    /// anvil's chain id.
    pub chain_id: u64,
    /// Dev account 0: deployed the contracts.
    pub deployer: PrivateKeySigner,
    /// Dev account 1: the buyer's wallet, funded with USDC.
    pub buyer: PrivateKeySigner,
    /// Dev account 2: the seller's wallet.
    pub seller: PrivateKeySigner,
    /// Dev account 3: the relayer's signer.
    pub relayer: PrivateKeySigner,
    /// Where the escrow sends infra fees.
    pub fee_recipient: Address,
    /// The mock USDC token.
    pub usdc: MockUSDC::MockUSDCInstance<DynProvider>,
    /// The mock sanctions oracle the escrow checks.
    pub oracle: MockSanctionsOracle::MockSanctionsOracleInstance<DynProvider>,
    /// The escrow contract.
    pub escrow: UsageEscrow::UsageEscrowInstance<DynProvider>,
}

impl DevChain {
    /// Spawns anvil (the pinned binary) and deploys everything; the buyer holds 1,000,000 USDC.
    pub async fn start() -> DevChain {
        Self::deploy_on(Anvil::at(toolchain::anvil()).spawn()).await
    }

    /// Like [`DevChain::start`], on `port` with anvil's `--state` file `state` (written when
    /// anvil exits on SIGTERM, loaded when it starts), so it can be stopped and restarted.
    pub async fn start_on(port: u16, state: &std::path::Path) -> DevChain {
        Self::deploy_on(Self::anvil_on(port, state)).await
    }

    /// Spawns anvil on `port` with the `--state` file `state` (loaded when it exists).
    pub fn anvil_on(port: u16, state: &std::path::Path) -> AnvilInstance {
        let state = state.to_str().unwrap();
        Anvil::at(toolchain::anvil()).port(port).args(["--state", state]).spawn()
    }

    async fn deploy_on(anvil: AnvilInstance) -> DevChain {
        let keys: Vec<PrivateKeySigner> =
            anvil.keys().iter().map(|k| PrivateKeySigner::from(k.clone())).collect();
        let (deployer, buyer, seller, relayer) =
            (keys[0].clone(), keys[1].clone(), keys[2].clone(), keys[3].clone());
        let fee_recipient = keys[9].address();
        let roles = deploy::LocalRoles {
            deployer: deployer.address(),
            usdc_proxy_admin: keys[USDC_PROXY_ADMIN].address(),
            fee_recipient,
        };

        let mut wallet = EthereumWallet::from(deployer.clone());
        for signer in [&buyer, &seller, &relayer] {
            wallet.register_signer(signer.clone());
        }
        let provider =
            ProviderBuilder::new().wallet(wallet).connect_http(anvil.endpoint_url()).erased();

        let deployment = deploy::deploy_local(&provider, roles).await.unwrap();
        let usdc = MockUSDC::new(deployment.usdc, provider.clone());
        let oracle = MockSanctionsOracle::new(deployment.sanctions_oracle, provider.clone());
        let escrow = UsageEscrow::new(deployment.usage_escrow, provider.clone());
        let chain = DevChain {
            anvil,
            provider,
            chain_id: deployment.chain_id,
            deployer,
            buyer,
            seller,
            relayer,
            fee_recipient,
            usdc,
            oracle,
            escrow,
        };
        chain.mint(chain.buyer.address(), 1_000_000 * USDC).await;
        chain
    }

    /// Mints `amount` base units of mock USDC to `to`.
    pub async fn mint(&self, to: Address, amount: u64) {
        self.usdc.mint(to, U256::from(amount)).send().await.unwrap().get_receipt().await.unwrap();
    }

    /// Infra fees accrued in the escrow and not yet withdrawn.
    pub async fn accrued_fees(&self) -> U256 {
        self.escrow.accruedFees().call().await.unwrap()
    }

    /// `who`'s USDC balance.
    pub async fn balance(&self, who: Address) -> U256 {
        self.usdc.balanceOf(who).call().await.unwrap()
    }

    /// The latest block's timestamp.
    pub async fn now(&self) -> u64 {
        let block = self.provider.get_block_number().await.unwrap();
        self.provider.get_block_by_number(block.into()).await.unwrap().unwrap().header.timestamp
    }

    /// The escrow's EIP-712 domain.
    pub fn escrow_domain(&self) -> Eip712Domain {
        typed_data::escrow_domain(self.chain_id, *self.escrow.address())
    }

    /// The mock USDC token's EIP-712 domain.
    pub fn usdc_domain(&self) -> Eip712Domain {
        typed_data::token_domain("USD Coin".to_string(), self.chain_id, *self.usdc.address())
    }

    /// 100 units at 0.10 USDC with a 0.10 USDC fee; `salt` tells agreements apart.
    pub async fn terms(&self, salt: &str) -> Activation {
        let now = self.now().await;
        Activation {
            buyer: self.buyer.address(),
            seller: self.seller.address(),
            unitPrice: U256::from(100_000),
            quantity: U256::from(100),
            infraFee: U256::from(100_000),
            activateBy: U256::from(now + 3600),
            expiry: U256::from(now + 86_400),
            closeWindow: U256::from(3600),
            salt: keccak256(salt),
            agreementId: keccak256(format!("agreement-{salt}")),
        }
    }

    /// The buyer's three signatures: activation, funding and (when a fee applies) fee permit.
    pub async fn sign_activation(
        &self,
        signer: &PrivateKeySigner,
        terms: &Activation,
    ) -> (B256, Bytes, Bytes, Bytes) {
        let key = typed_data::agreement_key(terms, &self.escrow_domain());
        let activation = sign_hash(signer, key);
        let funding =
            typed_data::funding_authorization(terms, *self.escrow.address(), key).unwrap();
        let funding = sign_typed(signer, &funding, &self.usdc_domain());
        let fee = if terms.infraFee.is_zero() {
            Bytes::new()
        } else {
            let fee = typed_data::fee_authorization(terms, *self.escrow.address(), key);
            sign_typed(signer, &fee, &self.usdc_domain())
        };
        (key, activation, funding, fee)
    }
}

/// Fixed terms for chain-free package tests: 100 units at 0.10 USDC with a 0.10 USDC fee (so
/// the package has all three documents), paid by `buyer`.
pub fn example_terms(buyer: Address) -> Activation {
    Activation {
        buyer,
        seller: alloy::primitives::address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
        unitPrice: U256::from(100_000),
        quantity: U256::from(100),
        infraFee: U256::from(100_000),
        activateBy: U256::from(1_750_003_600u64),
        expiry: U256::from(1_750_086_400u64),
        closeWindow: U256::from(3600),
        salt: keccak256("salt"),
        agreementId: keccak256("agreement-1"),
    }
}

/// Signs a 32-byte digest; 65 bytes `r ‖ s ‖ v` with `v` 27 or 28.
pub fn sign_hash(signer: &PrivateKeySigner, digest: B256) -> Bytes {
    Bytes::from(signer.sign_hash_sync(&digest).unwrap().as_bytes().to_vec())
}

/// Signs an EIP-712 struct in `domain`.
pub fn sign_typed<T: SolStruct>(
    signer: &PrivateKeySigner,
    value: &T,
    domain: &Eip712Domain,
) -> Bytes {
    sign_hash(signer, value.eip712_signing_hash(domain))
}

impl DevChain {
    /// Moves the chain's clock forward by `seconds` and mines a block.
    pub async fn advance(&self, seconds: u64) {
        let _: serde_json::Value =
            self.provider.raw_request("evm_increaseTime".into(), (seconds,)).await.unwrap();
        let _: serde_json::Value = self.provider.raw_request("evm_mine".into(), ()).await.unwrap();
    }

    /// Sends `call` to the escrow from `from` and waits for its receipt; panics if it reverts.
    pub async fn send<C: SolCall>(&self, from: Address, call: C) -> TransactionReceipt {
        let tx = TransactionRequest::default()
            .from(from)
            .to(*self.escrow.address())
            .input(call.abi_encode().into());
        let receipt =
            self.provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status(), "{} reverted", C::SIGNATURE);
        receipt
    }

    /// Activates `terms` through the relayer and returns the agreement key and the receipt.
    pub async fn activate(&self, terms: &Activation) -> (B256, TransactionReceipt) {
        let (key, activation, funding, fee) = self.sign_activation(&self.buyer, terms).await;
        let call = UsageEscrow::activateCall {
            terms: terms.clone(),
            buyerSignature: activation,
            fundingSignature: funding,
            feeSignature: fee,
        };
        (key, self.send(self.relayer.address(), call).await)
    }

    /// The buyer's voucher for `units` in all.
    pub fn voucher(&self, key: B256, units: u64) -> Bytes {
        let voucher =
            typed_data::UsageVoucher { agreementKey: key, cumulativeUnits: U256::from(units) };
        sign_typed(&self.buyer, &voucher, &self.escrow_domain())
    }
}
