//! `DELETE /user`: erase every credential record with an OTP; the audit trail stays.

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
    let erin = app.as_user("erin");
    let res = erin.delete_user(&otp).await;
    assert_eq!(res.status(), 202);
    assert_eq!(content_type(&res), None);
    for check in ["/user/pin", "/user/password"] {
        assert_error(erin.check(check).await, 404, "credential-not-set").await;
    }
    let both = erin.pin_or_password().await;
    assert_eq!(both, json!({"pin": false, "password": false}));
    // Other live OTPs and the device are gone too.
    assert_error(erin.verify(&spare).await, 404, "invalid-otp").await;
    assert_error(erin.verify(&device.now()).await, 404, "invalid-otp").await;
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
    let erin = app.as_user("erin");
    assert_error(erin.delete_user("000000").await, 403, "invalid-otp").await;
    assert_error(erin.delete_user("x").await, 403, "invalid-otp").await;
    assert_eq!(erin.check("/user/pin").await.status(), 200);
}

#[tokio::test]
async fn media_types_token_scope_and_body() {
    let app = TestApp::spawn().await;
    let erin = app.as_user("erin");
    let res = erin
        .delete("/user")
        .header("content-type", JSON_API)
        .body(r#"{"otp":"123456"}"#)
        .send()
        .await;
    assert_error(res, 415, "unsupported-media-type").await;
    let res = erin.delete("/user").json(&json!({})).send().await;
    assert_error(res, 422, "invalid-field").await;
    app.assert_guarded("user:otp:create", |u| {
        u.delete("/user").json(&json!({"otp": "123456"}))
    })
    .await;
}
