//! Attempt counters in the database: the unit-of-work methods behind `domain::lockout`, and their
//! SQL, written once and expanded for each backend like `sql.rs` (see docs/lockout.md).

use super::{Millis, StoreError};
use crate::domain::{AttemptState, GuardedFactor, LockPolicy, Subject};
use async_trait::async_trait;

/// The outcome of asking to check one more secret of a factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counted (as a failure until it succeeds); this is the state it left, lock included.
    Admitted(AttemptState),
    /// Locked or disabled: nothing was counted and the secret must not be checked.
    Refused(AttemptState),
}

/// A reserved attempt whose secret turned out wrong: what its audit rows say and whether the
/// user's live OTPs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAttempt {
    pub factor: GuardedFactor,
    pub failures: u32,
    /// Set when this failure started a lock (its end, Unix ms).
    pub locked_until: Option<Millis>,
    /// This failure disabled the factor.
    pub disabled: bool,
    /// Revoke every live account OTP of the user.
    pub revoke_otps: bool,
}

/// Per-user, per-factor attempt counters. A part of `Store`, kept apart because it is one topic.
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// Counts one attempt at `factor` before its secret is checked, in one atomic upsert that is
    /// refused while the factor is locked or disabled; the lock that `policy` sets for the new
    /// count is written in the same transaction, so no parallel request sees the row without it.
    async fn reserve_attempt(
        &self,
        sub: &Subject,
        factor: GuardedFactor,
        policy: &LockPolicy,
        now: Millis,
    ) -> Result<Reservation, StoreError>;

    /// A reserved attempt succeeded: the factor's counters start over.
    async fn attempt_succeeded(
        &self,
        sub: &Subject,
        factor: GuardedFactor,
    ) -> Result<(), StoreError>;

    /// A reserved attempt failed: its count stays; writes the audit rows and revokes OTPs if asked.
    async fn attempt_failed(
        &self,
        sub: &Subject,
        failed: FailedAttempt,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// The stored counters of the user's factors (factors without failures are absent).
    async fn attempt_states(
        &self,
        sub: &Subject,
    ) -> Result<Vec<(GuardedFactor, AttemptState)>, StoreError>;

    /// Clears the counters of `factors` (operator or admin unlock), with an audit row per factor
    /// whose detail says who asked.
    async fn unlock(
        &self,
        sub: &Subject,
        factors: &[GuardedFactor],
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError>;
}

/// `impl_attempt_store!(Type, sqlx::Db)`: implements `AttemptStore` for a backend that has already
/// expanded `impl_store!` (whose `begin_write` and `insert_audit` it uses).
macro_rules! impl_attempt_store {
    ($store:ident, $db:ty) => {
        mod attempt_sql {
            use super::$store;
            use super::shared_sql::insert_audit;
            use $crate::domain::{AttemptState, AuditEvent, GuardedFactor, LockPolicy, Subject};
            use $crate::store::{FailedAttempt, Millis, Reservation, StoreError};
            use sqlx::Row;

            fn attempt_state(row: &<$db as sqlx::Database>::Row) -> Result<AttemptState, StoreError> {
                let failures: i64 = row.try_get("failures")?;
                let locked_until: i64 = row.try_get("locked_until")?;
                let disabled_at: Option<i64> = row.try_get("disabled_at")?;
                Ok(AttemptState {
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                    locked_until,
                    disabled: disabled_at.is_some(),
                })
            }

            async fn read_attempt_state(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                factor: GuardedFactor,
            ) -> Result<Option<AttemptState>, StoreError> {
                let row = sqlx::query(
                    "SELECT failures, locked_until, disabled_at FROM attempts WHERE sub = $1 AND factor = $2",
                )
                .bind(sub.as_str())
                .bind(factor.as_str())
                .fetch_optional(conn)
                .await?;
                row.as_ref().map(attempt_state).transpose()
            }

            #[async_trait::async_trait]
            impl $crate::store::AttemptStore for $store {
                async fn reserve_attempt(
                    &self,
                    sub: &Subject,
                    factor: GuardedFactor,
                    policy: &LockPolicy,
                    now: Millis,
                ) -> Result<Reservation, StoreError> {
                    let mut tx = self.begin_write().await?;
                    // The one statement that counts: admitted only while neither locked nor
                    // disabled. On PostgreSQL the upsert locks the row until commit, on SQLite
                    // BEGIN IMMEDIATE holds the write lock, so the lock written below is in place
                    // before any other reservation can look at the row.
                    let counted = sqlx::query(
                        "INSERT INTO attempts (sub, factor, failures, locked_until, disabled_at, updated_at)
                         VALUES ($1, $2, 1, 0, NULL, $3)
                         ON CONFLICT (sub, factor) DO UPDATE
                           SET failures = attempts.failures + 1, updated_at = excluded.updated_at
                           WHERE attempts.locked_until <= $3 AND attempts.disabled_at IS NULL
                         RETURNING failures, locked_until",
                    )
                    .bind(sub.as_str())
                    .bind(factor.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = counted else {
                        let state = read_attempt_state(&mut tx, sub, factor).await?;
                        tx.commit().await?;
                        return Ok(Reservation::Refused(state.unwrap_or_default()));
                    };
                    let failures: i64 = row.try_get(0)?;
                    let previous_lock_end: i64 = row.try_get(1)?;
                    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
                    let state = policy.after_reserving(failures, previous_lock_end, now);
                    if state.locked_until != previous_lock_end || state.disabled {
                        sqlx::query(
                            "UPDATE attempts SET locked_until = $1, disabled_at = $2 WHERE sub = $3 AND factor = $4",
                        )
                        .bind(state.locked_until)
                        .bind(state.disabled.then_some(now))
                        .bind(sub.as_str())
                        .bind(factor.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(Reservation::Admitted(state))
                }

                async fn attempt_succeeded(
                    &self,
                    sub: &Subject,
                    factor: GuardedFactor,
                ) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM attempts WHERE sub = $1 AND factor = $2")
                        .bind(sub.as_str())
                        .bind(factor.as_str())
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn attempt_failed(
                    &self,
                    sub: &Subject,
                    failed: FailedAttempt,
                    now: Millis,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    let count = format!("failures={}", failed.failures);
                    insert_audit(&mut tx, sub, AuditEvent::refused(failed.factor), &count, now).await?;
                    if let Some(until) = failed.locked_until {
                        let detail = format!("{count} locked_until={until}");
                        insert_audit(&mut tx, sub, AuditEvent::Locked(failed.factor), &detail, now).await?;
                    }
                    if failed.disabled {
                        insert_audit(&mut tx, sub, AuditEvent::Disabled(failed.factor), &count, now).await?;
                    }
                    if failed.revoke_otps {
                        let revoked = sqlx::query("DELETE FROM otps WHERE sub = $1 AND used_at IS NULL")
                            .bind(sub.as_str())
                            .execute(&mut *tx)
                            .await?;
                        let detail = format!("{count} revoked={}", revoked.rows_affected());
                        insert_audit(&mut tx, sub, AuditEvent::OtpsRevoked, &detail, now).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn attempt_states(
                    &self,
                    sub: &Subject,
                ) -> Result<Vec<(GuardedFactor, AttemptState)>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT factor, failures, locked_until, disabled_at FROM attempts WHERE sub = $1 ORDER BY factor",
                    )
                    .bind(sub.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let factor: String = row.try_get(0)?;
                        // A factor this version does not know is not ours to show.
                        let Some(factor) = GuardedFactor::parse(&factor) else { continue };
                        out.push((factor, attempt_state(row)?));
                    }
                    Ok(out)
                }

                async fn unlock(
                    &self,
                    sub: &Subject,
                    factors: &[GuardedFactor],
                    detail: &str,
                    now: Millis,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    for factor in factors {
                        sqlx::query("DELETE FROM attempts WHERE sub = $1 AND factor = $2")
                            .bind(sub.as_str())
                            .bind(factor.as_str())
                            .execute(&mut *tx)
                            .await?;
                        insert_audit(&mut tx, sub, AuditEvent::Unlocked(*factor), detail, now).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

            }
        }
    };
}

pub(crate) use impl_attempt_store;
