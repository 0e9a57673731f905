//! What the chain watcher has seen: how far it has read, and the escrow contract's events.

use alloy::primitives::B256;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Conn, Result, parse_column, parse_json, unsigned};

/// The watcher's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last block read.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
    /// The chain head when it was read.
    pub head_number: u64,
    /// That head's timestamp: the chain's clock as last seen.
    pub head_timestamp: u64,
}

/// An escrow contract log, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct EscrowEvent {
    /// The block holding it.
    pub block_hash: B256,
    /// Its index in the block.
    pub log_index: u64,
    /// The block's number.
    pub block_number: u64,
    /// The transaction that emitted it.
    pub tx_hash: B256,
    /// The agreement it concerns.
    pub agreement_key: B256,
    /// The event's name (`EscrowActivated`, …).
    pub event: String,
    /// Its fields.
    pub data: Value,
}

const CURSOR_ID: &str = "escrow";

/// Where the watcher stands; `None` before its first block.
pub async fn cursor(pool: &AnyPool) -> Result<Option<Cursor>> {
    let row = sqlx::query(
        "SELECT block_number, block_hash, head_number, head_timestamp FROM chain_cursor \
             WHERE id = $1",
    )
    .bind(CURSOR_ID)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(Cursor {
            block_number: unsigned("block_number", row.get("block_number"))?,
            block_hash: parse_column("block_hash", row.get("block_hash"))?,
            head_number: unsigned("head_number", row.get("head_number"))?,
            head_timestamp: unsigned("head_timestamp", row.get("head_timestamp"))?,
        })
    })
    .transpose()
}

