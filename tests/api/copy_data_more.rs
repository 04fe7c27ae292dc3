//! `otpd copy-data` moves more than users, OTPs and audit: device TOTPs (with their last accepted
//! step), attempt counters and locks, and the per-user mail quota come along, and the PostgreSQL
//! deployment enforces them as the SQLite one did. Needs a PostgreSQL server to copy into.

use crate::support::*;
use otpd::domain::totp::{code_at, step_at};
use otpd::domain::{Subject, TotpAlgorithm, TotpSettings};
use otpd::service::{Clock, ManualClock};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const SUB: &str = "mover";
const PASSWORD: &str = "correct horse battery";
const PIN: &str = "4378";
const DEVICE: &str = "3e1b6c9d-7f2a-4c85-9b0e-6d4a2f8c1e57";
const JSON_API: &str = "application/vnd.api+json";
const HOUR_MS: i64 = 3_600_000;

fn millis(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// An app on `url` with mail configured. No request here gets as far as sending (the quota
/// refuses first), so the SMTP server (loopback port 9) need not exist.
async fn app_on(url: &str, clock: &Arc<ManualClock>, issuer: Option<Arc<TestIssuer>>) -> TestApp {
    let builder = TestApp::builder()
        .database_url(url)
        .clock(clock.clone())
        .env("OTPD_SMTP_URL", "smtp://127.0.0.1:9")
        .env("OTPD_MAIL_FROM", "otpd@otpd.test")
        .env("OTPD_MAIL_PER_HOUR", "2");
    match issuer {
        Some(issuer) => builder.issuer(issuer).spawn().await,
        None => builder.spawn().await,
    }
}

async fn sendmail(app: &TestApp) -> reqwest::Response {
    let mut claims = app.issuer.claims(SUB, ALL_SCOPES);
    claims["email"] = json!("mover@example.com");
    claims["email_verified"] = json!(true);
    app.http
        .post(app.url("/user/otp/sendmail"))
        .bearer_auth(app.issuer.sign_rs256(&claims))
        .send()
        .await
        .unwrap()
}

async fn verify(app: &TestApp, otp: &str) -> reqwest::Response {
    app.http
        .post(app.url("/user/otp/verify"))
        .bearer_auth(app.issuer.token(SUB))
        .json(&json!({ "otp": otp }))
        .send()
        .await
        .unwrap()
}

/// Enrols the device with the password and returns a function of time giving its code.
async fn enrol(app: &TestApp) -> impl Fn(i64) -> String + use<> {
    let doc = json!({"data": {"type": "deviceTOTP", "id": DEVICE,
        "attributes": {"password": PASSWORD}}});
    let res = app
        .http
        .post(app.url("/user/devices/totp"))
        .bearer_auth(app.issuer.token(SUB))
        .header("content-type", JSON_API)
        .header("accept", JSON_API)
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let doc: Value = res.json().await.unwrap();
    let a = doc["data"]["attributes"].clone();
    let secret = data_encoding::BASE32_NOPAD
        .decode(a["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    let settings = TotpSettings {
        period_secs: a["period"].as_u64().unwrap() as u32,
        digits: a["digits"].as_u64().unwrap() as u8,
        algorithm: TotpAlgorithm::parse(a["algorithm"].as_str().unwrap()).unwrap(),
    };
    move |unix_secs| code_at(&secret, settings, step_at(unix_secs, settings.period_secs))
}

#[tokio::test]
async fn copy_data_carries_devices_attempt_counters_and_mail_quotas_into_postgresql() {
    let Ok(pg) = std::env::var("OTPD_TEST_DATABASE_URL") else {
        eprintln!(
            "SKIPPED copy_data_carries_devices_attempt_counters_and_mail_quotas_into_postgresql: \
             needs OTPD_TEST_DATABASE_URL (a PostgreSQL server to copy into)"
        );
        return;
    };
    assert!(pg.starts_with("postgres"), "{pg}");
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}/old.db", dir.path().display());
    // Mid-step, so the device's codes never straddle a step boundary.
    let clock = Arc::new(ManualClock::new(
        time::OffsetDateTime::from_unix_timestamp(1_800_000_015).unwrap(),
    ));
    let now = clock.now().unix_timestamp();
    let old = app_on(&sqlite_url, &clock, None).await;
    let sub = Subject::parse(SUB).unwrap();
    old.set_password(SUB, PASSWORD).await;
    old.set_pin(SUB, PIN).await;

    // A device whose current step is spent.
    let code = enrol(&old).await;
    assert_eq!(verify(&old, &code(now)).await.status(), 204);
    // Counters: the PIN locked (4th failure: 30 s), two wrong passwords, two wrong OTPs.
    for _ in 0..4 {
        let res = old.create_otp(SUB, json!({ "pin": "1235" })).await;
        assert_eq!(res.status(), 422);
    }
    for _ in 0..2 {
        let res = old
            .create_otp(SUB, json!({ "password": "wrong horse battery" }))
            .await;
        assert_eq!(res.status(), 422);
        assert_eq!(verify(&old, "000000").await.status(), 404);
    }
    // The mail quota used up, as two mails would have done.
    let services = old.services().await;
    for _ in 0..2 {
        services
            .store
            .reserve_mail(&sub, millis(clock.now()), HOUR_MS, 2)
            .await
            .unwrap();
    }
    let res = sendmail(&old).await;
    assert_eq!(res.headers()["retry-after"], "3600");
    assert_error(res, 429, "mail-limit").await;
    let counters_before = services.attempt_states(&sub).await.unwrap();
    let devices_before = services.store.devices(&sub).await.unwrap();
    assert_eq!(devices_before.len(), 1);
    let issuer = Arc::clone(&old.issuer);
    old.stop().await;

    let target = fresh_database_url(dir.path()).await;
    let out = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(["copy-data", "--from", &sqlite_url])
        .env_clear()
        .env("OTPD_DATABASE_URL", &target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "device_totps: 1 rows",
        "attempts: 3 rows",
        "mail_quota: 1 rows",
    ] {
        assert!(stdout.contains(line), "`{line}` not in: {stdout}");
    }

    let new = app_on(&target, &clock, Some(issuer)).await;
    let services = new.services().await;
    assert_eq!(services.store.devices(&sub).await.unwrap(), devices_before);
    assert_eq!(
        services.attempt_states(&sub).await.unwrap(),
        counters_before
    );

    // Enforced as before: the PIN still locked for the same 30 s, without being checked...
    let res = new.create_otp(SUB, json!({ "pin": PIN })).await;
    assert_eq!(res.headers()["retry-after"], "30");
    assert_error(res, 429, "credential-locked").await;
    // ...the mail quota still used up until the same moment...
    let res = sendmail(&new).await;
    assert_eq!(res.headers()["retry-after"], "3600");
    assert_error(res, 429, "mail-limit").await;
    // ...the spent TOTP step still spent...
    let res = verify(&new, &code(now)).await;
    assert_error(res, 404, "invalid-otp").await;
    // ...and the device secret still opens (same pepper) for the next step.
    clock.advance(Duration::from_secs(30));
    let next = clock.now().unix_timestamp();
    assert_eq!(verify(&new, &code(next)).await.status(), 204);
    assert_eq!(
        new.create_otp(SUB, json!({ "pin": PIN })).await.status(),
        201
    );
}
