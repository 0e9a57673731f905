//! Mandates: an owner's standing grants to agents ([`crate::governance::mandate`]). A mandate
//! is changed only while `active`, and revoking it is a conditional update from `active`, so a
//! revocation is final and recorded once. What a mandate has spent is not a column: it is the
//! sum of `counted_cents` over the reservations made under it ([`spent`]), counted under the
//! agent's decision lock in the transaction that decides a spend.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::super::{Conn, Result, parse_column, parse_json, unsigned};
use crate::agreement::ids::MandateId;
use crate::governance::mandate::{Mandate, MandateStatus};

const COLUMNS: &str = "id, account_id, agent_id, status, max_total_cents, per_tx_max_cents, \
    valid_from, valid_until, action_types, counterparties, categories, purpose, revoked_at, \
    revoke_reason, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Mandate> {
    Ok(Mandate {
        id: MandateId(row.try_get("id")?),
        account_id: row.try_get("account_id")?,
        agent_id: row.try_get("agent_id")?,
        status: parse_column("status", row.try_get("status")?)?,
        max_total_cents: unsigned("max_total_cents", row.try_get("max_total_cents")?)?,
        per_tx_max_cents: row
            .try_get::<Option<i64>, _>("per_tx_max_cents")?
            .map(|v| unsigned("per_tx_max_cents", v))
            .transpose()?,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        action_types: parse_json("action_types", row.try_get("action_types")?)?,
        counterparties: parse_json("counterparties", row.try_get("counterparties")?)?,
        categories: parse_json("categories", row.try_get("categories")?)?,
        purpose: row.try_get("purpose")?,
        revoked_at: row.try_get("revoked_at")?,
        revoke_reason: row.try_get("revoke_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn cents(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn json_list<T: serde::Serialize>(list: &[T]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// Stores a new mandate.
pub async fn insert(conn: &mut Conn, mandate: &Mandate) -> Result<()> {
    let sql = format!(
        "INSERT INTO mandates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16)"
    );
    sqlx::query(&sql)
        .bind(mandate.id.as_str())
        .bind(&mandate.account_id)
        .bind(&mandate.agent_id)
        .bind(mandate.status.as_str())
        .bind(cents(mandate.max_total_cents))
        .bind(mandate.per_tx_max_cents.map(cents))
        .bind(mandate.valid_from)
        .bind(mandate.valid_until)
        .bind(json_list(&mandate.action_types))
        .bind(json_list(&mandate.counterparties))
        .bind(json_list(&mandate.categories))
        .bind(mandate.purpose.clone())
        .bind(mandate.revoked_at)
        .bind(mandate.revoke_reason.clone())
        .bind(mandate.created_at)
        .bind(mandate.updated_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The mandate `id` of `account_id`; `None` if there is none (or it is another account's).
pub async fn get(pool: &AnyPool, account_id: &str, id: &str) -> Result<Option<Mandate>> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, account_id, id).await
}

/// [`get`] inside a transaction.
pub async fn get_in(conn: &mut Conn, account_id: &str, id: &str) -> Result<Option<Mandate>> {
    let sql = format!("SELECT {COLUMNS} FROM mandates WHERE id = $1 AND account_id = $2");
    let row = sqlx::query(&sql).bind(id).bind(account_id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// A page of `account_id`'s mandates, newest first: only `agent_id`'s when given, only in
/// `status` when given; at most `limit`, strictly after the `(created_at, id)` cursor.
pub async fn list(
    pool: &AnyPool,
    account_id: &str,
    agent_id: Option<&str>,
    status: Option<MandateStatus>,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<Mandate>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    let sql = format!(
        "SELECT {COLUMNS} FROM mandates WHERE account_id = $1 AND ($2 = '' OR agent_id = $2) \
         AND ($3 = '' OR status = $3) \
         AND (created_at < $4 OR (created_at = $4 AND ($5 = '' OR id < $5))) \
         ORDER BY created_at DESC, id DESC LIMIT $6"
    );
    let rows = sqlx::query(&sql)
        .bind(account_id)
        .bind(agent_id.unwrap_or(""))
        .bind(status.map(|s| s.as_str()).unwrap_or(""))
        .bind(created_at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Replaces the editable fields of `mandate` (amounts, window, what it covers, purpose) and
/// its `updated_at` with those given, if it is still `active`; returns the stored mandate.
/// `None` if it is revoked (or there is no such mandate of its account): revocation is final.
pub async fn update(conn: &mut Conn, mandate: &Mandate) -> Result<Option<Mandate>> {
    let sql = format!(
        "UPDATE mandates SET max_total_cents = $3, per_tx_max_cents = $4, valid_from = $5, \
         valid_until = $6, action_types = $7, counterparties = $8, categories = $9, \
         purpose = $10, updated_at = $11 \
         WHERE id = $1 AND account_id = $2 AND status = 'active' RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(mandate.id.as_str())
        .bind(&mandate.account_id)
        .bind(cents(mandate.max_total_cents))
        .bind(mandate.per_tx_max_cents.map(cents))
        .bind(mandate.valid_from)
        .bind(mandate.valid_until)
        .bind(json_list(&mandate.action_types))
        .bind(json_list(&mandate.counterparties))
        .bind(json_list(&mandate.categories))
        .bind(mandate.purpose.clone())
        .bind(mandate.updated_at)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Revokes the mandate `id` of `account_id` with `reason` if it is still `active`, and returns
/// it; `None` if it was revoked already (or there is no such mandate of the account).
pub async fn revoke(
    conn: &mut Conn,
    account_id: &str,
    id: &str,
    reason: Option<&str>,
    at: i64,
) -> Result<Option<Mandate>> {
    let sql = format!(
        "UPDATE mandates SET status = 'revoked', revoked_at = $3, revoke_reason = $4, \
         updated_at = $3 WHERE id = $1 AND account_id = $2 AND status = 'active' \
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(account_id)
        .bind(at)
        .bind(reason.map(str::to_owned))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Revokes every active mandate of `agent_id` with `reason` (its agent was revoked or halted)
/// and returns them, oldest first; mandates revoked before are left as they were.
pub async fn revoke_all_of_agent(
    conn: &mut Conn,
    agent_id: &str,
    reason: &str,
    at: i64,
) -> Result<Vec<Mandate>> {
    let sql = format!(
        "UPDATE mandates SET status = 'revoked', revoked_at = $2, revoke_reason = $3, \
         updated_at = $2 WHERE agent_id = $1 AND status = 'active' RETURNING {COLUMNS}"
    );
    let rows = sqlx::query(&sql).bind(agent_id).bind(at).bind(reason).fetch_all(&mut *conn).await?;
    let mut revoked = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    // `RETURNING` promises no order; events and audit rows follow creation order.
    revoked.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(revoked)
}

/// Cents the mandate `mandate_id` has spent: the sum of `counted_cents` over its reservations
/// (what is held, or what was captured, now); 0 when it has none. Read it in the transaction
/// that holds the agent's decision lock to count it atomically with a new hold.
pub async fn spent(conn: &mut Conn, mandate_id: &str) -> Result<u64> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(counted_cents), 0) AS BIGINT) AS spent \
         FROM reservations WHERE mandate_id = $1",
    )
    .bind(mandate_id)
    .fetch_one(&mut *conn)
    .await?;
    unsigned("counted_cents", row.try_get("spent")?)
}

/// [`spent`] of each of `mandate_ids` in one query, for a page of mandates; a mandate without
/// reservations is absent from the map (it spent 0).
pub async fn spent_of(pool: &AnyPool, mandate_ids: &[&str]) -> Result<HashMap<String, u64>> {
    if mandate_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list: Vec<String> = (1..=mandate_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT mandate_id, CAST(COALESCE(SUM(counted_cents), 0) AS BIGINT) AS spent \
         FROM reservations WHERE mandate_id IN ({}) GROUP BY mandate_id",
        list.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in mandate_ids {
        query = query.bind(*id);
    }
    let mut spent = HashMap::new();
    for row in query.fetch_all(pool).await? {
        let value = unsigned("counted_cents", row.try_get("spent")?)?;
        spent.insert(row.try_get::<String, _>("mandate_id")?, value);
    }
    Ok(spent)
}
