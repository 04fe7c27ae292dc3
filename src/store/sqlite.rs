//! The embedded SQLite backend: one file, WAL journal, write transactions that begin IMMEDIATE so a
//! read-then-write transaction waits for the lock instead of failing with SQLITE_BUSY.

use super::StoreError;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database named by a `sqlite:` URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a transaction that returned is on disk, so an OTP answered 201 survives a crash
            // of the process *and* of the machine. Costs ~10x in raw insert rate, which is still
            // far above the Argon2 rate that bounds every request that writes.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

super::sql::impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    "BEGIN IMMEDIATE",
    super::MIGRATOR
);
super::attempts::impl_attempt_store!(SqliteStore, sqlx::Sqlite);
