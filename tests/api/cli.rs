//! The operator commands, run as the real binary.

use crate::support::*;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

fn otpd(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    otpd_with_env(app.env.clone(), args, stdin)
}

fn otpd_with_env(env: Vec<(String, String)>, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(args)
        .env_clear()
        .envs(env)
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
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn set_password_and_set_pin_read_the_secret_from_stdin() {
    let app = TestApp::spawn().await;
    let out = otpd(
        &app,
        &["user", "set-password", "lena"],
        "a password from stdin\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = otpd(&app, &["user", "set-pin", "lena"], "4378\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        app.create_otp("lena", json!({"password": "a password from stdin"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.create_otp("lena", json!({"pin": "4378"}))
            .await
            .status(),
        201
    );
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
    let mut env = app.env.clone();
    env.push((
        "OTPD_DATABASE_URL".into(),
        "postgres://otpd:hunter2@db.internal/otpd".into(),
    ));
    let out = otpd_with_env(env, &["check-config"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("otp_digits = 6"));
    assert!(!text.contains("hunter2"));
    assert!(!text.contains("test pepper"));
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_pepper_and_says_which_setting() {
    let app = TestApp::spawn().await;
    let mut env = app.env.clone();
    env.retain(|(k, _)| k != "OTPD_PEPPER_FILE");
    let out = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .arg("serve")
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OTPD_PEPPER_FILE"));
    let mut env = app.env.clone();
    env.push(("OTPD_OTP_TTL_SECONDS".into(), "900".into()));
    let out = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .arg("serve")
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("otp_ttl_seconds"));
}

#[tokio::test]
async fn audit_prints_the_events_of_a_user_without_secrets() {
    let app = TestApp::spawn().await;
    app.set_password("otto", "correct horse battery").await;
    let res = app
        .create_otp("otto", json!({"password": "correct horse battery"}))
        .await;
    let otp = res.json::<serde_json::Value>().await.unwrap()["otp"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = otpd(&app, &["audit", "otto"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
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
    let out = otpd(&app, &["user", "show", "rosa"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("password  not set  failures=0"), "{text}");
    assert!(text.contains("pin       set      failures=4"), "{text}");
    assert!(text.contains("locked for "), "{text}");
    assert!(!text.contains("argon2") && !text.contains("4378"), "{text}");
    assert_error(
        app.create_otp("rosa", json!({"pin": "4378"})).await,
        429,
        "credential-locked",
    )
    .await;

    let out = otpd(
        &app,
        &["user", "unlock", "rosa", "--factor", "password"],
        "",
    );
    assert!(out.status.success());
    assert_eq!(
        app.create_otp("rosa", json!({"pin": "4378"}))
            .await
            .status(),
        429,
        "unlocking another factor leaves the PIN locked"
    );
    let out = otpd(&app, &["user", "unlock", "rosa", "--factor", "pin"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text =
        String::from_utf8_lossy(&otpd(&app, &["user", "show", "rosa"], "").stdout).into_owned();
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
