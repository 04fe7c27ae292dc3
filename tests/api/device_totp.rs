//! `POST /user/devices/totp` and device TOTPs wherever an OTP is accepted.

use crate::support::*;
use otpd::service::ManualClock;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const DEVICE: &str = "738e379f-fe30-45ab-819c-ba88804b6368";
const OTHER_DEVICE: &str = "0b7c1c52-2d1f-4d6b-a3c9-1f1c8a9e5d21";

/// A fixed moment in the middle of a 30 s step, so a test never straddles a step boundary.
fn fixed_clock() -> Arc<ManualClock> {
    let t = time::OffsetDateTime::from_unix_timestamp(FIXED_NOW).unwrap();
    Arc::new(ManualClock::new(t))
}

const FIXED_NOW: i64 = 1_800_000_015;

/// A device secret whose codes for the steps `steps` around `FIXED_NOW` all differ, made again
/// (which replaces the secret) until they do: a chance collision of two 6-digit codes would
/// otherwise turn a test about step windows into a coin toss.
async fn device_with_distinct_codes(
    app: &TestApp,
    device: &str,
    steps: std::ops::RangeInclusive<i64>,
) -> DeviceSecret {
    loop {
        let secret = app.device_secret("dana", device).await;
        let mut codes: Vec<String> = steps.clone().map(|s| secret.code(FIXED_NOW, s)).collect();
        codes.sort_unstable();
        codes.dedup();
        if codes.len() == steps.clone().count() {
            return secret;
        }
    }
}

#[tokio::test]
async fn a_device_secret_is_base32_of_160_bits_with_the_default_parameters() {
    let app = TestApp::spawn().await;
    app.set_password("dana", PASSWORD).await;
    let res = app
        .as_user("dana")
        .create_device(DEVICE, json!({ "password": PASSWORD }))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(content_type(&res).as_deref(), Some(JSON_API));
    let doc: Value = res.json().await.unwrap();
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
    let device = device_with_distinct_codes(&app, DEVICE, -1..=4).await;
    let dana = app.as_user("dana");
    let now = device.code(FIXED_NOW, 0);
    assert_eq!(dana.verify(&now).await.status(), 204);
    assert_error(dana.verify(&now).await, 404, "invalid-otp").await;
    let next = device.code(FIXED_NOW, 1);
    assert_eq!(dana.verify(&next).await.status(), 204);
    // After the step +1 was used, older steps are spent too.
    let previous = device.code(FIXED_NOW, -1);
    assert_error(dana.verify(&previous).await, 404, "invalid-otp").await;
    // Three steps later, the code of step +1 is two steps behind: outside the window.
    clock.advance(Duration::from_secs(90));
    let stale = device.code(FIXED_NOW, 1);
    assert_error(dana.verify(&stale).await, 404, "invalid-otp").await;
    let fresh = device.code(FIXED_NOW, 3);
    assert_eq!(dana.verify(&fresh).await.status(), 204);
}

#[tokio::test]
async fn types_decide_whether_a_totp_counts() {
    let clock = fixed_clock();
    let app = TestApp::builder().clock(clock).spawn().await;
    let device = app.device_secret("dana", DEVICE).await;
    let dana = app.as_user("dana");
    let code = device.code(FIXED_NOW, 0);
    let account_only = dana.verify_as(&code, &["account"]).await;
    assert_error(account_only, 404, "invalid-otp").await;
    assert_eq!(dana.verify_as(&code, &["device-totp"]).await.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_totp_value_used_in_parallel_succeeds_once() {
    let clock = fixed_clock();
    let app = TestApp::builder()
        .clock(clock)
        .admitting_bursts()
        .spawn()
        .await;
    let device = device_with_distinct_codes(&app, DEVICE, -1..=1).await;
    let dana = app.as_user("dana");
    // Each of the three steps in the window, oldest first (a newer step spends the older ones).
    for step in -1..=1 {
        let code = device.code(FIXED_NOW, step);
        let (a, b) = tokio::join!(dana.verify(&code), dana.verify(&code));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 404], "step {step}");
    }
    let code = device.code(FIXED_NOW, 0);
    let many = (0..10).map(|_| dana.verify(&code));
    let statuses: Vec<u16> = futures::future::join_all(many)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    // Refused, checked (404) or, once the failures reach the OTP attempt limit, unchecked (429).
    assert!(
        statuses.iter().all(|s| [404, 429].contains(s)),
        "step 0 was spent when step +1 was accepted: {statuses:?}"
    );
}

