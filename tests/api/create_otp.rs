//! `POST /user/otp`: the seed's endpoint, every row of its response list.

use crate::support::*;
use serde_json::{Value, json};

fn assert_pace_datetime(s: &str) {
    let b = s.as_bytes();
    assert_eq!(b.len(), 20, "{s}");
    for (i, c) in b.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-', "{s}"),
            10 => assert_eq!(*c, b'T', "{s}"),
            13 | 16 => assert_eq!(*c, b':', "{s}"),
            19 => assert_eq!(*c, b'Z', "{s}"),
            _ => assert!(c.is_ascii_digit(), "{s}"),
        }
    }
}

async fn assert_created(res: reqwest::Response, digits: usize) -> String {
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.headers().contains_key("request-id"));
    let body: Value = res.json().await.unwrap();
    let otp = body["otp"].as_str().expect("otp is a string").to_owned();
    assert_eq!(otp.len(), digits, "{body}");
    assert!(otp.bytes().all(|b| b.is_ascii_digit()), "{body}");
    assert_pace_datetime(body["expiresAt"].as_str().unwrap());
    otp
}

#[tokio::test]
async fn a_valid_password_gives_an_otp_that_expires_in_five_minutes() {
    let app = TestApp::spawn().await;
    app.set_password("alice", PASSWORD).await;
    // `expiresAt` is the issue time plus 300 s, rounded down to the second (docs/decisions.md):
    // the issue time lies between these two readings of the clock.
    let whole_seconds = |t: time::OffsetDateTime| t.replace_nanosecond(0).unwrap();
    let before = whole_seconds(time::OffsetDateTime::now_utc());
    let res = app
        .as_user("alice")
        .create_otp_with_password(PASSWORD)
        .await;
    let after = whole_seconds(time::OffsetDateTime::now_utc());
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let expires = time::OffsetDateTime::parse(
        body["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = time::Duration::seconds(300);
    assert!(
        before + ttl <= expires && expires <= after + ttl,
        "{expires} not within [{}, {}]",
        before + ttl,
        after + ttl
    );
}

#[tokio::test]
async fn a_valid_pin_gives_an_otp_of_digits() {
    let app = TestApp::spawn().await;
    app.set_pin("bob", "4378").await;
    assert_created(app.create_otp("bob", json!({"pin": "4378"})).await, 6).await;
}

#[tokio::test]
async fn the_password_is_checked_first_and_one_valid_factor_is_enough() {
    let app = TestApp::spawn().await;
    app.set_password("carol", PASSWORD).await;
    app.set_pin("carol", "1235").await;
    let wrong_password_right_pin = json!({"password": "wrong horse battery", "pin": "1235"});
    assert_created(app.create_otp("carol", wrong_password_right_pin).await, 6).await;
    let right_password_wrong_pin = json!({"password": PASSWORD, "pin": "9999"});
    assert_created(app.create_otp("carol", right_password_wrong_pin).await, 6).await;
    let both_wrong = json!({"password": "wrong horse battery", "pin": "9999"});
    assert_error(
        app.create_otp("carol", both_wrong).await,
        422,
        "invalid-credentials",
    )
    .await;
    // Both factors were checked, password first.
    let events = app.audit_events("carol").await;
    assert_eq!(
        &events[events.len() - 2..],
        ["password.refused", "pin.refused"]
    );
}

#[tokio::test]
async fn a_wrong_pin_is_422_invalid_credentials() {
    let app = TestApp::spawn().await;
    app.set_pin("dave", "1012").await;
    assert_error(
        app.create_otp("dave", json!({"pin": "1013"})).await,
        422,
        "invalid-credentials",
    )
    .await;
}

#[tokio::test]
async fn factors_that_are_not_set_are_404() {
    let app = TestApp::spawn().await;
    assert_error(
        app.create_otp("nobody", json!({"pin": "1235"})).await,
        404,
        "credential-not-set",
    )
    .await;
    app.set_pin("erin", "1235").await;
    // Only a password offered, and erin has none.
    let res = app.create_otp("erin", json!({"password": PASSWORD})).await;
    assert_error(res, 404, "credential-not-set").await;
    // A set factor that is wrong outweighs one that is not set.
    let res = app
        .create_otp("erin", json!({"password": PASSWORD, "pin": "1236"}))
        .await;
    assert_error(res, 422, "invalid-credentials").await;
}

#[tokio::test]
async fn otp_digits_follow_the_configuration() {
    let app = TestApp::builder().env("OTPD_OTP_DIGITS", "8").spawn().await;
    app.set_pin("frank", "1235").await;
    assert_created(app.create_otp("frank", json!({"pin": "1235"})).await, 8).await;
}

#[tokio::test]
async fn each_request_gets_a_fresh_otp() {
    // A user never holds two equal live codes (a collision draws again), and every code issued
    // stays live while no more than otp_max_live are.
    let app = TestApp::builder()
        .env("OTPD_OTP_MAX_LIVE", "5")
        .spawn()
        .await;
    app.set_pin("gina", "1235").await;
    let gina = app.as_user("gina");
    let mut codes = vec![];
    for _ in 0..5 {
        codes.push(assert_created(gina.create_otp_with_pin("1235").await, 6).await);
    }
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 5, "a live code repeats: {codes:?}");
    for code in &codes {
        assert_eq!(gina.verify(code).await.status(), 204, "{code} of {codes:?}");
    }
}

#[tokio::test]
async fn the_otp_is_never_stored_or_logged_in_clear() {
    // Long codes and PINs, so that no log timestamp or latency can contain them by chance.
    let app = TestApp::builder()
        .env("OTPD_OTP_DIGITS", "10")
        .env("OTPD_PIN_LENGTH", "12")
        .spawn()
        .await;
    app.set_password("hank", "hank's secret password").await;
    app.set_pin("hank", "829961730458").await;
    let mut codes = vec![];
    for body in [
        json!({"password": "hank's secret password"}),
        json!({"pin": "829961730458"}),
    ] {
        let res = app.create_otp("hank", body).await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        codes.push(body["otp"].as_str().unwrap().to_owned());
    }
    let logs = captured_logs();
    for secret in codes
        .iter()
        .map(String::as_str)
        .chain(["hank's secret password", "829961730458"])
    {
        assert!(
            !logs.contains(secret),
            "secret {secret:?} found in the logs"
        );
    }
    let stored = stored_bytes(&app.database_url, app.dir.path()).await;
    for secret in codes.iter().map(String::as_str).chain(["829961730458"]) {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in the database"
        );
    }
}

