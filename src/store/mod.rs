//! The store: the only state Pactum's tasks share. SQLite by default, Postgres in production,
//! through sqlx's `Any` driver with one portable schema (`migrations/`, applied at start-up).
//!
//! SQLite allows one writer at a time, so on SQLite writes go through a pool of one connection
//! (transactions queue in-process instead of failing with `SQLITE_BUSY`) while reads use their
//! own pool; on Postgres both are the same pool.

pub mod agents;
pub mod agreements;
pub mod attempts;
pub mod chain;
pub mod console;
pub mod gonogo;
pub mod governance;
pub mod idempotency;
pub mod intents;
pub mod jobs;
pub mod outbox;
pub mod payments;
pub mod receipts;
pub mod registrations;
pub mod settlement;
pub mod signers;
pub mod tokens;
pub mod wallets;
pub mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor, Transaction};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not parse (a newer schema or corruption); names the column.
    #[error("stored value in `{column}` is invalid: {reason}")]
    Corrupt {
        /// The column holding the value.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A row changed under a conditional update (its status was not the expected one).
    #[error("the row changed concurrently")]
    Conflict,
}

impl StoreError {
    /// Whether this is a unique-constraint violation (a duplicate key), on either backend.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }

    /// The constraint (or unique index) a database error names, where the engine says
    /// (Postgres does; SQLite names none).
    pub fn constraint(&self) -> Option<&str> {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.constraint(),
            _ => None,
        }
    }
}

/// The result type of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database engine behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` / `postgresql:` URLs.
    Postgres,
}

/// Handles to the database: a read pool and a write pool (the same pool on Postgres).
#[derive(Debug, Clone)]
pub struct Store {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    /// Write transactions this process has committed: a read kept in memory is as new as the
    /// store while this has not moved since it was read ([`Store::commits`]).
    commits: Arc<AtomicU64>,
}

/// A write transaction of the store. It is used as the `sqlx` transaction it wraps; its
/// [`Tx::commit`] also counts the commit, so a read kept in memory (the API's read model) knows
/// it may be older than the store.
#[derive(Debug)]
pub struct Tx {
    inner: Transaction<'static, sqlx::Any>,
    commits: Arc<AtomicU64>,
}

