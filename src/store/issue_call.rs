//! PostgreSQL's writes of issuing an OTP in one round trip each: the calls of
//! `otpd_reserve_attempt` and `otpd_issue_otp` (migrations/postgres/0020_one_call_writes.sql), which
//! run the statements of `count_attempt` and of the store's `insert_otp` server-side. As for the
//! redemption (`redeem_call`), what the lock policy decides is computed here and passed in.

use super::postgres::PgStore;
use super::redeem_call::lock_steps;
use super::{Millis, NewOtp, OtpInsert, Reservation, StoreError};
use crate::domain::{AttemptState, AuditEvent, GuardedFactor, LockPolicy, Subject};
use sqlx::Row;

const RESERVE: &str = "SELECT admitted, failures, locked_until, disabled
     FROM otpd_reserve_attempt($1, $2, $3, $4, $5, $6)";

const ISSUE: &str = "SELECT otpd_issue_otp($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// `AttemptStore::reserve_attempt` on PostgreSQL.
pub(super) async fn reserve(
    store: &PgStore,
    sub: &Subject,
    factor: GuardedFactor,
    policy: &LockPolicy,
    now: Millis,
) -> Result<Reservation, StoreError> {
    let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let row = sqlx::query(RESERVE)
        .bind(sub.as_str())
        .bind(factor.as_str())
        .bind(now)
        .bind(as_i32(policy.lock_from))
        .bind(lock_steps(policy))
        .bind(policy.disable_after.map(as_i32))
        .fetch_one(&store.writer)
        .await?;
    let admitted: bool = row.try_get(0)?;
    let failures: i64 = row.try_get(1)?;
    let state = AttemptState {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        locked_until: row.try_get(2)?,
        disabled: row.try_get(3)?,
    };
    Ok(if admitted {
        Reservation::Admitted(state)
    } else {
        Reservation::Refused(state)
    })
}

/// `Store::insert_otp` on PostgreSQL.
pub(super) async fn issue(
    store: &PgStore,
    sub: &Subject,
    otp: &NewOtp<'_>,
) -> Result<OtpInsert, StoreError> {
    let outcome: String = sqlx::query_scalar(ISSUE)
        .bind(sub.as_str())
        .bind(otp.digest)
        .bind(otp.created_at)
        .bind(otp.expires_at)
        .bind(i32::try_from(otp.max_live).unwrap_or(i32::MAX))
        .bind(otp.requires.map(|f| f.as_str()))
        .bind(otp.reset_attempts.map(GuardedFactor::as_str))
        .bind(AuditEvent::OtpIssued.as_str())
        .bind(otp.audit_detail)
        .fetch_one(&store.writer)
        .await?;
    match outcome.as_str() {
        "inserted" => Ok(OtpInsert::Inserted),
        "taken" => Ok(OtpInsert::DigestTaken),
        "gone" => Ok(OtpInsert::CredentialGone),
        other => Err(StoreError::Other(sqlx::Error::Protocol(format!(
            "otpd_issue_otp answered `{other}`"
        )))),
    }
}
