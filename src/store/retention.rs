//! What the retention job deletes, in small batches (docs/retention.md), and which replica may run
//! it: the SQL of `RetentionStore`, written once and expanded for each backend like `sql.rs`.

use super::{Millis, StoreError};
use async_trait::async_trait;

/// A kind of row that stops mattering with time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PruneKind {
    /// Account OTPs past their expiry, used or not: an expired code can be neither redeemed nor
    /// replayed, so its row (and the digest it keeps taken) can go.
    ExpiredOtps,
    /// Attempt counters that guard nothing any more: OTP counters not touched since the cutoff
    /// with no lock in force (account OTPs live minutes; device TOTPs keep their own counts), and
    /// counters of users who have no password or PIN left. A PIN or password counter of a user who
    /// still has that credential is never pruned: that would hand out fresh free guesses.
    StaleAttempts,
    /// Audit events older than `audit_retention_days`.
    OldAuditEvents,
    /// Password links (set or reset) that expired before the cutoff, whether used, retired or
    /// never opened: an expired link can no longer set a password.
    ExpiredPasswordLinks,
    /// Login sessions past their expiry (`session_ttl_seconds`), passed or not: an expired session
    /// id is unknown to `PUT /sessions/{sessionId}` already (docs/sessions.md).
    ExpiredSessions,
    /// Phone codes past their expiry, used or not (docs/phone.md).
    ExpiredPhoneCodes,
    /// Phone changes not verified within 24 h are cancelled: the pending number of a user who
    /// keeps a verified one is cleared...
    CancelledPhoneChanges,
    /// ... and the row of a user who has no verified number goes.
    AbandonedPhoneNumbers,
    /// SMS counts whose window ended before the cutoff.
    OldSmsQuota,
}

impl PruneKind {
    pub const ALL: [PruneKind; 9] = [
        PruneKind::ExpiredOtps,
        PruneKind::StaleAttempts,
        PruneKind::OldAuditEvents,
        PruneKind::ExpiredPasswordLinks,
        PruneKind::ExpiredSessions,
        PruneKind::ExpiredPhoneCodes,
        PruneKind::CancelledPhoneChanges,
        PruneKind::AbandonedPhoneNumbers,
        PruneKind::OldSmsQuota,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PruneKind::ExpiredOtps => "expired_otps",
            PruneKind::StaleAttempts => "stale_attempts",
            PruneKind::OldAuditEvents => "old_audit_events",
            PruneKind::ExpiredPasswordLinks => "expired_password_links",
            PruneKind::ExpiredSessions => "expired_sessions",
            PruneKind::ExpiredPhoneCodes => "expired_phone_codes",
            PruneKind::CancelledPhoneChanges => "cancelled_phone_changes",
            PruneKind::AbandonedPhoneNumbers => "abandoned_phone_numbers",
            PruneKind::OldSmsQuota => "old_sms_quota",
        }
    }
}

/// Held while this process runs the retention job; on PostgreSQL a session advisory lock on its
/// own connection, released when the lease (and so the connection) is dropped.
pub struct RetentionLease {
    _held: Option<sqlx::PgConnection>,
}

impl RetentionLease {
    /// A single process (SQLite) needs no lock.
    pub(super) fn local() -> Self {
        Self { _held: None }
    }

    pub(super) fn held(conn: sqlx::PgConnection) -> Self {
        Self { _held: Some(conn) }
    }

    /// Unlocks and closes the connection before returning, so the next run (of this replica or
    /// another) finds the lock free at once. Dropping the lease also releases it, but only when the
    /// server notices the closed socket, which a run right after may beat (a flake of the
    /// retention tests on PostgreSQL).
    pub async fn release(mut self) {
        use sqlx::Connection;
        if let Some(mut conn) = self._held.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut conn)
                .await;
            if let Err(e) = unlocked {
                tracing::warn!(error = %e, "retention: could not release the lock; the closed connection will");
            }
            let _ = conn.close().await;
        }
    }
}

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes at most `batch` rows of `kind` that stopped mattering: older than `cutoff` (an
    /// expiry, an update time or an event time, per kind), judged at `now`. One short statement,
    /// so no lock is held for long. Returns the rows deleted.
    async fn prune(
        &self,
        kind: PruneKind,
        cutoff: Millis,
        now: Millis,
        batch: u32,
    ) -> Result<u64, StoreError>;

    /// `Some` when this process may run the retention job now; `None` while another replica runs
    /// it (PostgreSQL advisory lock, taken without waiting).
    async fn retention_lease(&self) -> Result<Option<RetentionLease>, StoreError>;
}

