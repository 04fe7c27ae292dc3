//! PostgreSQL's common redemption in one round trip: the call of `otpd_redeem_otp`
//! (migrations/postgres/0019_redeem_in_one_call.sql), which runs the steps of `redeem_counted`
//! server-side for a user without device TOTPs. What the lock policy decides is computed here, by
//! the policy's own code, and passed in; the function only applies it.

use super::postgres::PgStore;
use super::{CountedRedemption, FailedAttempt, Millis, Redeemed, Redemption, StoreError};
use crate::domain::{AttemptState, AuditEvent, GuardedFactor, LockPolicy, Subject};
use sqlx::Row;

const CALL: &str = "SELECT outcome, failures, locked_until, disabled
     FROM otpd_redeem_otp($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The lock starts of counts `lock_from`, `lock_from + 1`, … `lock_from + 31`: past that the
/// doubling has stopped (`LockPolicy::lock_after`).
const LOCK_STEPS: u32 = 32;

/// The locks, in milliseconds, that counts `lock_from` … `lock_from + 31` start (the functions'
/// `p_lock_ms`).
pub(super) fn lock_steps(policy: &LockPolicy) -> Vec<i64> {
    (0..LOCK_STEPS)
        .map(|i| {
            let lock = policy.lock_after(policy.lock_from.saturating_add(i));
            i64::try_from(lock.as_millis()).unwrap_or(i64::MAX)
        })
        .collect()
}

/// `AttemptStore::redeem_counted_in_one_call` on PostgreSQL.
pub(super) async fn redeem(
    store: &PgStore,
    sub: &Subject,
    candidates: &Redemption,
    devices: bool,
    policy: &LockPolicy,
    now: Millis,
) -> Result<Option<CountedRedemption>, StoreError> {
    debug_assert!(candidates.device_steps.is_empty());
    let digests = |d: &[[u8; 32]]| d.iter().map(|d| d.to_vec()).collect::<Vec<_>>();
    let events = [
        AuditEvent::OtpRedeemed,
        AuditEvent::refused(GuardedFactor::Otp),
        AuditEvent::Locked(GuardedFactor::Otp),
        AuditEvent::Disabled(GuardedFactor::Otp),
        AuditEvent::OtpsRevoked,
    ]
    .map(AuditEvent::as_str);
    let details = [
        Redeemed::Account.audit_detail(),
        Redeemed::Login.audit_detail(),
    ];
    let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let row = sqlx::query(CALL)
        .bind(sub.as_str())
        .bind(now)
        .bind(digests(&candidates.account_digests))
        .bind(digests(&candidates.login_digests))
        .bind(devices)
        .bind(as_i32(policy.lock_from))
        .bind(lock_steps(policy))
        .bind(policy.disable_after.map(as_i32))
        .bind(policy.revoke_after.map(as_i32))
        .bind(&events[..])
        .bind(&details[..])
        .fetch_one(&store.writer)
        .await?;

    let outcome: String = row.try_get(0)?;
    let failures: i64 = row.try_get(1)?;
    let state = AttemptState {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        locked_until: row.try_get(2)?,
        disabled: row.try_get(3)?,
    };
    Ok(match outcome.as_str() {
        "devices" => None,
        "account" => Some(CountedRedemption::Redeemed(Redeemed::Account)),
        "login" => Some(CountedRedemption::Redeemed(Redeemed::Login)),
        "refused" => Some(CountedRedemption::Refused(state)),
        "failed" => Some(CountedRedemption::Failed {
            failed: FailedAttempt::after(GuardedFactor::Otp, policy, state, false),
            devices_revoked: 0,
        }),
        other => {
            return Err(StoreError::Other(sqlx::Error::Protocol(format!(
                "otpd_redeem_otp answered `{other}`"
            ))));
        }
    })
}
