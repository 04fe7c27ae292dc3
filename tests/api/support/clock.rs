//! Manual clocks for tests that move time instead of sleeping.

use otpd::service::ManualClock;
use std::sync::Arc;

/// A manual clock that starts at the wall clock's now.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()))
}

/// A manual clock in the middle of a 30 s step, so a TOTP code never straddles a step boundary.
pub fn mid_step_clock() -> Arc<ManualClock> {
    let t = time::OffsetDateTime::from_unix_timestamp(1_800_000_015).unwrap();
    Arc::new(ManualClock::new(t))
}
