//! Attempt counters in the database: the unit-of-work methods behind `domain::lockout`, and their
//! SQL, written once and expanded for each backend like `sql.rs` (see docs/lockout.md).

use super::{FollowUp, Millis, Redeemed, Redemption, StoreError};
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
    /// Device TOTP codes were among what was checked: every device of the user counts one more
    /// failure, and those that reach this many are revoked. `None`: no device was checked, or no
    /// bound is configured.
    pub revoke_devices_after: Option<u32>,
}

impl FailedAttempt {
    /// What a reserved attempt at `factor` that turned out wrong leaves behind under `policy`.
    pub fn after(
        factor: GuardedFactor,
        policy: &LockPolicy,
        state: AttemptState,
        devices_checked: bool,
    ) -> Self {
        Self {
            factor,
            failures: state.failures,
            // Disabling supersedes the lock the same failure would start.
            locked_until: (!state.disabled && !policy.lock_after(state.failures).is_zero())
                .then_some(state.locked_until),
            disabled: state.disabled,
            revoke_otps: policy.revokes_at(state.failures),
            revoke_devices_after: policy.revoke_devices_after.filter(|_| devices_checked),
        }
    }
}

/// What a counted redemption (`AttemptStore::redeem_counted`) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountedRedemption {
    Redeemed(Redeemed),
    /// Locked or disabled: nothing was counted and no candidate was looked at.
    Refused(AttemptState),
    /// Counted and no candidate was valid; the failure's effects are applied.
    Failed {
        failed: FailedAttempt,
        /// Device TOTPs revoked by this failure.
        devices_revoked: u64,
    },
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

    /// A reserved attempt failed: its count stays; writes the audit rows and revokes OTPs and
    /// devices if asked. Returns how many device TOTPs were revoked.
    async fn attempt_failed(
        &self,
        sub: &Subject,
        failed: FailedAttempt,
        now: Millis,
    ) -> Result<u64, StoreError>;

    /// The whole of one OTP redemption in ONE short transaction: count the attempt on the user's
    /// OTP counter row (which locks that row: the user's redemptions queue there), refuse without
    /// looking if locked, else consume the first valid candidate; on success reset the counter,
    /// write the audit row and apply `then`; on failure keep the count and apply what `policy`
    /// says a failure does (audit rows, lock, OTP and device revocation). The same guarantees as
    /// `reserve_attempt` + `redeem` + `attempt_succeeded`/`attempt_failed`, in one commit.
    /// `devices_checked`: device TOTP codes were among the candidates' types.
    async fn redeem_counted(
        &self,
        sub: &Subject,
        candidates: &Redemption,
        then: FollowUp<'_>,
        policy: &LockPolicy,
        devices_checked: bool,
        now: Millis,
    ) -> Result<CountedRedemption, StoreError>;

    /// `redeem_counted` with nothing to follow, without reading the user's device TOTPs first:
    /// PostgreSQL makes it one call of a server-side function (one round trip instead of five),
    /// SQLite one job of its group commit that tries the OTPs before it asks about devices.
    /// `None`: not done, nothing written — `devices` asked for device TOTPs and the user has some
    /// (PostgreSQL declines before looking at the OTPs, SQLite when none of them was valid); the
    /// caller reads the devices and takes `redeem_counted`. `candidates` holds no device steps.
    async fn redeem_counted_in_one_call(
        &self,
        sub: &Subject,
        candidates: &Redemption,
        devices: bool,
        policy: &LockPolicy,
        now: Millis,
    ) -> Result<Option<CountedRedemption>, StoreError>;

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
            use super::write_steps::{
                consume, consume_device, consume_reset_audit, consume_unless_locked, follow_up,
                insert_audit, lock_user, redeemed_with,
            };
            use $crate::domain::{AttemptState, AuditEvent, GuardedFactor, LockPolicy, Subject};
            use $crate::store::{
                CountedRedemption, FailedAttempt, FollowUp, Millis, Redeemed, Redemption,
                Reservation, StoreError,
            };
            use sqlx::Row;

            type Conn = <$db as sqlx::Database>::Connection;

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

            /// Counts one attempt inside the caller's write transaction (see `reserve_attempt`).
            async fn count_attempt(
                conn: &mut Conn,
                sub: &Subject,
                factor: GuardedFactor,
                policy: &LockPolicy,
                now: Millis,
            ) -> Result<Reservation, StoreError> {
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
                .fetch_optional(&mut *conn)
                .await?;
                let Some(row) = counted else {
                    let state = read_attempt_state(&mut *conn, sub, factor).await?;
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
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(Reservation::Admitted(state))
            }

            /// The effects of a failed attempt inside the caller's write transaction: its audit
            /// rows, and the revocations `failed` asks for. Returns the devices revoked.
            async fn record_failure(
                conn: &mut Conn,
                sub: &Subject,
                failed: &FailedAttempt,
                now: Millis,
            ) -> Result<u64, StoreError> {
                let count = format!("failures={}", failed.failures);
                insert_audit(&mut *conn, sub, AuditEvent::refused(failed.factor), &count, now).await?;
                if let Some(until) = failed.locked_until {
                    let detail = format!("{count} locked_until={until}");
                    insert_audit(&mut *conn, sub, AuditEvent::Locked(failed.factor), &detail, now).await?;
                }
                if failed.disabled {
                    insert_audit(&mut *conn, sub, AuditEvent::Disabled(failed.factor), &count, now).await?;
                }
                if failed.revoke_otps {
                    let revoked = sqlx::query("DELETE FROM otps WHERE sub = $1 AND used_at IS NULL")
                        .bind(sub.as_str())
                        .execute(&mut *conn)
                        .await?;
                    let detail = format!("{count} revoked={}", revoked.rows_affected());
                    insert_audit(&mut *conn, sub, AuditEvent::OtpsRevoked, &detail, now).await?;
                }
                let mut devices_revoked = 0;
                if let Some(bound) = failed.revoke_devices_after {
                    // Every device of the user was checked (the code was compared with each), so
                    // each counts the failure; the ones at the bound go, with one audit row each.
                    sqlx::query("UPDATE device_totps SET failures = failures + 1 WHERE sub = $1")
                        .bind(sub.as_str())
                        .execute(&mut *conn)
                        .await?;
                    let revoked: Vec<(String, i64)> = sqlx::query_as(
                        "DELETE FROM device_totps WHERE sub = $1 AND failures >= $2
                         RETURNING device_id, failures",
                    )
                    .bind(sub.as_str())
                    .bind(i64::from(bound))
                    .fetch_all(&mut *conn)
                    .await?;
                    for (device, failures) in &revoked {
                        let detail = format!("device={device} failures={failures}");
                        insert_audit(&mut *conn, sub, AuditEvent::DeviceTotpRevoked, &detail, now).await?;
                    }
                    devices_revoked = revoked.len() as u64;
                }
                Ok(devices_revoked)
            }

            /// A success: the factor's counters start over.
            async fn reset(conn: &mut Conn, sub: &Subject, factor: GuardedFactor) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM attempts WHERE sub = $1 AND factor = $2")
                    .bind(sub.as_str())
                    .bind(factor.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// A consumed candidate: with its reset, audit row and follow-up written (`Done`), or
            /// still to be written (`Then`).
            enum Consumed {
                Done(Redeemed),
                Then(Redeemed),
            }

            /// The consume after the count (concurrent writers): an account OTP with its reset
            /// and audit row in one statement where the backend has one (`CONSUME_RESET_AUDIT`).
            async fn consume_counted(
                conn: &mut Conn,
                sub: &Subject,
                candidates: &Redemption,
                then: FollowUp<'_>,
                now: Millis,
            ) -> Result<Option<Consumed>, StoreError> {
                let Some(sql) = super::CONSUME_RESET_AUDIT else {
                    return Ok(consume(&mut *conn, sub, candidates, now).await?.map(Consumed::Then));
                };
                // A login OTP never answers to an account digest and the other way round.
                for (digests, kind, redeemed) in candidates.digests_by_kind() {
                    for digest in digests {
                        let detail = redeemed.audit_detail();
                        let used = consume_reset_audit(&mut *conn, sql, sub, &digest[..], kind, &detail, now);
                        if used.await? {
                            follow_up(&mut *conn, sub, &detail, then, now).await?;
                            return Ok(Some(Consumed::Done(redeemed)));
                        }
                    }
                }
                Ok(consume_device(&mut *conn, sub, candidates).await?.map(Consumed::Then))
            }

            /// The body of `redeem_counted`, inside the caller's write transaction (which may
            /// hold other redemptions of a group commit: nothing here ends the transaction).
            pub(super) async fn redeem_counted_in(
                conn: &mut Conn,
                sub: &Subject,
                candidates: &Redemption,
                then: FollowUp<'_>,
                policy: &LockPolicy,
                devices_checked: bool,
                now: Millis,
            ) -> Result<CountedRedemption, StoreError> {
                // A redemption that changes the user's rows (a follow-up, or device failure
                // counts and revocations) is ordered against the user's other writes, taking the
                // per-user lock before the counter's row lock as every other writer does. A plain
                // account-OTP verification only counts and consumes, which the row lock orders.
                if !matches!(then, FollowUp::Nothing) || devices_checked {
                    lock_user(&mut *conn, sub).await?;
                }
                if super::SERIAL_WRITER {
                    if let Some(redeemed) = consume_serially(&mut *conn, sub, candidates, now).await? {
                        redeemed_with(&mut *conn, sub, &redeemed, then, now).await?;
                        return Ok(CountedRedemption::Redeemed(redeemed));
                    }
                }
                count_then_consume(conn, sub, candidates, then, policy, devices_checked, now).await
            }

            /// A serial writer's consume (`SERIAL_WRITER`): nothing runs between this transaction's
            /// statements, so a check of the lock and the consume in one statement, with a failure
            /// counted after it, is the same as counting first: two statements for a success
            /// instead of four. Resets the counter if there is one; the audit row and any follow-up
            /// are the caller's. `None`: nothing valid, or locked; nothing written.
            pub(super) async fn consume_serially(
                conn: &mut Conn,
                sub: &Subject,
                candidates: &Redemption,
                now: Millis,
            ) -> Result<Option<Redeemed>, StoreError> {
                let Some((redeemed, counted)) =
                    consume_unless_locked(&mut *conn, sub, candidates, now).await?
                else {
                    return Ok(None);
                };
                if counted {
                    reset(&mut *conn, sub, GuardedFactor::Otp).await?;
                }
                Ok(Some(redeemed))
            }

            /// The rest of `redeem_counted_in` after the per-user lock (and, on a serial writer,
            /// after `consume_serially` found nothing): count, then consume (concurrent writers)
            /// or record the failure.
            pub(super) async fn count_then_consume(
                conn: &mut Conn,
                sub: &Subject,
                candidates: &Redemption,
                then: FollowUp<'_>,
                policy: &LockPolicy,
                devices_checked: bool,
                now: Millis,
            ) -> Result<CountedRedemption, StoreError> {
                let factor = GuardedFactor::Otp;
                // Counting first takes the row lock (PostgreSQL) or runs under the file's write
                // lock (SQLite): the check below is already counted when it runs. A refusal
                // writes nothing.
                let state = match count_attempt(&mut *conn, sub, factor, policy, now).await? {
                    Reservation::Admitted(state) => state,
                    Reservation::Refused(state) => return Ok(CountedRedemption::Refused(state)),
                };
                let consumed = if super::SERIAL_WRITER {
                    None // looked at above, under the same lock: nothing was valid
                } else {
                    consume_counted(&mut *conn, sub, candidates, then.clone(), now).await?
                };
                Ok(match consumed {
                    Some(Consumed::Done(redeemed)) => CountedRedemption::Redeemed(redeemed),
                    Some(Consumed::Then(redeemed)) => {
                        reset(&mut *conn, sub, factor).await?;
                        redeemed_with(&mut *conn, sub, &redeemed, then, now).await?;
                        CountedRedemption::Redeemed(redeemed)
                    }
                    None => {
                        let failed = FailedAttempt::after(factor, policy, state, devices_checked);
                        let devices_revoked = record_failure(&mut *conn, sub, &failed, now).await?;
                        CountedRedemption::Failed { failed, devices_revoked }
                    }
                })
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
                    // The statements of `count_attempt` in one call: a server-side function on
                    // PostgreSQL, one command to the connection's thread on SQLite.
                    super::reserve_in_one_call(self, sub, factor, policy, now).await
                }

                async fn attempt_succeeded(
                    &self,
                    sub: &Subject,
                    factor: GuardedFactor,
                ) -> Result<(), StoreError> {
                    let mut conn = self.writer.acquire().await?;
                    reset(&mut conn, sub, factor).await
                }

                async fn attempt_failed(
                    &self,
                    sub: &Subject,
                    failed: FailedAttempt,
                    now: Millis,
                ) -> Result<u64, StoreError> {
                    let mut tx = self.begin_write().await?;
                    // Device failure counts and revocations are writes of the user's device rows:
                    // ordered against the user's other writes like `redeem_counted`.
                    if failed.revoke_devices_after.is_some() {
                        lock_user(&mut tx, sub).await?;
                    }
                    let revoked = record_failure(&mut tx, sub, &failed, now).await?;
                    tx.commit().await?;
                    Ok(revoked)
                }

                async fn redeem_counted(
                    &self,
                    sub: &Subject,
                    candidates: &Redemption,
                    then: FollowUp<'_>,
                    policy: &LockPolicy,
                    devices_checked: bool,
                    now: Millis,
                ) -> Result<CountedRedemption, StoreError> {
                    if let (FollowUp::Nothing, Some(group)) = (&then, self.group_commit()) {
                        let call = $crate::store::group_commit::Call::Counted { devices_checked };
                        let outcome = group.redeem(sub, candidates, policy, call, now).await?;
                        return outcome.ok_or_else(|| {
                            StoreError::Other(sqlx::Error::Protocol(
                                "a counted redemption of a group commit had no outcome".into(),
                            ))
                        });
                    }
                    let mut tx = self.begin_write().await?;
                    let outcome =
                        redeem_counted_in(&mut tx, sub, candidates, then, policy, devices_checked, now)
                            .await?;
                    tx.commit().await?;
                    Ok(outcome)
                }

                async fn redeem_counted_in_one_call(
                    &self,
                    sub: &Subject,
                    candidates: &Redemption,
                    devices: bool,
                    policy: &LockPolicy,
                    now: Millis,
                ) -> Result<Option<CountedRedemption>, StoreError> {
                    super::redeem_in_one_call(self, sub, candidates, devices, policy, now).await
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
