//! The embedded SQLite backend: one file, WAL journal, write transactions that begin IMMEDIATE so a
//! read-then-write transaction waits for the lock instead of failing with SQLITE_BUSY.

use super::{PoolSettings, StoreError};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database named by a `sqlite:` URL.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a transaction that returned is on disk, so an OTP answered 201 survives a crash
            // of the process *and* of the machine. Costs ~10x in raw insert rate, which is still
            // far above the Argon2 rate that bounds every request that writes.
            .synchronous(SqliteSynchronous::Full)
            // A writer waits for the file lock as long as a request waits for a connection: the
            // same "database too busy, 503" bound on both backends.
            .busy_timeout(settings.acquire_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

/// `BEGIN IMMEDIATE` already serialises every write transaction of the file: no per-user lock.
const LOCK_USER: Option<&str> = None;

super::sql::impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    "BEGIN IMMEDIATE",
    super::LOCK_USER,
    super::MIGRATOR
);
super::attempts::impl_attempt_store!(SqliteStore, sqlx::Sqlite);
super::password_links::impl_password_link_store!(SqliteStore, sqlx::Sqlite);
super::keys::impl_key_store!(SqliteStore, sqlx::Sqlite);
super::admin::impl_admin_store!(SqliteStore);
