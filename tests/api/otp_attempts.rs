//! The OTP redemption limit: one counter per user for every entry point that takes an OTP.

use crate::lockout::{count, events};
use crate::support::*;
use futures::future::join_all;
use otpd::service::ManualClock;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// An app on a manual clock that never sheds a burst.
async fn app_on(clock: &Arc<ManualClock>) -> TestApp {
    TestApp::builder()
        .clock(clock.clone())
        .admitting_bursts()
        .spawn()
        .await
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()))
}

const DEVICE: &str = "6f1c1d5e-3b5a-4c47-9a59-0c8a3c1b2d4e";

/// A well-formed code that is not `otp`.
fn other_than(otp: &str) -> String {
    if otp == "000000" { "111111" } else { "000000" }.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_parallel_wrong_otps_are_checked_five_times_and_revoke_the_live_otps() {
    let clock = manual_clock();
    let app = app_on(&clock).await;
    let good = app.account_otp("olga").await;
    let olga = app.as_user("olga");
    let wrong = other_than(&good);
    let statuses: Vec<u16> = join_all((0..100).map(|_| olga.verify(&wrong)))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let tally = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert_eq!(tally(404), 5, "{statuses:?}");
    assert_eq!(tally(429), 95, "{statuses:?}");
    let log = events(&app, "olga").await;
    assert_eq!(count(&log, "otp.refused"), 5, "{log:?}");
    assert_eq!(count(&log, "otp.revoked"), 1, "{log:?}");

    // The lock holds even for the right code, which the 5th failure revoked anyway.
    let res = olga.verify(&good).await;
    assert_eq!(res.headers()["retry-after"], "30");
    assert_error(res, 429, "credential-locked").await;
    clock.advance(Duration::from_secs(30));
    assert_eq!(olga.verify(&good).await.status(), 404);

    // A new OTP does not reset the count: the 6th failure locked redemption for 60 s.
    let fresh = app.account_otp("olga").await;
    assert_error(olga.verify(&fresh).await, 429, "credential-locked").await;
    clock.advance(Duration::from_secs(60));
    assert_eq!(olga.verify(&fresh).await.status(), 204);
    // Only a success does: the next failure is the first again.
    assert_eq!(olga.verify(&wrong).await.status(), 404);
    let states = app
        .services()
        .await
        .attempt_states(&otpd::domain::Subject::parse("olga").unwrap())
        .await
        .unwrap();
    assert_eq!(states[2].0.as_str(), "otp");
    assert_eq!(states[2].1.failures, 1);
}

#[tokio::test]
async fn every_entry_point_that_takes_an_otp_counts_against_one_limit() {
    let clock = manual_clock();
    let app = app_on(&clock).await;
    let good = app.account_otp("pete").await;
    app.set_pin("pete", "4378").await;
    let pete = app.as_user("pete");
    let bad = other_than(&good);
    // Each entry point refuses a wrong OTP with its own documented status (README, error table).
    assert_error(pete.verify(&bad).await, 404, "invalid-otp").await;
    assert_error(pete.put_pin("5791", &bad).await, 403, "invalid-otp").await;
    assert_error(pete.delete_user(&bad).await, 403, "invalid-otp").await;
    let device = pete.create_device(DEVICE, json!({ "otp": bad })).await;
    assert_error(device, 403, "invalid-proof").await;
    assert_error(pete.verify(&bad).await, 404, "invalid-otp").await;
    // Now locked everywhere, even with a valid code, and nothing is consumed or changed.
    let fresh = app.account_otp("pete").await;
    for res in [
        pete.verify(&fresh).await,
        pete.put_pin("5791", &fresh).await,
        pete.delete_user(&fresh).await,
        pete.create_device(DEVICE, json!({ "otp": fresh })).await,
    ] {
        assert_error(res, 429, "credential-locked").await;
    }
    // A device request that also offers the password skips the locked OTP and checks it.
    let with_password = json!({ "otp": fresh, "password": PASSWORD });
    assert_eq!(
        pete.create_device(DEVICE, with_password).await.status(),
        201
    );
    // And the knowledge factors were never touched: the old PIN still works.
    assert_eq!(pete.create_otp_with_pin("4378").await.status(), 201);
    clock.advance(Duration::from_secs(30));
    assert_eq!(pete.verify(&fresh).await.status(), 204);
}
