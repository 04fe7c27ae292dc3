//! The embedded SQLite backend: one file, WAL journal, write transactions that begin IMMEDIATE so a
//! read-then-write transaction waits for the lock instead of failing with SQLITE_BUSY.

use super::{
    AuditRecord, Millis, NewOtp, OtpInsert, Store, StoreError, StoredCredentials, credential_sql,
    set_event,
};
use crate::domain::{AuditEvent, Factor, Subject};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
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

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

async fn insert_audit(
    conn: &mut sqlx::SqliteConnection,
    sub: &Subject,
    event: AuditEvent,
    detail: &str,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_events (sub, at, event, detail) VALUES ($1, $2, $3, $4)")
        .bind(sub.as_str())
        .bind(now)
        .bind(event.as_str())
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn credentials(&self, sub: &Subject) -> Result<StoredCredentials, StoreError> {
        let row = sqlx::query("SELECT password_hash, pin_hash FROM users WHERE sub = $1")
            .bind(sub.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => StoredCredentials::default(),
            Some(row) => StoredCredentials {
                password_hash: row.try_get(0)?,
                pin_hash: row.try_get(1)?,
            },
        })
    }

    async fn set_credential(
        &self,
        sub: &Subject,
        factor: Factor,
        phc: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(credential_sql(factor).upsert)
            .bind(sub.as_str())
            .bind(phc)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, sub, set_event(factor), "", now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upgrade_hash(
        &self,
        sub: &Subject,
        factor: Factor,
        old: &str,
        new: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(credential_sql(factor).upgrade)
            .bind(new)
            .bind(now)
            .bind(sub.as_str())
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_otp(&self, sub: &Subject, otp: NewOtp<'_>) -> Result<OtpInsert, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM otps WHERE sub = $1 AND (expires_at <= $2 OR used_at IS NOT NULL)",
        )
        .bind(sub.as_str())
        .bind(otp.created_at)
        .execute(&mut *tx)
        .await?;
        // Keep the newest max_live - 1, making room for the one inserted below.
        sqlx::query(
            "DELETE FROM otps WHERE sub = $1 AND id NOT IN
               (SELECT id FROM otps WHERE sub = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(sub.as_str())
        .bind(i64::from(otp.max_live.saturating_sub(1)))
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO otps (sub, digest, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(sub.as_str())
        .bind(otp.digest)
        .bind(otp.created_at)
        .bind(otp.expires_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(OtpInsert::DigestTaken),
            Err(e) => return Err(e.into()),
        }
        insert_audit(
            &mut tx,
            sub,
            AuditEvent::OtpIssued,
            otp.audit_detail,
            otp.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(OtpInsert::Inserted)
    }

    async fn record_audit(
        &self,
        sub: &Subject,
        event: AuditEvent,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, sub, event, detail, now).await
    }

    async fn audit_events(&self, sub: &Subject) -> Result<Vec<AuditRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT at, event, detail FROM audit_events WHERE sub = $1 ORDER BY id")
                .bind(sub.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    at: row.try_get(0)?,
                    event: row.try_get(1)?,
                    detail: row.try_get(2)?,
                })
            })
            .collect()
    }
}
