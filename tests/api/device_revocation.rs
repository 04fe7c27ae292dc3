//! The lifetime bound on guessing a device TOTP: after `otp_disable_after` failed redemptions that
//! checked a device's codes, with no success of that device in between, the device is revoked.

use crate::lockout::{count, events};
use crate::support::*;
use otpd::service::{Clock, ManualClock};
use std::time::Duration;

const DEVICE: &str = "0b9f3a36-8f1e-4c8a-b7f4-6f0d2e0c4a11";

/// The device's code at the clock's time.
fn code_now(device: &DeviceSecret, clock: &ManualClock) -> String {
    device.code(clock.now().unix_timestamp(), 0)
}

/// A six-digit code the device does not accept now (none of the steps within the skew window).
fn wrong_code(device: &DeviceSecret, clock: &ManualClock, seed: u32) -> String {
    let now = clock.now().unix_timestamp();
    let valid: Vec<String> = (-1..=1).map(|s| device.code(now, s)).collect();
    (seed..)
        .map(|n| format!("{:06}", n % 1_000_000))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// Sends a wrong code; while redemption is locked, waits out `Retry-After` on the clock and tries
/// again, as a patient attacker would. Returns once the guess was evaluated (404).
async fn guess(app: &TestApp, clock: &ManualClock, sub: &str, device: &DeviceSecret, n: u32) {
    loop {
        let res = app
            .as_user(sub)
            .verify(&wrong_code(device, clock, n * 7919))
            .await;
        match res.status().as_u16() {
            404 => return,
            429 => {
                let wait: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                clock.advance(Duration::from_secs(wait));
            }
            other => panic!("unexpected {other} for a wrong code"),
        }
    }
}

#[tokio::test]
async fn two_hundred_guesses_spaced_by_retry_after_revoke_the_device_at_the_twentieth() {
    let clock = manual_clock();
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    let device = app.device_secret("gina", DEVICE).await;
    for n in 0..200 {
        guess(&app, &clock, "gina", &device, n).await;
    }
    let log = events(&app, "gina").await;
    assert_eq!(count(&log, "device-totp.revoked"), 1, "{log:?}");
    let revoked_at = log.iter().position(|e| e == "device-totp.revoked").unwrap();
    assert_eq!(
        count(&log[..revoked_at], "otp.refused"),
        20,
        "revoked by the 20th failure: {log:?}"
    );
    assert_eq!(count(&log, "otp.refused"), 200, "every guess was evaluated");

    // The secret is gone: its right code is now just a wrong one.
    clock.advance(Duration::from_secs(15 * 60));
    let res = app.as_user("gina").verify(&code_now(&device, &clock)).await;
    assert_eq!(res.status(), 404);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("otpd_device_totps_revoked_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_account_otp_success_does_not_forgive_device_failures_but_a_device_success_does() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .clock(clock.clone())
        .env("OTPD_OTP_DISABLE_AFTER", "6")
        .spawn()
        .await;

    // Five failures (the 5th locks redemption), the owner then redeems an account OTP: the lock
    // counter starts over, the device's count does not, so one more failure revokes it.
    let hugo = app.device_secret("hugo", DEVICE).await;
    for n in 0..5 {
        guess(&app, &clock, "hugo", &hugo, n).await;
    }
    clock.advance(Duration::from_secs(30));
    let otp = app.account_otp("hugo").await;
    assert_eq!(app.as_user("hugo").verify(&otp).await.status(), 204);
    assert_eq!(count(&events(&app, "hugo").await, "device-totp.revoked"), 0);
    guess(&app, &clock, "hugo", &hugo, 5).await;
    assert_eq!(count(&events(&app, "hugo").await, "device-totp.revoked"), 1);
    let res = app.as_user("hugo").verify(&code_now(&hugo, &clock)).await;
    assert_eq!(res.status(), 404, "the revoked device's code");

    // The same with a success of the device itself: its count starts over.
    let ines = app.device_secret("ines", DEVICE).await;
    for n in 0..5 {
        guess(&app, &clock, "ines", &ines, n).await;
    }
    clock.advance(Duration::from_secs(30));
    let res = app.as_user("ines").verify(&code_now(&ines, &clock)).await;
    assert_eq!(res.status(), 204);
    for n in 5..10 {
        guess(&app, &clock, "ines", &ines, n).await;
    }
    assert_eq!(count(&events(&app, "ines").await, "device-totp.revoked"), 0);
    // Wait out the lock and a time step (each step is accepted once): the device still works.
    clock.advance(Duration::from_secs(15 * 60));
    let res = app.as_user("ines").verify(&code_now(&ines, &clock)).await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn failures_that_did_not_check_device_codes_do_not_count_against_devices() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .clock(clock.clone())
        .env("OTPD_OTP_DISABLE_AFTER", "2")
        .spawn()
        .await;
    let jana = app.device_secret("jana", DEVICE).await;
    // `types: ["account"]` narrows the check to account OTPs: the device is not guessed at.
    for n in 0..4 {
        let wrong = wrong_code(&jana, &clock, n);
        let res = app.as_user("jana").verify_as(&wrong, &["account"]).await;
        assert_eq!(res.status(), 404);
    }
    assert_eq!(count(&events(&app, "jana").await, "device-totp.revoked"), 0);
    clock.advance(Duration::from_secs(60));
    let res = app.as_user("jana").verify(&code_now(&jana, &clock)).await;
    assert_eq!(res.status(), 204);
}
