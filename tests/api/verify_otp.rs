//! `POST /user/otp/verify`: success, every documented failure, single use under concurrency.

use crate::credential_support::*;
use crate::support::*;
use otpd::service::ManualClock;
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn a_valid_account_otp_verifies_once_with_204_and_no_body() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("vera").await;
    let res = app.verify("vera", json!({ "otp": otp })).await;
    assert_eq!(res.status(), 204);
    assert_eq!(content_type(&res), None);
    assert!(res.headers().contains_key("request-id"));
    assert!(res.bytes().await.unwrap().is_empty());
    let again = app.verify("vera", json!({ "otp": otp })).await;
    assert_error(again, 404, "invalid-otp").await;
    let events = app.audit_events("vera").await;
    assert!(events.contains(&"otp.redeemed".to_owned()), "{events:?}");
    assert!(events.contains(&"otp.refused".to_owned()), "{events:?}");
}

#[tokio::test]
async fn unknown_malformed_and_other_users_otps_are_404() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("vera").await;
    let wrong = if otp == "000000" { "000001" } else { "000000" };
    assert_error(
        app.verify("vera", json!({"otp": wrong})).await,
        404,
        "invalid-otp",
    )
    .await;
    assert_error(
        app.verify("vera", json!({"otp": "12ab"})).await,
        404,
        "invalid-otp",
    )
    .await;
    assert_error(
        app.verify("mallory", json!({"otp": otp})).await,
        404,
        "invalid-otp",
    )
    .await;
    // None of this consumed it.
    assert_eq!(app.verify("vera", json!({"otp": otp})).await.status(), 204);
}

#[tokio::test]
async fn an_expired_otp_is_404() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    let otp = app.account_otp("vera").await;
    clock.advance(std::time::Duration::from_secs(301));
    assert_error(
        app.verify("vera", json!({"otp": otp})).await,
        404,
        "invalid-otp",
    )
    .await;
}

#[tokio::test]
async fn types_narrow_what_counts_and_unknown_types_are_422() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("vera").await;
    let only_totp = json!({"otp": otp, "types": ["device-totp"]});
    assert_error(app.verify("vera", only_totp).await, 404, "invalid-otp").await;
    let error = assert_error(
        app.verify("vera", json!({"otp": otp, "types": ["account", "sms"]}))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(error["source"]["pointer"], "/types/1");
    assert_error(
        app.verify("vera", json!({"otp": otp, "types": []})).await,
        422,
        "invalid-field",
    )
    .await;
    let both = json!({"otp": otp, "types": ["device-totp", "account"]});
    assert_eq!(app.verify("vera", both).await.status(), 204);
}

#[tokio::test]
async fn header_body_token_and_scope_failures() {
    let app = TestApp::spawn().await;
    let url = app.url("/user/otp/verify");
    let token = app.issuer.token("vera");
    let res = app
        .http
        .post(&url)
        .json(&json!({"otp": "123456"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "missing-token").await;
    let res = app
        .http
        .post(&url)
        .bearer_auth(app.issuer.token_with_scope("vera", "user:otp:create"))
        .json(&json!({"otp": "123456"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "insufficient-scope").await;
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("accept", "text/html")
        .json(&json!({"otp": "123456"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 406, "not-acceptable").await;
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(r#"{"otp":"123456"}"#)
        .send()
        .await
        .unwrap();
    assert_error(res, 415, "unsupported-media-type").await;
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"otp":"#)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "malformed-json").await;
    let error = assert_error(app.verify("vera", json!({})).await, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "");
    let error = assert_error(
        app.verify("vera", json!({"otp": 123456})).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(error["source"]["pointer"], "/otp");
}

#[tokio::test]
async fn fifty_parallel_verifications_of_one_otp_give_exactly_one_204() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("vera").await;
    let requests = (0..50).map(|_| app.verify("vera", json!({ "otp": otp })));
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
