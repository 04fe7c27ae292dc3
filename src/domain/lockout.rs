//! Attempt limits: the pure state machine of consecutive failures, growing locks and disabling.
//!
//! No clock reads: every function takes `now` (Unix milliseconds). The store applies these rules
//! inside the transaction that reserves an attempt, so the policy lives here and only here.
//!
//! An attempt is *reserved* before its secret is checked and counts as a failure from that moment;
//! a success wipes the count. So the lock a failure would cause is already in force while the check
//! runs, and parallel requests cannot slip more guesses past it than the policy allows.

use super::Factor;
use std::time::Duration;

/// The things whose guesses are counted: the two knowledge factors and OTP/TOTP redemption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuardedFactor {
    Password,
    Pin,
    /// Redeeming an account OTP or a device TOTP: one counter for both.
    Otp,
    /// Verifying a phone number with the code sent by SMS (docs/phone.md).
    Phone,
}

impl GuardedFactor {
    pub const ALL: [GuardedFactor; 4] = [
        GuardedFactor::Password,
        GuardedFactor::Pin,
        GuardedFactor::Otp,
        GuardedFactor::Phone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GuardedFactor::Password => "password",
            GuardedFactor::Pin => "pin",
            GuardedFactor::Otp => "otp",
            GuardedFactor::Phone => "phone",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }
}

impl From<Factor> for GuardedFactor {
    fn from(f: Factor) -> Self {
        match f {
            Factor::Password => GuardedFactor::Password,
            Factor::Pin => GuardedFactor::Pin,
        }
    }
}

/// The limits of one factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockPolicy {
    /// The consecutive failure that starts locking (4 = the 4th failure locks). 0 = never locks.
    pub lock_from: u32,
    /// The first lock; each further failure doubles it.
    pub base_lock: Duration,
    /// The longest lock.
    pub max_lock: Duration,
    /// After this many consecutive failures the factor is disabled until it is set anew.
    pub disable_after: Option<u32>,
    /// From this many consecutive failures on, every failure revokes the user's live OTPs.
    pub revoke_after: Option<u32>,
    /// Redemption only: a device TOTP is revoked once this many failed redemptions checked its
    /// codes with no success *of that device* in between (an account-OTP success does not count).
    /// The lifetime bound on guessing a secret that lives for years.
    pub revoke_devices_after: Option<u32>,
}

impl LockPolicy {
    pub const PIN: LockPolicy = LockPolicy {
        lock_from: 4,
        base_lock: Duration::from_secs(30),
        max_lock: Duration::from_secs(15 * 60),
        disable_after: Some(10),
        revoke_after: None,
        revoke_devices_after: None,
    };
    pub const PASSWORD: LockPolicy = LockPolicy {
        lock_from: 5,
        base_lock: Duration::from_secs(30),
        max_lock: Duration::from_secs(15 * 60),
        disable_after: Some(100),
        revoke_after: None,
        revoke_devices_after: None,
    };
    pub const OTP: LockPolicy = LockPolicy {
        lock_from: 5,
        base_lock: Duration::from_secs(30),
        max_lock: Duration::from_secs(15 * 60),
        disable_after: None,
        revoke_after: Some(5),
        revoke_devices_after: Some(20),
    };
    /// Phone codes: locks from the 3rd consecutive wrong code, never disables (PACE declares no
    /// status for it); a code lives minutes and each new one costs an SMS under the send limits.
    pub const PHONE: LockPolicy = LockPolicy {
        lock_from: 3,
        base_lock: Duration::from_secs(30),
        max_lock: Duration::from_secs(15 * 60),
        disable_after: None,
        revoke_after: None,
        revoke_devices_after: None,
    };

    /// How long the factor stays locked after `failures` consecutive failures.
    pub fn lock_after(&self, failures: u32) -> Duration {
        if self.lock_from == 0 || failures < self.lock_from {
            return Duration::ZERO;
        }
        let doublings = (failures - self.lock_from).min(31);
        self.base_lock
            .saturating_mul(1u32 << doublings)
            .min(self.max_lock)
    }

    pub fn disables_at(&self, failures: u32) -> bool {
        self.disable_after.is_some_and(|n| failures >= n)
    }

    pub fn revokes_at(&self, failures: u32) -> bool {
        self.revoke_after.is_some_and(|n| failures >= n)
    }

