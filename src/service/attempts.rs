//! Attempt limits around every check of a secret: count before, record after.
//!
//! Every entry point that checks a password, PIN, OTP or TOTP goes through `Services::guarded`,
//! so none can skip the counter. The rules themselves are `domain::lockout`'s.

use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::domain::{Actor, Admission, AttemptState, AuditEvent, GuardedFactor, Subject};
use crate::store::{DeviceSummary, FailedAttempt, Reservation};
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// What became of one guarded check.
#[derive(Debug)]
pub enum Checked<T> {
    Passed(T),
    /// Checked and wrong; counted.
    Failed,
    /// Not checked: the factor is locked for `retry_after`.
    Locked {
        retry_after: Duration,
    },
    /// Not checked: too many failures; the factor must be set anew.
    Disabled,
}

impl Services {
    /// Runs `check` under the attempt limit of `factor`: reserves an attempt first (refused while
    /// locked or disabled, in which case `check` never runs), then resets the counter on success or
    /// records the failure (audit rows, OTP revocation). `check` answers `Some` when the secret is
    /// right. An error from `check` leaves the attempt counted: it may have been evaluated.
    pub(crate) async fn guarded<T, F, Fut>(
        &self,
        sub: &Subject,
        factor: GuardedFactor,
        check: F,
    ) -> Result<Checked<T>, ServiceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, ServiceError>>,
    {
        let checked = self.guarded_until_success(sub, factor, check).await?;
        if let Checked::Passed(_) = checked {
            // The check's own effect (an OTP consumed, a PIN changed) has happened: a failed reset
            // must not turn it into an error. The counter then stays high until the next success,
            // which errs on the safe side.
            if let Err(e) = self.store.attempt_succeeded(sub, factor).await {
                tracing::warn!(factor = factor.as_str(), error = %e, "could not reset the attempt counter after a success");
            }
        }
        Ok(checked)
    }

    /// `guarded` without the reset after a success: the reservation is the only write before the
    /// check, and the caller resets the counter in the transaction that stores what the success
    /// earned (`NewOtp::reset_attempts`), so a successful check costs one write transaction
    /// after the hash instead of two. A caller that stores nothing must use `guarded`.
    pub(crate) async fn guarded_until_success<T, F, Fut>(
        &self,
        sub: &Subject,
        factor: GuardedFactor,
        check: F,
    ) -> Result<Checked<T>, ServiceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, ServiceError>>,
    {
        let policy = self.lockout.of(factor);
        let now = to_millis(self.clock.now());
        let state = match self.store.reserve_attempt(sub, factor, policy, now).await? {
            Reservation::Admitted(state) => state,
            Reservation::Refused(state) => return Ok(refusal(state, now)),
        };
        if let Some(value) = check().await? {
            return Ok(Checked::Passed(value));
        }
        // Every OTP path but /verify accepts device TOTPs, and /verify goes through
        // `redeem_counted`: a guarded OTP check has compared device codes.
        let devices_checked = factor == GuardedFactor::Otp;
        let failed = FailedAttempt::after(factor, policy, state, devices_checked);
        self.failure_noted(&failed);
        let revoked = self
            .store
            .attempt_failed(sub, failed, to_millis(self.clock.now()))
            .await?;
        self.devices_revoked(revoked);
        Ok(Checked::Failed)
    }

    /// Metrics and the log line of a counted failure (the audit rows are the store's).
    pub(super) fn failure_noted(&self, failed: &FailedAttempt) {
        let factor = failed.factor;
        self.metrics.credential_failure(factor.as_str());
        if failed.locked_until.is_some() || failed.disabled {
            self.metrics.lock(factor.as_str());
            tracing::info!(
                factor = factor.as_str(),
                failures = failed.failures,
                disabled = failed.disabled,
                "credential locked after consecutive failures"
            );
        }
    }

    pub(super) fn devices_revoked(&self, revoked: u64) {
        if revoked > 0 {
            self.metrics.devices_revoked(revoked);
            tracing::warn!(
                devices = revoked,
                "device TOTPs revoked after too many failed redemptions"
            );
        }
    }

