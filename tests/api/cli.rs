//! The operator commands, run as the real binary.

use crate::support::process::{run_otpd, with_env};
use crate::support::*;
use serde_json::json;
use std::process::Output;

/// `otpd ARGS` with the app's settings, bounded in time.
fn otpd(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    run_otpd(&app.env, args, stdin)
}

/// Asserts that the command succeeded, showing its stderr if not; returns its stdout.
fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn set_password_and_set_pin_read_the_secret_from_stdin() {
    let app = TestApp::spawn().await;
    let password = "a password from stdin";
    succeeded(&otpd(
        &app,
        &["user", "set-password", "lena"],
        &format!("{password}\n"),
    ));
    succeeded(&otpd(&app, &["user", "set-pin", "lena"], "4378\n"));
    let lena = app.as_user("lena");
    assert_eq!(lena.create_otp_with_password(password).await.status(), 201);
    assert_eq!(lena.create_otp_with_pin("4378").await.status(), 201);
}

#[tokio::test]
async fn the_operator_commands_apply_the_policies() {
    let app = TestApp::spawn().await;
    let out = otpd(&app, &["user", "set-pin", "lena"], "1234\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run of digits"));
    let out = otpd(&app, &["user", "set-password", "lena"], "short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
}

#[tokio::test]
async fn check_config_prints_settings_without_secrets() {
    let app = TestApp::spawn().await;
    // A pepper whose content would stand out if printed, and a database password.
    let pepper = "pepper-canary-6c1f9e2a-would-show-if-printed-0123456789";
    let pepper_file = app.dir.path().join("canary-pepper");
    std::fs::write(&pepper_file, pepper).unwrap();
    let env = with_env(
        &app.env,
        "OTPD_PEPPER_FILE",
        &pepper_file.display().to_string(),
    );
    let env = with_env(
        &env,
        "OTPD_DATABASE_URL",
        "postgres://otpd:hunter2@db.internal/otpd",
    );
    let out = run_otpd(&env, &["check-config"], "");
    let text = succeeded(&out);
    assert!(text.contains("otp_digits = 6"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in ["hunter2", pepper] {
        assert!(
            !text.contains(secret) && !stderr.contains(secret),
            "{text}{stderr}"
        );
    }
    // It did read the pepper file: without one, check-config fails naming the setting.
    let missing = app.dir.path().join("no-such-pepper");
    let env = with_env(&env, "OTPD_PEPPER_FILE", &missing.display().to_string());
    let out = run_otpd(&env, &["check-config"], "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pepper_file") || stderr.contains("PEPPER"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_pepper_and_says_which_setting() {
    let app = TestApp::spawn().await;
    // Bounded: a `serve` that started after all would fail the test instead of hanging it.
    let env: Vec<_> = app
        .env
        .iter()
        .filter(|(k, _)| k != "OTPD_PEPPER_FILE")
        .cloned()
        .collect();
    let out = run_otpd(&env, &["serve"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OTPD_PEPPER_FILE"));
    let env = with_env(&app.env, "OTPD_OTP_TTL_SECONDS", "900");
    let out = run_otpd(&env, &["serve"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("otp_ttl_seconds"));
}

#[tokio::test]
async fn audit_prints_the_events_of_a_user_without_secrets() {
    let app = TestApp::spawn().await;
    app.set_password("otto", "correct horse battery").await;
    let otto = app.as_user("otto");
    let otp = otp_of(otto.create_otp_with_password("correct horse battery").await).await;
    let text = succeeded(&otpd(&app, &["audit", "otto"], ""));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("password.set"), "{text}");
    assert!(
        lines[1].contains("otp.issued") && lines[1].contains("factor=password"),
        "{text}"
    );
    assert!(!text.contains(&otp) && !text.contains("horse"), "{text}");
    let out = otpd(&app, &["audit", "otto", "--json"], "");
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["event"], "password.set");
    assert!(first["at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn user_show_and_unlock_report_and_clear_locks_without_secrets() {
    let app = TestApp::spawn().await;
    app.set_pin("rosa", "4378").await;
    for _ in 0..4 {
        app.create_otp("rosa", json!({"pin": "1235"})).await;
    }
    let text = succeeded(&otpd(&app, &["user", "show", "rosa"], ""));
    assert!(text.contains("password  not set  failures=0"), "{text}");
    assert!(text.contains("pin       set      failures=4"), "{text}");
    assert!(text.contains("locked for "), "{text}");
    // The scheme and pepper id of the hash, never the hash itself.
    assert!(
        text.contains("hash: argon2id m=256,t=1,p=1 pepper=p1"),
        "{text}"
    );
    assert!(!text.contains('$') && !text.contains("4378"), "{text}");
    assert_error(
        app.create_otp("rosa", json!({"pin": "4378"})).await,
        429,
        "credential-locked",
    )
    .await;

    succeeded(&otpd(
        &app,
        &["user", "unlock", "rosa", "--factor", "password"],
        "",
    ));
    assert_eq!(
        app.create_otp("rosa", json!({"pin": "4378"}))
            .await
            .status(),
        429,
        "unlocking another factor leaves the PIN locked"
    );
    succeeded(&otpd(
        &app,
        &["user", "unlock", "rosa", "--factor", "pin"],
        "",
    ));
    let text = succeeded(&otpd(&app, &["user", "show", "rosa"], ""));
    assert!(
        text.contains("pin       set      failures=0    open"),
        "{text}"
    );
    assert_eq!(
        app.create_otp("rosa", json!({"pin": "4378"}))
            .await
            .status(),
        201
    );
    let out = otpd(&app, &["user", "unlock", "rosa", "--factor", "face"], "");
    assert!(!out.status.success());
}
