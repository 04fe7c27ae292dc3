//! The SQL of the `Store` contract, written once and expanded for each backend.
//!
//! SQLite and PostgreSQL run the same statement texts (`$1` placeholders, `ON CONFLICT`, integer
//! milliseconds, bytes for digests), so one body serves both. What differs per backend (how a write
//! transaction begins, the migrations, connection set-up) is passed in or lives in the backend's
//! own module. See docs/decisions.md.

/// `impl_store!(Type, sqlx::Db, "BEGIN …", LOCK_USER, super::MIGRATOR)`: implements `Store` for a
/// struct with a `pool: sqlx::Pool<Db>` field for reads and a `writer: sqlx::Pool<Db>` field for
/// every write (on SQLite a pool of one connection: one writer, no fight for the file lock; on
/// PostgreSQL the same pool). `LOCK_USER` is an optional statement taking the user
/// id as `$1` that serialises one user's write transactions (needed where transactions can run
/// side by side, i.e. PostgreSQL).
macro_rules! impl_store {
    ($store:ident, $db:ty, $begin:expr, $lock_user:expr, $migrator:expr) => {
        $crate::store::write_steps::impl_write_steps!($store, $db, $begin, $lock_user);

        mod shared_sql {
            use super::$store;
            use $crate::domain::{AuditEvent, Factor, GuardedFactor, Subject};
            use $crate::store::{
                credential_sql, set_event, AuditRecord, FollowUp, MailQuota, Millis, NewOtp,
                OtpInsert, Redeemed, Redemption, StoreError, StoredCredentials, StoredDevice,
            };
            use super::write_steps::{
                consume, factor_set, insert_audit, lock_user, redeemed_with, upsert_device,
            };
            use sqlx::Row;

            #[async_trait::async_trait]
            impl $crate::store::Store for $store {
                async fn migrate(&self) -> Result<(), StoreError> {
                    $migrator.run(&self.writer).await?;
                    Ok(())
                }

                fn pool_usage(&self) -> $crate::store::PoolUsage {
                    self.usage()
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
                    lock_user(&mut tx, sub).await?;
                    sqlx::query(credential_sql(factor).upsert)
                        .bind(sub.as_str())
                        .bind(phc)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    // A new secret starts with clean counters: this is what re-enables a
                    // disabled factor.
                    sqlx::query("DELETE FROM attempts WHERE sub = $1 AND factor = $2")
                        .bind(sub.as_str())
                        .bind(GuardedFactor::from(factor).as_str())
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
                        .execute(&self.writer)
                        .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn insert_otp(&self, sub: &Subject, otp: NewOtp<'_>) -> Result<OtpInsert, StoreError> {
                    // Each backend's own: one server-side call on PostgreSQL (`issue_call.rs`),
                    // the writes as one string of statements on SQLite (`sqlite.rs`).
                    super::issue_otp(self, sub, &otp).await
                }

                async fn reserve_mail(
                    &self,
                    sub: &Subject,
                    now: Millis,
                    window: Millis,
                    limit: u32,
                ) -> Result<MailQuota, StoreError> {
                    // The conflict update takes the row lock (PostgreSQL) or runs under the
                    // database write lock (SQLite): the check and the increment are one step.
                    let counted = sqlx::query(
                        "INSERT INTO mail_quota (sub, window_start, sent) VALUES ($1, $2, 1)
                         ON CONFLICT (sub) DO UPDATE SET
                           window_start = CASE WHEN mail_quota.window_start <= $3 THEN excluded.window_start ELSE mail_quota.window_start END,
                           sent = CASE WHEN mail_quota.window_start <= $3 THEN 1 ELSE mail_quota.sent + 1 END
                         WHERE mail_quota.window_start <= $3 OR mail_quota.sent < $4
                         RETURNING sent",
                    )
                    .bind(sub.as_str())
                    .bind(now)
                    .bind(now - window)
                    .bind(i64::from(limit))
                    .fetch_optional(&self.writer)
                    .await?;
                    if counted.is_some() {
                        return Ok(MailQuota::Granted);
                    }
                    let start: Option<Millis> =
                        sqlx::query_scalar("SELECT window_start FROM mail_quota WHERE sub = $1")
                            .bind(sub.as_str())
                            .fetch_optional(&self.pool)
                            .await?;
                    Ok(MailQuota::Exhausted {
                        window_ends: start.unwrap_or(now) + window,
                    })
                }

                async fn revoke_otp(
                    &self,
                    sub: &Subject,
                    digest: &[u8],
                    reason: &str,
                    now: Millis,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query("DELETE FROM otps WHERE sub = $1 AND digest = $2")
                        .bind(sub.as_str())
                        .bind(digest)
                        .execute(&mut *tx)
                        .await?;
                    let found = done.rows_affected() == 1;
                    if found {
                        insert_audit(&mut tx, sub, AuditEvent::OtpRevoked, reason, now).await?;
                    }
                    tx.commit().await?;
                    Ok(found)
                }

                async fn record_audit(
                    &self,
                    sub: &Subject,
                    event: AuditEvent,
                    detail: &str,
                    now: Millis,
                ) -> Result<(), StoreError> {
                    let mut conn = self.writer.acquire().await?;
                    insert_audit(&mut conn, sub, event, detail, now).await
                }

                async fn devices(&self, sub: &Subject) -> Result<Vec<StoredDevice>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT device_id, secret_ct, algorithm, digits, period_secs, key_id, secret_gen
                         FROM device_totps WHERE sub = $1 ORDER BY device_id",
                    )
                    .bind(sub.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(StoredDevice {
                                device_id: row.try_get(0)?,
                                secret_ct: row.try_get(1)?,
                                algorithm: row.try_get(2)?,
                                digits: row.try_get(3)?,
                                period_secs: row.try_get(4)?,
                                key_id: row.try_get(5)?,
                                secret_gen: row.try_get(6)?,
                            })
                        })
                        .collect()
                }

                async fn save_device(
                    &self,
                    sub: &Subject,
                    device: &StoredDevice,
                    audit_detail: &str,
                    requires: Option<Factor>,
                    now: Millis,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    if let Some(factor) = requires {
                        if !factor_set(&mut tx, sub, factor).await? {
                            tx.rollback().await?;
                            return Ok(false);
                        }
                    }
                    upsert_device(&mut tx, sub, device, now).await?;
                    insert_audit(&mut tx, sub, AuditEvent::DeviceTotpCreated, audit_detail, now).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn redeem(
                    &self,
                    sub: &Subject,
                    candidates: &Redemption,
                    then: FollowUp<'_>,
                    now: Millis,
                ) -> Result<Option<Redeemed>, StoreError> {
                    let mut tx = self.begin_write().await?;
                    // A redemption that changes the user's rows is ordered against the user's
                    // other writes (an erase must not miss a PIN or device committed beside it).
                    // A plain verification only consumes, which the conditional update orders.
                    if !matches!(then, FollowUp::Nothing) {
                        lock_user(&mut tx, sub).await?;
                    }
                    let Some(redeemed) = consume(&mut tx, sub, candidates, now).await? else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    redeemed_with(&mut tx, sub, &redeemed, then, now).await?;
                    tx.commit().await?;
                    Ok(Some(redeemed))
                }

                async fn audit_events(&self, sub: &Subject) -> Result<Vec<AuditRecord>, StoreError> {
                    let rows =
                        sqlx::query_as::<_, AuditRecord>("SELECT id, at, event, detail FROM audit_events WHERE sub = $1 ORDER BY id")
                            .bind(sub.as_str())
                            .fetch_all(&self.pool)
                            .await?;
                    Ok(rows)
                }
            }
        }
    };
}

pub(crate) use impl_store;
