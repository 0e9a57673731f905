//! Self-registered agents and their claim codes (`migrations/0015_agent_registration.sql`).
//!
//! An unclaimed agent lives in a holding account of its own, which no credential opens; a claim
//! moves the agent and the wallets it registered into the claimer's account, makes it `active`
//! and deletes the holding account, in the caller's transaction.

use sqlx::Row;

use super::agents::{self, Agent, AgentStatus};
use super::{Conn, Result, StoreError};
use crate::agreement::ids::{AccountId, AgentId, Environment, SecretKey, WalletId};

/// The key kind of claim codes: `claim_<environment>_<64 hex>`.
pub const CLAIM_CODE_KIND: &str = "claim";

/// A new unclaimed agent in a holding account of its own, with its API key and its claim code
/// (both to be revealed once and stored as hashes).
pub fn new_unclaimed(
    name: &str,
    description: Option<String>,
    capabilities: Vec<String>,
    environment: Environment,
    now: i64,
) -> (Agent, SecretKey, SecretKey) {
    let (mut agent, key) =
        agents::new_agent(AccountId::generate(), name, description, capabilities, environment, now);
    agent.status = AgentStatus::Unclaimed;
    (agent, key, SecretKey::generate(CLAIM_CODE_KIND, environment))
}

/// What the holding account of `agent` stores as its owner credential's hash: never a SHA-256
/// hex digest, so no credential matches it.
fn holding_owner_hash(agent: &AgentId) -> String {
    format!("unclaimed:{agent}")
}

/// Stores an unclaimed agent from [`new_unclaimed`]: its holding account, the agent with its
/// API key's hash, and its claim code's hash, claimable until `expires_at` (unix seconds).
pub async fn insert(
    conn: &mut Conn,
    agent: &Agent,
    api_key_hash: &str,
    claim_code_hash: &str,
    expires_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO accounts (id, name, owner_key_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(agent.account_id.as_str())
    .bind(format!("unclaimed agent {}", agent.id))
    .bind(holding_owner_hash(&agent.id))
    .bind(agent.created_at)
    .execute(&mut *conn)
    .await?;
    agents::insert_agent(conn, agent, api_key_hash).await?;
    sqlx::query(
        "INSERT INTO agent_registrations (agent_id, claim_code_hash, expires_at, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(agent.id.as_str())
    .bind(claim_code_hash)
    .bind(expires_at)
    .bind(agent.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What [`claim`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The agent is now the claimer's, and `active`.
    Claimed(AgentId),
    /// No claim code hashes to this.
    Unknown,
    /// The code was claimed already (by any account).
    Used,
    /// The code expired unclaimed.
    Expired,
    /// The claimer's account has registered an address the agent registered too (the account's
    /// wallet is named); the agent stays unclaimed and the code usable.
    AddressTaken(WalletId),
}

/// Claims the agent whose claim code hashes to `claim_code_hash` for `account` at `now`: marks
/// the code used, moves the agent and its wallets into `account`, makes it `active` and deletes
/// its holding account. Any answer but [`Claim::Claimed`] changed nothing. Two racing claims of
/// one code: one is `Claimed`, the other `Used` (the code's row is updated conditionally).
pub async fn claim(
    conn: &mut Conn,
    claim_code_hash: &str,
    account: &AccountId,
    now: i64,
) -> Result<Claim> {
    let row = sqlx::query(
        "SELECT r.agent_id, r.claimed_at, r.expires_at, a.account_id \
         FROM agent_registrations r JOIN agents a ON a.id = r.agent_id \
         WHERE r.claim_code_hash = $1",
    )
    .bind(claim_code_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(Claim::Unknown) };
    let agent = AgentId(row.try_get("agent_id")?);
    let holding = AccountId(row.try_get("account_id")?);
    if row.try_get::<Option<i64>, _>("claimed_at")?.is_some() {
        return Ok(Claim::Used);
    }
    if row.try_get::<i64, _>("expires_at")? <= now {
        return Ok(Claim::Expired);
    }
    // An address is registered once per account: one the claimer has already would collide.
    // (The agent's own wallets are not a collision: a claim racing this one may have moved
    // them into the claimer's account already, and then this claim finds the code used.)
    let taken = sqlx::query(
        "SELECT mine.id FROM wallets theirs \
         JOIN wallets mine ON mine.address_key = theirs.address_key AND mine.account_id = $2 \
         AND mine.agent_id <> $1 \
         WHERE theirs.agent_id = $1 ORDER BY mine.id LIMIT 1",
    )
    .bind(agent.as_str())
    .bind(account.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(taken) = taken {
        return Ok(Claim::AddressTaken(WalletId(taken.try_get("id")?)));
    }
    let used = sqlx::query(
        "UPDATE agent_registrations SET claimed_at = $2, claimed_by = $3 \
         WHERE claim_code_hash = $1 AND claimed_at IS NULL",
    )
    .bind(claim_code_hash)
    .bind(now)
    .bind(account.as_str())
    .execute(&mut *conn)
    .await?;
    if used.rows_affected() == 0 {
        return Ok(Claim::Used);
    }
    let moved = sqlx::query(
        "UPDATE agents SET account_id = $2, status = $4, updated_at = $3 \
         WHERE id = $1 AND status = $5",
    )
    .bind(agent.as_str())
    .bind(account.as_str())
    .bind(now)
    .bind(AgentStatus::Active.as_str())
    .bind(AgentStatus::Unclaimed.as_str())
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 0 {
        // A code not yet used always belongs to an unclaimed agent.
        return Err(StoreError::Conflict);
    }
    sqlx::query("UPDATE wallets SET account_id = $2, updated_at = $3 WHERE agent_id = $1")
        .bind(agent.as_str())
        .bind(account.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM accounts WHERE id = $1 AND owner_key_hash = $2")
        .bind(holding.as_str())
        .bind(holding_owner_hash(&agent))
        .execute(&mut *conn)
        .await?;
    Ok(Claim::Claimed(agent))
}
