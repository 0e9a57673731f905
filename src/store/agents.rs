//! Accounts and their agents, looked up by credential hash; revocation (with the refusal of the
//! agent's queued work) and key rotation. Self-registered agents and their claim are in
//! [`super::registrations`].

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use serde_json::json;

use super::{Conn, Result, StoreError, agreements, jobs, outbox, parse_json, settlement};
use crate::agreement::ids::{AccountId, AgentId, AgreementId, Environment, JobId, SecretKey};
use crate::store::outbox::EventType;
use crate::vocab::string_enum;

string_enum!(
    /// Whether an agent may act.
    AgentStatus {
        /// A working agent.
        Active = "active",
        /// Revoked (final): its key no longer authenticates.
        Revoked = "revoked",
        /// Registered itself and not yet claimed by an owner: its key authenticates, but it
        /// can spend nothing until an owner claims it (then it is `active`).
        Unclaimed = "unclaimed",
    }
);

/// The agent status of a working agent, as stored and sent.
pub const ACTIVE: &str = "active";
/// The agent status after revocation (final), as stored and sent.
pub const REVOKED: &str = "revoked";
/// The reason stored on work refused because its agent was revoked.
pub const AGENT_REVOKED: &str = "agent_revoked";

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
    /// Whether it may act.
    pub status: AgentStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was revoked (unix seconds); `None` while active.
    pub revoked_at: Option<i64>,
    /// When it last changed (revoked, key rotated); its creation time until then.
    pub updated_at: i64,
    /// Whether its owner halted it (circuit breaker): no spending until resumed.
    pub halted: bool,
    /// The owner's reason for the halt.
    pub halt_reason: Option<String>,
    /// When it was halted (unix seconds).
    pub halted_at: Option<i64>,
}

/// Returns the account whose owner credential hashes to `owner_key_hash`, creating it (named
/// `name`) if there is none. Used for the operator-configured owner credential, so instances
/// starting at once on one database may race here: the insert gives way to the one that won.
pub async fn ensure_account(
    conn: &mut Conn,
    name: &str,
    owner_key_hash: &str,
    now: i64,
) -> Result<Account> {
    if let Some(account) = account_by_owner_key_in(conn, owner_key_hash).await? {
        return Ok(account);
    }
    sqlx::query(
        "INSERT INTO accounts (id, name, owner_key_hash, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (owner_key_hash) DO NOTHING",
    )
    .bind(AccountId::generate().as_str())
    .bind(name)
    .bind(owner_key_hash)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    account_by_owner_key_in(conn, owner_key_hash).await?.ok_or(StoreError::Conflict)
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
        status: AgentStatus::Active,
        created_at: now,
        revoked_at: None,
        updated_at: now,
        halted: false,
        halt_reason: None,
        halted_at: None,
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
    .bind(agent.status.as_str())
    .bind(agent.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const AGENT_COLUMNS: &str = "id, account_id, name, description, capabilities, api_key_hint, \
    status, created_at, revoked_at, COALESCE(updated_at, created_at) AS updated_at, halted, \
    halt_reason, halted_at";

/// The agent whose API key hashes to `api_key_hash`, active or unclaimed; `None` if none (or
/// it is revoked).
pub async fn agent_by_key(pool: &AnyPool, api_key_hash: &str) -> Result<Option<Agent>> {
    let sql = format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE api_key_hash = $1 AND status <> 'revoked'"
    );
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
        status: super::parse_column("status", row.get("status"))?,
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
        updated_at: row.get("updated_at"),
        halted: row.get::<i64, _>("halted") != 0,
        halt_reason: row.get("halt_reason"),
        halted_at: row.get("halted_at"),
    })
}

/// A page of `account`'s agents, newest first: at most `limit`, only those in `status` when
/// given, strictly after the `(created_at, id)` cursor when one is given.
pub async fn list_agents(
    pool: &AnyPool,
    account: &AccountId,
    status: Option<&str>,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<Agent>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    // The cursor compares (created_at, id), so pages neither repeat nor skip agents created in
    // the same second.
    let sql = format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE account_id = $1 \
         AND ($2 = '' OR status = $2) \
         AND (created_at < $3 OR (created_at = $3 AND ($4 = '' OR id < $4))) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(account.as_str())
        .bind(status.unwrap_or(""))
        .bind(created_at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(agent_from_row).collect()
}

/// The agent with this id inside a write transaction; `None` if there is none.
pub async fn get_agent_in(conn: &mut Conn, id: &str) -> Result<Option<Agent>> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.map(|row| agent_from_row(&row)).transpose()
}

