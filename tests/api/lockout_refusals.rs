//! Attempt limits beyond the PIN basics (docs/lockout.md), the refusing side: the password's
//! disabling at the 100th failure, which refusal wins when every offered factor is refused, and a
//! configured lock schedule. What clears the counters is in lockout_reset.rs.

use crate::lockout::count;
use crate::support::*;
use otpd::service::{Clock, ManualClock};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const WRONG_PASSWORD: &str = "wrong horse battery";
pub const PIN: &str = "4378";
pub const WRONG_PIN: &str = "1235";

/// The app `builder` makes, on which each of `subs` has the password and the PIN.
pub async fn app_with_both(builder: TestAppBuilder, subs: &[&str]) -> TestApp {
    let app = builder.spawn().await;
    for sub in subs {
        app.set_password(sub, PASSWORD).await;
        app.set_pin(sub, PIN).await;
    }
    app
}

/// An app with `env` on `clock` (the system clock without one) where `sub` has the password and
/// the PIN, after `pins` wrong PINs and then `passwords` wrong passwords, each refused (422).
pub async fn after_failures(
    env: &[(&str, &str)],
    clock: Option<&Arc<ManualClock>>,
    sub: &str,
    (pins, passwords): (usize, usize),
) -> TestApp {
    let mut builder = TestApp::builder();
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    if let Some(clock) = clock {
        builder = builder.clock(clock.clone());
    }
    let app = app_with_both(builder, &[sub]).await;
    let user = app.as_user(sub);
    user.refused_guesses(&wrong_pin(), pins).await;
    user.refused_guesses(&wrong_password(), passwords).await;
    app
}

pub fn wrong_pin() -> Value {
    json!({ "pin": WRONG_PIN })
}

pub fn wrong_password() -> Value {
    json!({ "password": WRONG_PASSWORD })
}

