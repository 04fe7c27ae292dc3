//! Password links and the reset "prove" counter in the database: the unit-of-work methods behind
//! `service::password_links` and `service::password_reset`, and their SQL, written once and expanded
//! for each backend like `sql.rs`.

use super::{Millis, StoreError};
use crate::domain::{LinkPurpose, Subject};
use async_trait::async_trait;

/// A link about to be mailed, already reduced to its digests.
#[derive(Debug, Clone)]
pub struct NewLink<'a> {
    /// HMAC of the token: the lookup key.
    pub digest: &'a [u8],
    /// HMAC of the token with user, purpose, email and expiry.
    pub seal: &'a [u8],
    pub purpose: LinkPurpose,
    pub email: &'a str,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// A link as stored. `purpose` is text so that a row this version does not know is still readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLink {
    pub sub: String,
    pub purpose: String,
    pub email: String,
    pub seal: Vec<u8>,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
    pub retired_at: Option<Millis>,
}

/// What an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub pin: bool,
    pub devices: u64,
}

/// Consuming a link to set a password: the new hash, and what else happens in the same transaction.
#[derive(Debug, Clone)]
pub struct LinkUse<'a> {
    pub digest: &'a [u8],
    pub phc: &'a str,
    /// A set link must not overwrite a password that appeared meanwhile.
    pub require_no_password: bool,
    /// Erase the PIN and device TOTPs, with this reason in the audit row.
    pub erase: Option<&'a str>,
    /// The `password.set` audit detail.
    pub audit_detail: &'a str,
    pub now: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkUsed {
    /// The password is set; `erased` when asked to erase.
    Done { erased: Option<Erased> },
    /// Used, retired or expired meanwhile (another tab was faster): nothing changed.
    NotUsable,
    /// A set link, but the user has a password by now: nothing changed.
    PasswordAlreadySet,
}

#[async_trait]
pub trait PasswordLinkStore: Send + Sync {
    /// Stores a new link and retires every earlier unused link of the user, with an audit row.
    async fn insert_password_link(
        &self,
        sub: &Subject,
        link: NewLink<'_>,
    ) -> Result<(), StoreError>;

    async fn password_link(&self, digest: &[u8]) -> Result<Option<StoredLink>, StoreError>;

