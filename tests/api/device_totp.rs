//! `POST /user/devices/totp` and device TOTPs wherever an OTP is accepted.

use crate::credential_support::*;
use crate::support::*;
use otpd::service::ManualClock;
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const DEVICE: &str = "738e379f-fe30-45ab-819c-ba88804b6368";
const OTHER_DEVICE: &str = "0b7c1c52-2d1f-4d6b-a3c9-1f1c8a9e5d21";

/// A fixed moment in the middle of a 30 s step, so a test never straddles a step boundary.
fn fixed_clock() -> Arc<ManualClock> {
    let t = time::OffsetDateTime::from_unix_timestamp(1_800_000_015).unwrap();
    Arc::new(ManualClock::new(t))
}

const FIXED_NOW: i64 = 1_800_000_015;

#[tokio::test]
async fn a_device_secret_is_base32_of_160_bits_with_the_default_parameters() {
    let app = TestApp::spawn().await;
    app.set_password("dana", PASSWORD).await;
    let res = app
        .create_device("dana", DEVICE, json!({ "password": PASSWORD }))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(content_type(&res).as_deref(), Some(JSON_API));
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["data"]["id"], DEVICE);
    assert_eq!(doc["data"]["type"], "deviceTOTP");
    let a = &doc["data"]["attributes"];
    assert_eq!(
        (a["period"].as_u64(), a["digits"].as_u64()),
        (Some(30), Some(6))
    );
    assert_eq!(a["algorithm"], "SHA1");
    let secret = data_encoding::BASE32_NOPAD
        .decode(a["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    assert!(secret.len() * 8 >= 160);
    let events = app.audit_events("dana").await;
    assert!(
        events.contains(&"device-totp.created".to_owned()),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_secret_is_stored_encrypted() {
    let app = TestApp::spawn().await;
    let device = app.device_secret("dana", DEVICE).await;
    let stored = app
        .services()
        .await
        .store
        .devices(&otpd::domain::Subject::parse("dana").unwrap())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let ct = &stored[0].secret_ct;
    let secret = device.bytes();
    assert!(!ct.windows(secret.len()).any(|w| w == secret.as_slice()));
    assert!(
        !ct.windows(device.secret.len())
            .any(|w| w == device.secret.as_bytes())
    );
}

#[tokio::test]
async fn a_totp_verifies_once_with_one_step_of_skew() {
    let clock = fixed_clock();
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    let device = app.device_secret("dana", DEVICE).await;
    let now = device.code(FIXED_NOW, 0);
    assert_eq!(
        app.verify("dana", json!({ "otp": now })).await.status(),
        204
    );
    assert_error(
        app.verify("dana", json!({ "otp": now })).await,
        404,
        "invalid-otp",
    )
    .await;
    let next = device.code(FIXED_NOW, 1);
    assert_eq!(
        app.verify("dana", json!({ "otp": next })).await.status(),
        204
    );
    // After the step +1 was used, older steps are spent too.
    let previous = device.code(FIXED_NOW, -1);
    assert_error(
        app.verify("dana", json!({ "otp": previous })).await,
        404,
        "invalid-otp",
    )
    .await;
    // Two steps ahead is outside the window (unless it happens to collide with a valid code).
    clock.advance(Duration::from_secs(90));
    let stale = device.code(FIXED_NOW, 1);
    let fresh = device.code(FIXED_NOW + 90, 0);
    if stale != fresh && stale != device.code(FIXED_NOW + 90, 1) {
        assert_error(
            app.verify("dana", json!({ "otp": stale })).await,
            404,
            "invalid-otp",
        )
        .await;
    }
    assert_eq!(
        app.verify("dana", json!({ "otp": fresh })).await.status(),
        204
    );
}

#[tokio::test]
async fn types_decide_whether_a_totp_counts() {
    let clock = fixed_clock();
    let app = TestApp::builder().clock(clock).spawn().await;
    let device = app.device_secret("dana", DEVICE).await;
    let code = device.code(FIXED_NOW, 0);
    let account_only = json!({"otp": code, "types": ["account"]});
    assert_error(app.verify("dana", account_only).await, 404, "invalid-otp").await;
    let totp_only = json!({"otp": code, "types": ["device-totp"]});
    assert_eq!(app.verify("dana", totp_only).await.status(), 204);
}

#[tokio::test]
async fn one_totp_value_used_in_parallel_succeeds_once() {
    let clock = fixed_clock();
    let app = TestApp::builder().clock(clock).spawn().await;
    let device = app.device_secret("dana", DEVICE).await;
    // Each of the three steps in the window, oldest first (a newer step spends the older ones).
    for step in -1..=1 {
        let code = device.code(FIXED_NOW, step);
        let (a, b) = tokio::join!(
            app.verify("dana", json!({ "otp": code })),
            app.verify("dana", json!({ "otp": code }))
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 404], "step {step}");
    }
    let code = device.code(FIXED_NOW, 0);
    let many = (0..10).map(|_| app.verify("dana", json!({ "otp": code })));
    let ok = futures::future::join_all(many)
        .await
        .iter()
        .filter(|r| r.status() == 204)
        .count();
    assert_eq!(ok, 0, "step 0 was spent when step +1 was accepted");
}

#[tokio::test]
async fn proof_order_is_otp_then_password_then_pin_and_one_valid_is_enough() {
    let app = TestApp::spawn().await;
    app.set_password("dana", PASSWORD).await;
    app.set_pin("dana", "4378").await;
    let otp = app.account_otp("dana").await;
    // Valid OTP with a wrong password: the OTP is enough, and it is consumed.
    let res = app
        .create_device(
            "dana",
            DEVICE,
            json!({"otp": otp, "password": "wrong password!"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_error(
        app.verify("dana", json!({ "otp": otp })).await,
        404,
        "invalid-otp",
    )
    .await;
    // Used OTP, valid PIN.
    let res = app
        .create_device("dana", DEVICE, json!({"otp": otp, "pin": "4378"}))
        .await;
    assert_eq!(res.status(), 201);
    // Wrong password, valid PIN.
    let res = app
        .create_device(
            "dana",
            DEVICE,
            json!({"password": "wrong password!", "pin": "4378"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let events = app.audit_events("dana").await;
    let created = events
        .iter()
        .filter(|e| *e == "device-totp.created")
        .count();
    assert_eq!(created, 3, "{events:?}");
}

#[tokio::test]
async fn wrong_or_missing_proof_is_403() {
    let app = TestApp::spawn().await;
    app.set_password("dana", PASSWORD).await;
    for attributes in [
        json!({"password": "wrong password!"}),
        json!({"pin": "4378"}),
        json!({"otp": "123456"}),
        json!({"otp": "123456", "password": "wrong password!", "pin": "1235"}),
        json!({}),
    ] {
        let res = app.create_device("dana", DEVICE, attributes.clone()).await;
        assert_error(res, 403, "invalid-proof").await;
    }
    assert_error(
        app.create_device("nobody", DEVICE, json!({})).await,
        403,
        "invalid-proof",
    )
    .await;
}

fn after_login_token(app: &TestApp, sub: &str, registered_secs_ago: i64) -> String {
    let mut claims = app
        .issuer
        .claims(sub, "user:device-totps:create-after-login");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    claims["created_at"] = json!(now - registered_secs_ago);
    app.issuer.sign_rs256(&claims)
}

async fn create_with_token(
    app: &TestApp,
    token: &str,
    attributes: serde_json::Value,
) -> reqwest::Response {
    let doc = json!({"data": {"type": "deviceTOTP", "id": DEVICE, "attributes": attributes}});
    app.http
        .post(app.url("/user/devices/totp"))
        .bearer_auth(token)
        .header("content-type", JSON_API)
        .header("accept", JSON_API)
        .body(doc.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_after_login_scope_needs_no_proof_within_five_minutes_of_registration() {
    let app = TestApp::spawn().await;
    let fresh = after_login_token(&app, "newbie", 60);
    assert_eq!(
        create_with_token(&app, &fresh, json!({})).await.status(),
        201
    );
    let old = after_login_token(&app, "newbie", 301);
    assert_error(
        create_with_token(&app, &old, json!({})).await,
        403,
        "invalid-proof",
    )
    .await;
    // Without the claim, or without the after-login scope, no proof means no secret.
    let mut claims = app
        .issuer
        .claims("newbie", "user:device-totps:create-after-login");
    claims.as_object_mut().unwrap().remove("created_at");
    let unknown = app.issuer.sign_rs256(&claims);
    assert_error(
        create_with_token(&app, &unknown, json!({})).await,
        403,
        "invalid-proof",
    )
    .await;
    let mut claims = app.issuer.claims("newbie", "user:device-totps:create");
    claims["created_at"] = json!(time::OffsetDateTime::now_utc().unix_timestamp());
    let plain = app.issuer.sign_rs256(&claims);
    assert_error(
        create_with_token(&app, &plain, json!({})).await,
        403,
        "invalid-proof",
    )
    .await;
    // Keycloak-style milliseconds work too.
    let mut claims = app
        .issuer
        .claims("newbie", "user:device-totps:create-after-login");
    claims["created_at"] = json!(time::OffsetDateTime::now_utc().unix_timestamp() * 1000);
    let millis = app.issuer.sign_rs256(&claims);
    assert_eq!(
        create_with_token(&app, &millis, json!({})).await.status(),
        201
    );
}

#[tokio::test]
async fn a_new_secret_for_an_existing_device_replaces_the_old_one() {
    let clock = fixed_clock();
    let app = TestApp::builder().clock(clock).spawn().await;
    let old = app.device_secret("dana", DEVICE).await;
    let other = app.device_secret("dana", OTHER_DEVICE).await;
    let new = app.device_secret("dana", DEVICE).await;
    assert_ne!(old.secret, new.secret);
    let old_code = old.code(FIXED_NOW, 0);
    if old_code != new.code(FIXED_NOW, 0) && old_code != other.code(FIXED_NOW, 0) {
        assert_error(
            app.verify("dana", json!({ "otp": old_code })).await,
            404,
            "invalid-otp",
        )
        .await;
    }
    assert_eq!(
        app.verify("dana", json!({ "otp": new.code(FIXED_NOW, 0) }))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.verify("dana", json!({ "otp": other.code(FIXED_NOW, 0) }))
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn a_totp_is_accepted_by_put_pin_and_delete_user_too() {
    let clock = fixed_clock();
    let app = TestApp::builder().clock(clock).spawn().await;
    let device = app.device_secret("dana", DEVICE).await;
    assert_eq!(
        app.put_pin("dana", "4378", &device.code(FIXED_NOW, -1))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.delete_user("dana", &device.code(FIXED_NOW, 0))
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn malformed_requests_and_media_types() {
    let app = TestApp::spawn().await;
    app.set_password("dana", PASSWORD).await;
    let res = app
        .create_device("dana", "not-a-uuid", json!({"password": PASSWORD}))
        .await;
    let error = assert_error(res, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "/data/id");
    let doc = json!({"data": {"type": "pin", "id": DEVICE, "attributes": {}}});
    let res = app
        .json_api(Method::POST, "/user/devices/totp", "dana")
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    let error = assert_error(res, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "/data/type");
    let post = |content_type: &'static str, accept: &'static str| {
        let doc = json!({"data": {"type": "deviceTOTP", "id": DEVICE, "attributes": {"password": PASSWORD}}});
        app.http
            .post(app.url("/user/devices/totp"))
            .bearer_auth(app.issuer.token("dana"))
            .header("content-type", content_type)
            .header("accept", accept)
            .body(doc.to_string())
            .send()
    };
    assert_error(
        post("application/json", JSON_API).await.unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    assert_error(
        post(JSON_API, "application/json").await.unwrap(),
        406,
        "not-acceptable",
    )
    .await;
    let res = app
        .http
        .post(app.url("/user/devices/totp"))
        .bearer_auth(app.issuer.token_with_scope("dana", "user:otp:create"))
        .header("content-type", JSON_API)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "insufficient-scope").await;
    let res = app
        .http
        .post(app.url("/user/devices/totp"))
        .header("content-type", JSON_API)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "missing-token").await;
}