    /// The stored counters of every guarded factor of the user (clean factors included).
    pub async fn attempt_states(
        &self,
        sub: &Subject,
    ) -> Result<Vec<(GuardedFactor, AttemptState)>, ServiceError> {
        let stored = self.store.attempt_states(sub).await?;
        Ok(GuardedFactor::ALL
            .into_iter()
            .map(|f| {
                let state = stored
                    .iter()
                    .find(|(g, _)| *g == f)
                    .map(|(_, s)| *s)
                    .unwrap_or_default();
                (f, state)
            })
            .collect())
    }
}

/// What `otpd user show` prints and `GET /admin/v1/users/{sub}` answers: which factors are set,
/// their counters and locks, and the devices (ids and creation times). Never a secret.
pub struct UserStatus {
    pub sub: Subject,
    pub password_set: bool,
    pub pin_set: bool,
    /// `stored_hash::describe` of each set hash.
    pub password_hash: Option<String>,
    pub pin_hash: Option<String>,
    pub attempts: Vec<(GuardedFactor, AttemptState)>,
    pub devices: Vec<DeviceSummary>,
    /// The phone number's state (never the number).
    pub phone: super::PhoneStatus,
    pub now: i64,
}

impl Services {
    /// The user's state, read on behalf of `viewer` (an admin's read is audited first). A user
    /// otpd has never heard of looks like one with nothing set: otpd keeps no user registry.
    pub async fn user_status(
        &self,
        sub: &Subject,
        viewer: &Actor,
    ) -> Result<UserStatus, ServiceError> {
        self.audit_read(sub, AuditEvent::AdminUserShown, viewer)
            .await?;
        let stored = self.store.credentials(sub).await?;
        Ok(UserStatus {
            sub: sub.clone(),
            password_set: stored.password_hash.is_some(),
            pin_set: stored.pin_hash.is_some(),
            password_hash: stored
                .password_hash
                .as_deref()
                .map(super::stored_hash::describe),
            pin_hash: stored.pin_hash.as_deref().map(super::stored_hash::describe),
            attempts: self.attempt_states(sub).await?,
            devices: self.store.device_summaries(sub).await?,
            phone: self.phone_status(sub).await?,
            now: to_millis(self.clock.now()),
        })
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "user      {}", self.sub.as_str())?;
        for (factor, state) in &self.attempts {
            let set = match factor {
                GuardedFactor::Password => Some(self.password_set),
                GuardedFactor::Pin => Some(self.pin_set),
                GuardedFactor::Otp | GuardedFactor::Phone => None,
            };
            let set = match set {
                Some(true) => "set",
                Some(false) => "not set",
                None if *factor == GuardedFactor::Phone => match self.phone {
                    super::PhoneStatus::Verified => "verified",
                    super::PhoneStatus::Pending => "pending",
                    super::PhoneStatus::None => "not set",
                },
                None => "-",
            };
            let admission = match state.admission(self.now) {
                Admission::Open => "open".to_owned(),
                Admission::Disabled => "disabled".to_owned(),
                Admission::Locked { retry_after } => format!(
                    "locked for {} s",
                    crate::domain::lockout::retry_after_secs(retry_after)
                ),
            };
            let hash = match factor {
                GuardedFactor::Password => self.password_hash.as_deref(),
                GuardedFactor::Pin => self.pin_hash.as_deref(),
                GuardedFactor::Otp | GuardedFactor::Phone => None,
            };
            let hash = hash.map(|h| format!("  hash: {h}")).unwrap_or_default();
            writeln!(
                f,
                "{:<9} {:<8} failures={:<4} {admission}{hash}",
                factor.as_str(),
                set,
                state.failures
            )?;
        }
        for device in &self.devices {
            writeln!(
                f,
                "device    {}  created {}",
                device.device_id,
                crate::clock::rfc3339_millis(device.created_at)
            )?;
        }
        Ok(())
    }
}

pub(super) fn refusal<T>(state: AttemptState, now: i64) -> Checked<T> {
    match state.admission(now) {
        Admission::Disabled => Checked::Disabled,
        Admission::Locked { retry_after } => Checked::Locked { retry_after },
        // The row changed between the refused upsert and our read (a success reset it): the
        // factor is free again, so a retry right away is fine.
        Admission::Open => Checked::Locked {
            retry_after: Duration::from_secs(1),
        },
    }
}
