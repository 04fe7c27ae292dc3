//! Attempt limits beyond the PIN basics (docs/lockout.md): the password's disabling at the 100th
//! failure, which refusal wins when every offered factor is refused, a configured lock schedule,
//! and what clears the counters (setting a factor anew from the CLI, erasing the user).

use crate::support::*;
use otpd::domain::Subject;
use otpd::service::{Clock, ManualClock};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";
const WRONG_PASSWORD: &str = "wrong horse battery";
const PIN: &str = "4378";
const WRONG_PIN: &str = "1235";

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()))
}

async fn audit(app: &TestApp, sub: &str) -> Vec<String> {
    app.services()
        .await
        .store
        .audit_events(&Subject::parse(sub).unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

fn count(events: &[String], name: &str) -> usize {
    events.iter().filter(|e| *e == name).count()
}

/// (factor, consecutive failures, locked now, disabled) of every guarded factor of `sub`.
async fn counters(app: &TestApp, sub: &str) -> Vec<(String, u32, bool, bool)> {
    counters_at(app, sub, time::OffsetDateTime::now_utc()).await
}

/// `counters` as seen at `now` (an app on a manual clock).
async fn counters_at(
    app: &TestApp,
    sub: &str,
    now: time::OffsetDateTime,
) -> Vec<(String, u32, bool, bool)> {
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
    app.services()
        .await
        .attempt_states(&Subject::parse(sub).unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|(f, s)| {
            (
                f.as_str().to_owned(),
                s.failures,
                s.locked_until > now_ms,
                s.disabled,
            )
        })
        .collect()
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn status_of(app: &TestApp, sub: &str, body: Value) -> u16 {
    app.create_otp(sub, body).await.status().as_u16()
}

/// `otpd <args>` against the app's database, `stdin` as the secret.
fn otpd(app: &TestApp, args: &[&str], stdin: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(args)
        .env_clear()
        .envs(app.env.clone())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "otpd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_password_is_disabled_by_its_hundredth_consecutive_failure_and_not_before() {
    let clock = manual_clock();
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    app.set_password("paula", PASSWORD).await;
    let wrong = json!({ "password": WRONG_PASSWORD });
    for n in 1..=99 {
        assert_eq!(status_of(&app, "paula", wrong.clone()).await, 422, "{n}");
        // Wait out the longest lock the failure may have started.
        clock.advance(Duration::from_secs(900));
    }
    assert_eq!(
        counters_at(&app, "paula", clock.now()).await[0],
        ("password".to_owned(), 99, false, false),
        "99 failures lock but do not disable"
    );
    // The 100th guess is still evaluated (422), and disables the password.
    assert_eq!(status_of(&app, "paula", wrong).await, 422);
    clock.advance(Duration::from_secs(86_400));
    assert_error(
        app.create_otp("paula", json!({ "password": PASSWORD }))
            .await,
        423,
        "credential-disabled",
    )
    .await;
    let log = audit(&app, "paula").await;
    assert_eq!(count(&log, "password.refused"), 100, "{log:?}");
    assert_eq!(count(&log, "password.disabled"), 1, "{log:?}");
    assert_eq!(count(&log, "otp.issued"), 0, "{log:?}");

    // Setting it anew re-enables it.
    app.set_password("paula", PASSWORD).await;
    assert_eq!(
        status_of(&app, "paula", json!({ "password": PASSWORD })).await,
        201
    );
}

/// Makes wrong guesses of one factor of `sub` until its lock ends `secs` from now: the lock is
/// 30 s, 60 s, 120 s ... from the `free + 1`th failure on, so the clock is moved through the
/// shorter locks first.
async fn lock_for(
    app: &TestApp,
    clock: &ManualClock,
    sub: &str,
    (wrong, free): (Value, usize),
    secs: u64,
) {
    for _ in 0..free {
        assert_eq!(status_of(app, sub, wrong.clone()).await, 422);
    }
    let mut lock = 30;
    loop {
        assert_eq!(status_of(app, sub, wrong.clone()).await, 422);
        if lock == secs {
            return;
        }
        clock.advance(Duration::from_secs(lock));
        lock *= 2;
    }
}

fn wrong_pin() -> (Value, usize) {
    (json!({ "pin": WRONG_PIN }), 3)
}

fn wrong_password() -> (Value, usize) {
    (json!({ "password": WRONG_PASSWORD }), 4)
}

#[tokio::test]
async fn with_every_offered_factor_locked_the_answer_is_429_with_the_soonest_retry_after() {
    let clock = manual_clock();
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    let both = json!({ "password": PASSWORD, "pin": PIN });
    for sub in ["quinn", "ruth"] {
        app.set_password(sub, PASSWORD).await;
        app.set_pin(sub, PIN).await;
    }

    // The password, checked first, ends sooner: PIN 120 s, password 30 s.
    lock_for(&app, &clock, "quinn", wrong_pin(), 120).await;
    lock_for(&app, &clock, "quinn", wrong_password(), 30).await;
    let res = app.create_otp("quinn", both.clone()).await;
    assert_eq!(retry_after(&res), 30);
    assert_error(res, 429, "credential-locked").await;
    clock.advance(Duration::from_secs(20));
    let res = app.create_otp("quinn", both.clone()).await;
    assert_eq!((res.status().as_u16(), retry_after(&res)), (429, 10));

    // The PIN, checked second, ends sooner: password 120 s, then PIN 60 s (the password's lock
    // has 90 s left once the PIN's is in place).
    lock_for(&app, &clock, "ruth", wrong_password(), 120).await;
    lock_for(&app, &clock, "ruth", wrong_pin(), 60).await;
    let res = app.create_otp("ruth", both.clone()).await;
    assert_eq!(retry_after(&res), 60);
    assert_error(res, 429, "credential-locked").await;
    clock.advance(Duration::from_secs(20));
    let res = app.create_otp("ruth", both.clone()).await;
    assert_eq!((res.status().as_u16(), retry_after(&res)), (429, 40));

    // Neither right value was checked while locked.
    for sub in ["quinn", "ruth"] {
        let log = audit(&app, sub).await;
        assert_eq!(count(&log, "otp.issued"), 0, "{sub}: {log:?}");
    }
    // Once the sooner lock ends, that factor is checked and passes.
    clock.advance(Duration::from_secs(40));
    assert_eq!(status_of(&app, "ruth", both).await, 201);
    let log = audit(&app, "ruth").await;
    assert_eq!(
        log.last().map(String::as_str),
        Some("otp.issued"),
        "{log:?}"
    );
}

#[tokio::test]
async fn with_every_offered_factor_disabled_the_answer_is_423() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .env("OTPD_PIN_DISABLE_AFTER", "2")
        .env("OTPD_PASSWORD_DISABLE_AFTER", "2")
        .clock(clock.clone())
        .spawn()
        .await;
    app.set_password("sara", PASSWORD).await;
    app.set_pin("sara", PIN).await;
    for body in [
        json!({ "pin": WRONG_PIN }),
        json!({ "password": WRONG_PASSWORD }),
    ] {
        for _ in 0..2 {
            assert_eq!(status_of(&app, "sara", body.clone()).await, 422);
        }
    }
    clock.advance(Duration::from_secs(86_400));
    let both = json!({ "password": PASSWORD, "pin": PIN });
    assert_error(
        app.create_otp("sara", both).await,
        423,
        "credential-disabled",
    )
    .await;
    for single in [json!({ "password": PASSWORD }), json!({ "pin": PIN })] {
        assert_error(
            app.create_otp("sara", single).await,
            423,
            "credential-disabled",
        )
        .await;
    }
}

#[tokio::test]
async fn a_locked_factor_outweighs_a_disabled_one_because_it_will_open_again() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .env("OTPD_PIN_DISABLE_AFTER", "1")
        .env("OTPD_PASSWORD_LOCK_FROM", "1")
        .clock(clock.clone())
        .spawn()
        .await;
    app.set_password("tara", PASSWORD).await;
    app.set_pin("tara", PIN).await;
    assert_eq!(
        status_of(&app, "tara", json!({ "pin": WRONG_PIN })).await,
        422
    );
    let wrong = json!({ "password": WRONG_PASSWORD });
    assert_eq!(status_of(&app, "tara", wrong).await, 422);
    clock.advance(Duration::from_secs(12));
    let res = app
        .create_otp("tara", json!({ "password": PASSWORD, "pin": PIN }))
        .await;
    assert_eq!(retry_after(&res), 18);
    assert_error(res, 429, "credential-locked").await;
}

#[tokio::test]
async fn configured_lock_lengths_give_the_documented_doubling_schedule() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .env("OTPD_LOCK_BASE_SECONDS", "7")
        .env("OTPD_LOCK_MAX_SECONDS", "50")
        .clock(clock.clone())
        .spawn()
        .await;
    app.set_password("uma", PASSWORD).await;
    app.set_pin("uma", PIN).await;

    // Per factor: (wrong, right, the failure that starts locking).
    let mut schedules = vec![];
    for (wrong, right, lock_from) in [
        (json!({ "pin": WRONG_PIN }), json!({ "pin": PIN }), 4),
        (
            json!({ "password": WRONG_PASSWORD }),
            json!({ "password": PASSWORD }),
            5,
        ),
    ] {
        let mut seen = vec![];
        for n in 1..=9 {
            assert_eq!(status_of(&app, "uma", wrong.clone()).await, 422, "{n}");
            if n < lock_from {
                continue;
            }
            // The right value is not checked while locked: the answer tells the wait.
            let res = app.create_otp("uma", right.clone()).await;
            assert_eq!(res.status(), 429, "failure {n}");
            let wait = retry_after(&res);
            seen.push(wait);
            clock.advance(Duration::from_secs(wait - 1));
            let res = app.create_otp("uma", right.clone()).await;
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
    let token = app.issuer.token("uma");
    for n in 1..=5 {
        let res = app
            .http
            .post(app.url("/user/otp/verify"))
            .bearer_auth(&token)
            .json(&json!({ "otp": "000000" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{n}");
    }
    let res = app
        .http
        .post(app.url("/user/otp/verify"))
        .bearer_auth(&token)
        .json(&json!({ "otp": "000000" }))
        .send()
        .await
        .unwrap();
    assert_eq!(retry_after(&res), 7);
    assert_error(res, 429, "credential-locked").await;
}

#[tokio::test]
async fn otpd_user_set_pin_re_enables_a_disabled_pin_and_clears_only_the_pins_counters() {
    let app = TestApp::builder()
        .env("OTPD_PIN_DISABLE_AFTER", "2")
        .spawn()
        .await;
    app.set_password("vera", PASSWORD).await;
    app.set_pin("vera", PIN).await;
    for _ in 0..2 {
        assert_eq!(
            status_of(&app, "vera", json!({ "pin": WRONG_PIN })).await,
            422
        );
    }
    for _ in 0..3 {
        let wrong = json!({ "password": WRONG_PASSWORD });
        assert_eq!(status_of(&app, "vera", wrong).await, 422);
    }
    assert_error(
        app.create_otp("vera", json!({ "pin": PIN })).await,
        423,
        "credential-disabled",
    )
    .await;

    otpd(&app, &["user", "set-pin", "vera"], "5791\n");
    assert_eq!(
        counters(&app, "vera").await,
        [
            ("password".to_owned(), 3, false, false),
            ("pin".to_owned(), 0, false, false),
            ("otp".to_owned(), 0, false, false),
        ]
    );
    assert_eq!(status_of(&app, "vera", json!({ "pin": "5791" })).await, 201);
}

#[tokio::test]
async fn otpd_user_set_password_unlocks_a_locked_password_at_once() {
    let app = TestApp::spawn().await;
    app.set_password("wanda", PASSWORD).await;
    app.set_pin("wanda", PIN).await;
    for _ in 0..5 {
        let wrong = json!({ "password": WRONG_PASSWORD });
        assert_eq!(status_of(&app, "wanda", wrong).await, 422);
    }
    for _ in 0..2 {
        assert_eq!(
            status_of(&app, "wanda", json!({ "pin": WRONG_PIN })).await,
            422
        );
    }
    assert_error(
        app.create_otp("wanda", json!({ "password": PASSWORD }))
            .await,
        429,
        "credential-locked",
    )
    .await;

    otpd(
        &app,
        &["user", "set-password", "wanda"],
        "a new password from stdin\n",
    );
    assert_eq!(
        counters(&app, "wanda").await,
        [
            ("password".to_owned(), 0, false, false),
            ("pin".to_owned(), 2, false, false),
            ("otp".to_owned(), 0, false, false),
        ]
    );
    let new = json!({ "password": "a new password from stdin" });
    assert_eq!(status_of(&app, "wanda", new).await, 201);
}

#[tokio::test]
async fn delete_user_clears_the_counters_of_every_factor() {
    let app = TestApp::spawn().await;
    app.set_password("xena", PASSWORD).await;
    app.set_pin("xena", PIN).await;
    let res = app
        .create_otp("xena", json!({ "password": PASSWORD }))
        .await;
    assert_eq!(res.status(), 201);
    let otp = res.json::<Value>().await.unwrap()["otp"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        let wrong = json!({ "password": WRONG_PASSWORD });
        assert_eq!(status_of(&app, "xena", wrong).await, 422);
    }
    for _ in 0..4 {
        assert_eq!(
            status_of(&app, "xena", json!({ "pin": WRONG_PIN })).await,
            422
        );
    }
    let token = app.issuer.token("xena");
    for _ in 0..2 {
        let res = app
            .http
            .post(app.url("/user/otp/verify"))
            .bearer_auth(&token)
            .json(&json!({ "otp": "000000" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    assert_eq!(
        counters(&app, "xena").await,
        [
            ("password".to_owned(), 3, false, false),
            ("pin".to_owned(), 4, true, false),
            ("otp".to_owned(), 2, false, false),
        ]
    );

    let res = app
        .http
        .delete(app.url("/user"))
        .bearer_auth(&token)
        .json(&json!({ "otp": otp }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        counters(&app, "xena").await,
        [
            ("password".to_owned(), 0, false, false),
            ("pin".to_owned(), 0, false, false),
            ("otp".to_owned(), 0, false, false),
        ]
    );
}