/// The statement of each kind: `$1` cutoff, `$2` batch size, and for stale attempts `$3` now. Each selects its batch
/// through an index (migration 0015) and deletes by key.
pub(super) fn prune_sql(kind: PruneKind) -> &'static str {
    match kind {
        PruneKind::ExpiredOtps => {
            "DELETE FROM otps WHERE id IN
               (SELECT id FROM otps WHERE expires_at <= $1 LIMIT $2)"
        }
        PruneKind::StaleAttempts => {
            "DELETE FROM attempts WHERE (sub, factor) IN
               (SELECT a.sub, a.factor FROM attempts a
                 WHERE a.updated_at < $1 AND a.locked_until <= $3
                   AND (a.factor = 'otp' OR NOT EXISTS (SELECT 1 FROM users u WHERE u.sub = a.sub))
                 LIMIT $2)"
        }
        PruneKind::OldAuditEvents => {
            "DELETE FROM audit_events WHERE id IN
               (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)"
        }
        PruneKind::ExpiredPasswordLinks => {
            "DELETE FROM password_links WHERE digest IN
               (SELECT digest FROM password_links WHERE expires_at <= $1 LIMIT $2)"
        }
        PruneKind::ExpiredSessions => {
            "DELETE FROM sessions WHERE id_digest IN
               (SELECT id_digest FROM sessions WHERE expires_at <= $1 LIMIT $2)"
        }
        PruneKind::ExpiredPhoneCodes => {
            "DELETE FROM phone_codes WHERE digest IN
               (SELECT digest FROM phone_codes WHERE expires_at <= $1 LIMIT $2)"
        }
        PruneKind::CancelledPhoneChanges => {
            "UPDATE phone_numbers SET pending_number = NULL, pending_since = NULL WHERE sub IN
               (SELECT sub FROM phone_numbers
                 WHERE pending_since <= $1 AND verified_number IS NOT NULL LIMIT $2)"
        }
        PruneKind::AbandonedPhoneNumbers => {
            "DELETE FROM phone_numbers WHERE sub IN
               (SELECT sub FROM phone_numbers
                 WHERE verified_number IS NULL AND (pending_since IS NULL OR pending_since <= $1)
                 LIMIT $2)"
        }
        PruneKind::OldSmsQuota => {
            "DELETE FROM sms_quota WHERE quota_key IN
               (SELECT quota_key FROM sms_quota WHERE window_start <= $1 LIMIT $2)"
        }
    }
}

/// `impl_retention_store!(Type)`: the shared `prune`; the backend's own `take_retention_lease`
/// decides who may run the job.
macro_rules! impl_retention_store {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::RetentionStore for $store {
            async fn prune(
                &self,
                kind: $crate::store::PruneKind,
                cutoff: $crate::store::Millis,
                now: $crate::store::Millis,
                batch: u32,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut query = sqlx::query($crate::store::retention::prune_sql(kind))
                    .bind(cutoff)
                    .bind(i64::from(batch));
                if kind == $crate::store::PruneKind::StaleAttempts {
                    query = query.bind(now);
                }
                let done = query.execute(&self.writer).await?;
                Ok(done.rows_affected())
            }

            async fn retention_lease(
                &self,
            ) -> Result<Option<$crate::store::RetentionLease>, $crate::store::StoreError> {
                self.take_retention_lease().await
            }
        }
    };
}

pub(crate) use impl_retention_store;
