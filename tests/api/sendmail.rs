//! `POST /user/otp/sendmail`: an account OTP mailed over real SMTP (aiosmtpd on loopback).

use crate::support::mail::SmtpSink;
use crate::support::*;
use futures::future::join_all;
use otpd::service::{ManualClock, OtpKey};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const FROM: &str = "otpd <noreply@otpd.test>";

fn mail_builder(smtp_url: &str) -> TestAppBuilder {
    TestApp::builder()
        .env("OTPD_SMTP_URL", smtp_url)
        .env("OTPD_MAIL_FROM", FROM)
}

async fn mail_app(smtp_url: &str) -> TestApp {
    mail_builder(smtp_url).spawn().await
}

/// A sink that accepts every message, or the end of the test (skipped; failed under CI).
macro_rules! smtp_sink {
    ($start:expr) => {
        match $start.await {
            Some(sink) => sink,
            None => skip!(tool: "{}", SmtpSink::MISSING),
        }
    };
}

/// The digests of the user's stored OTPs, straight from the database.
async fn stored(app: &TestApp, sub: &str) -> Vec<Vec<u8>> {
    stored_otp_digests(&app.database_url, sub).await
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
    let mut smtp = smtp_sink!(SmtpSink::start());
    let app = mail_app(&smtp.url()).await;
    let mia = app
        .as_user("mia")
        .with_claims(json!({"email": "mia@example.com", "email_verified": true}));
    let res = mia.sendmail().await;
    assert_eq!(res.status(), 204);
    assert!(res.headers().contains_key("request-id"));

    let mail = smtp.next_message().await;
    assert_eq!(mail.to, vec!["mia@example.com".to_owned()]);
    assert_eq!(mail.from, "noreply@otpd.test");
    for part in [
        "Subject: Your one-time password",
        "text/plain",
        "for 5 minutes, until ",
    ] {
        assert!(mail.data.contains(part), "{part} in {}", mail.data);
    }
    let code = code_in(&mail.data);
    assert_eq!(code.len(), 6, "{}", mail.data);

    // The code in the mail is exactly the OTP the service stored for this user.
    let key = OtpKey::derive(&app.config().hashing.read_pepper().unwrap());
    assert_eq!(stored(&app, "mia").await, vec![key.digest("mia", &code)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_mailed_code_verifies_exactly_once_under_parallel_redemption() {
    let mut smtp = smtp_sink!(SmtpSink::start());
    let app = mail_builder(&smtp.url()).admitting_bursts().spawn().await;
    let ana = app
        .as_user("ana")
        .with_claims(json!({"email": "ana@example.com", "email_verified": true}));
    assert_eq!(ana.sendmail().await.status(), 204);
    let code = code_in(&smtp.next_message().await.data);
    // Five at once: four failures stay below the OTP attempt limit, so every loser is a plain 404.
    let answers = join_all((0..5).map(|_| ana.verify(&code))).await;
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
    let metrics = app.metrics_text().await;
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
        // A provider that does not say the address is verified has not vouched for it.
        (json!({"email": "ida@example.com"}), "email-not-verified"),
        (
            json!({"email": "ida@example.com", "email_verified": null}),
            "email-not-verified",
        ),
        (
            json!({"email": "ida@example.com", "email_verified": 1}),
            "email-not-verified",
        ),
        (
            json!({"email": "not an address", "email_verified": true}),
            "email-invalid",
        ),
        (
            json!({"email": "ida@example.com\r\nBcc: x@evil.test", "email_verified": true}),
            "email-invalid",
        ),
    ] {
        let res = app.as_user("ida").with_claims(extra).sendmail().await;
        assert_error(res, 422, code).await;
    }
    assert!(stored(&app, "ida").await.is_empty());
}

#[tokio::test]
async fn a_refused_mail_is_a_503_and_leaves_no_valid_otp() {
    let smtp = smtp_sink!(SmtpSink::rejecting());
    let app = mail_app(&smtp.url()).await;
    let kai = app
        .as_user("kai")
        .with_claims(json!({"email": "kai@example.com", "email_verified": true}));
    let res = kai.sendmail().await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 503, "mail-failed").await;
    assert!(stored(&app, "kai").await.is_empty());
    let events = app.audit_events("kai").await;
    assert_eq!(events, vec!["otp.issued", "otp.revoked"]);
}

#[tokio::test]
async fn starttls_required_refuses_a_server_that_does_not_offer_it() {
    let smtp = smtp_sink!(SmtpSink::start());
    let app = mail_app(&format!("smtp://127.0.0.1:{}?tls=required", smtp.port)).await;
    let eva = app
        .as_user("eva")
        .with_claims(json!({"email": "eva@example.com", "email_verified": true}));
    assert_error(eva.sendmail().await, 503, "mail-failed").await;
    assert!(stored(&app, "eva").await.is_empty());
}

#[tokio::test]
async fn without_an_smtp_server_the_endpoint_says_so() {
    let app = TestApp::spawn().await;
    let lio = app
        .as_user("lio")
        .with_claims(json!({"email": "lio@example.com", "email_verified": true}));
    assert_error(lio.sendmail().await, 503, "mail-not-configured").await;
    assert!(stored(&app, "lio").await.is_empty());
}

#[tokio::test]
async fn it_needs_the_otp_create_scope() {
    let app = mail_app("smtp://127.0.0.1:9").await;
    app.assert_guarded("user:otp:verify", |u| u.post("/user/otp/sendmail"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_never_exceed_the_hourly_mail_limit() {
    let mut smtp = smtp_sink!(SmtpSink::start());
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = mail_builder(&smtp.url())
        .env("OTPD_MAIL_PER_HOUR", "3")
        .env("OTPD_OTP_MAX_LIVE", "10")
        .admitting_bursts()
        .clock(clock.clone())
        .spawn()
        .await;
    let ada = app
        .as_user("ada")
        .with_claims(json!({"email": "ada@example.com", "email_verified": true}));
    let answers = join_all((0..12).map(|_| ada.sendmail())).await;
    let mut sent = 0;
    let mut limited = 0;
    for res in answers {
        match res.status().as_u16() {
            204 => sent += 1,
            429 => {
                // The clock stands still: the hour's window began with the first mail, now.
                assert_eq!(res.headers()["retry-after"], "3600");
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
    assert_eq!(stored(&app, "ada").await.len(), 3);

    // Another user has a limit of their own; an hour later the first may ask again.
    let bea = app
        .as_user("bea")
        .with_claims(json!({"email": "bea@example.com", "email_verified": true}));
    assert_eq!(bea.sendmail().await.status(), 204);
    assert_error(ada.sendmail().await, 429, "mail-limit").await;
    clock.advance(Duration::from_secs(3600));
    assert_eq!(ada.sendmail().await.status(), 204);
}