/// The user's events after the first `seen`; `seen` moves past them.
async fn events_since(app: &TestApp, seen: &mut usize) -> Vec<(String, String)> {
    let trail = app.audit_trail("dana").await;
    let new = trail[*seen..].to_vec();
    *seen = trail.len();
    new
}

fn created_with(events: &[(String, String)], proof: &str) -> bool {
    events
        .iter()
        .any(|(e, d)| e == "device-totp.created" && d.ends_with(&format!("proof={proof}")))
}

fn checked(events: &[(String, String)], event: &str) -> bool {
    events.iter().any(|(e, _)| e == event)
}

#[tokio::test]
async fn proof_order_is_otp_then_password_then_pin_and_one_valid_is_enough() {
    let app = TestApp::spawn().await;
    app.set_password("dana", PASSWORD).await;
    app.set_pin("dana", "4378").await;
    let otp = app.account_otp("dana").await;
    let dana = app.as_user("dana");
    let mut seen = app.audit_trail("dana").await.len();
    let wrong_password = "wrong password!";

    // A valid OTP is enough: the password and PIN beside it are never checked.
    let all = json!({"otp": otp, "password": wrong_password, "pin": "1235"});
    assert_eq!(dana.create_device(DEVICE, all).await.status(), 201);
    let events = events_since(&app, &mut seen).await;
    assert!(created_with(&events, "otp"), "{events:?}");
    assert!(!checked(&events, "password.refused"), "{events:?}");
    assert!(!checked(&events, "pin.refused"), "{events:?}");
    assert_error(dana.verify(&otp).await, 404, "invalid-otp").await;
    events_since(&app, &mut seen).await;

    // A spent OTP: the password comes next, and a valid one means the PIN is never checked.
    let then_password = json!({"otp": otp, "password": PASSWORD, "pin": "1235"});
    assert_eq!(
        dana.create_device(DEVICE, then_password).await.status(),
        201
    );
    let events = events_since(&app, &mut seen).await;
    assert!(created_with(&events, "password"), "{events:?}");
    assert!(!checked(&events, "pin.refused"), "{events:?}");

    // A wrong password is checked and refused, then the PIN is checked and carries it.
    let then_pin = json!({"otp": otp, "password": wrong_password, "pin": "4378"});
    assert_eq!(dana.create_device(DEVICE, then_pin).await.status(), 201);
    let events = events_since(&app, &mut seen).await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let refused = names.iter().position(|e| *e == "password.refused");
    let created = names.iter().position(|e| *e == "device-totp.created");
    assert!(refused.is_some() && refused < created, "{events:?}");
    assert!(created_with(&events, "pin"), "{events:?}");

    // All three wrong: refused, with each knowledge factor checked once.
    let none = json!({"otp": otp, "password": wrong_password, "pin": "1235"});
    assert_error(dana.create_device(DEVICE, none).await, 403, "invalid-proof").await;
    let events = events_since(&app, &mut seen).await;
    assert!(checked(&events, "password.refused") && checked(&events, "pin.refused"));
    assert!(!checked(&events, "device-totp.created"), "{events:?}");
}

#[tokio::test]
async fn wrong_or_missing_proof_is_403() {
    let app = TestApp::spawn().await;
    app.set_password("dana", PASSWORD).await;
    let dana = app.as_user("dana");
    for attributes in [
        json!({"password": "wrong password!"}),
        json!({"pin": "4378"}),
        json!({"otp": "123456"}),
        json!({"otp": "123456", "password": "wrong password!", "pin": "1235"}),
        json!({}),
    ] {
        let res = dana.create_device(DEVICE, attributes.clone()).await;
        assert_error(res, 403, "invalid-proof").await;
    }
    let nobody = app.as_user("nobody").create_device(DEVICE, json!({})).await;
    assert_error(nobody, 403, "invalid-proof").await;
}

