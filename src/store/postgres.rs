//! The PostgreSQL backend: for many replicas sharing one database. Same statements as SQLite (see
//! `sql.rs`); migrations take PostgreSQL's advisory lock, so replicas starting together are safe.

use super::{PoolSettings, StoreError};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("otpd");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

/// Serialises one user's write transactions across every replica (READ COMMITTED alone would let
/// two concurrent OTP inserts each prune without seeing the other's row). A transaction-scoped
/// advisory lock on a hash of the user id: collisions only make unrelated users wait briefly.
const LOCK_USER: Option<&str> = Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");

super::sql::impl_store!(
    PgStore,
    sqlx::Postgres,
    "BEGIN",
    super::LOCK_USER,
    super::MIGRATOR
);
super::attempts::impl_attempt_store!(PgStore, sqlx::Postgres);
super::password_links::impl_password_link_store!(PgStore, sqlx::Postgres);
super::keys::impl_key_store!(PgStore, sqlx::Postgres);
super::admin::impl_admin_store!(PgStore);
