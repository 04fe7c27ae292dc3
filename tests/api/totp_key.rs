//! `OTPD_TOTP_KEY_FILE`: device TOTP secrets are encrypted under the key from that file (not the
//! pepper) when it is set; another key cannot open them (docs/credential-api.md: the device must
//! enrol again), and a key file that is too short stops start-up naming the setting.

use crate::support::process::run_otpd;
use crate::support::*;
use otpd::service::{Clock, ManualClock};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const KEY_VAR: &str = "OTPD_TOTP_KEY_FILE";
const DEVICE: &str = "9a4c1f3e-2b7d-4e8a-b1c6-0d5e7f9a2c48";

fn key_file(dir: &Path, name: &str, contents: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

/// An app on `url` whose TOTP key file is `key` (empty: none, the pepper-derived key), with
/// `issuer` if given, else a new one.
async fn app_under(
    url: &str,
    key: &str,
    clock: &Arc<ManualClock>,
    issuer: Option<&Arc<TestIssuer>>,
) -> TestApp {
    let builder = TestApp::builder()
        .database_url(url)
        .env(KEY_VAR, key)
        .clock(clock.clone());
    match issuer {
        Some(issuer) => builder.issuer(Arc::clone(issuer)).spawn().await,
        None => builder.spawn().await,
    }
}

/// `POST /user/otp/verify` by `sub` of the device's code at the clock's now.
async fn verify_device(
    app: &TestApp,
    sub: &str,
    device: &DeviceSecret,
    clock: &ManualClock,
) -> reqwest::Response {
    let code = device.code(clock.now().unix_timestamp(), 0);
    app.as_user(sub).verify(&code).await
}

/// Checks that the device's code at the clock's now verifies for `sub` (204).
async fn assert_device_opens(app: &TestApp, sub: &str, device: &DeviceSecret, clock: &ManualClock) {
    let res = verify_device(app, sub, device, clock).await;
    assert_eq!(res.status(), 204, "{sub}'s device code");
}

#[tokio::test]
async fn device_secrets_open_only_under_the_key_file_they_were_sealed_with() {
    let dir = tempfile::tempdir().unwrap();
    let key_a = key_file(dir.path(), "key-a", &[b'a'; 48]);
    let key_b = key_file(dir.path(), "key-b", &[b'b'; 48]);
    let url = fresh_database_url(dir.path()).await;
    let clock = mid_step_clock();
    // Every start shares the database, the issuer and the (fixed) test pepper; only the key differs.
    let first = app_under(&url, &key_a, &clock, None).await;
    let issuer = Arc::clone(&first.issuer);
    let device = first.device_secret("kai", DEVICE).await;
    assert_device_opens(&first, "kai", &device, &clock).await;
    first.stop().await;

    // Under another key the device matches nothing: its code is just an invalid OTP...
    clock.advance(Duration::from_secs(30));
    let other = app_under(&url, &key_b, &clock, Some(&issuer)).await;
    let res = verify_device(&other, "kai", &device, &clock).await;
    assert_error(res, 404, "invalid-otp").await;
    // ...while the rest of the user's credentials work as before.
    let kai = other.as_user("kai");
    let otp = otp_of(kai.create_otp_with_password(PASSWORD).await).await;
    assert_eq!(kai.verify(&otp).await.status(), 204);
    other.stop().await;

    // Nor does the pepper-derived key (no key file) open it: the key file really is the key. The
    // device names key id `t1`, which that start does not load: the check cannot be made (503),
    // rather than a wrong guess being counted against the user.
    clock.advance(Duration::from_secs(30));
    let pepper_only = app_under(&url, "", &clock, Some(&issuer)).await;
    let res = verify_device(&pepper_only, "kai", &device, &clock).await;
    assert_error(res, 503, "key-unavailable").await;
    pepper_only.stop().await;

    // The row was not damaged: back under key A the same device verifies again.
    clock.advance(Duration::from_secs(30));
    let again = app_under(&url, &key_a, &clock, Some(&issuer)).await;
    assert_device_opens(&again, "kai", &device, &clock).await;
    again.stop().await;

    // Under a new key, the device enrols again and works.
    clock.advance(Duration::from_secs(30));
    let rotated = app_under(&url, &key_b, &clock, Some(&issuer)).await;
    let device = rotated.device_secret("kai", DEVICE).await;
    assert_device_opens(&rotated, "kai", &device, &clock).await;
}

#[tokio::test]
async fn a_key_file_of_32_bytes_is_enough_and_a_trailing_newline_is_not_part_of_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let with_newline = key_file(dir.path(), "key-nl", b"0123456789abcdef0123456789abcdef\n");
    let without = key_file(dir.path(), "key", b"0123456789abcdef0123456789abcdef");
    let url = fresh_database_url(dir.path()).await;
    let clock = mid_step_clock();
    let first = app_under(&url, &with_newline, &clock, None).await;
    let device = first.device_secret("kim", DEVICE).await;
    let second = app_under(&url, &without, &clock, Some(&first.issuer)).await;
    // Sealed under the file with the newline, opened under the one without: the same key.
    assert_device_opens(&second, "kim", &device, &clock).await;
}

/// Runs `otpd serve` with a configuration of its own (SQLite in `dir`, an issuer that is never
/// contacted) plus `extra`, and returns its exit status and standard error. The process must
/// stop by itself (a start-up refusal): one that serves fails the test when `run_otpd`'s bound
/// runs out.
fn serve_refusal(dir: &Path, extra: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let pepper = key_file(
        dir,
        "pepper",
        b"test pepper: 32 bytes or more, never in the database",
    );
    let mut env: Vec<(String, String)> = [
        ("OTPD_LISTEN", "127.0.0.1:0".to_owned()),
        (
            "OTPD_DATABASE_URL",
            format!("sqlite://{}/refused.db", dir.display()),
        ),
        ("OTPD_OIDC_ISSUER", "http://127.0.0.1:9".to_owned()),
        ("OTPD_ALLOW_INSECURE_IDP_URLS", "true".to_owned()),
        ("OTPD_AUDIENCE", "any".to_owned()),
        ("OTPD_PEPPER_FILE", pepper),
        ("OTPD_ARGON2", TEST_ARGON2.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let out = run_otpd(&env, &["serve"], "");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_key_file_that_is_short_or_missing_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let short = key_file(dir.path(), "short", &[b'k'; 31]);
    // 32 bytes in the file, but the newline is not key material.
    let short_with_newline = key_file(dir.path(), "short-nl", b"0123456789abcdef0123456789abcde\n");
    let missing = dir.path().join("missing").display().to_string();
    for key in [&short, &short_with_newline, &missing] {
        let (status, stderr) = serve_refusal(dir.path(), &[(KEY_VAR, key)]);
        assert!(!status.success(), "{key}");
        assert!(
            stderr.contains("`totp_key_file`") && stderr.contains(KEY_VAR),
            "{key}: {stderr}"
        );
        assert!(
            !stderr.contains("kkkkkkkk") && !stderr.contains("0123456789abcde"),
            "no key material in the message: {stderr}"
        );
    }
}