    /// Retires a link whose mail could not be sent, with an audit row.
    async fn withdraw_password_link(
        &self,
        sub: &Subject,
        digest: &[u8],
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Consumes the link by one conditional update and sets the password (and erases, if asked) in
    /// the same transaction; two requests with one link can never both set a password.
    async fn use_password_link(
        &self,
        sub: &Subject,
        link: LinkUse<'_>,
    ) -> Result<LinkUsed, StoreError>;

    /// Counts one wrong prove of the user in the window of `window` ms that began with the first;
    /// returns the count so far. One upsert: parallel wrong proves each get their own number.
    async fn count_wrong_prove(
        &self,
        sub: &Subject,
        now: Millis,
        window: Millis,
    ) -> Result<u32, StoreError>;

    /// A prove succeeded: the wrong ones so far are forgiven.
    async fn clear_wrong_proves(&self, sub: &Subject) -> Result<(), StoreError>;

    /// Erases the PIN and every device TOTP of the user in one transaction, with an audit row
    /// giving `reason` and what was erased.
    async fn erase_pin_and_devices(
        &self,
        sub: &Subject,
        reason: &str,
        now: Millis,
    ) -> Result<Erased, StoreError>;
}

/// `impl_password_link_store!(Type, sqlx::Db)`: implements `PasswordLinkStore` for a backend that
/// has already expanded `impl_store!` (whose `begin_write`, `lock_user` and `insert_audit` it uses).
macro_rules! impl_password_link_store {
    ($store:ident, $db:ty) => {
        mod password_link_sql {
            use super::$store;
            use super::write_steps::{insert_audit, lock_user};
            use $crate::domain::{AuditEvent, Factor, GuardedFactor, Subject};
            use $crate::store::password_links::{Erased, LinkUse, LinkUsed, NewLink, StoredLink};
            use $crate::store::{Millis, StoreError, credential_sql};
            use sqlx::Row;

            async fn erase(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                reason: &str,
                now: Millis,
            ) -> Result<Erased, StoreError> {
                let pin = sqlx::query(
                    "UPDATE users SET pin_hash = NULL, updated_at = $2 WHERE sub = $1 AND pin_hash IS NOT NULL",
                )
                .bind(sub.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await?;
                let devices = sqlx::query("DELETE FROM device_totps WHERE sub = $1")
                    .bind(sub.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM attempts WHERE sub = $1 AND factor = $2")
                    .bind(sub.as_str())
                    .bind(GuardedFactor::Pin.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM reset_proves WHERE sub = $1")
                    .bind(sub.as_str())
                    .execute(&mut *conn)
                    .await?;
                let erased = Erased {
                    pin: pin.rows_affected() > 0,
                    devices: devices.rows_affected(),
                };
                let detail = format!(
                    "reason={reason} pin={} devices={}",
                    u8::from(erased.pin),
                    erased.devices
                );
                // An erasure that found nothing (a parallel one was first) is no event.
                if erased.pin || erased.devices > 0 {
                    insert_audit(conn, sub, AuditEvent::CredentialsErased, &detail, now).await?;
                }
                Ok(erased)
            }

            #[async_trait::async_trait]
            impl $crate::store::PasswordLinkStore for $store {
                async fn insert_password_link(
                    &self,
                    sub: &Subject,
                    link: NewLink<'_>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    let retired = sqlx::query(
                        "UPDATE password_links SET retired_at = $2
                         WHERE sub = $1 AND used_at IS NULL AND retired_at IS NULL",
                    )
                    .bind(sub.as_str())
                    .bind(link.created_at)
                    .execute(&mut *tx)
                    .await?;
                    // Links whose use is long decided are of no more use to anyone.
                    sqlx::query("DELETE FROM password_links WHERE sub = $1 AND expires_at < $2")
                        .bind(sub.as_str())
                        .bind(link.created_at - 7 * 24 * 3600 * 1000)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO password_links (digest, seal, sub, purpose, email, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(link.digest)
                    .bind(link.seal)
                    .bind(sub.as_str())
                    .bind(link.purpose.as_str())
                    .bind(link.email)
                    .bind(link.created_at)
                    .bind(link.expires_at)
                    .execute(&mut *tx)
                    .await?;
                    let detail = format!(
                        "purpose={} retired={}",
                        link.purpose.as_str(),
                        retired.rows_affected()
                    );
                    insert_audit(&mut tx, sub, AuditEvent::PasswordLinkIssued, &detail, link.created_at)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn password_link(&self, digest: &[u8]) -> Result<Option<StoredLink>, StoreError> {
                    let row = sqlx::query(
                        "SELECT sub, purpose, email, seal, expires_at, used_at, retired_at
                         FROM password_links WHERE digest = $1",
                    )
                    .bind(digest)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|row| {
                        Ok(StoredLink {
                            sub: row.try_get(0)?,
                            purpose: row.try_get(1)?,
                            email: row.try_get(2)?,
                            seal: row.try_get(3)?,
                            expires_at: row.try_get(4)?,
                            used_at: row.try_get(5)?,
                            retired_at: row.try_get(6)?,
                        })
                    })
                    .transpose()
                }

                async fn withdraw_password_link(
                    &self,
                    sub: &Subject,
                    digest: &[u8],
                    now: Millis,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "UPDATE password_links SET retired_at = $3
                         WHERE sub = $1 AND digest = $2 AND used_at IS NULL",
                    )
                    .bind(sub.as_str())
                    .bind(digest)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    insert_audit(&mut tx, sub, AuditEvent::PasswordLinkWithdrawn, "mail-failed", now)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn use_password_link(
                    &self,
                    sub: &Subject,
                    link: LinkUse<'_>,
                ) -> Result<LinkUsed, StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    // The one statement that consumes: of two requests with the same link, the
                    // second finds `used_at` set and changes nothing.
                    let consumed = sqlx::query(
                        "UPDATE password_links SET used_at = $1
                         WHERE digest = $2 AND sub = $3 AND used_at IS NULL AND retired_at IS NULL
                           AND expires_at > $1
                         RETURNING purpose",
                    )
                    .bind(link.now)
                    .bind(link.digest)
                    .bind(sub.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if consumed.is_none() {
                        tx.rollback().await?;
                        return Ok(LinkUsed::NotUsable);
                    }
                    if link.require_no_password {
                        let existing: Option<Option<String>> =
                            sqlx::query_scalar("SELECT password_hash FROM users WHERE sub = $1")
                                .bind(sub.as_str())
                                .fetch_optional(&mut *tx)
                                .await?;
                        if existing.flatten().is_some() {
                            tx.rollback().await?;
                            return Ok(LinkUsed::PasswordAlreadySet);
                        }
                    }
                    sqlx::query(credential_sql(Factor::Password).upsert)
                        .bind(sub.as_str())
                        .bind(link.phc)
                        .bind(link.now)
                        .execute(&mut *tx)
                        .await?;
                    // A new password starts with clean counters (this re-enables a disabled one).
                    sqlx::query("DELETE FROM attempts WHERE sub = $1 AND factor = $2")
                        .bind(sub.as_str())
                        .bind(GuardedFactor::Password.as_str())
                        .execute(&mut *tx)
                        .await?;
                    insert_audit(&mut tx, sub, AuditEvent::PasswordSet, link.audit_detail, link.now)
                        .await?;
                    let erased = match link.erase {
                        Some(reason) => Some(erase(&mut tx, sub, reason, link.now).await?),
                        None => None,
                    };
                    tx.commit().await?;
                    Ok(LinkUsed::Done { erased })
                }

                async fn count_wrong_prove(
                    &self,
                    sub: &Subject,
                    now: Millis,
                    window: Millis,
                ) -> Result<u32, StoreError> {
                    let failures: i64 = sqlx::query_scalar(
                        "INSERT INTO reset_proves (sub, window_start, failures) VALUES ($1, $2, 1)
                         ON CONFLICT (sub) DO UPDATE SET
                           window_start = CASE WHEN reset_proves.window_start <= $3 THEN excluded.window_start ELSE reset_proves.window_start END,
                           failures = CASE WHEN reset_proves.window_start <= $3 THEN 1 ELSE reset_proves.failures + 1 END
                         RETURNING failures",
                    )
                    .bind(sub.as_str())
                    .bind(now)
                    .bind(now - window)
                    .fetch_one(&self.writer)
                    .await?;
                    Ok(u32::try_from(failures).unwrap_or(u32::MAX))
                }

                async fn clear_wrong_proves(&self, sub: &Subject) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM reset_proves WHERE sub = $1")
                        .bind(sub.as_str())
                        .execute(&self.writer)
                        .await?;
                    Ok(())
                }

                async fn erase_pin_and_devices(
                    &self,
                    sub: &Subject,
                    reason: &str,
                    now: Millis,
                ) -> Result<Erased, StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    let erased = erase(&mut tx, sub, reason, now).await?;
                    tx.commit().await?;
                    Ok(erased)
                }
            }
        }
    };
}

pub(crate) use impl_password_link_store;
