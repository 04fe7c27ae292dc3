//! `POST /user/otp/verify`: success, every documented failure, single use under concurrency.

use crate::support::*;
use otpd::service::ManualClock;
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn a_valid_account_otp_verifies_once_with_204_and_no_body() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("vera").await;
    let vera = app.as_user("vera");
    let res = vera.verify(&otp).await;
    assert_eq!(res.status(), 204);
    assert_eq!(content_type(&res), None);
    assert!(res.headers().contains_key("request-id"));
    assert!(res.bytes().await.unwrap().is_empty());
    assert_error(vera.verify(&otp).await, 404, "invalid-otp").await;
    let events = app.audit_events("vera").await;
    assert!(events.contains(&"otp.redeemed".to_owned()), "{events:?}");
    assert!(events.contains(&"otp.refused".to_owned()), "{events:?}");
}

#[tokio::test]
async fn unknown_malformed_and_other_users_otps_are_404() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("vera").await;
    let vera = app.as_user("vera");
    let wrong = if otp == "000000" { "000001" } else { "000000" };
    assert_error(vera.verify(wrong).await, 404, "invalid-otp").await;
    assert_error(vera.verify("12ab").await, 404, "invalid-otp").await;
    let mallory = app.as_user("mallory");
    assert_error(mallory.verify(&otp).await, 404, "invalid-otp").await;
    // None of this consumed it.
    assert_eq!(vera.verify(&otp).await.status(), 204);
}

#[tokio::test]
async fn an_expired_otp_is_404() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    let otp = app.account_otp("vera").await;
    clock.advance(std::time::Duration::from_secs(301));
    assert_error(app.as_user("vera").verify(&otp).await, 404, "invalid-otp").await;
}

#[tokio::test]
async fn types_narrow_what_counts_and_unknown_types_are_422() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("vera").await;
    let vera = app.as_user("vera");
    let only_totp = vera.verify_as(&otp, &["device-totp"]).await;
    assert_error(only_totp, 404, "invalid-otp").await;
    let sms = vera.verify_as(&otp, &["account", "sms"]).await;
    let error = assert_error(sms, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "/types/1");
    assert_error(vera.verify_as(&otp, &[]).await, 422, "invalid-field").await;
    let both = vera.verify_as(&otp, &["device-totp", "account"]).await;
    assert_eq!(both.status(), 204);
}

#[tokio::test]
async fn header_body_token_and_scope_failures() {
    let app = TestApp::spawn().await;
    app.assert_guarded("user:otp:create", |u| {
        u.post("/user/otp/verify").json(&json!({"otp": "123456"}))
    })
    .await;
    let vera = app.as_user("vera");
    let verify = || vera.post("/user/otp/verify");
    let res = verify()
        .header("accept", "text/html")
        .json(&json!({"otp": "123456"}))
        .send()
        .await;
    assert_error(res, 406, "not-acceptable").await;
    let res = verify()
        .header("content-type", "text/plain")
        .body(r#"{"otp":"123456"}"#)
        .send()
        .await;
    assert_error(res, 415, "unsupported-media-type").await;
    let res = verify()
        .header("content-type", "application/json")
        .body(r#"{"otp":"#)
        .send()
        .await;
    assert_error(res, 400, "malformed-json").await;
    let error = assert_error(vera.verify_body(json!({})).await, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "");
    let number = vera.verify_body(json!({"otp": 123456})).await;
    let error = assert_error(number, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "/otp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_verifications_of_one_otp_give_exactly_one_204() {
    let app = TestApp::builder().admitting_bursts().spawn().await;
    let otp = app.account_otp("vera").await;
    let vera = app.as_user("vera");
    let requests = (0..50).map(|_| vera.verify(&otp));
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    // The others are refused: checked and invalid (404), or not even checked because the OTP
    // attempt limit locked redemption after the 5th consecutive failure (429, docs/lockout.md).
    assert_eq!(
        statuses.iter().filter(|s| **s == 404 || **s == 429).count(),
        49,
        "{statuses:?}"
    );
}
