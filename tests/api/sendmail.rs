//! `POST /user/otp/sendmail`: an account OTP mailed over real SMTP (aiosmtpd on loopback).

use crate::smtp::SmtpSink;
use crate::support::*;
use futures::future::join_all;
use otpd::service::{ManualClock, OtpKey};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const FROM: &str = "otpd <noreply@otpd.test>";

async fn mail_app(smtp_url: &str) -> TestApp {
    TestApp::builder()
        .env("OTPD_SMTP_URL", smtp_url)
        .env("OTPD_MAIL_FROM", FROM)
        .spawn()
        .await
}

/// A token for `sub` with every scope and the given extra claims.
fn token_with(app: &TestApp, sub: &str, extra: Value) -> String {
    let mut claims = app.issuer.claims(sub, ALL_SCOPES);
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    app.issuer.sign_rs256(&claims)
}

async fn sendmail(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/user/otp/sendmail"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The digests of the user's stored OTPs, straight from the database.
pub async fn stored_otp_digests(app: &TestApp, sub: &str) -> Vec<Vec<u8>> {
    let sql = "SELECT digest FROM otps WHERE sub = $1 AND used_at IS NULL ORDER BY id";
    if is_sqlite(&app.database_url) {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(sql)
            .bind(sub)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(sql)
            .bind(sub)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    }
}

/// The code in a mail body: the digits after "is: ".
pub fn code_in(mail: &str) -> String {
    let after = mail
        .split_once("one-time password is: ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no code in {mail}"));
    after.chars().take_while(char::is_ascii_digit).collect()
}

