//! The limits: attempt limits that protect a user (lockout of PIN, password and OTP redemption,
//! docs/lockout.md) and request rate limits that protect the service (`rate_limit_*`).

use super::{ConfigError, Lines, Source, invalid};
use crate::domain::{LockPolicy, LockoutPolicies};
use crate::http::rate_limit::{RateLimits, RateQuota};
use crate::service::watch::LongPollLimits;
use std::time::Duration;

/// The two kinds of limit; each is handed to the subsystem that enforces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Enforced by the use cases, counted in the database.
    pub lockout: LockoutPolicies,
    /// Enforced by the HTTP layer, per replica.
    pub rate: RateLimits,
    /// Waiting long polls, per replica.
    pub long_polls: LongPollLimits,
}

impl Limits {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let lockout = LockoutPolicies::from_source(src)?;
        let quota = |name: &'static str, default: &str| {
            RateQuota::parse(src.get(name).unwrap_or(default)).map_err(|p| invalid(name, p))
        };
        Ok(Self {
            lockout,
            rate: RateLimits {
                per_client: quota("rate_limit_per_client", "100/s")?,
                per_address: quota("rate_limit_per_address", "20/s")?,
            },
            long_polls: LongPollLimits {
                per_user: src.in_range("long_poll_max_per_user", 4usize, 0..=1000)?,
                total: src.in_range("long_poll_max_total", 256usize, 0..=100_000)?,
            },
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        let LockoutPolicies {
            pin,
            password,
            otp,
            phone,
        } = &self.lockout;
        let quota = |q: Option<RateQuota>| q.map_or("off".into(), |q| q.to_string());
        out.extend([
            ("pin_lock_from", pin.lock_from.to_string()),
            (
                "pin_disable_after",
                pin.disable_after.unwrap_or(0).to_string(),
            ),
            ("password_lock_from", password.lock_from.to_string()),
            (
                "password_disable_after",
                password.disable_after.unwrap_or(0).to_string(),
            ),
            (
                "otp_revoke_after",
                otp.revoke_after.unwrap_or(0).to_string(),
            ),
            (
                "otp_disable_after",
                otp.revoke_devices_after.unwrap_or(0).to_string(),
            ),
            ("phone_lock_from", phone.lock_from.to_string()),
            ("lock_base_seconds", pin.base_lock.as_secs().to_string()),
            ("lock_max_seconds", pin.max_lock.as_secs().to_string()),
            ("rate_limit_per_client", quota(self.rate.per_client)),
            ("rate_limit_per_address", quota(self.rate.per_address)),
            (
                "long_poll_max_per_user",
                self.long_polls.per_user.to_string(),
            ),
            ("long_poll_max_total", self.long_polls.total.to_string()),
        ]);
    }
}

impl LockoutPolicies {
    /// The attempt limits of password, PIN and OTP redemption (docs/lockout.md).
    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let base = Duration::from_secs(src.in_range("lock_base_seconds", 30u64, 1..=3600)?);
        let max = Duration::from_secs(src.in_range("lock_max_seconds", 900u64, 1..=86_400)?);
        if max < base {
            return Err(invalid(
                "lock_max_seconds",
                "must not be shorter than lock_base_seconds",
            ));
        }
        let nonzero = |n: u32| (n > 0).then_some(n);
        let policy = |lock_from: u32, disable_after: u32, revoke_after: u32| LockPolicy {
            lock_from,
            base_lock: base,
            max_lock: max,
            disable_after: nonzero(disable_after),
            revoke_after: nonzero(revoke_after),
            revoke_devices_after: None,
        };
        let otp_revoke_after = src.in_range("otp_revoke_after", 5u32, 0..=1000)?;
        Ok(Self {
            pin: policy(
                src.in_range("pin_lock_from", 4u32, 0..=1000)?,
                src.in_range("pin_disable_after", 10u32, 0..=1000)?,
                0,
            ),
            password: policy(
                src.in_range("password_lock_from", 5u32, 0..=10_000)?,
                src.in_range("password_disable_after", 100u32, 0..=10_000)?,
                0,
            ),
            // Redemption locks where it starts revoking: otherwise parallel guesses could race the
            // revocation (docs/lockout.md).
            otp: LockPolicy {
                // The OTP factor itself is never disabled (a new account OTP is a new secret);
                // what a long run of failures ends is the device TOTPs being guessed.
                revoke_devices_after: nonzero(src.in_range(
                    "otp_disable_after",
                    20u32,
                    0..=10_000,
                )?),
                ..policy(otp_revoke_after, 0, otp_revoke_after)
            },
            // Never disabled: PACE declares no status for it (docs/phone.md).
            phone: policy(src.in_range("phone_lock_from", 3u32, 0..=1000)?, 0, 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::load;
    use super::*;

    #[test]
    fn the_lockout_defaults_are_the_documented_policy() {
        let c = load(&[]).unwrap();
        assert_eq!(c.limits.lockout, LockoutPolicies::default());
        let q = |count, secs| {
            Some(RateQuota {
                count,
                period: Duration::from_secs(secs),
            })
        };
        assert_eq!(c.limits.rate.per_client, q(100, 1));
        assert_eq!(c.limits.rate.per_address, q(20, 1));
        let c = load(&[
            ("OTPD_PIN_DISABLE_AFTER", "0"),
            ("OTPD_RATE_LIMIT_PER_CLIENT", "5/min"),
            ("OTPD_RATE_LIMIT_PER_ADDRESS", "off"),
        ])
        .unwrap();
        assert_eq!(c.limits.lockout.pin.disable_after, None);
        assert_eq!(c.limits.rate.per_client, q(5, 60));
        assert_eq!(c.limits.rate.per_address, None);
        for (k, v) in [
            ("OTPD_RATE_LIMIT_PER_CLIENT", "5/day"),
            ("OTPD_LOCK_MAX_SECONDS", "10"),
        ] {
            assert!(load(&[(k, v)]).is_err(), "{k}={v}");
        }
    }
}
