//! The phone number and its SMS codes in the database: the unit-of-work methods behind
//! `service::phone`, and their SQL, written once and expanded for each backend like `sql.rs`
//! (docs/phone.md).

use super::{Millis, StoreError};
use crate::domain::Subject;
use async_trait::async_trait;

/// The user's row as stored (numbers in E.164).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredPhone {
    pub verified_number: Option<String>,
    pub pending_number: Option<String>,
    pub pending_since: Option<Millis>,
}

/// A code about to be sent, already reduced to its digest.
#[derive(Debug, Clone)]
pub struct NewPhoneCode<'a> {
    pub digest: &'a [u8],
    /// The number the code goes to, which becomes the user's pending number.
    pub number: &'a str,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// What the `phone.changed` audit row says (never the number).
    pub audit_detail: &'a str,
}

/// The answer to "may one more SMS go to this user and number now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsQuota {
    /// Counted for both: the SMS may go out.
    Granted,
    /// The user's window is full until `window_ends`; nothing counted.
    UserExhausted { window_ends: Millis },
    /// The number's window is full until `window_ends`; nothing counted.
    NumberExhausted { window_ends: Millis },
}

/// The limits of one reservation.
#[derive(Debug, Clone, Copy)]
pub struct SmsLimits<'a> {
    /// `'n:' || hex HMAC of the number`: the table never holds a number.
    pub number_key: &'a str,
    pub window: Millis,
    pub per_user: u32,
    pub per_number: u32,
}

#[async_trait]
pub trait PhoneStore: Send + Sync {
    async fn phone(&self, sub: &Subject) -> Result<StoredPhone, StoreError>;

    /// Counts one SMS for the user and for the number in one transaction, each by a conditional
    /// upsert, so parallel requests can never exceed either limit; nothing is counted if either
    /// window is full.
    async fn reserve_sms(
        &self,
        sub: &Subject,
        limits: SmsLimits<'_>,
        now: Millis,
    ) -> Result<SmsQuota, StoreError>;

    /// Makes `code.number` the pending number and stores the code, replacing every earlier code
    /// of the user, with the `phone.changed` audit row, in one transaction.
    async fn start_phone_change(
        &self,
        sub: &Subject,
        code: NewPhoneCode<'_>,
    ) -> Result<(), StoreError>;

