//! Databases for tests: a fresh SQLite file always, a fresh Postgres database when
//! `PACTUM_TEST_DATABASE_URL` names a server.

use sqlx::{AnyConnection, Connection, Executor};

use super::service::unique_dir;

/// A fresh SQLite database URL in a new temp directory.
pub fn fresh_sqlite() -> String {
    format!("sqlite:{}?mode=rwc", unique_dir("pactum-db").join("pactum.db").display())
}

/// A fresh database on the test Postgres server; `None` (with a note) when none is configured.
pub async fn fresh_postgres() -> Option<String> {
    let Ok(url) = std::env::var("PACTUM_TEST_DATABASE_URL") else {
        eprintln!("PACTUM_TEST_DATABASE_URL is not set; skipping the Postgres part");
        return None;
    };
    sqlx::any::install_default_drivers();
    let mut admin = AnyConnection::connect(&url).await.expect("Postgres reachable");
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!(
        "pactum_test_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let (base, _) = url.rsplit_once('/').expect("URL ends with /database");
    Some(format!("{base}/{name}"))
}

/// Drops a database made by [`fresh_postgres`] (after its pools are closed).
pub async fn drop_postgres(url: &str) {
    let (_, name) = url.rsplit_once('/').unwrap();
    let admin_url = std::env::var("PACTUM_TEST_DATABASE_URL").unwrap();
    let mut admin = AnyConnection::connect(&admin_url).await.unwrap();
    admin.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await.unwrap();
}
