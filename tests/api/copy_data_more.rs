//! `otpd copy-data` moves more than users, OTPs and audit: device TOTPs (with their last accepted
//! step), attempt counters and locks, and the per-user mail quota come along, and the PostgreSQL
//! deployment enforces them as the SQLite one did. Needs a PostgreSQL server to copy into.

use crate::support::process::run_otpd_ok;
use crate::support::*;
use otpd::domain::Subject;
use otpd::service::{Clock, ManualClock};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const SUB: &str = "mover";
const PIN: &str = "4378";
const DEVICE: &str = "3e1b6c9d-7f2a-4c85-9b0e-6d4a2f8c1e57";
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

/// The mover, with a token that carries a verified address to mail to.
fn mover(app: &TestApp) -> User<'_> {
    app.as_user(SUB)
        .with_claims(json!({ "email": "mover@example.com", "email_verified": true }))
}

#[tokio::test]
async fn copy_data_carries_devices_attempt_counters_and_mail_quotas_into_postgresql() {
    let Ok(pg) = std::env::var("OTPD_TEST_DATABASE_URL") else {
        skip!("needs OTPD_TEST_DATABASE_URL (a PostgreSQL server to copy into)")
    };
    assert!(pg.starts_with("postgres"), "{pg}");
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}/old.db", dir.path().display());
    // Mid-step, so the device's codes never straddle a step boundary.
    let clock = mid_step_clock();
    let now = clock.now().unix_timestamp();
    let old = app_on(&sqlite_url, &clock, None).await;
    let sub = Subject::parse(SUB).unwrap();
    old.set_pin(SUB, PIN).await;
    let user = mover(&old);

    // A device whose current step is spent.
    let device = old.device_secret(SUB, DEVICE).await;
    assert_eq!(user.verify(&device.code(now, 0)).await.status(), 204);
    // Counters: the PIN locked (4th failure: 30 s), two wrong passwords, two wrong OTPs.
    user.refused_guesses(&json!({ "pin": "1235" }), 4).await;
    for _ in 0..2 {
        let res = user.create_otp_with_password("wrong horse battery").await;
        assert_eq!(res.status(), 422);
        assert_eq!(user.verify("000000").await.status(), 404);
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
    let res = user.sendmail().await;
    assert_eq!(res.headers()["retry-after"], "3600");
    assert_error(res, 429, "mail-limit").await;
    let counters_before = services.attempt_states(&sub).await.unwrap();
    let devices_before = services.store.devices(&sub).await.unwrap();
    assert_eq!(devices_before.len(), 1);
    let issuer = Arc::clone(&old.issuer);
    old.stop().await;

    let target = fresh_database_url(dir.path()).await;
    let env = [("OTPD_DATABASE_URL".to_owned(), target.clone())];
    let out = run_otpd_ok(&env, &["copy-data", "--from", &sqlite_url], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "device_totps: 1 rows",
        "attempts: 3 rows",
        "mail_quota: 1 rows",
    ] {
        assert!(stdout.contains(line), "`{line}` not in: {stdout}");
    }

    let new = app_on(&target, &clock, Some(issuer)).await;
    let user = mover(&new);
    let services = new.services().await;
    assert_eq!(services.store.devices(&sub).await.unwrap(), devices_before);
    assert_eq!(
        services.attempt_states(&sub).await.unwrap(),
        counters_before
    );

    // Enforced as before: the PIN still locked for the same 30 s, without being checked...
    let res = user.create_otp_with_pin(PIN).await;
    assert_eq!(res.headers()["retry-after"], "30");
    assert_error(res, 429, "credential-locked").await;
    // ...the mail quota still used up until the same moment...
    let res = user.sendmail().await;
    assert_eq!(res.headers()["retry-after"], "3600");
    assert_error(res, 429, "mail-limit").await;
    // ...the spent TOTP step still spent...
    let res = user.verify(&device.code(now, 0)).await;
    assert_error(res, 404, "invalid-otp").await;
    // ...and the device secret still opens (same pepper) for the next step.
    clock.advance(Duration::from_secs(30));
    let next = clock.now().unix_timestamp();
    assert_eq!(user.verify(&device.code(next, 0)).await.status(), 204);
    assert_eq!(user.create_otp_with_pin(PIN).await.status(), 201);
}