/// Moves the watcher's position (in the transaction that records what it read there), only
/// if it still stands where this watcher last saw it: `expected` is that block (number and
/// hash), `None` when there was no position yet. Returns whether it moved; when it did not,
/// another watcher of the same database moved it first (read the same blocks, or rolled back
/// the same reorganisation), and the caller drops its transaction. On Postgres the second
/// watcher's update waits for the first one's transaction, then finds the position changed.
pub async fn move_cursor(
    conn: &mut Conn,
    expected: Option<(u64, B256)>,
    cursor: &Cursor,
    now: i64,
) -> Result<bool> {
    let query = match expected {
        Some((number, hash)) => sqlx::query(
            "UPDATE chain_cursor SET block_number = $2, block_hash = $3, head_number = $4, \
             head_timestamp = $5, updated_at = $6 \
             WHERE id = $1 AND block_number = $7 AND block_hash = $8",
        )
        .bind(CURSOR_ID)
        .bind(cursor.block_number as i64)
        .bind(cursor.block_hash.to_string())
        .bind(cursor.head_number as i64)
        .bind(cursor.head_timestamp as i64)
        .bind(now)
        .bind(number as i64)
        .bind(hash.to_string()),
        None => sqlx::query(
            "INSERT INTO chain_cursor (id, block_number, block_hash, head_number, \
             head_timestamp, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(CURSOR_ID)
        .bind(cursor.block_number as i64)
        .bind(cursor.block_hash.to_string())
        .bind(cursor.head_number as i64)
        .bind(cursor.head_timestamp as i64)
        .bind(now),
    };
    Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
}

/// Stores an event unless it is already stored (same block hash and log index).
pub async fn insert_event(conn: &mut Conn, event: &EscrowEvent) -> Result<()> {
    sqlx::query(
        "INSERT INTO escrow_events (block_hash, log_index, block_number, tx_hash, agreement_key, \
         event, data, applied) VALUES ($1, $2, $3, $4, $5, $6, $7, 0) \
         ON CONFLICT (block_hash, log_index) DO NOTHING",
    )
    .bind(event.block_hash.to_string())
    .bind(event.log_index as i64)
    .bind(event.block_number as i64)
    .bind(event.tx_hash.to_string())
    .bind(event.agreement_key.to_string())
    .bind(&event.event)
    .bind(event.data.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Events not yet applied to agreements, in blocks up to `block_number`, in chain order.
pub async fn unapplied_events(pool: &AnyPool, block_number: u64) -> Result<Vec<EscrowEvent>> {
    // Read every pass; `escrow_events_unapplied` serves the filter and the order, so the events
    // already applied (nearly all of them) are never visited.
    let rows = sqlx::query(
        "SELECT block_hash, log_index, block_number, tx_hash, agreement_key, event, data \
         FROM escrow_events WHERE applied = 0 AND block_number <= $1 \
         ORDER BY block_number, log_index",
    )
    .bind(block_number as i64)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// The events of the escrow with `key` the watcher has read but not applied yet (those above
/// the confirmation depth), in chain order: what the escrow did since its confirmed state.
pub async fn unapplied_events_of(pool: &AnyPool, key: B256) -> Result<Vec<EscrowEvent>> {
    let rows = sqlx::query(
        "SELECT block_hash, log_index, block_number, tx_hash, agreement_key, event, data \
         FROM escrow_events WHERE agreement_key = $1 AND applied = 0 \
         ORDER BY block_number, log_index",
    )
    .bind(key.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// The events of transaction `tx_hash` about `key`, in log order.
pub async fn events_of(conn: &mut Conn, tx_hash: B256, key: B256) -> Result<Vec<EscrowEvent>> {
    let rows = sqlx::query(
        "SELECT block_hash, log_index, block_number, tx_hash, agreement_key, event, data \
         FROM escrow_events WHERE tx_hash = $1 AND agreement_key = $2 ORDER BY log_index",
    )
    .bind(tx_hash.to_string())
    .bind(key.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Marks an event applied; `false` when it already was (or is gone), so of two watchers (two
/// instances on one Postgres) only the one that marks it applies it.
pub async fn mark_applied(conn: &mut Conn, event: &EscrowEvent) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE escrow_events SET applied = 1 WHERE block_hash = $1 AND log_index = $2 \
         AND applied = 0",
    )
    .bind(event.block_hash.to_string())
    .bind(event.log_index as i64)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The applied events of the agreement with `key`, in chain order: what its escrow state is
/// folded from.
pub async fn applied_events_of(conn: &mut Conn, key: B256) -> Result<Vec<EscrowEvent>> {
    let rows = sqlx::query(
        "SELECT block_hash, log_index, block_number, tx_hash, agreement_key, event, data \
         FROM escrow_events WHERE agreement_key = $1 AND applied = 1 \
         ORDER BY block_number, log_index",
    )
    .bind(key.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// How many block hashes the watcher keeps: the deepest reorganisation it can roll back.
pub const BLOCK_WINDOW: u64 = 256;

/// Records the hash of a block read, and forgets those older than [`BLOCK_WINDOW`].
pub async fn record_block(conn: &mut Conn, number: u64, hash: B256) -> Result<()> {
    sqlx::query(
        "INSERT INTO chain_blocks (block_number, block_hash) VALUES ($1, $2) \
         ON CONFLICT (block_number) DO UPDATE SET block_hash = excluded.block_hash",
    )
    .bind(number as i64)
    .bind(hash.to_string())
    .execute(&mut *conn)
    .await?;
    if number.is_multiple_of(64) {
        sqlx::query("DELETE FROM chain_blocks WHERE block_number < $1")
            .bind(number.saturating_sub(BLOCK_WINDOW) as i64)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The recorded block hashes at or below `from`, highest first.
pub async fn blocks_below(pool: &AnyPool, from: u64) -> Result<Vec<(u64, B256)>> {
    let rows = sqlx::query(
        "SELECT block_number, block_hash FROM chain_blocks WHERE block_number <= $1 \
         ORDER BY block_number DESC",
    )
    .bind(from as i64)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                unsigned("block_number", row.get("block_number"))?,
                parse_column("block_hash", row.get("block_hash"))?,
            ))
        })
        .collect()
}

/// Forgets everything read above block `fork` (the last block the old and the new chain
/// share): its block hashes and escrow events. Returns the agreement keys whose applied events
/// were among them, whose escrow state must be folded again.
pub async fn forget_above(conn: &mut Conn, fork: u64) -> Result<Vec<B256>> {
    let rows = sqlx::query(
        "SELECT DISTINCT agreement_key FROM escrow_events WHERE block_number > $1 AND applied = 1",
    )
    .bind(fork as i64)
    .fetch_all(&mut *conn)
    .await?;
    let keys = rows
        .iter()
        .map(|row| parse_column("agreement_key", row.get("agreement_key")))
        .collect::<Result<Vec<B256>>>()?;
    sqlx::query("DELETE FROM escrow_events WHERE block_number > $1")
        .bind(fork as i64)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM chain_blocks WHERE block_number > $1")
        .bind(fork as i64)
        .execute(&mut *conn)
        .await?;
    Ok(keys)
}

fn event_from_row(row: &AnyRow) -> Result<EscrowEvent> {
    Ok(EscrowEvent {
        block_hash: parse_column("block_hash", row.get("block_hash"))?,
        log_index: unsigned("log_index", row.get("log_index"))?,
        block_number: unsigned("block_number", row.get("block_number"))?,
        tx_hash: parse_column("tx_hash", row.get("tx_hash"))?,
        agreement_key: parse_column("agreement_key", row.get("agreement_key"))?,
        event: row.get("event"),
        data: parse_json("data", row.get("data"))?,
    })
}
