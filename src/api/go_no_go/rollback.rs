//! The rollback section: the schema version and what a rollback would start from, proven by a
//! backup made now and restored into a scratch database that is then compared with the store
//! and removed.
//!
//! SQLite: `VACUUM INTO` a temporary file (a consistent snapshot taken beside the writers),
//! opened read-only. Postgres: `pg_dump` of the store piped into `psql` on a freshly created
//! scratch database, dropped afterwards. Either way the copy's migrations table and row counts
//! are compared with the store's, counted just before and just after the backup.

use std::time::Instant;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::api::AppState;
use crate::gonogo::evidence::{self, BackupEvidence, RollbackEvidence, TableCount};
use crate::gonogo::{Section, SectionReport};
use crate::store::gonogo::{COUNTED_TABLES, count_rows, schema_version};
use crate::store::{Backend, StoreError};

/// Why the backup or its restore failed.
#[derive(Debug, thiserror::Error)]
enum BackupError {
    /// A query on the store or the copy failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A query failed.
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    /// `pg_dump` or `psql` failed or could not start.
    #[error("{0}")]
    Tool(String),
}

/// Gathers the rollback section.
pub(super) async fn gather(state: &AppState) -> SectionReport {
    let pool = state.store.reader();
    let (last, applied) = schema_version(pool).await.unwrap_or((None, 0));
    let started = Instant::now();
    let mut backup = BackupEvidence::default();
    if let Err(error) = backup_and_restore(state, &mut backup).await {
        backup.error = Some(error.to_string());
    }
    backup.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let evidence = RollbackEvidence {
        backend: match state.store.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
        .to_owned(),
        schema_version: last.as_ref().map(|(v, _)| *v),
        last_migration: last.map(|(_, d)| d),
        migrations_applied: applied,
        reversible: false,
        rollback: "migrations have no down scripts: roll back by stopping the service, restoring \
                   the last backup and starting the previous binary"
            .to_owned(),
        binary_version: env!("CARGO_PKG_VERSION").to_owned(),
        backup,
    };
    let (verdict, summary) = evidence::judge_rollback(&evidence);
    SectionReport::new(Section::Rollback, verdict, summary, &evidence)
}

async fn counts(pool: &AnyPool) -> Result<Vec<i64>, StoreError> {
    let mut counts = Vec::with_capacity(COUNTED_TABLES.len());
    for table in COUNTED_TABLES {
        counts.push(count_rows(pool, table).await?);
    }
    Ok(counts)
}

async fn backup_and_restore(
    state: &AppState,
    evidence: &mut BackupEvidence,
) -> Result<(), BackupError> {
    let pool = state.store.reader();
    let before = counts(pool).await?;
    let copy = match state.store.backend() {
        Backend::Sqlite => sqlite_copy(pool, evidence).await?,
        Backend::Postgres => postgres_copy(state, evidence).await?,
    };
    let compared = async {
        let after = counts(pool).await?;
        let restored = counts(&copy.pool).await?;
        let (last, _) = schema_version(&copy.pool).await?;
        Ok::<_, BackupError>((after, restored, last))
    }
    .await;
    copy.pool.close().await;
    let removed = copy.remove(pool).await;
    let (after, restored, last) = compared?;
    removed?;
    evidence.restored_schema_version = last.map(|(v, _)| v);
    evidence.tables = COUNTED_TABLES
        .iter()
        .zip(before.iter().zip(restored.iter().zip(after.iter())))
        .map(|(table, (before, (restored, after)))| TableCount {
            table: (*table).to_owned(),
            before: *before,
            restored: *restored,
            after: *after,
        })
        .collect();
    Ok(())
}

/// A restored copy, open, and how to remove it.
struct Copy {
    pool: AnyPool,
    scratch: Scratch,
}

enum Scratch {
    File(std::path::PathBuf),
    Database(String),
}

impl Copy {
    async fn remove(self, store: &AnyPool) -> Result<(), BackupError> {
        match self.scratch {
            Scratch::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Ok(())
            }
            Scratch::Database(name) => {
                // A closed pool's server processes may still be exiting; FORCE (Postgres 13+)
                // ends them rather than failing the drop.
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(&drop).execute(store).await?;
                Ok(())
            }
        }
    }
}

