//! The unit-of-work methods behind key rotation and user import: reading stored hashes and device
//! secrets page by page (so memory stays flat however many users there are), re-sealing device
//! secrets under a new key, and importing hashes. SQL written once and expanded for each backend
//! like `sql.rs`.

use super::{Millis, StoreError, StoredDevice};
use crate::domain::{Factor, Subject};
use async_trait::async_trait;

/// One user's stored hashes, as read for `otpd keys status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRow {
    pub sub: String,
    pub password_hash: Option<String>,
    pub pin_hash: Option<String>,
}

/// A device secret sealed again: replaces `old_ct` by `new_ct` only if the row still holds
/// `old_ct` and the same secret generation.
#[derive(Debug, Clone)]
pub struct Reseal {
    pub sub: String,
    pub device_id: String,
    pub secret_gen: i64,
    pub old_ct: Vec<u8>,
    pub new_ct: Vec<u8>,
    pub key_id: String,
}

/// One imported hash (already parsed and checked against the import limits).
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub sub: Subject,
    pub factor: Factor,
    pub phc: String,
    /// What the audit row says about it (the scheme, never the hash).
    pub audit_detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The user had no such credential; now it is the imported one.
    Imported,
    /// The user already had one and it was kept (no `--overwrite`).
    Kept,
    /// The user's credential was replaced (`--overwrite`).
    Replaced,
}

/// Key rotation and import. A part of `Store`, kept apart because it is one topic.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Up to `limit` users with any hash, ordered by `sub`, after `after`.
    async fn hash_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<HashRow>, StoreError>;

    /// Device secrets per key id (`None`: sealed before key ids were recorded).
    async fn device_key_counts(&self) -> Result<Vec<(Option<String>, i64)>, StoreError>;

    /// Up to `limit` devices not sealed under `current`, ordered by (sub, device id), after
    /// `after`: the work list of `otpd keys reencrypt-totp`.
    async fn devices_to_reseal(
        &self,
        current: &str,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, StoredDevice)>, StoreError>;

    /// Applies the reseals in one transaction; returns how many rows were still as read (the
    /// others changed meanwhile, e.g. a new secret for the device, and are left alone).
    async fn reseal_devices(&self, batch: &[Reseal], now: Millis) -> Result<u64, StoreError>;

    /// Stores imported hashes in one transaction, each with its audit row. An existing credential
    /// is kept unless `overwrite`; a stored hash starts with clean attempt counters, like a set one.
    async fn import_hashes(
        &self,
        rows: &[ImportRow],
        overwrite: bool,
        now: Millis,
    ) -> Result<Vec<ImportOutcome>, StoreError>;
}

/// Statements that differ only in the credential column, spelled out so every SQL string is a
/// literal.
pub(super) struct ImportSql {
    pub if_absent: &'static str,
    pub replace: &'static str,
}

pub(super) fn import_sql(factor: Factor) -> ImportSql {
    match factor {
        Factor::Password => ImportSql {
            if_absent: "INSERT INTO users (sub, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3)
                        ON CONFLICT (sub) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at
                        WHERE users.password_hash IS NULL
                        RETURNING sub",
            replace: "UPDATE users SET password_hash = $2, updated_at = $3 WHERE sub = $1",
        },
        Factor::Pin => ImportSql {
            if_absent: "INSERT INTO users (sub, pin_hash, created_at, updated_at) VALUES ($1, $2, $3, $3)
                        ON CONFLICT (sub) DO UPDATE SET pin_hash = excluded.pin_hash, updated_at = excluded.updated_at
                        WHERE users.pin_hash IS NULL
                        RETURNING sub",
            replace: "UPDATE users SET pin_hash = $2, updated_at = $3 WHERE sub = $1",
        },
    }
}

