//! `OTPD_TOTP_KEY_FILE`: device TOTP secrets are encrypted under the key from that file (not the
//! pepper) when it is set; another key cannot open them (docs/credential-api.md: the device must
//! enrol again), and a key file that is too short stops start-up naming the setting.

use crate::support::*;
use otpd::domain::totp::{code_at, step_at};
use otpd::domain::{TotpAlgorithm, TotpSettings};
use otpd::service::{Clock, ManualClock};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY_VAR: &str = "OTPD_TOTP_KEY_FILE";
const PASSWORD: &str = "correct horse battery";
const DEVICE: &str = "9a4c1f3e-2b7d-4e8a-b1c6-0d5e7f9a2c48";
const JSON_API: &str = "application/vnd.api+json";

/// A moment in the middle of a 30 s step, so a code never straddles a step boundary.
fn fixed_clock() -> Arc<ManualClock> {
    let t = time::OffsetDateTime::from_unix_timestamp(1_800_000_015).unwrap();
    Arc::new(ManualClock::new(t))
}

fn key_file(dir: &Path, name: &str, contents: &[u8]) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

/// The secret and settings the device received.
struct Device {
    secret: Vec<u8>,
    settings: TotpSettings,
}

impl Device {
    fn code_at(&self, clock: &ManualClock) -> String {
        let step = step_at(clock.now().unix_timestamp(), self.settings.period_secs);
        code_at(&self.secret, self.settings, step)
    }
}

async fn enrol(app: &TestApp, sub: &str) -> Device {
    let doc = json!({"data": {"type": "deviceTOTP", "id": DEVICE,
        "attributes": {"password": PASSWORD}}});
    let res = app
        .http
        .post(app.url("/user/devices/totp"))
        .bearer_auth(app.issuer.token(sub))
        .header("content-type", JSON_API)
        .header("accept", JSON_API)
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let doc: Value = res.json().await.unwrap();
    let a = &doc["data"]["attributes"];
    Device {
        secret: data_encoding::BASE32_NOPAD
            .decode(a["secret"].as_str().unwrap().as_bytes())
            .unwrap(),
        settings: TotpSettings {
            period_secs: a["period"].as_u64().unwrap() as u32,
            digits: a["digits"].as_u64().unwrap() as u8,
            algorithm: TotpAlgorithm::parse(a["algorithm"].as_str().unwrap()).unwrap(),
        },
    }
}

async fn verify(app: &TestApp, sub: &str, otp: &str) -> reqwest::Response {
    app.http
        .post(app.url("/user/otp/verify"))
        .bearer_auth(app.issuer.token(sub))
        .json(&json!({ "otp": otp }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn device_secrets_open_only_under_the_key_file_they_were_sealed_with() {
    let dir = tempfile::tempdir().unwrap();
    let key_a = key_file(dir.path(), "key-a", &[b'a'; 48]);
    let key_b = key_file(dir.path(), "key-b", &[b'b'; 48]);
    let url = fresh_database_url(dir.path()).await;
    let clock = fixed_clock();
    // Every start shares the database, the issuer and the (fixed) test pepper; only the key differs.
    let first = TestApp::builder()
        .database_url(&url)
        .env(KEY_VAR, &key_a)
        .clock(clock.clone())
        .spawn()
        .await;
    let issuer = Arc::clone(&first.issuer);
    let start = |key: &str| {
        TestApp::builder()
            .database_url(&url)
            .issuer(Arc::clone(&issuer))
            .env(KEY_VAR, key)
            .clock(clock.clone())
            .spawn()
    };
    first.set_password("kai", PASSWORD).await;
    let device = enrol(&first, "kai").await;
    assert_eq!(
        verify(&first, "kai", &device.code_at(&clock))
            .await
            .status(),
        204
    );
    first.stop().await;

    // Under another key the device matches nothing: its code is just an invalid OTP...
    clock.advance(Duration::from_secs(30));
    let other = start(&key_b).await;
    let res = verify(&other, "kai", &device.code_at(&clock)).await;
    assert_error(res, 404, "invalid-otp").await;
    // ...while the rest of the user's credentials work as before.
    let res = other
        .create_otp("kai", json!({ "password": PASSWORD }))
        .await;
    assert_eq!(res.status(), 201);
    let otp = res.json::<Value>().await.unwrap()["otp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verify(&other, "kai", &otp).await.status(), 204);
    other.stop().await;

    // Nor does the pepper-derived key (no key file) open it: the key file really is the key. The
    // device names key id `t1`, which that start does not load: the check cannot be made (503),
    // rather than a wrong guess being counted against the user.
    clock.advance(Duration::from_secs(30));
    let pepper_only = start("").await;
    let res = verify(&pepper_only, "kai", &device.code_at(&clock)).await;
    assert_error(res, 503, "key-unavailable").await;
    pepper_only.stop().await;

    // The row was not damaged: back under key A the same device verifies again.
    clock.advance(Duration::from_secs(30));
    let again = start(&key_a).await;
    assert_eq!(
        verify(&again, "kai", &device.code_at(&clock))
            .await
            .status(),
        204
    );
    again.stop().await;

    // Under a new key, the device enrols again and works.
    clock.advance(Duration::from_secs(30));
    let rotated = start(&key_b).await;
    let device = enrol(&rotated, "kai").await;
    assert_eq!(
        verify(&rotated, "kai", &device.code_at(&clock))
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn a_key_file_of_32_bytes_is_enough_and_a_trailing_newline_is_not_part_of_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let with_newline = key_file(dir.path(), "key-nl", b"0123456789abcdef0123456789abcdef\n");
    let without = key_file(dir.path(), "key", b"0123456789abcdef0123456789abcdef");
    let url = fresh_database_url(dir.path()).await;
    let clock = fixed_clock();
    let first = TestApp::builder()
        .database_url(&url)
        .env(KEY_VAR, &with_newline)
        .clock(clock.clone())
        .spawn()
        .await;
    first.set_password("kim", PASSWORD).await;
    let device = enrol(&first, "kim").await;
    let second = TestApp::builder()
        .database_url(&url)
        .issuer(Arc::clone(&first.issuer))
        .env(KEY_VAR, &without)
        .clock(clock.clone())
        .spawn()
        .await;
    // Sealed under the file with the newline, opened under the one without: the same key.
    assert_eq!(
        verify(&second, "kim", &device.code_at(&clock))
            .await
            .status(),
        204
    );
}

/// Runs `otpd serve` with a configuration of its own (SQLite in `dir`, an issuer that is never
/// contacted) plus `extra`, and returns its exit status and standard error. The process must
/// stop by itself: a start-up refusal.
fn serve_refusal(dir: &Path, extra: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let pepper = key_file(
        dir,
        "pepper",
        b"test pepper: 32 bytes or more, never in the database",
    );
    let db = format!("sqlite://{}/refused.db", dir.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .arg("serve")
        .env_clear()
        .env("OTPD_LISTEN", "127.0.0.1:0")
        .env("OTPD_DATABASE_URL", &db)
        .env("OTPD_OIDC_ISSUER", "http://127.0.0.1:9")
        .env("OTPD_PEPPER_FILE", &pepper)
        .env("OTPD_ARGON2", TEST_ARGON2)
        .envs(extra.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("otpd serve started with {extra:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
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
