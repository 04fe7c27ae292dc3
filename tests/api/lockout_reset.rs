//! Attempt limits beyond the PIN basics (docs/lockout.md), the clearing side: what resets the
//! counters (setting a factor anew from the CLI, erasing the user) and what it leaves alone.

use crate::lockout_refusals::{PIN, after_failures, app_with_both, wrong_password, wrong_pin};
use crate::support::process::run_otpd_ok;
use crate::support::*;
use serde_json::json;

/// The counters of password, PIN and OTP redemption with these failures, none locked or
/// disabled.
fn unlocked(password: u32, pin: u32, otp: u32) -> Vec<(String, u32, bool, bool)> {
    [
        ("password", password),
        ("pin", pin),
        ("otp", otp),
        ("phone", 0),
    ]
    .into_iter()
    .map(|(factor, failures)| (factor.to_owned(), failures, false, false))
    .collect()
}

#[tokio::test]
async fn otpd_user_set_pin_re_enables_a_disabled_pin_and_clears_only_the_pins_counters() {
    let env = [("OTPD_PIN_DISABLE_AFTER", "2")];
    let app = after_failures(&env, None, "vera", (2, 3)).await;
    let vera = app.as_user("vera");
    let res = vera.create_otp_with_pin(PIN).await;
    assert_error(res, 423, "credential-disabled").await;

    run_otpd_ok(&app.env, &["user", "set-pin", "vera"], "5791\n");
    assert_eq!(app.attempt_counters("vera").await, unlocked(3, 0, 0));
    assert_eq!(vera.create_otp_with_pin("5791").await.status(), 201);
}

#[tokio::test]
async fn otpd_user_set_password_unlocks_a_locked_password_at_once() {
    let app = app_with_both(TestApp::builder(), &["wanda"]).await;
    let wanda = app.as_user("wanda");
    wanda.refused_guesses(&wrong_password(), 5).await;
    wanda.refused_guesses(&wrong_pin(), 2).await;
    let res = wanda.create_otp_with_password(PASSWORD).await;
    assert_error(res, 429, "credential-locked").await;

    let new = "a new password from stdin";
    run_otpd_ok(
        &app.env,
        &["user", "set-password", "wanda"],
        &format!("{new}\n"),
    );
    assert_eq!(app.attempt_counters("wanda").await, unlocked(0, 2, 0));
    assert_eq!(wanda.create_otp_with_password(new).await.status(), 201);
}

#[tokio::test]
async fn delete_user_clears_the_counters_of_every_factor() {
    let app = app_with_both(TestApp::builder(), &["xena"]).await;
    let xena = app.as_user("xena");
    let otp = xena.new_otp(json!({ "password": PASSWORD })).await;
    xena.refused_guesses(&wrong_password(), 3).await;
    xena.refused_guesses(&wrong_pin(), 4).await;
    for _ in 0..2 {
        assert_eq!(xena.verify("000000").await.status(), 404);
    }
    assert_eq!(
        app.attempt_counters("xena").await,
        [
            ("password".to_owned(), 3, false, false),
            ("pin".to_owned(), 4, true, false),
            ("otp".to_owned(), 2, false, false),
            ("phone".to_owned(), 0, false, false),
        ]
    );

    assert_eq!(xena.delete_user(&otp).await.status(), 202);
    assert_eq!(app.attempt_counters("xena").await, unlocked(0, 0, 0));
}
