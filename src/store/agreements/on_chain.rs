//! The store's side of a reconciliation against the chain: every agreement that has an
//! agreement key, with what the store believes about its escrow, read in one narrow query.

use alloy::primitives::B256;
use sqlx::{AnyPool, Row};

use super::read::optional;
use crate::agreement::ids::AgreementId;
use crate::agreement::settlement::EscrowStatus;
use crate::agreement::status::{ActivationStatus, AgreementStatus};
use crate::agreement::terms::Terms;
use crate::store::{Result, StoreError, parse_column, parse_json, unsigned};

/// What the store believes about one agreement's escrow.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedAgreement {
    /// Its id.
    pub id: AgreementId,
    /// Its agreement key (the EIP-712 hash of its terms).
    pub key: B256,
    /// The agreement status.
    pub status: AgreementStatus,
    /// The activation status.
    pub activation_status: ActivationStatus,
    /// The activation transaction, once broadcast.
    pub activation_tx_hash: Option<B256>,
    /// The stored terms (`None` only if the row is damaged: a key is written with its terms).
    pub terms: Option<Terms>,
    /// The escrow as the watcher last confirmed it; `None` before a confirmed activation.
    pub escrow: Option<StoredEscrow>,
}

/// The escrow columns of an agreement row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEscrow {
    /// `escrow_status`.
    pub status: EscrowStatus,
    /// `escrow_claimed_units`.
    pub claimed_units: u64,
    /// `escrow_buyer_withdrawn`.
    pub buyer_withdrawn: bool,
}

/// Every agreement with an agreement key (accepted or later), ordered by key; only those one of
/// whose parties belongs to `account` when it is given. Reads without locking: a reconciliation
/// reports what the store held while it read.
pub async fn keyed(pool: &AnyPool, account: Option<&str>) -> Result<Vec<KeyedAgreement>> {
    const COLUMNS: &str = "id, agreement_key, status, activation_status, activation_tx_hash, \
        terms, escrow_status, escrow_claimed_units, escrow_buyer_withdrawn";
    let rows = match account {
        None => {
            let sql = format!(
                "SELECT {COLUMNS} FROM usage_agreements WHERE agreement_key IS NOT NULL \
                 ORDER BY agreement_key"
            );
            sqlx::query(&sql).fetch_all(pool).await?
        }
        Some(account) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM usage_agreements WHERE agreement_key IS NOT NULL AND \
                 (buyer_agent_id IN (SELECT id FROM agents WHERE account_id = $1) OR \
                  seller_agent_id IN (SELECT id FROM agents WHERE account_id = $1)) \
                 ORDER BY agreement_key"
            );
            sqlx::query(&sql).bind(account).fetch_all(pool).await?
        }
    };
    rows.iter()
        .map(|row| {
            let escrow = match row.get::<Option<&str>, _>("escrow_status") {
                None => None,
                Some(status) => Some(StoredEscrow {
                    status: EscrowStatus::parse(status).ok_or_else(|| StoreError::Corrupt {
                        column: "escrow_status",
                        reason: format!("unknown status {status:?}"),
                    })?,
                    claimed_units: unsigned(
                        "escrow_claimed_units",
                        row.get::<Option<i64>, _>("escrow_claimed_units").unwrap_or(0),
                    )?,
                    buyer_withdrawn: row.get::<i64, _>("escrow_buyer_withdrawn") != 0,
                }),
            };
            Ok(KeyedAgreement {
                id: AgreementId(row.get("id")),
                key: parse_column("agreement_key", row.get("agreement_key"))?,
                status: parse_column("status", row.get("status"))?,
                activation_status: parse_column("activation_status", row.get("activation_status"))?,
                activation_tx_hash: optional(row, "activation_tx_hash")?,
                terms: row
                    .get::<Option<&str>, _>("terms")
                    .map(|t| parse_json("terms", t))
                    .transpose()?,
                escrow,
            })
        })
        .collect()
}
