//! What the wallet routes answer: a wallet, a page of them, its balances at a block, and a
//! demo funding.

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::time::rfc3339;
use crate::money::TokenAmount;
use crate::wallets::balances::Balances;
use crate::wallets::{OwnershipProof, Wallet};

/// A registered wallet as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Wallet, example = json!({"id": "wal_0195c2a1b9e8d7c6b5a49382", "agent_id": "agt_0195c2a1b9e8d7c6b5a49381", "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "label": "hot wallet", "primary": true, "custody": "self", "ownership_proven": true, "ownership_proof": "ecdsa", "ownership_issued_at": "2026-01-01T00:00:00Z", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}))]
pub struct WalletView {
    /// `wal_…`.
    #[schema(pattern = "^wal_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The agent whose wallet it is.
    #[schema(pattern = "^agt_[0-9A-Za-z_]+$")]
    pub agent_id: String,
    /// The address, checksummed.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub address: String,
    /// A display label.
    #[schema(required = true)]
    pub label: Option<String>,
    /// Whether it is the agent's primary wallet.
    pub primary: bool,
    /// Always `self`: the agent holds the key; Pactum never does.
    #[schema(pattern = "^self$")]
    pub custody: String,
    /// Whether the agent proved control with a signed `WalletOwnership`.
    pub ownership_proven: bool,
    /// How: `ecdsa`, `erc1271`, or `none`.
    pub ownership_proof: OwnershipProof,
    /// The signed `issuedAt` (RFC 3339); `null` without a proof.
    #[schema(required = true)]
    pub ownership_issued_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Wallet> for WalletView {
    fn from(wallet: &Wallet) -> Self {
        WalletView {
            id: wallet.id.to_string(),
            agent_id: wallet.agent_id.to_string(),
            address: wallet.address.to_checksum(None),
            label: wallet.label.clone(),
            primary: wallet.primary,
            custody: "self".to_owned(),
            ownership_proven: wallet.ownership_proof.proven(),
            ownership_proof: wallet.ownership_proof,
            ownership_issued_at: wallet.ownership_issued_at.map(rfc3339),
            created_at: rfc3339(wallet.created_at),
            updated_at: rfc3339(wallet.updated_at),
        }
    }
}

/// `GET /v1/wallets`: a page of wallets, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletList {
    /// The wallets.
    pub data: Vec<WalletView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/wallets/{wallet_id}/balance`: what the chain holds for the wallet at one block.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"wallet_id": "wal_0195c2a1b9e8d7c6b5a49382", "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "chain_id": 31337, "block_number": 1204, "usdc_amount": "25000000", "eth_amount": "1000000000000000000"}))]
pub struct WalletBalance {
    /// The wallet.
    #[schema(pattern = "^wal_[0-9A-Za-z_]+$")]
    pub wallet_id: String,
    /// Its address, checksummed.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub address: String,
    /// The chain read.
    pub chain_id: u64,
    /// The block both balances were read at (the latest when asked).
    pub block_number: u64,
    /// USDC in base units, 6 decimals (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub usdc_amount: TokenAmount,
    /// Ether in wei (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub eth_amount: TokenAmount,
}

impl WalletBalance {
    /// `wallet`'s `balances` on `chain_id`.
    pub fn new(wallet: &Wallet, chain_id: u64, balances: Balances) -> Self {
        WalletBalance {
            wallet_id: wallet.id.to_string(),
            address: wallet.address.to_checksum(None),
            chain_id,
            block_number: balances.block_number,
            usdc_amount: TokenAmount(balances.usdc),
            eth_amount: TokenAmount(balances.eth),
        }
    }
}

/// `POST /v1/wallets/{wallet_id}/fund`: demo USDC minted to the wallet.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"wallet_id": "wal_0195c2a1b9e8d7c6b5a49382", "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "amount_cents": 10000, "usdc_amount": "100000000", "tx_hash": "0x5c50…", "block_number": 1205}))]
pub struct WalletFunding {
    /// The wallet.
    #[schema(pattern = "^wal_[0-9A-Za-z_]+$")]
    pub wallet_id: String,
    /// Its address, checksummed.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub address: String,
    /// What was minted, in cents.
    pub amount_cents: u64,
    /// What was minted, in USDC base units (decimal string).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub usdc_amount: TokenAmount,
    /// The mint transaction.
    #[schema(pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: String,
    /// The block it was mined in.
    pub block_number: u64,
}