fn both() -> Value {
    json!({ "password": PASSWORD, "pin": PIN })
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn status_of(user: &User<'_>, body: Value) -> u16 {
    user.create_otp(body).await.status().as_u16()
}

#[tokio::test]
async fn the_password_is_disabled_by_its_hundredth_consecutive_failure_and_not_before() {
    let clock = manual_clock();
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    app.set_password("paula", PASSWORD).await;
    let paula = app.as_user("paula");
    for n in 1..=99 {
        assert_eq!(status_of(&paula, wrong_password()).await, 422, "{n}");
        // Wait out the longest lock the failure may have started.
        clock.advance(Duration::from_secs(900));
    }
    assert_eq!(
        app.attempt_counters_at("paula", clock.now()).await[0],
        ("password".to_owned(), 99, false, false),
        "99 failures lock but do not disable"
    );
    // The 100th guess is still evaluated (422), and disables the password.
    assert_eq!(status_of(&paula, wrong_password()).await, 422);
    clock.advance(Duration::from_secs(86_400));
    let res = paula.create_otp_with_password(PASSWORD).await;
    assert_error(res, 423, "credential-disabled").await;
    let log = app.audit_events("paula").await;
    assert_eq!(count(&log, "password.refused"), 100, "{log:?}");
    assert_eq!(count(&log, "password.disabled"), 1, "{log:?}");
    assert_eq!(count(&log, "otp.issued"), 0, "{log:?}");

    // Setting it anew re-enables it.
    app.set_password("paula", PASSWORD).await;
    assert_eq!(paula.create_otp_with_password(PASSWORD).await.status(), 201);
}

/// Makes wrong guesses of one factor of `user` until its lock ends `secs` from now: the lock is
/// 30 s, 60 s, 120 s ... from the `free + 1`th failure on, so the clock is moved through the
/// shorter locks first.
async fn lock_for(user: &User<'_>, clock: &ManualClock, (wrong, free): (Value, usize), secs: u64) {
    user.refused_guesses(&wrong, free).await;
    let mut lock = 30;
    loop {
        assert_eq!(status_of(user, wrong.clone()).await, 422);
        if lock == secs {
            return;
        }
        clock.advance(Duration::from_secs(lock));
        lock *= 2;
    }
}

#[tokio::test]
async fn with_every_offered_factor_locked_the_answer_is_429_with_the_soonest_retry_after() {
    let clock = manual_clock();
    let app = app_with_both(TestApp::builder().clock(clock.clone()), &["quinn", "ruth"]).await;
    let (quinn, ruth) = (app.as_user("quinn"), app.as_user("ruth"));

    // quinn: the password, checked first, ends sooner: PIN 120 s, password 30 s.
    // ruth: the PIN, checked second, ends sooner: password 120 s, then PIN 60 s (the password's
    // lock has 90 s left once the PIN's is in place).
    let cases = [
        (
            &quinn,
            [((wrong_pin(), 3), 120), ((wrong_password(), 4), 30)],
            30,
        ),
        (
            &ruth,
            [((wrong_password(), 4), 120), ((wrong_pin(), 3), 60)],
            60,
        ),
    ];
    for (user, locks, soonest) in cases {
        for (wrong, secs) in locks {
            lock_for(user, &clock, wrong, secs).await;
        }
        let res = user.create_otp(both()).await;
        assert_eq!(retry_after(&res), soonest);
        assert_error(res, 429, "credential-locked").await;
        clock.advance(Duration::from_secs(20));
        let res = user.create_otp(both()).await;
        assert_eq!(
            (res.status().as_u16(), retry_after(&res)),
            (429, soonest - 20)
        );
    }

    // Neither right value was checked while locked.
    for sub in ["quinn", "ruth"] {
        let log = app.audit_events(sub).await;
        assert_eq!(count(&log, "otp.issued"), 0, "{sub}: {log:?}");
    }
    // Once the sooner lock ends, that factor is checked and passes.
    clock.advance(Duration::from_secs(40));
    assert_eq!(status_of(&ruth, both()).await, 201);
    let log = app.audit_events("ruth").await;
    assert_eq!(
        log.last().map(String::as_str),
        Some("otp.issued"),
        "{log:?}"
    );
}

#[tokio::test]
async fn with_every_offered_factor_disabled_the_answer_is_423() {
    let clock = manual_clock();
    let env = [
        ("OTPD_PIN_DISABLE_AFTER", "2"),
        ("OTPD_PASSWORD_DISABLE_AFTER", "2"),
    ];
    let app = after_failures(&env, Some(&clock), "sara", (2, 2)).await;
    let sara = app.as_user("sara");
    clock.advance(Duration::from_secs(86_400));
    for body in [
        both(),
        json!({ "password": PASSWORD }),
        json!({ "pin": PIN }),
    ] {
        assert_error(sara.create_otp(body).await, 423, "credential-disabled").await;
    }
}

#[tokio::test]
async fn a_locked_factor_outweighs_a_disabled_one_because_it_will_open_again() {
    let clock = manual_clock();
    let env = [
        ("OTPD_PIN_DISABLE_AFTER", "1"),
        ("OTPD_PASSWORD_LOCK_FROM", "1"),
    ];
    let app = after_failures(&env, Some(&clock), "tara", (1, 1)).await;
    clock.advance(Duration::from_secs(12));
    let res = app.as_user("tara").create_otp(both()).await;
    assert_eq!(retry_after(&res), 18);
    assert_error(res, 429, "credential-locked").await;
}

#[tokio::test]
async fn configured_lock_lengths_give_the_documented_doubling_schedule() {
    let clock = manual_clock();
    let builder = TestApp::builder()
        .env("OTPD_LOCK_BASE_SECONDS", "7")
        .env("OTPD_LOCK_MAX_SECONDS", "50")
        .clock(clock.clone());
    let app = app_with_both(builder, &["uma"]).await;
    let uma = app.as_user("uma");

    // Per factor: (wrong, right, the failure that starts locking).
    let mut schedules = vec![];
    for (wrong, right, lock_from) in [
        (wrong_pin(), json!({ "pin": PIN }), 4),
        (wrong_password(), json!({ "password": PASSWORD }), 5),
    ] {
        let mut seen = vec![];
        for n in 1..=9 {
            assert_eq!(status_of(&uma, wrong.clone()).await, 422, "{n}");
            if n < lock_from {
                continue;
            }
            // The right value is not checked while locked: the answer tells the wait.
            let res = uma.create_otp(right.clone()).await;
            assert_eq!(res.status(), 429, "failure {n}");
            let wait = retry_after(&res);
            seen.push(wait);
            clock.advance(Duration::from_secs(wait - 1));
            let res = uma.create_otp(right.clone()).await;
            assert_eq!(
                (res.status().as_u16(), retry_after(&res)),
                (429, 1),
                "one second before the end of lock {n}"
            );
            clock.advance(Duration::from_secs(1));
        }
        schedules.push(seen);
    }
    assert_eq!(schedules[0], [7, 14, 28, 50, 50, 50], "PIN, failures 4..=9");
    assert_eq!(
        schedules[1],
        [7, 14, 28, 50, 50],
        "password, failures 5..=9"
    );

    // OTP redemption follows the same lengths from its 5th failure.
    for n in 1..=5 {
        assert_eq!(uma.verify("000000").await.status(), 404, "{n}");
    }
    let res = uma.verify("000000").await;
    assert_eq!(retry_after(&res), 7);
    assert_error(res, 429, "credential-locked").await;
}