/// `impl_key_store!(Type, sqlx::Db)`: implements `KeyStore` for a backend that has already expanded
/// `impl_store!` (whose `begin_write` and `insert_audit` it uses).
macro_rules! impl_key_store {
    ($store:ident, $db:ty) => {
        mod key_sql {
            use super::$store;
            use super::write_steps::insert_audit;
            use $crate::domain::{AuditEvent, Factor, GuardedFactor};
            use $crate::store::keys::{import_sql, HashRow, ImportOutcome, ImportRow, Reseal};
            use $crate::store::{Millis, StoreError, StoredDevice};
            use sqlx::Row;

            #[async_trait::async_trait]
            impl $crate::store::KeyStore for $store {
                async fn hash_page(
                    &self,
                    after: Option<&str>,
                    limit: u32,
                ) -> Result<Vec<HashRow>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT sub, password_hash, pin_hash FROM users
                         WHERE sub > $1 AND (password_hash IS NOT NULL OR pin_hash IS NOT NULL)
                         ORDER BY sub LIMIT $2",
                    )
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(HashRow {
                                sub: row.try_get(0)?,
                                password_hash: row.try_get(1)?,
                                pin_hash: row.try_get(2)?,
                            })
                        })
                        .collect()
                }

                async fn device_key_counts(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT key_id, COUNT(*) FROM device_totps GROUP BY key_id ORDER BY key_id",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                        .collect()
                }

                async fn devices_to_reseal(
                    &self,
                    current: &str,
                    after: Option<(&str, &str)>,
                    limit: u32,
                ) -> Result<Vec<(String, StoredDevice)>, StoreError> {
                    let (after_sub, after_device) = after.unwrap_or(("", ""));
                    let rows = sqlx::query(
                        "SELECT sub, device_id, secret_ct, algorithm, digits, period_secs, key_id, secret_gen
                         FROM device_totps
                         WHERE (key_id IS NULL OR key_id <> $1)
                           AND (sub > $2 OR (sub = $2 AND device_id > $3))
                         ORDER BY sub, device_id LIMIT $4",
                    )
                    .bind(current)
                    .bind(after_sub)
                    .bind(after_device)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok((
                                row.try_get(0)?,
                                StoredDevice {
                                    device_id: row.try_get(1)?,
                                    secret_ct: row.try_get(2)?,
                                    algorithm: row.try_get(3)?,
                                    digits: row.try_get(4)?,
                                    period_secs: row.try_get(5)?,
                                    key_id: row.try_get(6)?,
                                    secret_gen: row.try_get(7)?,
                                },
                            ))
                        })
                        .collect()
                }

                async fn reseal_devices(&self, batch: &[Reseal], now: Millis) -> Result<u64, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let mut done = 0;
                    for r in batch {
                        // last_step stays: a code accepted before the reseal stays used after it.
                        let changed = sqlx::query(
                            "UPDATE device_totps SET secret_ct = $1, key_id = $2, updated_at = $3
                             WHERE sub = $4 AND device_id = $5 AND secret_gen = $6 AND secret_ct = $7",
                        )
                        .bind(&r.new_ct)
                        .bind(&r.key_id)
                        .bind(now)
                        .bind(&r.sub)
                        .bind(&r.device_id)
                        .bind(r.secret_gen)
                        .bind(&r.old_ct)
                        .execute(&mut *tx)
                        .await?;
                        done += changed.rows_affected();
                    }
                    tx.commit().await?;
                    Ok(done)
                }

                async fn import_hashes(
                    &self,
                    rows: &[ImportRow],
                    overwrite: bool,
                    now: Millis,
                ) -> Result<Vec<ImportOutcome>, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let mut outcomes = Vec::with_capacity(rows.len());
                    for row in rows {
                        let sql = import_sql(row.factor);
                        let inserted = sqlx::query(sql.if_absent)
                            .bind(row.sub.as_str())
                            .bind(&row.phc)
                            .bind(now)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let outcome = match (inserted, overwrite) {
                            (Some(_), _) => ImportOutcome::Imported,
                            (None, false) => ImportOutcome::Kept,
                            (None, true) => {
                                sqlx::query(sql.replace)
                                    .bind(row.sub.as_str())
                                    .bind(&row.phc)
                                    .bind(now)
                                    .execute(&mut *tx)
                                    .await?;
                                ImportOutcome::Replaced
                            }
                        };
                        if outcome != ImportOutcome::Kept {
                            sqlx::query("DELETE FROM attempts WHERE sub = $1 AND factor = $2")
                                .bind(row.sub.as_str())
                                .bind(GuardedFactor::from(row.factor).as_str())
                                .execute(&mut *tx)
                                .await?;
                            let event = match row.factor {
                                Factor::Password => AuditEvent::PasswordImported,
                                Factor::Pin => AuditEvent::PinImported,
                            };
                            insert_audit(&mut tx, &row.sub, event, &row.audit_detail, now).await?;
                        }
                        outcomes.push(outcome);
                    }
                    tx.commit().await?;
                    Ok(outcomes)
                }
            }
        }
    };
}

pub(crate) use impl_key_store;