#[tokio::test]
async fn the_bearer_token_never_reaches_the_logs() {
    let app = TestApp::spawn().await;
    app.set_pin("ivan", "1235").await;
    let token = app.issuer.token("ivan");
    let ivan = app.as_user("ivan").with_token(&token);
    assert_eq!(ivan.create_otp_with_pin("1235").await.status(), 201);
    let signature = token.rsplit('.').next().unwrap();
    assert!(!captured_logs().contains(signature));
}

#[tokio::test]
async fn outdated_hashes_are_upgraded_after_a_successful_check() {
    let app = TestApp::spawn().await;
    app.set_password("judy", PASSWORD).await;
    let stronger = app
        .sibling()
        .env("OTPD_ARGON2", "m=512,t=1,p=1")
        .spawn()
        .await;
    let res = stronger
        .create_otp("judy", json!({"password": PASSWORD}))
        .await;
    assert_eq!(res.status(), 201);
    let stored = stronger
        .services()
        .await
        .store
        .credentials(&otpd::domain::Subject::parse("judy").unwrap())
        .await
        .unwrap();
    assert!(stored.password_hash.unwrap().contains("m=512,t=1,p=1"));
    // The upgraded hash still verifies.
    let res = stronger
        .create_otp("judy", json!({"password": PASSWORD}))
        .await;
    assert_eq!(res.status(), 201);
}
