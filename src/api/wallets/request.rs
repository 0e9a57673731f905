//! What the wallet routes accept: a registration (`POST /v1/wallets`, and `POST /activate` for
//! the agent's primary wallet), the list query and the funding body.

use alloy::primitives::{Address, Bytes};
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ApiResult};
use crate::api::validate::{text, wallet};

/// The most `POST /v1/wallets/{id}/fund` mints at once, in cents ($10,000 of demo USDC).
pub(super) const MAX_FUND_CENTS: u64 = 1_000_000;

/// The body of `POST /v1/wallets`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent_id": "agt_0195c2a1b9e8d7c6b5a49381", "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "label": "hot wallet", "ownership_signature": "0x…", "ownership_issued_at": 1767225600}))]
pub struct RegisterWallet {
    /// The agent whose wallet it is: an agent key may name only itself (or leave it out); the
    /// owner names any agent of its account.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The wallet's address.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub address: String,
    /// A display label, 1–100 characters.
    #[serde(default)]
    pub label: Option<String>,
    /// Make it the agent's primary wallet (the previous primary stays registered).
    #[serde(default)]
    pub primary: bool,
    /// The wallet's EIP-712 signature of `WalletOwnership {wallet, agentId, issuedAt}` in the
    /// domain `{name: "Pactum", version: "1", chainId}`: proves the agent controls the wallet
    /// (ECDSA, or ERC-1271 for a smart wallet). Requires `ownership_issued_at`.
    #[serde(default)]
    #[schema(pattern = "^0x[0-9a-fA-F]*$")]
    pub ownership_signature: Option<String>,
    /// The signed `issuedAt`, unix seconds, within 10 minutes of the server's clock.
    #[serde(default)]
    pub ownership_issued_at: Option<i64>,
}

/// The body of `POST /activate` (seed 004): the calling agent's EVM address, registered as its
/// primary wallet.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}))]
pub struct ActivateAgent {
    /// The agent's wallet address.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub address: String,
    /// A display label, 1–100 characters.
    #[serde(default)]
    pub label: Option<String>,
    /// As in `POST /v1/wallets`.
    #[serde(default)]
    #[schema(pattern = "^0x[0-9a-fA-F]*$")]
    pub ownership_signature: Option<String>,
    /// As in `POST /v1/wallets`.
    #[serde(default)]
    pub ownership_issued_at: Option<i64>,
}

impl From<ActivateAgent> for RegisterWallet {
    fn from(body: ActivateAgent) -> Self {
        RegisterWallet {
            agent_id: None,
            address: body.address,
            label: body.label,
            primary: true,
            ownership_signature: body.ownership_signature,
            ownership_issued_at: body.ownership_issued_at,
        }
    }
}

/// A registration's fields, checked.
#[derive(Debug, Clone)]
pub(super) struct Checked {
    pub(super) address: Address,
    pub(super) label: Option<String>,
    /// The signature and its `issuedAt`, when a proof was sent.
    pub(super) proof: Option<(Bytes, i64)>,
}

impl RegisterWallet {
    /// Checks every field, naming the first bad one.
    pub(super) fn check(&self) -> ApiResult<Checked> {
        if let Some(agent_id) = &self.agent_id {
            text("agent_id", agent_id, 64)?;
        }
        let address = wallet("address", &self.address)?;
        let label = match &self.label {
            Some(label) => {
                text("label", label, 100)?;
                Some(label.trim().to_owned())
            }
            None => None,
        };
        let proof = match (&self.ownership_signature, self.ownership_issued_at) {
            (None, None) => None,
            (Some(signature), Some(issued_at)) => {
                let bytes = signature.parse::<Bytes>().map_err(|_| {
                    ApiError::validation(
                        "ownership_signature",
                        "`ownership_signature` is not 0x-prefixed hex",
                    )
                })?;
                Some((bytes, issued_at))
            }
            (Some(_), None) => {
                return Err(ApiError::validation(
                    "ownership_issued_at",
                    "`ownership_issued_at` is required with `ownership_signature`",
                ));
            }
            (None, Some(_)) => {
                return Err(ApiError::validation(
                    "ownership_signature",
                    "`ownership_signature` is required with `ownership_issued_at`",
                ));
            }
        };
        Ok(Checked { address, label, proof })
    }
}

/// `?agent_id=&limit=&cursor=` of `GET /v1/wallets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletQuery {
    /// Only this agent's wallets (an agent key sees only its own either way).
    pub agent_id: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The body of `POST /v1/wallets/{wallet_id}/fund`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount_cents": 10000}))]
pub struct FundWallet {
    /// Demo USDC to mint, in cents: 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub amount_cents: u64,
}

impl FundWallet {
    /// Checks the amount.
    pub(super) fn check(&self) -> ApiResult<()> {
        if !(1..=MAX_FUND_CENTS).contains(&self.amount_cents) {
            return Err(ApiError::validation(
                "amount_cents",
                format!("`amount_cents` must be 1 to {MAX_FUND_CENTS}"),
            ));
        }
        Ok(())
    }
}
