//! Accounts and their agents, looked up by credential hash.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, parse_json};
use crate::agreement::ids::{AccountId, AgentId, Environment, SecretKey};

/// An account: owns agents and holds the owner credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// A display name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// An agent: a buyer or a seller acting for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// The account it belongs to.
    pub account_id: AccountId,
    /// A display name.
    pub name: String,
    /// What the agent is for.
    pub description: Option<String>,
    /// Free-form capability tags.
    pub capabilities: Vec<String>,
    /// The API key's prefix and last characters, for recognising it.
    pub api_key_hint: String,
    /// `active` or `revoked`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Returns the account whose owner credential hashes to `owner_key_hash`, creating it (named
/// `name`) if there is none. Used for the operator-configured owner credential.
pub async fn ensure_account(
    conn: &mut Conn,
    name: &str,
    owner_key_hash: &str,
    now: i64,
) -> Result<Account> {
    if let Some(account) = account_by_owner_key_in(conn, owner_key_hash).await? {
        return Ok(account);
    }
    let account = Account { id: AccountId::generate(), name: name.to_owned(), created_at: now };
    sqlx::query(
        "INSERT INTO accounts (id, name, owner_key_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(account.id.as_str())
    .bind(&account.name)
    .bind(owner_key_hash)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(account)
}

/// The account holding the owner credential with this hash; `None` if no account does.
pub async fn account_by_owner_key(pool: &AnyPool, owner_key_hash: &str) -> Result<Option<Account>> {
    let mut conn = pool.acquire().await?;
    account_by_owner_key_in(&mut conn, owner_key_hash).await
}

async fn account_by_owner_key_in(conn: &mut Conn, owner_key_hash: &str) -> Result<Option<Account>> {
    let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE owner_key_hash = $1")
        .bind(owner_key_hash)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|row| Account {
        id: AccountId(row.get("id")),
        name: row.get("name"),
        created_at: row.get("created_at"),
    }))
}

/// A new active agent of `account` and its API key (to be revealed once, stored as a hash).
pub fn new_agent(
    account: AccountId,
    name: &str,
    description: Option<String>,
    capabilities: Vec<String>,
    environment: Environment,
    now: i64,
) -> (Agent, SecretKey) {
    let key = SecretKey::generate("pk", environment);
    let agent = Agent {
        id: AgentId::generate(),
        account_id: account,
        name: name.trim().to_owned(),
        description,
        capabilities,
        api_key_hint: key.hint(),
        status: "active".into(),
        created_at: now,
    };
    (agent, key)
}

/// Stores a new agent with the hash and hint of its API key.
pub async fn insert_agent(conn: &mut Conn, agent: &Agent, api_key_hash: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO agents (id, account_id, name, description, capabilities, api_key_hash, \
         api_key_hint, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(agent.id.as_str())
    .bind(agent.account_id.as_str())
    .bind(&agent.name)
    .bind(agent.description.clone())
    .bind(serde_json::to_string(&agent.capabilities).expect("strings serialize"))
    .bind(api_key_hash)
    .bind(&agent.api_key_hint)
    .bind(&agent.status)
    .bind(agent.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const AGENT_COLUMNS: &str =
    "id, account_id, name, description, capabilities, api_key_hint, status, created_at";

/// The active agent whose API key hashes to `api_key_hash`; `None` if none (or it is revoked).
pub async fn agent_by_key(pool: &AnyPool, api_key_hash: &str) -> Result<Option<Agent>> {
    let sql =
        format!("SELECT {AGENT_COLUMNS} FROM agents WHERE api_key_hash = $1 AND status = 'active'");
    let row = sqlx::query(&sql).bind(api_key_hash).fetch_optional(pool).await?;
    row.map(|row| agent_from_row(&row)).transpose()
}

/// The agent with this id, whatever its status; `None` if there is none.
pub async fn get_agent(pool: &AnyPool, id: &str) -> Result<Option<Agent>> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.map(|row| agent_from_row(&row)).transpose()
}

fn agent_from_row(row: &AnyRow) -> Result<Agent> {
    Ok(Agent {
        id: AgentId(row.get("id")),
        account_id: AccountId(row.get("account_id")),
        name: row.get("name"),
        description: row.get("description"),
        capabilities: parse_json("capabilities", row.get::<&str, _>("capabilities"))?,
        api_key_hint: row.get("api_key_hint"),
        status: row.get("status"),
        created_at: row.get("created_at"),
    })
}