#[tokio::test]
async fn the_mailed_code_is_a_live_otp_of_the_user_and_states_its_expiry() {
    let mut smtp = SmtpSink::start().await;
    let app = mail_app(&smtp.url()).await;
    let token = token_with(
        &app,
        "mia",
        json!({"email": "mia@example.com", "email_verified": true}),
    );
    let res = sendmail(&app, &token).await;
    assert_eq!(res.status(), 204);
    assert!(res.headers().contains_key("request-id"));

    let mail = smtp.next_message().await;
    assert_eq!(mail.to, vec!["mia@example.com".to_owned()]);
    assert_eq!(mail.from, "noreply@otpd.test");
    assert!(
        mail.data.contains("Subject: Your one-time password"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("text/plain"), "{}", mail.data);
    assert!(mail.data.contains("for 5 minutes, until "), "{}", mail.data);
    let code = code_in(&mail.data);
    assert_eq!(code.len(), 6, "{}", mail.data);

    // The code in the mail is exactly the OTP the service stored for this user.
    let key = OtpKey::derive(&app.config().hashing.read_pepper().unwrap());
    let digests = stored_otp_digests(&app, "mia").await;
    assert_eq!(digests, vec![key.digest("mia", &code)]);
}

#[tokio::test]
async fn the_mailed_code_verifies_exactly_once_under_parallel_redemption() {
    let mut smtp = SmtpSink::start().await;
    let app = mail_app(&smtp.url()).await;
    let token = token_with(&app, "ana", json!({"email": "ana@example.com"}));
    assert_eq!(sendmail(&app, &token).await.status(), 204);
    let code = code_in(&smtp.next_message().await.data);
    // Five at once: four failures stay below the OTP attempt limit, so every loser is a plain 404.
    let answers = join_all((0..5).map(|_| app.verify("ana", json!({"otp": code})))).await;
    let mut accepted = 0;
    for res in answers {
        match res.status().as_u16() {
            204 => accepted += 1,
            _ => {
                assert_error(res, 404, "invalid-otp").await;
            }
        }
    }
    assert_eq!(accepted, 1);
    let metrics = reqwest::get(app.root_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "otpd_otps_issued_total{via=\"mail\"} 1",
        "otpd_mails_total{result=\"sent\"} 1",
        "otpd_otps_redeemed_total 1",
        "otpd_otps_refused_total 4",
        "otpd_credential_failures_total{factor=\"otp\"} 4",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_missing_or_unverified_address_is_refused_and_nothing_is_issued() {
    let app = mail_app("smtp://127.0.0.1:9").await;
    for (extra, code) in [
        (json!({}), "email-missing"),
        (json!({"email_verified": true}), "email-missing"),
        (
            json!({"email": "ida@example.com", "email_verified": false}),
            "email-not-verified",
        ),
        (
            json!({"email": "ida@example.com", "email_verified": "false"}),
            "email-not-verified",
        ),
        (
            json!({"email": "not an address", "email_verified": true}),
            "email-invalid",
        ),
        (
            json!({"email": "ida@example.com\r\nBcc: x@evil.test"}),
            "email-invalid",
        ),
    ] {
        let res = sendmail(&app, &token_with(&app, "ida", extra.clone())).await;
        assert_error(res, 422, code).await;
    }
    assert!(stored_otp_digests(&app, "ida").await.is_empty());
}

#[tokio::test]
async fn an_absent_email_verified_claim_is_not_a_refusal() {
    let mut smtp = SmtpSink::start().await;
    let app = mail_app(&smtp.url()).await;
    let res = sendmail(
        &app,
        &token_with(&app, "ole", json!({"email": "ole@example.com"})),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        smtp.next_message().await.to,
        vec!["ole@example.com".to_owned()]
    );
}

#[tokio::test]
async fn a_refused_mail_is_a_503_and_leaves_no_valid_otp() {
    let smtp = SmtpSink::rejecting().await;
    let app = mail_app(&smtp.url()).await;
    let token = token_with(&app, "kai", json!({"email": "kai@example.com"}));
    let res = sendmail(&app, &token).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 503, "mail-failed").await;
    assert!(stored_otp_digests(&app, "kai").await.is_empty());
    let events: Vec<String> = app
        .services()
        .await
        .store
        .audit_events(&otpd::domain::Subject::parse("kai").unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, vec!["otp.issued", "otp.revoked"]);
}

#[tokio::test]
async fn starttls_required_refuses_a_server_that_does_not_offer_it() {
    let smtp = SmtpSink::start().await;
    let app = mail_app(&format!("smtp://127.0.0.1:{}?tls=required", smtp.port)).await;
    let token = token_with(&app, "eva", json!({"email": "eva@example.com"}));
    assert_error(sendmail(&app, &token).await, 503, "mail-failed").await;
    assert!(stored_otp_digests(&app, "eva").await.is_empty());
}

#[tokio::test]
async fn without_an_smtp_server_the_endpoint_says_so() {
    let app = TestApp::spawn().await;
    let token = token_with(&app, "lio", json!({"email": "lio@example.com"}));
    assert_error(sendmail(&app, &token).await, 503, "mail-not-configured").await;
    assert!(stored_otp_digests(&app, "lio").await.is_empty());
}

#[tokio::test]
async fn it_needs_the_otp_create_scope() {
    let app = mail_app("smtp://127.0.0.1:9").await;
    let mut claims = app.issuer.claims("max", "user:otp:verify");
    claims["email"] = json!("max@example.com");
    let res = sendmail(&app, &app.issuer.sign_rs256(&claims)).await;
    assert_error(res, 403, "insufficient-scope").await;
    assert_error(
        app.http
            .post(app.url("/user/otp/sendmail"))
            .send()
            .await
            .unwrap(),
        401,
        "missing-token",
    )
    .await;
}

#[tokio::test]
async fn parallel_requests_never_exceed_the_hourly_mail_limit() {
    let mut smtp = SmtpSink::start().await;
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::builder()
        .env("OTPD_SMTP_URL", &smtp.url())
        .env("OTPD_MAIL_FROM", FROM)
        .env("OTPD_MAIL_PER_HOUR", "3")
        .env("OTPD_OTP_MAX_LIVE", "10")
        .clock(clock.clone())
        .spawn()
        .await;
    let token = token_with(&app, "ada", json!({"email": "ada@example.com"}));
    let answers = join_all((0..12).map(|_| sendmail(&app, &token))).await;
    let mut sent = 0;
    let mut limited = 0;
    for res in answers {
        match res.status().as_u16() {
            204 => sent += 1,
            429 => {
                let wait: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=3600).contains(&wait), "{wait}");
                assert_error(res, 429, "mail-limit").await;
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((sent, limited), (3, 9));
    for _ in 0..3 {
        smtp.next_message().await;
    }
    assert_eq!(stored_otp_digests(&app, "ada").await.len(), 3);

    // Another user has a limit of their own; an hour later the first may ask again.
    let other = token_with(&app, "bea", json!({"email": "bea@example.com"}));
    assert_eq!(sendmail(&app, &other).await.status(), 204);
    assert_error(sendmail(&app, &token).await, 429, "mail-limit").await;
    clock.advance(Duration::from_secs(3600));
    assert_eq!(sendmail(&app, &token).await.status(), 204);
}