/// Replaces an active agent's API key (its hash and hint); the old key stops matching when
/// this commits. Returns `false` (and changes nothing) if the agent is not active.
pub async fn rotate_key(
    conn: &mut Conn,
    agent: &AgentId,
    api_key_hash: &str,
    api_key_hint: &str,
    now: i64,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE agents SET api_key_hash = $2, api_key_hint = $3, updated_at = $4 \
         WHERE id = $1 AND status = 'active'",
    )
    .bind(agent.as_str())
    .bind(api_key_hash)
    .bind(api_key_hint)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Halts (`halted`) or resumes the agent; returns whether its state changed (`false`: it was
/// already so, nothing was written). A halt keeps its first reason and time while it lasts.
pub async fn set_halted(
    conn: &mut Conn,
    agent: &AgentId,
    halted: bool,
    reason: Option<&str>,
    now: i64,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE agents SET halted = $2, halt_reason = $3, halted_at = $4, updated_at = $5 \
         WHERE id = $1 AND halted <> $2",
    )
    .bind(agent.as_str())
    .bind(i64::from(halted))
    .bind(if halted { reason.map(str::to_owned) } else { None })
    .bind(if halted { Some(now) } else { None })
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// What revoking an agent did besides the revocation itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocation {
    /// Whether this call revoked it (`false`: it was already revoked, nothing changed).
    pub revoked: bool,
    /// Proposals it made or received, now `cancelled`.
    pub cancelled: Vec<AgreementId>,
    /// Its relayer jobs that were still queued and not yet taken by the relayer, now `failed`.
    pub refused_jobs: Vec<JobId>,
}

/// Revokes an agent, irreversibly, in the caller's transaction: status `revoked` (its API key
/// and execution tokens stop matching when this commits), its open proposals (made or
/// received) `cancelled`, and its queued relayer work refused with [`AGENT_REVOKED`]: an
/// activation it submitted fails (the agreement becomes `failed`), a sponsored settlement
/// action it submitted fails; its pending approvals end `rejected` and its active mandates
/// `revoked` (with their audit rows). Each change writes its outbox event. Work the relayer
/// already took (leased, signed or broadcast) is left alone: a signed transaction may already
/// be on the network. An agreement already accepted or active is not touched: its escrow is
/// on-chain (or may be), and the other party keeps every on-chain path.
pub async fn revoke(conn: &mut Conn, agent: &AgentId, now: i64) -> Result<Revocation> {
    let result = sqlx::query(
        "UPDATE agents SET status = 'revoked', revoked_at = $2, updated_at = $2 \
         WHERE id = $1 AND status = 'active'",
    )
    .bind(agent.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if result.rows_affected() == 0 {
        return Ok(Revocation::default());
    }
    let reason = json!({ "reason": AGENT_REVOKED, "agent_id": agent });
    let rows = sqlx::query(
        "UPDATE usage_agreements SET status = 'cancelled', updated_at = $2 \
         WHERE status = 'proposed' AND (buyer_agent_id = $1 OR seller_agent_id = $1) RETURNING id",
    )
    .bind(agent.as_str())
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let cancelled: Vec<AgreementId> = rows.iter().map(|row| AgreementId(row.get("id"))).collect();
    for id in &cancelled {
        outbox::record(conn, Some(id), EventType::AgreementCancelled, &reason, now).await?;
    }
    let refused = jobs::refuse_queued_of_agent(conn, agent, AGENT_REVOKED, now).await?;
    for job in &refused {
        let data = json!({ "job_id": job.id, "kind": job.kind, "error": AGENT_REVOKED });
        outbox::record(conn, job.agreement_id.as_ref(), EventType::RelayerJobFailed, &data, now)
            .await?;
        if job.kind == jobs::JobKind::Activate {
            if let Some(id) = &job.agreement_id
                && agreements::activation_failed(conn, id, AGENT_REVOKED, now).await?
            {
                let data = json!({ "error": AGENT_REVOKED });
                outbox::record(conn, Some(id), EventType::ActivationFailed, &data, now).await?;
            }
            continue;
        }
        for action in settlement::actions_of_job(conn, &job.id).await? {
            settlement::finish(conn, &action.id, Some(AGENT_REVOKED), None, None, now).await?;
            let data = json!({
                "settlement_action_id": action.id,
                "action": action.action.as_str(),
                "error": AGENT_REVOKED,
            });
            let event = EventType::SettlementActionFailed;
            outbox::record(conn, Some(&action.agreement_id), event, &data, now).await?;
        }
    }
    // Its holds and leases end with it, in this transaction.
    super::governance::guard::stop_agent(
        conn,
        agent.as_str(),
        AGENT_REVOKED,
        super::governance::audit::Actor::Owner,
        now,
    )
    .await?;
    // Its pending approvals end with it: nothing it asked for can be approved any more.
    let ended = super::governance::approvals::end_pending_of_agent(
        conn,
        agent.as_str(),
        AGENT_REVOKED,
        now,
    )
    .await?;
    for approval in &ended {
        super::governance::approval_ended(
            conn,
            approval,
            super::governance::audit::Actor::Owner,
            now,
        )
        .await?;
    }
    // Its mandates end with it, each announced: no token minted under them spends again.
    super::governance::revoke_mandates_of_agent(
        conn,
        agent.as_str(),
        AGENT_REVOKED,
        super::governance::audit::Actor::Owner,
        now,
    )
    .await?;
    Ok(Revocation {
        revoked: true,
        cancelled,
        refused_jobs: refused.into_iter().map(|job| job.id).collect(),
    })
}
