//! The PACE SDK flows, as the HTTP sequences the apps send.

use crate::credential_support::*;
use crate::support::*;
use serde_json::{Value, json};

async fn otp_from(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["otp"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn password_then_otp_then_new_pin_then_pin_otp_then_payment_verify() {
    let app = TestApp::spawn().await;
    app.set_password("sam", PASSWORD).await;
    let otp = otp_from(app.create_otp("sam", json!({ "password": PASSWORD })).await).await;
    assert_eq!(app.put_pin("sam", "5621", &otp).await.status(), 200);
    let payment_otp = otp_from(app.create_otp("sam", json!({"pin": "5621"})).await).await;
    let verify = json!({"otp": payment_otp, "types": ["device-totp", "account"]});
    assert_eq!(app.verify("sam", verify.clone()).await.status(), 204);
    assert_error(app.verify("sam", verify).await, 404, "invalid-otp").await;
}

#[tokio::test]
async fn pin_then_device_secret_then_totp_then_payment_verify() {
    let app = TestApp::spawn().await;
    app.set_pin("sam", "8299").await;
    let res = app
        .create_device(
            "sam",
            "738e379f-fe30-45ab-819c-ba88804b6368",
            json!({"pin": "8299"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let device = DeviceSecret::from_response(res).await;
    let verify = json!({"otp": device.now(), "types": ["device-totp", "account"]});
    assert_eq!(app.verify("sam", verify).await.status(), 204);
}

#[tokio::test]
async fn otp_then_delete_then_nothing_is_set() {
    let app = TestApp::spawn().await;
    app.set_password("sam", PASSWORD).await;
    app.set_pin("sam", "8299").await;
    let otp = otp_from(app.create_otp("sam", json!({"pin": "8299"})).await).await;
    assert_eq!(app.delete_user("sam", &otp).await.status(), 202);
    assert_eq!(app.get_check("/user/pin", "sam").await.status(), 404);
    assert_eq!(app.get_check("/user/password", "sam").await.status(), 404);
    let both: Value = app
        .get_check("/user/pin-or-password", "sam")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(both, json!({"pin": false, "password": false}));
    assert_eq!(
        app.create_otp("sam", json!({"pin": "8299"})).await.status(),
        404
    );
}