    /// The state once attempt number `failures` (counted as failed until it succeeds) is reserved.
    pub fn after_reserving(&self, failures: u32, previous_lock_end: i64, now: i64) -> AttemptState {
        let lock = self.lock_after(failures);
        let locked_until = if lock.is_zero() {
            previous_lock_end
        } else {
            now.saturating_add(i64::try_from(lock.as_millis()).unwrap_or(i64::MAX))
        };
        AttemptState {
            failures,
            locked_until,
            disabled: self.disables_at(failures),
        }
    }
}

/// The policy of every guarded factor, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicies {
    pub password: LockPolicy,
    pub pin: LockPolicy,
    pub otp: LockPolicy,
    pub phone: LockPolicy,
}

impl Default for LockoutPolicies {
    fn default() -> Self {
        Self {
            password: LockPolicy::PASSWORD,
            pin: LockPolicy::PIN,
            otp: LockPolicy::OTP,
            phone: LockPolicy::PHONE,
        }
    }
}

impl LockoutPolicies {
    pub fn of(&self, factor: GuardedFactor) -> &LockPolicy {
        match factor {
            GuardedFactor::Password => &self.password,
            GuardedFactor::Pin => &self.pin,
            GuardedFactor::Otp => &self.otp,
            GuardedFactor::Phone => &self.phone,
        }
    }
}

/// Per-user, per-factor counters as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptState {
    /// Consecutive failures, including attempts reserved and still being checked.
    pub failures: u32,
    /// Unix milliseconds before which no attempt is admitted.
    pub locked_until: i64,
    /// Too many failures: no attempt is admitted until the factor is set anew.
    pub disabled: bool,
}

/// Whether a new attempt may be checked now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Open,
    Locked { retry_after: Duration },
    Disabled,
}

impl AttemptState {
    pub fn admission(&self, now: i64) -> Admission {
        if self.disabled {
            Admission::Disabled
        } else if self.locked_until > now {
            let ms = u64::try_from(self.locked_until - now).unwrap_or(0);
            Admission::Locked {
                retry_after: Duration::from_millis(ms),
            }
        } else {
            Admission::Open
        }
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1, so a client never retries too early.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_millis()
        .div_ceil(1000)
        .max(1)
        .try_into()
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_pin_locks_from_the_fourth_failure_doubling_up_to_fifteen_minutes() {
        let p = LockPolicy::PIN;
        let locks: Vec<u64> = (1..=10).map(|n| p.lock_after(n).as_secs()).collect();
        assert_eq!(locks, [0, 0, 0, 30, 60, 120, 240, 480, 900, 900]);
        assert!(!p.disables_at(9));
        assert!(p.disables_at(10));
    }

    #[test]
    fn the_password_locks_from_the_fifth_and_is_disabled_after_a_hundred() {
        let p = LockPolicy::PASSWORD;
        assert_eq!(p.lock_after(4), Duration::ZERO);
        assert_eq!(p.lock_after(5), secs(30));
        assert_eq!(p.lock_after(99), secs(900));
        assert_eq!(p.lock_after(u32::MAX), secs(900), "no overflow");
        assert!(!p.disables_at(99) && p.disables_at(100));
    }

    #[test]
    fn otp_failures_revoke_from_the_fifth_and_never_disable() {
        let p = LockPolicy::OTP;
        assert!(!p.revokes_at(4) && p.revokes_at(5) && p.revokes_at(6));
        assert!(!p.disables_at(u32::MAX));
    }

    #[test]
    fn a_reservation_that_reaches_the_threshold_locks_at_once() {
        let s = LockPolicy::PIN.after_reserving(4, 0, NOW);
        assert_eq!(s.locked_until, NOW + 30_000);
        assert_eq!(
            s.admission(NOW),
            Admission::Locked {
                retry_after: secs(30)
            }
        );
        assert_eq!(s.admission(NOW + 30_000), Admission::Open);
        let below = LockPolicy::PIN.after_reserving(3, 0, NOW);
        assert_eq!(below.admission(NOW), Admission::Open);
    }

    #[test]
    fn the_tenth_reservation_disables_whatever_the_time() {
        let s = LockPolicy::PIN.after_reserving(10, 0, NOW);
        assert_eq!(s.admission(NOW + 86_400_000), Admission::Disabled);
    }

    #[test]
    fn a_lock_of_zero_keeps_an_earlier_lock_end() {
        let s = LockPolicy::PIN.after_reserving(2, NOW + 5, NOW);
        assert_eq!(s.locked_until, NOW + 5);
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(30_001)), 31);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
