//! The chain as the service uses it: one provider over the RPC layer ([`super::rpc`]: failover,
//! retries, circuit breakers, call counting), and the addresses and domain facts read from the
//! escrow deployment at start-up instead of being configured twice.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::sol_types::Eip712Domain;

use super::head::{Head, HeadWatch};
use super::rpc::{self, RpcService, RpcSettings};
use crate::agreement::settlement::{EscrowState, EscrowStatus};
use crate::escrow::bindings::{MockUSDC, UsageEscrow};
use crate::escrow::typed_data;

pub use super::error::{ChainError, Result};

/// The chain, the escrow deployment and its token.
#[derive(Debug, Clone)]
pub struct ChainContext {
    /// The RPC connection (read-only: signing happens in the relayer).
    pub provider: DynProvider,
    /// The RPC layer under `provider`: its endpoints' breakers.
    pub rpc: RpcService,
    /// The chain's id.
    pub chain_id: u64,
    /// The escrow contract.
    pub escrow: Address,
    /// The token it escrows (USDC).
    pub token: Address,
    /// The token's EIP-712 name ("USD Coin" for USDC).
    pub token_name: String,
    /// The sanctions oracle the escrow checks.
    pub sanctions_oracle: Address,
    /// The newest head the watcher (or a request) read, for the request path's clock and fees.
    pub head: HeadWatch,
}

impl ChainContext {
    /// Connects to the endpoints in `rpc_urls` (one URL or several, comma-separated, in order
    /// of preference; all must serve the same chain) and reads the deployment at `escrow`.
    pub async fn connect(
        rpc_urls: &str,
        settings: &RpcSettings,
        escrow: Address,
        token_name: &str,
    ) -> Result<Self> {
        let rpc = RpcService::new(rpc::parse_urls(rpc_urls)?, settings.clone())?;
        let chain_id = rpc.check_chain().await?;
        let provider = ProviderBuilder::new().connect_client(rpc.client()).erased();
        if provider.get_code_at(escrow).await?.is_empty() {
            return Err(ChainError::NoEscrow(escrow));
        }
        let contract = UsageEscrow::new(escrow, &provider);
        let token = contract.token().call().await?;
        let sanctions_oracle = contract.sanctionsOracle().call().await?;
        Ok(Self {
            provider,
            rpc,
            chain_id,
            escrow,
            token,
            token_name: token_name.to_owned(),
            sanctions_oracle,
            head: HeadWatch::default(),
        })
    }

    /// A context for a deployment the caller already knows, over `rpc_urls` without calling
    /// them: the first call is made when something reads the chain, so the router runs with no
    /// node (tests of it alone), and a handler that reads the chain answers as when the node is
    /// down. The token and oracle are the zero address until set.
    pub fn unconnected(
        rpc_urls: &str,
        settings: &RpcSettings,
        chain_id: u64,
        escrow: Address,
        token_name: &str,
    ) -> Result<Self> {
        let rpc = RpcService::new(rpc::parse_urls(rpc_urls)?, settings.clone())?;
        let provider = ProviderBuilder::new().connect_client(rpc.client()).erased();
        Ok(Self {
            provider,
            rpc,
            chain_id,
            escrow,
            token: Address::ZERO,
            token_name: token_name.to_owned(),
            sanctions_oracle: Address::ZERO,
            head: HeadWatch::default(),
        })
    }

    /// The escrow's EIP-712 domain.
    pub fn escrow_domain(&self) -> Eip712Domain {
        typed_data::escrow_domain(self.chain_id, self.escrow)
    }

    /// The deployment receipts name: this chain, its escrow and its token.
    pub fn deployment(&self) -> crate::receipts::Deployment {
        crate::receipts::Deployment {
            chain_id: self.chain_id,
            escrow: self.escrow,
            token: self.token,
        }
    }

    /// The token's EIP-712 domain.
    pub fn token_domain(&self) -> Eip712Domain {
        typed_data::token_domain(self.token_name.clone(), self.chain_id, self.token)
    }

    /// The latest block's timestamp, read from the node now: the clock the contract's
    /// deadlines are checked against.
    pub async fn now(&self) -> Result<u64> {
        Ok(self.read_head().await?.timestamp)
    }

    /// The latest block, read from the node now; kept as the newest head.
    pub async fn read_head(&self) -> Result<Head> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| ChainError::Url("the node has no latest block".into()))?;
        let head = Head::read_now(&block.header);
        self.head.publish(head);
        Ok(head)
    }

    /// The newest head from memory while it is fresh (the watcher reads one each pass), else
    /// read from the node now.
    pub async fn head(&self) -> Result<Head> {
        match self.head.fresh() {
            Some(head) => Ok(head),
            None => self.read_head().await,
        }
    }

    /// Who the escrow's infra fees accrue to now (the recipient may hand its role on).
    pub async fn fee_recipient(&self) -> Result<Address> {
        Ok(UsageEscrow::new(self.escrow, &self.provider).feeRecipient().call().await?)
    }

    /// The escrow of the agreement with this key, as of the latest block.
    pub async fn escrow_state(&self, key: B256) -> Result<EscrowState> {
        let e = UsageEscrow::new(self.escrow, &self.provider).escrowOf(key).call().await?;
        Ok(EscrowState {
            status: EscrowStatus::from_u8(e.status).unwrap_or(EscrowStatus::None),
            buyer_withdrawn: e.buyerWithdrawn,
            closes_at: e.closesAt.to::<u64>(),
            claimed_units: e.claimedUnits,
        })
    }

    /// The account's ether balance, which pays its gas on the direct path.
    pub async fn gas_balance(&self, owner: Address) -> Result<U256> {
        Ok(self.provider.get_balance(owner).await?)
    }

    /// The account's ether balance at block `number`.
    pub async fn gas_balance_at(&self, owner: Address, number: u64) -> Result<U256> {
        let block = alloy::eips::BlockId::number(number);
        Ok(self.provider.get_balance(owner).block_id(block).await?)
    }

    /// The number of the latest block.
    pub async fn block_number(&self) -> Result<u64> {
        Ok(self.provider.get_block_number().await?)
    }

    /// `owner`'s token balance and ether balance at block `number`, read together.
    pub async fn balances_at(&self, owner: Address, number: u64) -> Result<(U256, U256)> {
        let block = alloy::eips::BlockId::number(number);
        let token = MockUSDC::new(self.token, &self.provider);
        let token_call = token.balanceOf(owner).block(block);
        let (tokens, ether) = tokio::join!(token_call.call(), async {
            self.provider.get_balance(owner).block_id(block).await
        });
        Ok((tokens?, ether?))
    }

    /// Whether `authorizer`'s EIP-3009 `nonce` is spent (used or cancelled) on the token.
    pub async fn authorization_used(&self, authorizer: Address, nonce: B256) -> Result<bool> {
        let token = MockUSDC::new(self.token, &self.provider);
        Ok(token.authorizationState(authorizer, nonce).call().await?)
    }

    /// The owner's token balance.
    pub async fn balance(&self, owner: Address) -> Result<U256> {
        Ok(MockUSDC::new(self.token, &self.provider).balanceOf(owner).call().await?)
    }
}