impl Tx {
    /// Commits, then counts the commit.
    pub async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.inner.commit().await?;
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Rolls back (as dropping it does, but waiting for the database).
    pub async fn rollback(self) -> std::result::Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

/// The clause that makes a claim's choice of rows (relayer jobs, webhook deliveries) pass over
/// rows another open transaction holds (another instance's claim, not yet committed) instead of
/// picking them, waiting, and then finding them taken: `FOR UPDATE SKIP LOCKED` on Postgres.
/// Nothing on SQLite, whose writers are serialised so a claim never sees another's uncommitted
/// one. The one engine-specific SQL of the queues.
/// `count` numbered placeholders from `$first` on, comma-separated, for an `IN (…)` list.
pub(crate) fn in_list(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Sets `column` to `value` and `updated_at` to `now` on every row of `table` whose `key`
/// column is one of `jobs`, in one statement (a batch's members: their status, or the job
/// their settlement actions and payments ride on).
pub(crate) async fn set_where_job_in(
    conn: &mut Conn,
    (table, column, key): (&'static str, &'static str, &'static str),
    value: &str,
    jobs: &[crate::agreement::ids::JobId],
    now: i64,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE {table} SET {column} = $1, updated_at = $2 WHERE {key} IN ({})",
        in_list(3, jobs.len())
    );
    let mut query = sqlx::query(&sql).bind(value).bind(now);
    for job in jobs {
        query = query.bind(job.as_str());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

pub(crate) fn skip_locked(conn: &Conn) -> &'static str {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    }
}

/// The embedded migrations from `migrations/`, portable between the engines.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// What one engine must write its own way (triggers), versioned from 1000 up beside
/// [`MIGRATOR`] in the same migrations table.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations_engine/sqlite");
/// The Postgres counterpart of [`SQLITE_MIGRATOR`].
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations_engine/postgres");

/// Applies the portable migrations, then the engine's own. Each set ignores the other's
/// versions in the shared migrations table.
async fn migrate(pool: &AnyPool, backend: Backend) -> Result<()> {
    let engine = match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    };
    for set in [&MIGRATOR, engine] {
        let mut set = sqlx::migrate::Migrator {
            migrations: set.migrations.clone(),
            ignore_missing: true,
            ..sqlx::migrate::Migrator::DEFAULT
        };
        set.set_locking(true);
        set.run(pool).await?;
    }
    Ok(())
}

/// How often the service checkpoints the SQLite WAL beside the writer.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL pages past which a SQLite writer checkpoints at commit itself (16,000 pages of 4 KiB,
/// about 64 MB): only when no `checkpoint` task keeps up, as in a one-off command.
const WAL_BACKSTOP_PAGES: u32 = 16_000;

impl Store {
    /// Connects to `url` (`sqlite:pactum.db?mode=rwc`, `postgres://…`) and applies pending
    /// migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let options = AnyConnectOptions::from_str(url)?;
        let store = match backend {
            Backend::Sqlite => {
                let pool = |max| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(Duration::from_secs(30))
                        // A local file has no connection to lose between uses: a ping before
                        // each use would only add a round trip to the connection's thread.
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // Checkpoints run beside the writer ([`Store::checkpoint`]);
                                // the writer checkpoints itself only past WAL_BACKSTOP_PAGES.
                                conn.execute(
                                    format!(
                                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                         PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                                         PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES};"
                                    )
                                    .as_str(),
                                )
                                .await
                                .map(|_| ())
                            })
                        })
                };
                let write = pool(1).connect_with(options.clone()).await?;
                let read = pool(8).connect_with(options).await?;
                Store { read, write, backend, commits: Default::default() }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?;
                Store { read: pool.clone(), write: pool, backend, commits: Default::default() }
            }
        };
        migrate(&store.write, backend).await?;
        Ok(store)
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for reads that need no transaction.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx { inner: self.write.begin().await?, commits: self.commits.clone() })
    }

    /// How many write transactions this process has committed so far. A value read from the
    /// store after this answered `n` is still the store's while it answers `n` (for writes made
    /// by this process: another instance's, or a command's, are not counted here).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Copies the SQLite write-ahead log into the database file without waiting for (or
    /// blocking) the writer or readers, so the WAL stays short and a commit never pays for a
    /// checkpoint ([`CHECKPOINT_EVERY`], from the service's `checkpoint` task). Nothing on
    /// Postgres.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.read).await?;
        }
        Ok(())
    }

    /// Checkpoints every [`CHECKPOINT_EVERY`] until `stop` turns true (a SQLite store's task).
    pub async fn run_checkpoints(
        self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        loop {
            self.checkpoint().await.map_err(|e| e.to_string())?;
            tokio::select! {
                _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// Closes both pools, waiting for connections in use.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// The current unix time in seconds (kept here for the store's callers; see [`crate::time`]).
pub use crate::time::now;

/// A connection inside a write transaction; repository writes take this.
pub type Conn = AnyConnection;

/// Parses a stored text column, naming it when it does not parse.
pub(crate) fn parse_column<T>(column: &'static str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| StoreError::Corrupt { column, reason: e.to_string() })
}

/// Parses a stored JSON column.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    column: &'static str,
    value: &str,
) -> Result<T> {
    serde_json::from_str(value).map_err(|e| StoreError::Corrupt { column, reason: e.to_string() })
}

/// One page of an account's rows of `table` (its `columns`), newest first: only `agent_id`'s and
/// only in `status` when given; at most `limit`, strictly after the `(created_at, id)` cursor.
/// The lists of resources kept per account and agent share it.
pub(crate) async fn account_page(
    pool: &AnyPool,
    (table, columns): (&str, &str),
    account: &str,
    (agent_id, status): (Option<&str>, Option<&str>),
    limit: u32,
    after: Option<(i64, &str)>,
) -> Result<Vec<sqlx::any::AnyRow>> {
    let (created_at, id) = after.unwrap_or((i64::MAX, ""));
    let sql = format!(
        "SELECT {columns} FROM {table} WHERE account_id = $1 \
         AND ($2 = '' OR agent_id = $2) AND ($3 = '' OR status = $3) \
         AND (created_at < $4 OR (created_at = $4 AND ($5 = '' OR id < $5))) \
         ORDER BY created_at DESC, id DESC LIMIT $6"
    );
    Ok(sqlx::query(&sql)
        .bind(account)
        .bind(agent_id.unwrap_or(""))
        .bind(status.unwrap_or(""))
        .bind(created_at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?)
}

/// `($1, $2, …), (…)`: the placeholders of a multi-row `INSERT` of `rows` rows of `columns`
/// values each.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let values: Vec<String> =
                (1..=columns).map(|column| format!("${}", row * columns + column)).collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored BIGINT as the unsigned value it holds.
pub(crate) fn unsigned(column: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| StoreError::Corrupt { column, reason: format!("negative value {value}") })
}
