//! Intents ([`crate::intents`]): the transfers agents validated, the hash each says paid it,
//! and where the chain watcher found that transaction. Every status change is a conditional
//! update from the status it leaves, made with the change of the intent's hold
//! ([`super::governance::intent_holds::follow_intent`]) and its `intent.*` event in the same
//! transaction ([`change`]).

use alloy::primitives::{Address, B256};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::governance::intent_holds;
use super::outbox::{self, EventType};
use super::{Conn, Result, parse_column, unsigned};
use crate::intents::{IntentAction, IntentStatus, Verdict};

/// One intent, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// `int_…`.
    pub id: String,
    /// The agent's account.
    pub account_id: String,
    /// The agent that validated it.
    pub agent_id: String,
    /// Where it stands.
    pub status: IntentStatus,
    /// What it is for.
    pub action: IntentAction,
    /// The recipient validated.
    pub to: Address,
    /// The token that must move (the deployment's USDC).
    pub token: Address,
    /// The chain it must move on.
    pub chain_id: u64,
    /// The amount validated, in cents.
    pub amount_cents: u64,
    /// The agent's metadata object.
    pub metadata: Option<Value>,
    /// Its hold on the agent's budgets (`rsv_…`).
    pub reservation_id: String,
    /// The decision that let it through (`chk_…`).
    pub check_id: String,
    /// Seconds it waits for its transaction, from validation and again from the posting.
    pub ttl_seconds: u64,
    /// The transaction the agent posted.
    pub tx_hash: Option<B256>,
    /// Where the watcher found the transaction mined, and what it found there.
    pub mined: Option<Mined>,
    /// Whether the watcher asked the node for the posted transaction's receipt yet.
    pub looked_up: bool,
    /// When it expires unless its transaction is found mined first.
    pub expires_at: i64,
    /// When the hash was posted.
    pub broadcast_at: Option<i64>,
    /// When it reached a final status.
    pub resolved_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Where the posted transaction was found mined, and the verdict on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mined {
    /// The block's number.
    pub block_number: u64,
    /// The block's hash: a different hash at that height later is a reorganisation.
    pub block_hash: B256,
    /// What the transaction did, against what was validated.
    pub verdict: Verdict,
}