    /// The SMS of `start_phone_change` could not be sent: the code goes, and the pending change
    /// too unless a newer one replaced it meanwhile, with an audit row.
    async fn withdraw_phone_code(
        &self,
        sub: &Subject,
        digest: &[u8],
        started_at: Millis,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// The verified number was put again: a pending change and its codes go. Returns whether
    /// there was one (then with an audit row).
    async fn cancel_phone_change(&self, sub: &Subject, now: Millis) -> Result<bool, StoreError>;

    /// Consumes the first live code among `digests` by one conditional update and makes its
    /// number the verified one, in one transaction with the audit row. `false`, and nothing
    /// changed, when none is live (unknown, expired, used, or replaced by a newer change).
    async fn verify_phone_code(
        &self,
        sub: &Subject,
        digests: &[[u8; 32]],
        now: Millis,
    ) -> Result<bool, StoreError>;
}

/// `impl_phone_store!(Type, sqlx::Db)`: implements `PhoneStore` for a backend that has already
/// expanded `impl_store!` (whose `begin_write`, `lock_user` and `insert_audit` it uses).
macro_rules! impl_phone_store {
    ($store:ident, $db:ty) => {
        mod phone_sql {
            use super::$store;
            use super::write_steps::{insert_audit, lock_user};
            use $crate::domain::{AuditEvent, Subject};
            use $crate::store::phone::{NewPhoneCode, SmsLimits, SmsQuota, StoredPhone};
            use $crate::store::{Millis, StoreError};
            use sqlx::Row;

            /// Counts one SMS under `key` unless its window is full; `Some(window_start)` of the
            /// full window otherwise. The conflict update takes the row lock (PostgreSQL) or runs
            /// under the write lock (SQLite): check and increment are one step.
            async fn count(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: &str,
                now: Millis,
                window: Millis,
                limit: u32,
            ) -> Result<Option<Millis>, StoreError> {
                let counted = sqlx::query(
                    "INSERT INTO sms_quota (quota_key, window_start, sent) VALUES ($1, $2, 1)
                     ON CONFLICT (quota_key) DO UPDATE SET
                       window_start = CASE WHEN sms_quota.window_start <= $3 THEN excluded.window_start ELSE sms_quota.window_start END,
                       sent = CASE WHEN sms_quota.window_start <= $3 THEN 1 ELSE sms_quota.sent + 1 END
                     WHERE sms_quota.window_start <= $3 OR sms_quota.sent < $4
                     RETURNING sent",
                )
                .bind(key)
                .bind(now)
                .bind(now - window)
                .bind(i64::from(limit))
                .fetch_optional(&mut *conn)
                .await?;
                if counted.is_some() {
                    return Ok(None);
                }
                let start: Option<Millis> =
                    sqlx::query_scalar("SELECT window_start FROM sms_quota WHERE quota_key = $1")
                        .bind(key)
                        .fetch_optional(&mut *conn)
                        .await?;
                Ok(Some(start.unwrap_or(now)))
            }

            #[async_trait::async_trait]
            impl $crate::store::PhoneStore for $store {
                async fn phone(&self, sub: &Subject) -> Result<StoredPhone, StoreError> {
                    let row = sqlx::query(
                        "SELECT verified_number, pending_number, pending_since
                         FROM phone_numbers WHERE sub = $1",
                    )
                    .bind(sub.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|row| {
                        Ok(StoredPhone {
                            verified_number: row.try_get(0)?,
                            pending_number: row.try_get(1)?,
                            pending_since: row.try_get(2)?,
                        })
                    })
                    .transpose()
                    .map(Option::unwrap_or_default)
                }

                async fn reserve_sms(
                    &self,
                    sub: &Subject,
                    limits: SmsLimits<'_>,
                    now: Millis,
                ) -> Result<SmsQuota, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let user_key = format!("u:{}", sub.as_str());
                    if let Some(start) = count(&mut tx, &user_key, now, limits.window, limits.per_user).await? {
                        tx.rollback().await?;
                        return Ok(SmsQuota::UserExhausted { window_ends: start + limits.window });
                    }
                    if let Some(start) =
                        count(&mut tx, limits.number_key, now, limits.window, limits.per_number).await?
                    {
                        // The user's count above goes with the rollback.
                        tx.rollback().await?;
                        return Ok(SmsQuota::NumberExhausted { window_ends: start + limits.window });
                    }
                    tx.commit().await?;
                    Ok(SmsQuota::Granted)
                }

                async fn start_phone_change(
                    &self,
                    sub: &Subject,
                    code: NewPhoneCode<'_>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    sqlx::query("DELETE FROM phone_codes WHERE sub = $1")
                        .bind(sub.as_str())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO phone_numbers (sub, pending_number, pending_since, updated_at)
                         VALUES ($1, $2, $3, $3)
                         ON CONFLICT (sub) DO UPDATE SET pending_number = excluded.pending_number,
                           pending_since = excluded.pending_since, updated_at = excluded.updated_at",
                    )
                    .bind(sub.as_str())
                    .bind(code.number)
                    .bind(code.created_at)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO phone_codes (digest, sub, number, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(code.digest)
                    .bind(sub.as_str())
                    .bind(code.number)
                    .bind(code.created_at)
                    .bind(code.expires_at)
                    .execute(&mut *tx)
                    .await?;
                    insert_audit(&mut tx, sub, AuditEvent::PhoneChanged, code.audit_detail, code.created_at)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn withdraw_phone_code(
                    &self,
                    sub: &Subject,
                    digest: &[u8],
                    started_at: Millis,
                    now: Millis,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    sqlx::query("DELETE FROM phone_codes WHERE sub = $1 AND digest = $2")
                        .bind(sub.as_str())
                        .bind(digest)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE phone_numbers SET pending_number = NULL, pending_since = NULL, updated_at = $3
                         WHERE sub = $1 AND pending_since = $2",
                    )
                    .bind(sub.as_str())
                    .bind(started_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "DELETE FROM phone_numbers
                         WHERE sub = $1 AND verified_number IS NULL AND pending_number IS NULL",
                    )
                    .bind(sub.as_str())
                    .execute(&mut *tx)
                    .await?;
                    insert_audit(&mut tx, sub, AuditEvent::PhoneCodeWithdrawn, "sms-failed", now).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn cancel_phone_change(&self, sub: &Subject, now: Millis) -> Result<bool, StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    sqlx::query("DELETE FROM phone_codes WHERE sub = $1")
                        .bind(sub.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let cleared = sqlx::query(
                        "UPDATE phone_numbers SET pending_number = NULL, pending_since = NULL, updated_at = $2
                         WHERE sub = $1 AND pending_number IS NOT NULL",
                    )
                    .bind(sub.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    let cancelled = cleared.rows_affected() > 0;
                    if cancelled {
                        insert_audit(&mut tx, sub, AuditEvent::PhoneChangeCancelled, "reason=verified-number-put", now)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(cancelled)
                }

                async fn verify_phone_code(
                    &self,
                    sub: &Subject,
                    digests: &[[u8; 32]],
                    now: Millis,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    for digest in digests {
                        // The one statement that consumes: of two requests with the same code,
                        // the second finds `used_at` set and changes nothing.
                        let number: Option<String> = sqlx::query_scalar(
                            "UPDATE phone_codes SET used_at = $1
                             WHERE sub = $2 AND digest = $3 AND used_at IS NULL AND expires_at > $1
                             RETURNING number",
                        )
                        .bind(now)
                        .bind(sub.as_str())
                        .bind(&digest[..])
                        .fetch_optional(&mut *tx)
                        .await?;
                        let Some(number) = number else { continue };
                        // Only the change the code was sent for: a newer PUT deleted this code,
                        // so the pending number is this one.
                        let done = sqlx::query(
                            "UPDATE phone_numbers SET verified_number = pending_number, verified_at = $3,
                               pending_number = NULL, pending_since = NULL, updated_at = $3
                             WHERE sub = $1 AND pending_number = $2",
                        )
                        .bind(sub.as_str())
                        .bind(&number)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        if done.rows_affected() == 0 {
                            tx.rollback().await?;
                            return Ok(false);
                        }
                        insert_audit(&mut tx, sub, AuditEvent::PhoneVerified, "", now).await?;
                        tx.commit().await?;
                        return Ok(true);
                    }
                    tx.rollback().await?;
                    Ok(false)
                }
            }
        }
    };
}

pub(crate) use impl_phone_store;
