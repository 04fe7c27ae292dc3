//! The PostgreSQL backend: for many replicas sharing one database. Same statements as SQLite (see
//! `sql.rs`); migrations take PostgreSQL's advisory lock, so replicas starting together are safe.

use super::StoreError;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

/// Pool settings that operators tune per deployment.
#[derive(Debug, Clone, Copy)]
pub struct PgPoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PgPoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

impl PgStore {
    pub async fn connect(url: &str, settings: PgPoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("otpd");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

super::sql::impl_store!(PgStore, sqlx::Postgres, "BEGIN", super::MIGRATOR);
super::attempts::impl_attempt_store!(PgStore, sqlx::Postgres);
