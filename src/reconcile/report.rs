//! The reconciliation report: what `pactum reconcile` prints and `GET /v1/reconciliation`
//! answers, one type for both.

use alloy::primitives::{Address, B256};
use serde::Serialize;

use crate::money::TokenAmount;
use crate::vocab::string_enum;

string_enum!(
    /// What a reconciliation covered.
    Scope {
        /// Every agreement of the store, every activation found on-chain, and the escrow's
        /// token balance (`pactum reconcile`).
        Deployment = "deployment",
        /// The agreements of one account only (`GET /v1/reconciliation`); deployment-wide
        /// checks (the balance, activations unknown to the store) are left out.
        Account = "account",
    }
);

string_enum!(
    /// Which fact differs between the store and the chain.
    MismatchKind {
        /// The escrow status (`none`, `active`, `closing`, `settled`): the store's
        /// `escrow_status` against `escrowOf(key).status`.
        EscrowStatus = "escrow_status",
        /// The agreement status against the one the chain's escrow status gives.
        AgreementStatus = "agreement_status",
        /// Units claimed by the seller: `escrow_claimed_units` against
        /// `escrowOf(key).claimedUnits`.
        ClaimedUnits = "claimed_units",
        /// Whether the buyer withdrew: `escrow_buyer_withdrawn` against
        /// `escrowOf(key).buyerWithdrawn`.
        BuyerWithdrawn = "buyer_withdrawn",
        /// The deposit of the stored terms against the `EscrowActivated` event's.
        Deposit = "deposit",
        /// The stored terms do not hash to the stored agreement key (so they are not what the
        /// chain escrowed).
        TermsKey = "terms_key",
        /// An escrow activated on-chain whose key no agreement of the store has.
        UnknownToStore = "unknown_to_store",
        /// The escrow's token balance against its open deposits plus accrued fees.
        TokenBalance = "token_balance",
    }
);

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Reconciliation)]
pub struct Report {
    /// `true` when nothing differs.
    pub clean: bool,
    /// What was covered.
    pub scope: Scope,
    /// The chain's id.
    pub chain_id: u64,
    /// The escrow contract.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub escrow: Address,
    /// Every chain value was read at this block.
    pub block_number: u64,
    /// That block's hash.
    #[schema(value_type = String, pattern = "^0x[0-9a-f]{64}$")]
    pub block_hash: B256,
    /// Agreements of the store compared with the chain (those with an agreement key).
    pub agreements_checked: u64,
    /// Agreements whose activation is broadcast and not yet on-chain at the block (not a
    /// mismatch).
    pub pending_activations: u64,
    /// The blocks whose `EscrowActivated` logs were read to find activations unknown to the
    /// store; `null` for an account's reconciliation.
    pub activations_scanned: Option<BlockRange>,
    /// The escrow's token balance against what it should hold; `null` for an account's
    /// reconciliation.
    pub balance: Option<Balance>,
    /// Every difference found, agreements first (by key), the balance last.
    pub mismatches: Vec<Mismatch>,
    /// What reading the chain cost.
    pub rpc: RpcUse,
}

/// An inclusive range of blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BlockRange {
    /// The first block.
    pub from: u64,
    /// The last block.
    pub to: u64,
}

/// The escrow's token balance and what it is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Balance {
    /// `token.balanceOf(escrow)`, base units.
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub token_balance: TokenAmount,
    /// Deposits not yet paid out: for each escrow the buyer has not withdrawn from,
    /// `deposit − claimedUnits × unitPrice`, base units.
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub open_deposits: TokenAmount,
    /// `accruedFees()`: infra fees not yet withdrawn, base units.
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub accrued_fees: TokenAmount,
    /// `open_deposits + accrued_fees`.
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub expected: TokenAmount,
    /// Escrows counted in `open_deposits`.
    pub escrows_counted: u64,
}

/// One difference, with both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Mismatch {
    /// Which fact differs.
    pub kind: MismatchKind,
    /// The agreement, when the store has it.
    #[schema(value_type = Option<String>, pattern = "^ua_[0-9a-f]{28}$")]
    pub agreement_id: Option<String>,
    /// Its agreement key, when the mismatch is about one agreement.
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-f]{64}$")]
    pub agreement_key: Option<B256>,
    /// The store's value (`null` when the store has none).
    pub store: Option<String>,
    /// The chain's value (`null` when the chain has none).
    pub chain: Option<String>,
    /// The difference in words.
    pub message: String,
}

/// The JSON-RPC traffic of one reconciliation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RpcUse {
    /// HTTP requests sent (a JSON-RPC batch is one).
    pub requests: u64,
    /// JSON-RPC calls in them.
    pub calls: u64,
}

impl Report {
    /// The report as a few lines for a terminal: a summary, then each mismatch.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "reconciled {} agreement(s) ({}) at block {} of chain {}: {}\n",
            self.agreements_checked,
            self.scope.as_str(),
            self.block_number,
            self.chain_id,
            if self.clean {
                "clean".to_owned()
            } else {
                format!("{} mismatch(es)", self.mismatches.len())
            },
        );
        if let Some(b) = &self.balance {
            text.push_str(&format!(
                "escrow balance {} (expected {} = open deposits {} + accrued fees {})\n",
                b.token_balance, b.expected, b.open_deposits, b.accrued_fees
            ));
        }
        if self.pending_activations > 0 {
            text.push_str(&format!("{} activation(s) pending\n", self.pending_activations));
        }
        for m in &self.mismatches {
            let id = m.agreement_id.as_deref().unwrap_or("-");
            let key = m.agreement_key.map(|k| k.to_string()).unwrap_or_else(|| "-".into());
            text.push_str(&format!(
                "  {} {id} {key}: store {} / chain {} — {}\n",
                m.kind.as_str(),
                m.store.as_deref().unwrap_or("(none)"),
                m.chain.as_deref().unwrap_or("(none)"),
                m.message,
            ));
        }
        text.push_str(&format!(
            "RPC: {} request(s), {} call(s)\n",
            self.rpc.requests, self.rpc.calls
        ));
        text
    }
}
