//! `DELETE /user`: erase every credential record with an OTP; the audit trail stays.

use crate::credential_support::*;
use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn a_valid_otp_erases_everything_and_answers_202() {
    let app = TestApp::spawn().await;
    app.set_pin("erin", "4378").await;
    let device = app
        .device_secret("erin", "738e379f-fe30-45ab-819c-ba88804b6368")
        .await;
    let spare = app.account_otp("erin").await;
    let otp = app.account_otp("erin").await;
    let res = app.delete_user("erin", &otp).await;
    assert_eq!(res.status(), 202);
    assert_eq!(content_type(&res), None);
    assert_error(
        app.get_check("/user/pin", "erin").await,
        404,
        "credential-not-set",
    )
    .await;
    assert_error(
        app.get_check("/user/password", "erin").await,
        404,
        "credential-not-set",
    )
    .await;
    let both: serde_json::Value = app
        .get_check("/user/pin-or-password", "erin")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(both, json!({"pin": false, "password": false}));
    // Other live OTPs and the device are gone too.
    assert_error(
        app.verify("erin", json!({ "otp": spare })).await,
        404,
        "invalid-otp",
    )
    .await;
    assert_error(
        app.verify("erin", json!({ "otp": device.now() })).await,
        404,
        "invalid-otp",
    )
    .await;
    let events = app.audit_events("erin").await;
    assert!(events.contains(&"user.deleted".to_owned()), "{events:?}");
    assert!(
        events.contains(&"pin.set".to_owned()),
        "the earlier events stay: {events:?}"
    );
}

#[tokio::test]
async fn a_bad_otp_is_403_and_erases_nothing() {
    let app = TestApp::spawn().await;
    app.set_pin("erin", "4378").await;
    assert_error(app.delete_user("erin", "000000").await, 403, "invalid-otp").await;
    assert_error(app.delete_user("erin", "x").await, 403, "invalid-otp").await;
    assert_eq!(app.get_check("/user/pin", "erin").await.status(), 200);
}

#[tokio::test]
async fn media_types_token_scope_and_body() {
    let app = TestApp::spawn().await;
    let url = app.url("/user");
    let res = app
        .http
        .delete(&url)
        .bearer_auth(app.issuer.token("erin"))
        .header("content-type", "application/vnd.api+json")
        .body(r#"{"otp":"123456"}"#)
        .send()
        .await
        .unwrap();
    assert_error(res, 415, "unsupported-media-type").await;
    let res = app
        .http
        .delete(&url)
        .bearer_auth(app.issuer.token("erin"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(res, 422, "invalid-field").await;
    let res = app
        .http
        .delete(&url)
        .bearer_auth(app.issuer.token_with_scope("erin", "user:otp:create"))
        .json(&json!({"otp": "123456"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "insufficient-scope").await;
    let res = app
        .http
        .delete(&url)
        .json(&json!({"otp": "123456"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "missing-token").await;
}
