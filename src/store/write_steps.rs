//! The write steps that several unit-of-work methods share — beginning a write transaction, the
//! per-user lock, the audit row, saving a device, consuming a code, erasing a user — written once
//! and expanded for each backend beside `impl_store!` (see `sql.rs`), so each method of the
//! `Store` contract reads as the sequence of its steps.

/// `impl_write_steps!(Type, sqlx::Db, "BEGIN …", LOCK_USER)`: the inherent helper methods of a
/// store; expanded by `impl_store!`.
macro_rules! impl_write_steps {
    ($store:ident, $db:ty, $begin:expr, $lock_user:expr) => {
        mod write_steps {
            use super::$store;
            use $crate::domain::{AuditEvent, Factor, GuardedFactor, Subject};
            use $crate::store::{
                credential_sql, FollowUp, Millis, Redeemed, Redemption, StoreError, StoredDevice,
            };

            impl $store {
                pub(super) async fn begin_write(
                    &self,
                ) -> Result<sqlx::Transaction<'static, $db>, StoreError> {
                    Ok(self.writer.begin_with($begin).await?)
                }
            }

            /// Takes the per-user write lock (if the backend needs one) inside a transaction. Call
            /// it first in any transaction that reads a user's rows and writes based on them.
            pub(super) async fn lock_user(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
            ) -> Result<(), StoreError> {
                if let Some(sql) = $lock_user {
                    sqlx::query(sql).bind(sub.as_str()).execute(conn).await?;
                }
                Ok(())
            }

            pub(super) async fn insert_audit(
                conn: &mut <$db as sqlx::Database>::Connection,
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

            /// Inserts or replaces a device's secret; a replaced secret starts with no accepted step.
            pub(super) async fn upsert_device(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                d: &StoredDevice,
                now: Millis,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO device_totps (sub, device_id, secret_ct, algorithm, digits, period_secs, last_step, created_at, updated_at, key_id, secret_gen)
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7, $8, 0)
                     ON CONFLICT (sub, device_id) DO UPDATE SET secret_ct = excluded.secret_ct,
                       algorithm = excluded.algorithm, digits = excluded.digits,
                       period_secs = excluded.period_secs, last_step = NULL, failures = 0,
                       updated_at = excluded.updated_at,
                       key_id = excluded.key_id, secret_gen = device_totps.secret_gen + 1",
                )
                .bind(sub.as_str())
                .bind(&d.device_id)
                .bind(&d.secret_ct)
                .bind(&d.algorithm)
                .bind(d.digits)
                .bind(d.period_secs)
                .bind(now)
                .bind(&d.key_id)
                .execute(conn)
                .await?;
                Ok(())
            }

            /// Inserts a user's new OTP of `kind` (`account` | `login`): drops the user's expired
            /// and used OTPs, keeps the newest `max_live - 1` live ones of that kind (each kind has
            /// its own cap), inserts. `false`: the digest is taken (the caller draws a new code and
            /// retries; dropping its transaction undoes these deletes).
            pub(super) async fn insert_otp(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                kind: &str,
                digest: &[u8],
                created_at: Millis,
                expires_at: Millis,
                max_live: u32,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "DELETE FROM otps WHERE sub = $1 AND (expires_at <= $2 OR used_at IS NOT NULL)",
                )
                .bind(sub.as_str())
                .bind(created_at)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "DELETE FROM otps WHERE sub = $1 AND kind = $2 AND id NOT IN
                       (SELECT id FROM otps WHERE sub = $1 AND kind = $2 ORDER BY id DESC LIMIT $3)",
                )
                .bind(sub.as_str())
                .bind(kind)
                .bind(i64::from(max_live.saturating_sub(1)))
                .execute(&mut *conn)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO otps (sub, digest, created_at, expires_at, kind)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(sub.as_str())
                .bind(digest)
                .bind(created_at)
                .bind(expires_at)
                .bind(kind)
                .execute(&mut *conn)
                .await;
                match inserted {
                    Ok(_) => Ok(true),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }

            /// The single conditional statements that consume an OTP: whichever matches first wins,
            /// and a concurrent redemption of the same candidate finds its condition false. A
            /// device's own success clears its failure count (docs/lockout.md).
            pub(super) async fn consume(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                candidates: &Redemption,
                now: Millis,
            ) -> Result<Option<Redeemed>, StoreError> {
                // A login OTP never answers to an account digest and the other way round.
                for (digests, kind, redeemed) in candidates.digests_by_kind() {
                    for digest in digests {
                        let used = sqlx::query(
                            "UPDATE otps SET used_at = $1
                             WHERE sub = $2 AND digest = $3 AND used_at IS NULL AND expires_at > $1
                               AND kind = $4
                             RETURNING id",
                        )
                        .bind(now)
                        .bind(sub.as_str())
                        .bind(&digest[..])
                        .bind(kind)
                        .fetch_optional(&mut *conn)
                        .await?;
                        if used.is_some() {
                            return Ok(Some(redeemed));
                        }
                    }
                }
                consume_device(conn, sub, candidates).await
            }

            /// The device half of `consume`.
            pub(super) async fn consume_device(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                candidates: &Redemption,
            ) -> Result<Option<Redeemed>, StoreError> {
                for (device, step) in &candidates.device_steps {
                    let used = sqlx::query(
                        "UPDATE device_totps SET last_step = $1, failures = 0
                         WHERE sub = $2 AND device_id = $3 AND secret_gen = $4
                           AND (last_step IS NULL OR last_step < $1)
                         RETURNING device_id",
                    )
                    .bind(*step)
                    .bind(sub.as_str())
                    .bind(&device.device_id)
                    .bind(device.secret_gen)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if used.is_some() {
                        return Ok(Some(Redeemed::Device(device.device_id.clone())));
                    }
                }
                Ok(None)
            }

            /// The redemption of a serial writer (SQLite: the transaction holds the file's one
            /// write lock, so nothing runs between its statements): consumes the first valid
            /// candidate unless the user's OTP counter is locked or disabled, in the same
            /// statement. Returns what was redeemed and whether the user has a counter row (which
            /// the success then resets). `None`: nothing consumed, locked or not.
            pub(super) async fn consume_unless_locked(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                candidates: &Redemption,
                now: Millis,
            ) -> Result<Option<(Redeemed, bool)>, StoreError> {
                let otp = GuardedFactor::Otp.as_str();
                // A login OTP never answers to an account digest and the other way round.
                for (digests, kind, redeemed) in candidates.digests_by_kind() {
                    for digest in digests {
                        let used: Option<bool> = sqlx::query_scalar(
                            "UPDATE otps SET used_at = $1
                             WHERE sub = $2 AND digest = $3 AND used_at IS NULL AND expires_at > $1
                               AND kind = $5
                               AND NOT EXISTS (SELECT 1 FROM attempts WHERE sub = $2 AND factor = $4
                                     AND (locked_until > $1 OR disabled_at IS NOT NULL))
                             RETURNING EXISTS (SELECT 1 FROM attempts WHERE sub = $2 AND factor = $4)",
                        )
                        .bind(now)
                        .bind(sub.as_str())
                        .bind(&digest[..])
                        .bind(otp)
                        .bind(kind)
                        .fetch_optional(&mut *conn)
                        .await?;
                        if let Some(counted) = used {
                            return Ok(Some((redeemed, counted)));
                        }
                    }
                }
                for (device, step) in &candidates.device_steps {
                    let used: Option<bool> = sqlx::query_scalar(
                        "UPDATE device_totps SET last_step = $1, failures = 0
                         WHERE sub = $2 AND device_id = $3 AND secret_gen = $4
                           AND (last_step IS NULL OR last_step < $1)
                           AND NOT EXISTS (SELECT 1 FROM attempts WHERE sub = $2 AND factor = $5
                                 AND (locked_until > $6 OR disabled_at IS NOT NULL))
                         RETURNING EXISTS (SELECT 1 FROM attempts WHERE sub = $2 AND factor = $5)",
                    )
                    .bind(*step)
                    .bind(sub.as_str())
                    .bind(&device.device_id)
                    .bind(device.secret_gen)
                    .bind(otp)
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(counted) = used {
                        return Ok(Some((Redeemed::Device(device.device_id.clone()), counted)));
                    }
                }
                Ok(None)
            }

            /// An account OTP's success in one statement where the backend can (PostgreSQL's
            /// data-modifying `WITH`: `sql` is the backend's `CONSUME_RESET_AUDIT`): consume the
            /// digest, reset the OTP counter and write the `otp.redeemed` row, or none of them.
            pub(super) async fn consume_reset_audit(
                conn: &mut <$db as sqlx::Database>::Connection,
                sql: &'static str,
                sub: &Subject,
                digest: &[u8],
                kind: &str,
                detail: &str,
                now: Millis,
            ) -> Result<bool, StoreError> {
                let used: i64 = sqlx::query_scalar(sql)
                    .bind(now)
                    .bind(sub.as_str())
                    .bind(digest)
                    .bind(GuardedFactor::Otp.as_str())
                    .bind(AuditEvent::OtpRedeemed.as_str())
                    .bind(detail)
                    .bind(kind)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(used > 0)
            }

            /// The audit row of a redemption and the change that shares its transaction.
            pub(super) async fn redeemed_with(
                tx: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                redeemed: &Redeemed,
                then: FollowUp<'_>,
                now: Millis,
            ) -> Result<(), StoreError> {
                let detail = redeemed.audit_detail();
                insert_audit(&mut *tx, sub, AuditEvent::OtpRedeemed, &detail, now).await?;
                follow_up(tx, sub, &detail, then, now).await
            }

            /// The change a redemption's follow-up makes, after its audit row (`detail` is that
            /// row's detail).
            pub(super) async fn follow_up(
                tx: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                detail: &str,
                then: FollowUp<'_>,
                now: Millis,
            ) -> Result<(), StoreError> {
                match then {
                    FollowUp::Nothing => {}
                    FollowUp::SetPin { phc } => {
                        sqlx::query(credential_sql(Factor::Pin).upsert)
                            .bind(sub.as_str())
                            .bind(phc)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        // A new PIN starts with clean counters: this re-enables a disabled PIN.
                        sqlx::query("DELETE FROM attempts WHERE sub = $1 AND factor = $2")
                            .bind(sub.as_str())
                            .bind(GuardedFactor::Pin.as_str())
                            .execute(&mut *tx)
                            .await?;
                        insert_audit(&mut *tx, sub, AuditEvent::PinSet, detail, now).await?;
                    }
                    FollowUp::SaveDevice(device) => {
                        upsert_device(&mut *tx, sub, device, now).await?;
                        let what = format!("device={} proof=otp", device.device_id);
                        insert_audit(&mut *tx, sub, AuditEvent::DeviceTotpCreated, &what, now).await?;
                    }
                    FollowUp::EraseUser => {
                        erase_user(&mut *tx, sub).await?;
                        insert_audit(&mut *tx, sub, AuditEvent::UserDeleted, detail, now).await?;
                    }
                }
                Ok(())
            }

            /// Whether `factor` is set; under `lock_user`, it stays so until the commit.
            pub(super) async fn factor_set(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
                factor: Factor,
            ) -> Result<bool, StoreError> {
                let row = sqlx::query(credential_sql(factor).is_set)
                    .bind(sub.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                Ok(row.is_some())
            }

            /// Every record of a user (credentials, OTPs, devices, counters, mail quota, sessions); the
            /// audit rows are kept on purpose.
            pub(super) async fn erase_user(
                conn: &mut <$db as sqlx::Database>::Connection,
                sub: &Subject,
            ) -> Result<(), StoreError> {
                for statement in [
                    "DELETE FROM users WHERE sub = $1",
                    "DELETE FROM otps WHERE sub = $1",
                    "DELETE FROM device_totps WHERE sub = $1",
                    "DELETE FROM attempts WHERE sub = $1",
                    "DELETE FROM mail_quota WHERE sub = $1",
                    // A live password link must not bring a password back to an erased account.
                    "DELETE FROM password_links WHERE sub = $1",
                    "DELETE FROM reset_proves WHERE sub = $1",
                    // Login sessions and the address login OTPs go to (docs/sessions.md).
                    "DELETE FROM sessions WHERE sub = $1",
                    "DELETE FROM user_emails WHERE sub = $1",
                    // The phone number, its codes and the user's SMS count (docs/phone.md).
                    "DELETE FROM phone_numbers WHERE sub = $1",
                    "DELETE FROM phone_codes WHERE sub = $1",
                    "DELETE FROM sms_quota WHERE quota_key = 'u:' || $1",
                ] {
                    sqlx::query(statement).bind(sub.as_str()).execute(&mut *conn).await?;
                }
                Ok(())
            }
        }
    };
}

pub(crate) use impl_write_steps;