/// `newbie` with only `scope`, registered at `registered` (a `created_at` value, or null for a
/// token without the claim).
fn after_login<'a>(app: &'a TestApp, scope: &str, registered: Value) -> User<'a> {
    let mut claims = app.issuer.claims("newbie", scope);
    match registered {
        Value::Null => claims.as_object_mut().unwrap().remove("created_at"),
        at => claims
            .as_object_mut()
            .unwrap()
            .insert("created_at".into(), at),
    };
    let token = app.issuer.sign_rs256(&claims);
    app.as_user("newbie").with_token(&token)
}

#[tokio::test]
async fn the_after_login_scope_needs_no_proof_within_five_minutes_of_registration() {
    let app = TestApp::spawn().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let scope = "user:device-totps:create-after-login";
    let fresh = after_login(&app, scope, json!(now - 60));
    assert_eq!(fresh.create_device(DEVICE, json!({})).await.status(), 201);
    // Registered too long ago, no claim, or not the after-login scope: no proof, no secret.
    for (scope, registered) in [
        (scope, json!(now - 301)),
        (scope, Value::Null),
        ("user:device-totps:create", json!(now)),
    ] {
        let res = after_login(&app, scope, registered)
            .create_device(DEVICE, json!({}))
            .await;
        assert_error(res, 403, "invalid-proof").await;
    }
    // Keycloak-style milliseconds work too.
    let millis = after_login(&app, scope, json!(now * 1000));
    assert_eq!(millis.create_device(DEVICE, json!({})).await.status(), 201);
}

#[tokio::test]
async fn a_new_secret_for_an_existing_device_replaces_the_old_one() {
    let clock = fixed_clock();
    let app = TestApp::builder().clock(clock).spawn().await;
    let dana = app.as_user("dana");
    let (old, other, new) = loop {
        let old = app.device_secret("dana", DEVICE).await;
        let other = app.device_secret("dana", OTHER_DEVICE).await;
        let new = app.device_secret("dana", DEVICE).await;
        let codes = [&old, &other, &new].map(|d| d.code(FIXED_NOW, 0));
        // The old code must not happen to be a valid code of the devices that remain.
        if codes[0] != codes[1] && codes[0] != codes[2] {
            break (old, other, new);
        }
    };
    assert_ne!(old.secret, new.secret);
    let old_code = old.code(FIXED_NOW, 0);
    assert_error(dana.verify(&old_code).await, 404, "invalid-otp").await;
    assert_eq!(dana.verify(&new.code(FIXED_NOW, 0)).await.status(), 204);
    assert_eq!(dana.verify(&other.code(FIXED_NOW, 0)).await.status(), 204);
}

#[tokio::test]
async fn a_totp_is_accepted_by_put_pin_and_delete_user_too() {
    let clock = fixed_clock();
    let app = TestApp::builder().clock(clock).spawn().await;
    let device = app.device_secret("dana", DEVICE).await;
    let dana = app.as_user("dana");
    let previous = device.code(FIXED_NOW, -1);
    assert_eq!(dana.put_pin("4378", &previous).await.status(), 200);
    let now = device.code(FIXED_NOW, 0);
    assert_eq!(dana.delete_user(&now).await.status(), 202);
}

#[tokio::test]
async fn malformed_requests_and_media_types() {
    let app = TestApp::spawn().await;
    app.set_password("dana", PASSWORD).await;
    let dana = app.as_user("dana");
    let res = dana
        .create_device("not-a-uuid", json!({"password": PASSWORD}))
        .await;
    let error = assert_error(res, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "/data/id");
    let doc = json!({"data": {"type": "pin", "id": DEVICE, "attributes": {}}});
    let res = dana.post("/user/devices/totp").json_api(&doc).send().await;
    let error = assert_error(res, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "/data/type");
    let doc =
        json!({"data": {"type": "deviceTOTP", "id": DEVICE, "attributes": {"password": PASSWORD}}});
    let post = |content_type: &str, accept: &str| {
        dana.post("/user/devices/totp")
            .header("content-type", content_type)
            .header("accept", accept)
            .body(doc.to_string())
            .send()
    };
    let res = post("application/json", JSON_API).await;
    assert_error(res, 415, "unsupported-media-type").await;
    let res = post(JSON_API, "application/json").await;
    assert_error(res, 406, "not-acceptable").await;
    app.assert_guarded("user:otp:create", |u| {
        u.post("/user/devices/totp").json_api("{}")
    })
    .await;
}
