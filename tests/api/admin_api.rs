//! The admin API (`/admin/v1`): who may call it, what it shows, unlock, erase, revoke a device,
//! where it is served, and that every call is audited with the caller.

use crate::support::*;
use serde_json::json;

const DEVICE: &str = "738e379f-fe30-45ab-819c-ba88804b6368";
/// The audit detail of a call by `support-1` through the test issuer's client.
const BY_SUPPORT: &str = "via=admin-api by=support-1 client=test-client";

/// `n` wrong PINs for `sub`.
async fn wrong_pins(app: &TestApp, sub: &str, n: usize) {
    for _ in 0..n {
        let res = app.as_user(sub).create_otp_with_pin("9999").await;
        assert!(matches!(res.status().as_u16(), 422 | 429), "{res:?}");
    }
}

#[tokio::test]
async fn an_admin_sees_factors_failures_locks_and_devices_but_never_a_secret() {
    let app = TestApp::spawn().await;
    app.set_pin("alice", "4378").await;
    let device = app.device_secret("alice", DEVICE).await;
    let otp = app.account_otp("alice").await;
    wrong_pins(&app, "alice", 4).await;
    let admin = app.as_admin("support-1");
    let res = admin.show("alice").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for secret in ["4378", PASSWORD, device.secret.as_str(), otp.as_str()] {
        assert!(!text.contains(secret), "a secret in {text}");
    }
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["data"]["type"], "adminUser");
    assert_eq!(doc["data"]["id"], "alice");
    let a = &doc["data"]["attributes"];
    assert_eq!(a["password"]["set"], true);
    assert_eq!(a["password"]["state"], "open");
    assert_eq!(a["pin"]["set"], true);
    assert_eq!(a["pin"]["failures"], 4);
    assert_eq!(a["pin"]["state"], "locked");
    assert!(a["pin"]["lockedUntil"].as_str().unwrap().ends_with('Z'));
    assert_eq!(a["otp"]["failures"], 0);
    assert_eq!(a["devices"][0]["id"], DEVICE);
    assert!(
        a["devices"][0]["createdAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let trail = app.audit_trail("alice").await;
    assert_eq!(
        trail.last().unwrap(),
        &("admin.user-shown".to_owned(), BY_SUPPORT.to_owned())
    );
    // A user otpd has never seen: nothing set, nothing locked.
    let doc = admin.show_ok("nobody@example.com").await;
    assert_eq!(doc["data"]["id"], "nobody@example.com");
    assert_eq!(doc["data"]["attributes"]["pin"]["set"], false);
    assert_eq!(doc["data"]["attributes"]["devices"], json!([]));
}

#[tokio::test]
async fn only_tokens_with_the_admin_scope_reach_it_and_admin_tokens_are_not_user_tokens() {
    let app = TestApp::spawn().await;
    app.set_pin("alice", "4378").await;
    let anonymous = app.as_admin("support-1");
    let res = Admin {
        caller: anonymous.caller.without_token(),
    }
    .show("alice")
    .await;
    assert_error(res, 401, "missing-token").await;
    // A user's token, with every user scope, is no admin token.
    let user = app.as_admin("alice").with_scope(ALL_SCOPES);
    for res in [
        user.show("alice").await,
        user.erase("alice").await,
        user.unlock("alice", None).await,
        user.revoke_device("alice", DEVICE).await,
        user.audit("alice", "").await,
    ] {
        let error = assert_error(res, 403, "insufficient-scope").await;
        assert!(error["detail"].as_str().unwrap().contains("otpd:admin"));
    }
    assert_eq!(app.as_user("alice").pin_or_password().await["pin"], true);
    // The admin scope opens nothing of the user API.
    let admin = app.as_user("support-1").with_scope(ADMIN_SCOPE);
    let res = admin.create_otp_with_pin("4378").await;
    assert_error(res, 403, "insufficient-scope").await;
    // The admin API is not under the base path.
    let res = app
        .as_user("support-1")
        .with_scope(ADMIN_SCOPE)
        .get("/admin/v1/users/alice")
        .send()
        .await;
    assert_error(res, 404, "not-found").await;
}

#[tokio::test]
async fn a_configured_admin_scope_replaces_the_default() {
    let app = TestApp::builder()
        .env("OTPD_ADMIN_SCOPE", "support:write")
        .spawn()
        .await;
    let res = app.as_admin("support-1").show("alice").await;
    assert_error(res, 403, "insufficient-scope").await;
    let admin = app.as_admin("support-1").with_scope("openid support:write");
    assert_eq!(admin.show("alice").await.status(), 200);
}

#[tokio::test]
async fn unlock_clears_one_factor_or_all_and_names_the_caller() {
    let app = TestApp::spawn().await;
    app.set_pin("bob", "4378").await;
    app.set_password("bob", PASSWORD).await;
    wrong_pins(&app, "bob", 4).await;
    for _ in 0..5 {
        app.as_user("bob")
            .create_otp_with_password("wrong password")
            .await;
    }
    let admin = app.as_admin("support-1");
    let a = &admin.show_ok("bob").await["data"]["attributes"];
    assert_eq!(
        (a["pin"]["state"].clone(), a["password"]["state"].clone()),
        (json!("locked"), json!("locked"))
    );
    assert_eq!(admin.unlock("bob", Some("pin")).await.status(), 204);
    let a = &admin.show_ok("bob").await["data"]["attributes"];
    assert_eq!(a["pin"]["state"], "open");
    assert_eq!(a["pin"]["failures"], 0);
    assert_eq!(a["password"]["state"], "locked");
    let bob = app.as_user("bob");
    assert_eq!(bob.create_otp_with_pin("4378").await.status(), 201);
    assert_eq!(admin.unlock("bob", None).await.status(), 204);
    assert_eq!(bob.create_otp_with_password(PASSWORD).await.status(), 201);
    let error = assert_error(
        admin.unlock("bob", Some("face")).await,
        400,
        "invalid-parameter",
    )
    .await;
    assert_eq!(error["source"]["parameter"], "factor");
    let trail = app.audit_trail("bob").await;
    let unlocked: Vec<_> = trail
        .iter()
        .filter(|(e, _)| e.ends_with(".unlocked"))
        .collect();
    assert_eq!(unlocked.len(), 5, "pin, then all four: {trail:?}");
    assert!(
        unlocked.iter().all(|(_, d)| d == BY_SUPPORT),
        "{unlocked:?}"
    );
}

#[tokio::test]
async fn an_admin_erase_is_delete_user_without_an_otp_and_keeps_the_trail() {
    let app = TestApp::spawn().await;
    app.set_pin("erin", "4378").await;
    let device = app.device_secret("erin", DEVICE).await;
    let otp = app.account_otp("erin").await;
    let admin = app.as_admin("keycloak-hook");
    let res = admin.erase("erin").await;
    assert_eq!(res.status(), 204);
    let erin = app.as_user("erin");
    assert_eq!(
        erin.pin_or_password().await,
        json!({"pin": false, "password": false})
    );
    assert_error(erin.verify(&otp).await, 404, "invalid-otp").await;
    assert_error(erin.verify(&device.now()).await, 404, "invalid-otp").await;
    assert_eq!(
        admin.show_ok("erin").await["data"]["attributes"]["devices"],
        json!([])
    );
    let trail = app.audit_trail("erin").await;
    assert!(
        trail.iter().any(|(e, _)| e == "pin.set"),
        "earlier events stay: {trail:?}"
    );
    let deleted: Vec<_> = trail.iter().filter(|(e, _)| e == "user.deleted").collect();
    assert_eq!(
        deleted,
        [&(
            "user.deleted".to_owned(),
            "via=admin-api by=keycloak-hook client=test-client".to_owned()
        )]
    );
    // The identity provider may call its hook twice.
    assert_eq!(admin.erase("erin").await.status(), 204);
    // A sub with a slash travels percent-encoded.
    app.set_pin("tenant/erin", "4378").await;
    assert_eq!(admin.erase("tenant/erin").await.status(), 204);
    assert_eq!(
        app.as_user("tenant/erin").pin_or_password().await["pin"],
        false
    );
}

#[tokio::test]
async fn revoking_a_device_stops_its_codes_and_leaves_the_others() {
    let app = TestApp::spawn().await;
    let lost = app.device_secret("dana", DEVICE).await;
    let other_id = "0b8e0e7a-54c5-4a53-9f57-2d1c7d7a4c11";
    let other = app.device_secret("dana", other_id).await;
    let admin = app.as_admin("support-1");
    assert_eq!(admin.revoke_device("dana", DEVICE).await.status(), 204);
    let dana = app.as_user("dana");
    assert_error(dana.verify(&lost.now()).await, 404, "invalid-otp").await;
    assert_eq!(dana.verify(&other.now()).await.status(), 204);
    let devices = admin.show_ok("dana").await["data"]["attributes"]["devices"].clone();
    assert_eq!(devices.as_array().unwrap().len(), 1);
    assert_eq!(devices[0]["id"], other_id);
    assert_error(
        admin.revoke_device("dana", DEVICE).await,
        404,
        "device-not-found",
    )
    .await;
    assert_error(
        admin.revoke_device("dana", "not-a-uuid").await,
        404,
        "device-not-found",
    )
    .await;
    let trail = app.audit_trail("dana").await;
    let revoked: Vec<_> = trail
        .iter()
        .filter(|(e, _)| e == "device-totp.revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{trail:?}");
    assert_eq!(revoked[0].1, format!("device={DEVICE} {BY_SUPPORT}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_revoked_by_many_admins_at_once_is_revoked_once() {
    const PARALLEL: usize = 12;
    let app = TestApp::builder().admitting_bursts().spawn().await;
    app.device_secret("dana", DEVICE).await;
    let admin = app.as_admin("support-1");
    let answers =
        futures::future::join_all((0..PARALLEL).map(|_| admin.revoke_device("dana", DEVICE))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    let mut expected = vec![204];
    expected.extend([404; PARALLEL - 1]);
    assert_eq!(statuses, expected);
    let events = app.audit_events("dana").await;
    let revoked = events
        .iter()
        .filter(|e| *e == "device-totp.revoked")
        .count();
    assert_eq!(revoked, 1, "{events:?}");
}

#[tokio::test]
async fn with_admin_listener_the_admin_api_is_served_only_there() {
    let app = TestApp::builder()
        .env("OTPD_METRICS_LISTEN", "127.0.0.1:0")
        .env("OTPD_ADMIN_API", "admin-listener")
        .spawn()
        .await;
    assert_error(
        app.as_admin("support-1").show("alice").await,
        404,
        "not-found",
    )
    .await;
    let root = format!("http://{}", app.admin_addr.expect("an admin listener"));
    let admin = app.admin_at(&root, "support-1");
    assert_eq!(admin.show("alice").await.status(), 200);
    assert_error(
        admin.with_scope(ALL_SCOPES).show("alice").await,
        403,
        "insufficient-scope",
    )
    .await;

    let off = TestApp::builder()
        .env("OTPD_METRICS_LISTEN", "127.0.0.1:0")
        .env("OTPD_ADMIN_API", "off")
        .spawn()
        .await;
    assert_error(
        off.as_admin("support-1").show("alice").await,
        404,
        "not-found",
    )
    .await;
    let root = format!("http://{}", off.admin_addr.unwrap());
    assert_error(
        off.admin_at(&root, "support-1").show("alice").await,
        404,
        "not-found",
    )
    .await;
}