const COLUMNS: &str = "id, account_id, agent_id, status, action, to_address, token, chain_id, \
    amount_cents, metadata, reservation_id, check_id, ttl_seconds, tx_hash, block_number, \
    block_hash, verdict, looked_up, expires_at, broadcast_at, resolved_at, created_at, updated_at";

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_row(row: &AnyRow) -> Result<Intent> {
    let tx_hash: Option<String> = row.try_get("tx_hash")?;
    let block_number: Option<i64> = row.try_get("block_number")?;
    let block_hash: Option<String> = row.try_get("block_hash")?;
    let verdict: Option<String> = row.try_get("verdict")?;
    let mined = match (block_number, block_hash, verdict) {
        (Some(number), Some(hash), Some(verdict)) => Some(Mined {
            block_number: unsigned("block_number", number)?,
            block_hash: parse_column("block_hash", &hash)?,
            verdict: parse_column("verdict", &verdict)?,
        }),
        _ => None,
    };
    Ok(Intent {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        agent_id: row.try_get("agent_id")?,
        status: parse_column("status", row.try_get("status")?)?,
        action: parse_column("action", row.try_get("action")?)?,
        to: parse_column("to_address", row.try_get("to_address")?)?,
        token: parse_column("token", row.try_get("token")?)?,
        chain_id: unsigned("chain_id", row.try_get("chain_id")?)?,
        amount_cents: unsigned("amount_cents", row.try_get("amount_cents")?)?,
        metadata: row
            .try_get::<Option<String>, _>("metadata")?
            .map(|m| super::parse_json("metadata", &m))
            .transpose()?,
        reservation_id: row.try_get("reservation_id")?,
        check_id: row.try_get("check_id")?,
        ttl_seconds: unsigned("ttl_seconds", row.try_get("ttl_seconds")?)?,
        tx_hash: tx_hash.map(|h| parse_column("tx_hash", &h)).transpose()?,
        mined,
        looked_up: row.try_get::<i64, _>("looked_up")? != 0,
        expires_at: row.try_get("expires_at")?,
        broadcast_at: row.try_get("broadcast_at")?,
        resolved_at: row.try_get("resolved_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Stores a new intent (its hold is stored by the caller in the same transaction).
pub async fn insert(conn: &mut Conn, intent: &Intent) -> Result<()> {
    let sql = format!("INSERT INTO intents ({COLUMNS}) VALUES {}", super::placeholders(1, 23));
    sqlx::query(&sql)
        .bind(&intent.id)
        .bind(&intent.account_id)
        .bind(&intent.agent_id)
        .bind(intent.status.as_str())
        .bind(intent.action.as_str())
        .bind(intent.to.to_checksum(None))
        .bind(intent.token.to_checksum(None))
        .bind(signed(intent.chain_id))
        .bind(signed(intent.amount_cents))
        .bind(intent.metadata.as_ref().map(Value::to_string))
        .bind(&intent.reservation_id)
        .bind(&intent.check_id)
        .bind(signed(intent.ttl_seconds))
        .bind(intent.tx_hash.map(|h| h.to_string()))
        .bind(intent.mined.map(|m| signed(m.block_number)))
        .bind(intent.mined.map(|m| m.block_hash.to_string()))
        .bind(intent.mined.map(|m| m.verdict.as_str()))
        .bind(i64::from(intent.looked_up))
        .bind(intent.expires_at)
        .bind(intent.broadcast_at)
        .bind(intent.resolved_at)
        .bind(intent.created_at)
        .bind(intent.updated_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The intent `id`; `None` if there is none.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<Intent>> {
    let sql = format!("SELECT {COLUMNS} FROM intents WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// The intent `id` inside a transaction; `None` if there is none.
pub async fn get_in(conn: &mut Conn, id: &str) -> Result<Option<Intent>> {
    let sql = format!("SELECT {COLUMNS} FROM intents WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The id of the intent that posted `tx_hash`; `None` if none did.
pub async fn holding_hash(conn: &mut Conn, tx_hash: B256) -> Result<Option<String>> {
    let row = sqlx::query("SELECT id FROM intents WHERE tx_hash = $1")
        .bind(tx_hash.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

/// Broadcast intents whose transaction has not been found mined, oldest first: what the
/// watcher looks for in each new block (and by receipt, those not yet [`looked_up`]).
///
/// [`looked_up`]: Intent::looked_up
pub async fn watched(pool: &AnyPool) -> Result<Vec<Intent>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM intents WHERE status = 'broadcast' AND block_number IS NULL \
         ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// Broadcast intents found mined at or below `height`, oldest block first: what the watcher
/// resolves once deep enough.
pub async fn mined_up_to(pool: &AnyPool, height: u64) -> Result<Vec<Intent>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM intents WHERE status = 'broadcast' AND block_number IS NOT NULL \
         AND block_number <= $1 ORDER BY block_number, id"
    );
    let rows = sqlx::query(&sql).bind(signed(height)).fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// Records that intent `id`'s transaction was asked for by receipt (found or not).
pub async fn looked_up(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("UPDATE intents SET looked_up = 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records where the broadcast intent `id`'s transaction was mined and the verdict on it,
/// unless it is no longer broadcast or was found already. Returns whether it recorded.
pub async fn found_mined(conn: &mut Conn, id: &str, mined: &Mined, at: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE intents SET block_number = $2, block_hash = $3, verdict = $4, looked_up = 1, \
         updated_at = $5 WHERE id = $1 AND status = 'broadcast' AND block_number IS NULL",
    )
    .bind(id)
    .bind(signed(mined.block_number))
    .bind(mined.block_hash.to_string())
    .bind(mined.verdict.as_str())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The `data` of an `intent.*` webhook event.
pub fn event_data(intent: &Intent) -> Value {
    json!({
        "intent_id": intent.id,
        "agent_id": intent.agent_id,
        "status": intent.status.as_str(),
        "action": intent.action.as_str(),
        "to": intent.to.to_checksum(None),
        "amount_cents": intent.amount_cents,
        "token": intent.token.to_checksum(None),
        "chain_id": intent.chain_id,
        "tx_hash": intent.tx_hash,
        "block_number": intent.mined.map(|m| m.block_number),
        "verdict": intent.mined.map(|m| m.verdict.as_str()),
        "reservation_id": intent.reservation_id,
    })
}

/// The event announcing that an intent reached `status`.
fn announcement(status: IntentStatus) -> EventType {
    match status {
        IntentStatus::Validated => EventType::IntentValidated,
        IntentStatus::Broadcast => EventType::IntentBroadcast,
        IntentStatus::Confirmed => EventType::IntentConfirmed,
        IntentStatus::Mismatched => EventType::IntentMismatched,
        IntentStatus::Failed => EventType::IntentFailed,
        IntentStatus::Expired => EventType::IntentExpired,
    }
}

/// Announces the new intent (`intent.validated`); its hold announces itself.
pub async fn announce_validated(conn: &mut Conn, intent: &Intent, at: i64) -> Result<()> {
    let data = event_data(intent);
    outbox::record_for_agent(conn, &intent.agent_id, EventType::IntentValidated, &data, at).await?;
    Ok(())
}

/// What a status change sets besides the status.
#[derive(Debug, Clone, Copy, Default)]
struct Sets {
    /// The hash posted.
    tx_hash: Option<B256>,
    /// A new expiry.
    expires_at: Option<i64>,
    /// Forget where the transaction was mined (a reorganisation took the block).
    unmine: bool,
    /// Change only an intent whose transaction has not been found mined.
    only_unmined: bool,
    /// The event announcing the change, when not the one of the new status.
    event: Option<EventType>,
}

/// Moves intent `id` from one of `from` to `to` with `sets`, brings its hold in line and
/// announces the change, all in `conn`'s transaction. Returns the intent as changed, or `None`
/// if it had left `from` (another change came first).
async fn change(
    conn: &mut Conn,
    id: &str,
    from: &[IntentStatus],
    to: IntentStatus,
    sets: Sets,
    at: i64,
) -> Result<Option<Intent>> {
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let unmine = if sets.unmine {
        ", block_number = NULL, block_hash = NULL, verdict = NULL, looked_up = 0"
    } else {
        ""
    };
    let unmined = if sets.only_unmined { " AND block_number IS NULL" } else { "" };
    let sql = format!(
        "UPDATE intents SET status = $2, tx_hash = COALESCE($3, tx_hash), \
         expires_at = COALESCE($4, expires_at), \
         broadcast_at = CASE WHEN $3 IS NULL THEN broadcast_at ELSE $5 END, \
         resolved_at = CASE WHEN $6 = 1 THEN $5 ELSE NULL END, updated_at = $5{unmine} \
         WHERE id = $1 AND status IN ({}){unmined} RETURNING {COLUMNS}",
        from.join(", ")
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(to.as_str())
        .bind(sets.tx_hash.map(|h| h.to_string()))
        .bind(sets.expires_at)
        .bind(at)
        .bind(i64::from(to.is_final()))
        .fetch_optional(&mut *conn)
        .await?;
    let Some(intent) = row.as_ref().map(from_row).transpose()? else { return Ok(None) };
    intent_holds::follow_intent(conn, &intent, at).await?;
    let data = event_data(&intent);
    let event = sets.event.unwrap_or_else(|| announcement(to));
    outbox::record_for_agent(conn, &intent.agent_id, event, &data, at).await?;
    Ok(Some(intent))
}

/// `validated` → `broadcast` with `tx_hash`, waiting until `expires_at` for it to be mined.
/// `None` if the intent is no longer `validated`. A hash another intent holds fails with a
/// unique violation: check [`holding_hash`] first (the index settles a race).
pub async fn broadcast(
    conn: &mut Conn,
    id: &str,
    tx_hash: B256,
    expires_at: i64,
    at: i64,
) -> Result<Option<Intent>> {
    let sets = Sets { tx_hash: Some(tx_hash), expires_at: Some(expires_at), ..Sets::default() };
    change(conn, id, &[IntentStatus::Validated], IntentStatus::Broadcast, sets, at).await
}

/// Resolves a broadcast intent whose transaction is deep enough: `to` is its verdict's final
/// status. `None` if it is no longer broadcast.
pub async fn resolve(
    conn: &mut Conn,
    id: &str,
    to: IntentStatus,
    at: i64,
) -> Result<Option<Intent>> {
    change(conn, id, &[IntentStatus::Broadcast], to, Sets::default(), at).await
}

/// Forgets where intent `id`'s transaction was mined (its block was reorganised away): a
/// confirmed intent goes back to `broadcast` and its hold is held again (`intent.reorged`);
/// either way it waits for the transaction to be mined again, for its TTL from `at` at least.
/// `None` if it was neither broadcast nor confirmed with a block.
pub async fn unmine(conn: &mut Conn, id: &str, at: i64) -> Result<Option<Intent>> {
    let current = get_in(conn, id).await?;
    let Some(current) = current.filter(|i| i.mined.is_some()) else { return Ok(None) };
    let ttl = i64::try_from(current.ttl_seconds).unwrap_or(i64::MAX);
    let expires_at = current.expires_at.max(at.saturating_add(ttl));
    let sets = Sets {
        expires_at: Some(expires_at),
        unmine: true,
        event: Some(EventType::IntentReorged),
        ..Sets::default()
    };
    if current.status == IntentStatus::Broadcast {
        // Not yet announced as anything else: forgotten quietly, still `broadcast`.
        sqlx::query(
            "UPDATE intents SET block_number = NULL, block_hash = NULL, verdict = NULL, \
             looked_up = 0, expires_at = $2, updated_at = $3 WHERE id = $1 AND status = 'broadcast'",
        )
        .bind(id)
        .bind(expires_at)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        return get_in(conn, id).await;
    }
    change(conn, id, &[IntentStatus::Confirmed], IntentStatus::Broadcast, sets, at).await
}

/// The ids of intents (broadcast or confirmed) whose transaction was found in a block above
/// `fork`: what a reorganisation back to `fork` takes away.
pub async fn mined_above(conn: &mut Conn, fork: u64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM intents WHERE status IN ('broadcast', 'confirmed') \
         AND block_number IS NOT NULL AND block_number > $1 ORDER BY block_number, id",
    )
    .bind(signed(fork))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Expires up to `limit` intents whose time ran out by `at` (validated with no transaction
/// posted, or broadcast with none found mined), with their holds; returns how many.
pub async fn expire_due(conn: &mut Conn, at: i64, limit: i64) -> Result<usize> {
    let rows = sqlx::query(
        "SELECT id FROM intents WHERE status IN ('validated', 'broadcast') \
         AND expires_at <= $1 AND block_number IS NULL ORDER BY expires_at LIMIT $2",
    )
    .bind(at)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut expired = 0;
    for row in rows {
        let id: String = row.try_get("id")?;
        if expire(conn, &id, at).await?.is_some() {
            expired += 1;
        }
    }
    Ok(expired)
}

/// Expires intent `id` if it is validated, or broadcast with no transaction found mined.
/// `None` if it was not.
pub async fn expire(conn: &mut Conn, id: &str, at: i64) -> Result<Option<Intent>> {
    let from = [IntentStatus::Validated, IntentStatus::Broadcast];
    let sets = Sets { only_unmined: true, ..Sets::default() };
    change(conn, id, &from, IntentStatus::Expired, sets, at).await
}
