//! Login sessions and login OTPs in the database (docs/sessions.md): the unit-of-work methods
//! behind `service::sessions`, and their SQL, written once and expanded for each backend like
//! `sql.rs`. A login OTP is a row of `otps` with `kind = 'login'`, so it is redeemed, counted and
//! pruned exactly like an account OTP.

use super::{Millis, StoreError};
use crate::domain::Subject;
use async_trait::async_trait;

/// A session about to be created with its login OTP, already reduced to digests.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// SHA-256 of the identity provider's session id: the lookup key.
    pub id_digest: &'a [u8],
    /// What the audit rows call the session (a prefix of the digest).
    pub label: &'a str,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// The login OTP's HMAC digest and expiry.
    pub otp_digest: &'a [u8],
    pub otp_expires_at: Millis,
    /// Live login OTPs the user may hold after this insert; older ones are deleted.
    pub max_live: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCreated {
    /// The session and its login OTP are stored, with their audit rows.
    Created,
    /// A live session with this id exists already (nothing was written): for this user or not.
    Exists { same_user: bool },
    /// otpd has no record of the user (no credential, device or mail address): nothing written.
    UnknownUser,
    /// Another OTP already has this digest: draw a new code (nothing written).
    DigestTaken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPassed {
    /// Recorded now, with its audit row.
    Passed,
    /// Recorded before: nothing changed.
    AlreadyPassed,
    /// The live session with this id belongs to another user.
    Mismatch,
    /// No live session with this id.
    Unknown,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates the session and stores its login OTP in ONE transaction, with the audit rows; an
    /// expired session with the same id is replaced. Of concurrent calls with one id exactly one
    /// gets `Created` (the primary key decides).
    async fn create_session(
        &self,
        sub: &Subject,
        new: NewSession<'_>,
    ) -> Result<SessionCreated, StoreError>;

    /// Records that the session's login OTP was passed: one conditional update, so of concurrent
    /// calls one gets `Passed` and writes the audit row.
    async fn pass_session(
        &self,
        sub: &Subject,
        id_digest: &[u8],
        label: &str,
        now: Millis,
    ) -> Result<SessionPassed, StoreError>;

    /// Deletes a session created moments ago and its login OTP (the OTP's mail failed), with an
    /// audit row: a retry of the same id starts anew.
    async fn withdraw_session(
        &self,
        sub: &Subject,
        id_digest: &[u8],
        otp_digest: &[u8],
        label: &str,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Remembers the verified address an OTP or a password link was just mailed to.
    async fn remember_email(
        &self,
        sub: &Subject,
        email: &str,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// The address login OTPs go to, if one was remembered.
    async fn known_email(&self, sub: &Subject) -> Result<Option<String>, StoreError>;
}

/// `impl_session_store!(Type, sqlx::Db)`: implements `SessionStore` for a backend that has already
/// expanded `impl_store!` (whose `begin_write`, `lock_user` and `insert_audit` it uses).
macro_rules! impl_session_store {
    ($store:ident, $db:ty) => {
        mod session_sql {
            use super::$store;
            use super::write_steps::{insert_audit, insert_otp, lock_user};
            use $crate::domain::{AuditEvent, Subject};
            use $crate::store::sessions::{NewSession, SessionCreated, SessionPassed};
            use $crate::store::{Millis, StoreError};

            type Conn = <$db as sqlx::Database>::Connection;

            /// A user otpd has a record of: a credential, a device TOTP or a mail address.
            async fn user_known(conn: &mut Conn, sub: &Subject) -> Result<bool, StoreError> {
                let row = sqlx::query(
                    "SELECT 1 FROM users WHERE sub = $1
                     UNION ALL SELECT 1 FROM device_totps WHERE sub = $1
                     UNION ALL SELECT 1 FROM user_emails WHERE sub = $1
                     LIMIT 1",
                )
                .bind(sub.as_str())
                .fetch_optional(&mut *conn)
                .await?;
                Ok(row.is_some())
            }

            /// The owner of the live session with this digest, if any.
            async fn live_owner(
                conn: &mut Conn,
                id_digest: &[u8],
                now: Millis,
            ) -> Result<Option<(String, Option<Millis>)>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT sub, passed_at FROM sessions WHERE id_digest = $1 AND expires_at > $2",
                )
                .bind(id_digest)
                .bind(now)
                .fetch_optional(&mut *conn)
                .await?)
            }

            #[async_trait::async_trait]
            impl $crate::store::SessionStore for $store {
                async fn create_session(
                    &self,
                    sub: &Subject,
                    new: NewSession<'_>,
                ) -> Result<SessionCreated, StoreError> {
                    let now = new.created_at;
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    if !user_known(&mut tx, sub).await? {
                        tx.rollback().await?;
                        return Ok(SessionCreated::UnknownUser);
                    }
                    sqlx::query("DELETE FROM sessions WHERE id_digest = $1 AND expires_at <= $2")
                        .bind(new.id_digest)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    // The primary key decides between concurrent creations: on PostgreSQL the
                    // loser waits for the winner's commit and then inserts nothing.
                    let inserted = sqlx::query(
                        "INSERT INTO sessions (id_digest, sub, created_at, expires_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (id_digest) DO NOTHING",
                    )
                    .bind(new.id_digest)
                    .bind(sub.as_str())
                    .bind(now)
                    .bind(new.expires_at)
                    .execute(&mut *tx)
                    .await?;
                    if inserted.rows_affected() == 0 {
                        let owner = live_owner(&mut tx, new.id_digest, now).await?;
                        tx.rollback().await?;
                        let same_user = owner.is_some_and(|(s, _)| s == sub.as_str());
                        return Ok(SessionCreated::Exists { same_user });
                    }
                    let inserted = insert_otp(
                        &mut tx,
                        sub,
                        "login",
                        new.otp_digest,
                        now,
                        new.otp_expires_at,
                        new.max_live,
                    );
                    // Dropping the transaction rolls the session back too.
                    if !inserted.await? {
                        return Ok(SessionCreated::DigestTaken);
                    }
                    let detail = format!("session={}", new.label);
                    insert_audit(&mut tx, sub, AuditEvent::SessionCreated, &detail, now).await?;
                    let otp_detail = format!("type=login {detail}");
                    insert_audit(&mut tx, sub, AuditEvent::OtpIssued, &otp_detail, now).await?;
                    tx.commit().await?;
                    Ok(SessionCreated::Created)
                }

                async fn pass_session(
                    &self,
                    sub: &Subject,
                    id_digest: &[u8],
                    label: &str,
                    now: Millis,
                ) -> Result<SessionPassed, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let passed = sqlx::query(
                        "UPDATE sessions SET passed_at = $1
                         WHERE id_digest = $2 AND sub = $3 AND expires_at > $1 AND passed_at IS NULL",
                    )
                    .bind(now)
                    .bind(id_digest)
                    .bind(sub.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if passed.rows_affected() == 1 {
                        let detail = format!("session={label}");
                        insert_audit(&mut tx, sub, AuditEvent::SessionPassed, &detail, now).await?;
                        tx.commit().await?;
                        return Ok(SessionPassed::Passed);
                    }
                    let owner = live_owner(&mut tx, id_digest, now).await?;
                    tx.rollback().await?;
                    Ok(match owner {
                        None => SessionPassed::Unknown,
                        Some((owner, _)) if owner != sub.as_str() => SessionPassed::Mismatch,
                        Some(_) => SessionPassed::AlreadyPassed,
                    })
                }

                async fn withdraw_session(
                    &self,
                    sub: &Subject,
                    id_digest: &[u8],
                    otp_digest: &[u8],
                    label: &str,
                    now: Millis,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("DELETE FROM sessions WHERE id_digest = $1 AND sub = $2")
                        .bind(id_digest)
                        .bind(sub.as_str())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM otps WHERE sub = $1 AND digest = $2")
                        .bind(sub.as_str())
                        .bind(otp_digest)
                        .execute(&mut *tx)
                        .await?;
                    let detail = format!("session={label} reason=mail-failed");
                    insert_audit(&mut tx, sub, AuditEvent::SessionWithdrawn, &detail, now).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn remember_email(
                    &self,
                    sub: &Subject,
                    email: &str,
                    now: Millis,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO user_emails (sub, email, seen_at) VALUES ($1, $2, $3)
                         ON CONFLICT (sub) DO UPDATE SET email = excluded.email, seen_at = excluded.seen_at",
                    )
                    .bind(sub.as_str())
                    .bind(email)
                    .bind(now)
                    .execute(&self.writer)
                    .await?;
                    Ok(())
                }

                async fn known_email(&self, sub: &Subject) -> Result<Option<String>, StoreError> {
                    Ok(sqlx::query_scalar("SELECT email FROM user_emails WHERE sub = $1")
                        .bind(sub.as_str())
                        .fetch_optional(&self.pool)
                        .await?)
                }
            }
        }
    };
}

pub(crate) use impl_session_store;
