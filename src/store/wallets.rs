//! Agents' registered wallets ([`crate::wallets::Wallet`]). An address is registered once per
//! account (a unique index on its lower-case form: a second insert is a unique violation, see
//! [`StoreError::is_unique_violation`](super::StoreError::is_unique_violation)), and an agent has
//! at most one primary wallet (a partial unique index), changed only by [`make_primary`] and
//! [`insert`] of a primary wallet, which demote the previous one in the same transaction.

use alloy::primitives::Address;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, StoreError, parse_column};
use crate::agreement::ids::{AccountId, AgentId, WalletId};
use crate::wallets::Wallet;

/// The unique index that keeps one primary wallet per agent: a violation of it is two
/// primaries set at once (Postgres), not a duplicate address.
pub const ONE_PRIMARY_INDEX: &str = "wallets_one_primary_per_agent";

const COLUMNS: &str = "id, account_id, agent_id, address, label, is_primary, ownership_proof, \
    ownership_issued_at, created_at, updated_at";

/// The form of an address the uniqueness of registrations is judged on.
fn address_key(address: &Address) -> String {
    format!("{address:#x}")
}

fn from_row(row: &AnyRow) -> Result<Wallet> {
    Ok(Wallet {
        id: WalletId(row.try_get("id")?),
        account_id: AccountId(row.try_get("account_id")?),
        agent_id: AgentId(row.try_get("agent_id")?),
        address: parse_column("address", row.try_get("address")?)?,
        label: row.try_get("label")?,
        primary: row.try_get::<i64, _>("is_primary")? != 0,
        ownership_proof: parse_column("ownership_proof", row.try_get("ownership_proof")?)?,
        ownership_issued_at: row.try_get("ownership_issued_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Stores a new wallet. A wallet marked primary first demotes the agent's primary wallet, if
/// any. Fails with a unique violation when the account has the address already.
pub async fn insert(conn: &mut Conn, wallet: &Wallet) -> Result<()> {
    if wallet.primary {
        demote_primary(conn, &wallet.agent_id, wallet.created_at).await?;
    }
    sqlx::query(
        "INSERT INTO wallets (id, account_id, agent_id, address, address_key, label, is_primary, \
         ownership_proof, ownership_issued_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(wallet.id.as_str())
    .bind(wallet.account_id.as_str())
    .bind(wallet.agent_id.as_str())
    .bind(wallet.address.to_checksum(None))
    .bind(address_key(&wallet.address))
    .bind(wallet.label.clone())
    .bind(i64::from(wallet.primary))
    .bind(wallet.ownership_proof.as_str())
    .bind(wallet.ownership_issued_at)
    .bind(wallet.created_at)
    .bind(wallet.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Clears the primary mark of `agent`'s primary wallet, if it has one.
async fn demote_primary(conn: &mut Conn, agent: &AgentId, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE wallets SET is_primary = 0, updated_at = $2 WHERE agent_id = $1 AND is_primary = 1",
    )
    .bind(agent.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Makes `wallet` (of `agent`) the agent's primary wallet, demoting the previous one. Returns
/// `false` (and changes nothing) when it is primary already; [`StoreError::Conflict`] when
/// `agent` has no such wallet.
pub async fn make_primary(
    conn: &mut Conn,
    agent: &AgentId,
    wallet: &WalletId,
    now: i64,
) -> Result<bool> {
    let current = sqlx::query("SELECT is_primary FROM wallets WHERE id = $1 AND agent_id = $2")
        .bind(wallet.as_str())
        .bind(agent.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::Conflict)?;
    if current.try_get::<i64, _>("is_primary")? != 0 {
        return Ok(false);
    }
    demote_primary(conn, agent, now).await?;
    sqlx::query("UPDATE wallets SET is_primary = 1, updated_at = $2 WHERE id = $1")
        .bind(wallet.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// The wallet `id` of `account`; `None` if there is none (or it is another account's).
pub async fn get(pool: &AnyPool, account: &AccountId, id: &str) -> Result<Option<Wallet>> {
    let sql = format!("SELECT {COLUMNS} FROM wallets WHERE id = $1 AND account_id = $2");
    let row = sqlx::query(&sql).bind(id).bind(account.as_str()).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// [`get`] inside a write transaction.
pub async fn get_in(conn: &mut Conn, account: &AccountId, id: &str) -> Result<Option<Wallet>> {
    let sql = format!("SELECT {COLUMNS} FROM wallets WHERE id = $1 AND account_id = $2");
    let row = sqlx::query(&sql).bind(id).bind(account.as_str()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The wallet of `account` with `address` (any case), inside a write transaction; `None` if the
/// account has not registered it.
pub async fn by_address_in(
    conn: &mut Conn,
    account: &AccountId,
    address: &Address,
) -> Result<Option<Wallet>> {
    let sql = format!("SELECT {COLUMNS} FROM wallets WHERE account_id = $1 AND address_key = $2");
    let row = sqlx::query(&sql)
        .bind(account.as_str())
        .bind(address_key(address))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// `agent`'s primary wallet; `None` if it has none.
pub async fn primary_of(pool: &AnyPool, agent: &AgentId) -> Result<Option<Wallet>> {
    let sql = format!("SELECT {COLUMNS} FROM wallets WHERE agent_id = $1 AND is_primary = 1");
    let row = sqlx::query(&sql).bind(agent.as_str()).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// The addresses of every wallet `agent_id` registered, oldest first.
pub async fn addresses_of_agent(conn: &mut Conn, agent_id: &str) -> Result<Vec<Address>> {
    let rows =
        sqlx::query("SELECT address FROM wallets WHERE agent_id = $1 ORDER BY created_at, id")
            .bind(agent_id)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter().map(|row| parse_column("address", row.try_get("address")?)).collect()
}

/// A page of `account`'s wallets, newest first: only `agent`'s when given; at most `limit`,
/// strictly after the `(created_at, id)` cursor when one is given.
pub async fn list(
    pool: &AnyPool,
    account: &AccountId,
    agent: Option<&str>,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<Wallet>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    let sql = format!(
        "SELECT {COLUMNS} FROM wallets WHERE account_id = $1 AND ($2 = '' OR agent_id = $2) \
         AND (created_at < $3 OR (created_at = $3 AND ($4 = '' OR id < $4))) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(account.as_str())
        .bind(agent.unwrap_or(""))
        .bind(created_at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}
