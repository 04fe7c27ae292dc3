//! Attempt limits: counted before the secret is checked, in the database, per factor.

use crate::support::*;
use futures::future::join_all;
use otpd::domain::Subject;
use otpd::service::ManualClock;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()))
}

/// An app on a manual clock that admits every request of a burst, so the burst reaches the
/// attempt counter instead of being shed.
async fn app_with(clock: &Arc<ManualClock>) -> TestApp {
    TestApp::builder()
        .admitting_bursts()
        .clock(clock.clone())
        .spawn()
        .await
}

pub async fn events(app: &TestApp, sub: &str) -> Vec<String> {
    app.audit_events(sub).await
}

pub fn count(events: &[String], name: &str) -> usize {
    events.iter().filter(|e| *e == name).count()
}

/// Fires `n` requests at once and returns their statuses, sorted.
async fn burst(app: &TestApp, sub: &str, body: serde_json::Value, n: usize) -> Vec<u16> {
    let requests = (0..n).map(|_| app.create_otp(sub, body.clone()));
    let mut statuses: Vec<u16> = join_all(requests)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort_unstable();
    statuses
}

fn tally(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_parallel_wrong_pins_evaluate_no_more_than_the_policy_allows() {
    let clock = manual_clock();
    let app = app_with(&clock).await;
    app.set_pin("lena", "4378").await;

    let statuses = burst(&app, "lena", json!({"pin": "1235"}), 100).await;
    // The 4th failure locks the PIN; every request after the 4th reservation is refused unchecked.
    assert_eq!(tally(&statuses, 422), 4, "{statuses:?}");
    assert_eq!(tally(&statuses, 429), 96, "{statuses:?}");
    let log = events(&app, "lena").await;
    assert_eq!(count(&log, "pin.refused"), 4, "hashes evaluated: {log:?}");
    assert_eq!(count(&log, "pin.locked"), 1, "{log:?}");

    // Even the right PIN is not checked while the lock lasts.
    let res = app.create_otp("lena", json!({"pin": "4378"})).await;
    assert_eq!(res.headers()["retry-after"], "30");
    assert_error(res, 429, "credential-locked").await;
    clock.advance(Duration::from_secs(29));
    let res = app.create_otp("lena", json!({"pin": "4378"})).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, 429, "credential-locked").await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        app.create_otp("lena", json!({"pin": "4378"}))
            .await
            .status(),
        201
    );
    assert_eq!(count(&events(&app, "lena").await, "pin.refused"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_pins_spread_over_two_replicas_share_one_counter() {
    let clock = manual_clock();
    let one = app_with(&clock).await;
    let two = one.sibling().clock(clock.clone()).spawn().await;
    one.set_pin("mia", "4378").await;
    let body = json!({"pin": "1235"});
    let requests = (0..60).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        app.create_otp("mia", body.clone())
    });
    let statuses: Vec<u16> = join_all(requests)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(tally(&statuses, 422), 4, "{statuses:?}");
    assert_eq!(tally(&statuses, 429), 56, "{statuses:?}");
}

#[tokio::test]
async fn ten_wrong_pins_disable_the_pin_until_a_new_one_is_set_even_across_restarts() {
    let clock = manual_clock();
    let app = app_with(&clock).await;
    app.set_pin("nora", "4378").await;
    let mut seen = vec![];
    for _ in 0..10 {
        let res = app.create_otp("nora", json!({"pin": "1235"})).await;
        seen.push(res.status().as_u16());
        // Wait out whatever lock the failure started.
        clock.advance(Duration::from_secs(15 * 60));
    }
    assert_eq!(seen, [422; 10]);
    assert_error(
        app.create_otp("nora", json!({"pin": "4378"})).await,
        423,
        "credential-disabled",
    )
    .await;
    let log = events(&app, "nora").await;
    assert_eq!(count(&log, "pin.refused"), 10, "{log:?}");
    assert_eq!(count(&log, "pin.disabled"), 1, "{log:?}");
    assert_eq!(count(&log, "pin.locked"), 6, "failures 4..=9 lock: {log:?}");

    // A restart and a day later change nothing.
    let restart = app.sibling().admitting_bursts().clock(clock.clone());
    app.stop().await;
    clock.advance(Duration::from_secs(86_400));
    let app = restart.spawn().await;
    assert_error(
        app.create_otp("nora", json!({"pin": "4378"})).await,
        423,
        "credential-disabled",
    )
    .await;

    // A new PIN set through `PUT /user/pin` with an OTP from the password path re-enables the
    // factor with clean counters.
    let otp = app.account_otp("nora").await;
    assert_eq!(
        app.as_user("nora").put_pin("5791", &otp).await.status(),
        200
    );
    assert_eq!(
        app.create_otp("nora", json!({"pin": "5791"}))
            .await
            .status(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_pin_storm_leaves_the_password_path_working() {
    let clock = manual_clock();
    let app = app_with(&clock).await;
    app.set_password("omar", "correct horse battery").await;
    app.set_pin("omar", "4378").await;
    let statuses = burst(&app, "omar", json!({"pin": "1235"}), 50).await;
    assert_eq!(tally(&statuses, 429), 46, "{statuses:?}");

    let password = json!({"password": "correct horse battery"});
    assert_eq!(app.create_otp("omar", password).await.status(), 201);
    // With both offered, the locked PIN is skipped and the password still checked...
    let both = json!({"password": "correct horse battery", "pin": "4378"});
    assert_eq!(app.create_otp("omar", both.clone()).await.status(), 201);
    // ...and a password success does not reset the PIN's counter.
    assert_error(
        app.create_otp("omar", json!({"pin": "4378"})).await,
        429,
        "credential-locked",
    )
    .await;

    // The other way round: a locked password is skipped and the PIN checked.
    clock.advance(Duration::from_secs(30));
    let statuses = burst(&app, "omar", json!({"password": "wrong horse battery"}), 20).await;
    assert_eq!(tally(&statuses, 422), 5, "{statuses:?}");
    let res = app.create_otp("omar", both).await;
    assert_eq!(res.status(), 201);
    let log = events(&app, "omar").await;
    assert_eq!(log.last().map(String::as_str), Some("otp.issued"));
    let states = app
        .services()
        .await
        .attempt_states(&Subject::parse("omar").unwrap())
        .await
        .unwrap();
    let failures: Vec<(&str, u32)> = states
        .iter()
        .map(|(f, s)| (f.as_str(), s.failures))
        .collect();
    assert_eq!(
        failures,
        [("password", 5), ("pin", 0), ("otp", 0), ("phone", 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_factor_with_a_wrong_other_factor_is_still_invalid_credentials() {
    let clock = manual_clock();
    let app = app_with(&clock).await;
    app.set_password("pia", "correct horse battery").await;
    app.set_pin("pia", "4378").await;
    burst(&app, "pia", json!({"pin": "1235"}), 10).await;
    // The PIN is locked, the password is checked and wrong: a guess was evaluated, so 422.
    let both_wrong = json!({"password": "wrong horse battery", "pin": "4378"});
    assert_error(
        app.create_otp("pia", both_wrong).await,
        422,
        "invalid-credentials",
    )
    .await;
}