/// `VACUUM INTO` a temporary file, opened read-only.
async fn sqlite_copy(store: &AnyPool, evidence: &mut BackupEvidence) -> Result<Copy, BackupError> {
    let path = std::env::temp_dir()
        .join(format!("pactum-go-no-go-{}.db", crate::agreement::ids::GoNoGoRunId::generate()));
    let quoted = path.display().to_string().replace('\'', "''");
    let vacuum = format!("VACUUM INTO '{quoted}'");
    evidence.commands.push(vacuum.clone());
    sqlx::query(&vacuum).execute(store).await?;
    let url = format!("sqlite:{}?mode=ro", path.display());
    evidence.commands.push(format!("open {url}"));
    evidence.restored_into = path.display().to_string();
    let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await;
    match pool {
        Ok(pool) => Ok(Copy { pool, scratch: Scratch::File(path) }),
        Err(error) => {
            let _ = std::fs::remove_file(&path);
            Err(error.into())
        }
    }
}

/// `pg_dump` of the store into a new scratch database with `psql`.
async fn postgres_copy(
    state: &AppState,
    evidence: &mut BackupEvidence,
) -> Result<Copy, BackupError> {
    let source = state.go_no_go.database_url.expose();
    let mut scratch_url =
        url::Url::parse(source).map_err(|e| BackupError::Tool(format!("the store URL: {e}")))?;
    let name = format!("pactum_go_no_go_{:016x}", rand::random::<u64>());
    scratch_url.set_path(&format!("/{name}"));
    let shown = |url: &url::Url| {
        let mut url = url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("REDACTED"));
        }
        url.to_string()
    };
    let source_shown =
        shown(&url::Url::parse(source).map_err(|e| BackupError::Tool(e.to_string()))?);
    evidence.commands.push(format!("CREATE DATABASE {name}"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(state.store.reader()).await?;
    evidence.restored_into = shown(&scratch_url);
    let dump = format!(
        "pg_dump --no-owner --no-privileges --dbname={source_shown} | psql --quiet \
         --set ON_ERROR_STOP=1 --dbname={}",
        shown(&scratch_url)
    );
    evidence.commands.push(dump);
    let piped = pipe(source, scratch_url.as_str()).await;
    let pool = match piped {
        Ok(()) => AnyPoolOptions::new().max_connections(2).connect(scratch_url.as_str()).await,
        Err(error) => Err(sqlx::Error::Protocol(error)),
    };
    match pool {
        Ok(pool) => Ok(Copy { pool, scratch: Scratch::Database(name) }),
        Err(error) => {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(state.store.reader())
                .await;
            Err(match error {
                sqlx::Error::Protocol(message) => BackupError::Tool(message),
                other => other.into(),
            })
        }
    }
}

/// Runs `pg_dump` into `psql`, failing on either's failure (their stderr in the message).
async fn pipe(source: &str, target: &str) -> Result<(), String> {
    use std::process::Stdio;
    use tokio::process::Command;
    let dump = Command::new("pg_dump")
        .args(["--no-owner", "--no-privileges", "--dbname", source])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("pg_dump could not start: {e}"))?;
    let mut dump = dump;
    let dump_out: Stdio = dump
        .stdout
        .take()
        .ok_or("pg_dump gave no output")?
        .try_into()
        .map_err(|e| format!("pg_dump output: {e}"))?;
    let restore = Command::new("psql")
        .args(["--quiet", "--set", "ON_ERROR_STOP=1", "--dbname", target])
        .stdin(dump_out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("psql could not start: {e}"))?;
    let (dumped, restored) = tokio::join!(dump.wait_with_output(), restore.wait_with_output());
    let dumped = dumped.map_err(|e| format!("pg_dump: {e}"))?;
    let restored = restored.map_err(|e| format!("psql: {e}"))?;
    if !dumped.status.success() {
        return Err(format!("pg_dump failed: {}", String::from_utf8_lossy(&dumped.stderr).trim()));
    }
    if !restored.status.success() {
        return Err(format!("psql failed: {}", String::from_utf8_lossy(&restored.stderr).trim()));
    }
    Ok(())
}
