//! The PACE SDK flows, as the HTTP sequences the apps send.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn password_then_otp_then_new_pin_then_pin_otp_then_payment_verify() {
    let app = TestApp::spawn().await;
    app.set_password("sam", PASSWORD).await;
    let sam = app.as_user("sam");
    let otp = otp_of(sam.create_otp_with_password(PASSWORD).await).await;
    assert_eq!(sam.put_pin("5621", &otp).await.status(), 200);
    let payment_otp = otp_of(sam.create_otp_with_pin("5621").await).await;
    let types = ["device-totp", "account"];
    assert_eq!(sam.verify_as(&payment_otp, &types).await.status(), 204);
    assert_error(
        sam.verify_as(&payment_otp, &types).await,
        404,
        "invalid-otp",
    )
    .await;
}

#[tokio::test]
async fn pin_then_device_secret_then_totp_then_payment_verify() {
    let app = TestApp::spawn().await;
    app.set_pin("sam", "8299").await;
    let sam = app.as_user("sam");
    let device = "738e379f-fe30-45ab-819c-ba88804b6368";
    let res = sam.create_device(device, json!({"pin": "8299"})).await;
    assert_eq!(res.status(), 201);
    let device = DeviceSecret::from_response(res).await;
    let types = ["device-totp", "account"];
    assert_eq!(sam.verify_as(&device.now(), &types).await.status(), 204);
}

#[tokio::test]
async fn otp_then_delete_then_nothing_is_set() {
    let app = TestApp::spawn().await;
    app.set_password("sam", PASSWORD).await;
    app.set_pin("sam", "8299").await;
    let sam = app.as_user("sam");
    let otp = otp_of(sam.create_otp_with_pin("8299").await).await;
    assert_eq!(sam.delete_user(&otp).await.status(), 202);
    assert_eq!(sam.check("/user/pin").await.status(), 404);
    assert_eq!(sam.check("/user/password").await.status(), 404);
    let both = sam.pin_or_password().await;
    assert_eq!(both, json!({"pin": false, "password": false}));
    assert_eq!(sam.create_otp_with_pin("8299").await.status(), 404);
}
