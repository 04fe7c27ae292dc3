//! `PUT /user/pin`, `GET /user/pin`, `GET /user/password` (with long poll), `GET /user/pin-or-password`.

use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_pin_set_with_an_otp_gives_200_without_body_and_then_works() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("pia").await;
    let pia = app.as_user("pia");
    let res = pia.put_pin("4378", &otp).await;
    assert_eq!(res.status(), 200);
    assert_eq!(content_type(&res), None);
    assert!(res.bytes().await.unwrap().is_empty());
    assert_eq!(pia.create_otp_with_pin("4378").await.status(), 201);
    // The OTP was consumed.
    assert_error(pia.put_pin("1235", &otp).await, 403, "invalid-otp").await;
    let events = app.audit_events("pia").await;
    assert!(events.contains(&"pin.set".to_owned()), "{events:?}");
}

#[tokio::test]
async fn a_missing_id_or_any_id_is_fine() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("pia").await;
    let doc = json!({"data": {"type": "pin", "id": "5c1a3a8e-0e0e-4c59-9b0e-4f3e1a2b3c4d", "attributes": {"pin": "9875", "otp": otp}}});
    let res = app
        .as_user("pia")
        .put("/user/pin")
        .json_api(&doc)
        .send()
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_bad_otp_is_403() {
    let app = TestApp::spawn().await;
    app.account_otp("pia").await;
    let pia = app.as_user("pia");
    assert_error(pia.put_pin("4378", "000000").await, 403, "invalid-otp").await;
    assert_error(pia.put_pin("4378", "nope").await, 403, "invalid-otp").await;
}

#[tokio::test]
async fn an_insecure_pin_is_406_and_leaves_the_otp_usable() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("pia").await;
    let pia = app.as_user("pia");
    let overlong = "7".repeat(100);
    for bad in [
        "1234", "9012", "0987", "1111", "1122", "12345", "12a5", &overlong,
    ] {
        let error = assert_error(pia.put_pin(bad, &otp).await, 406, "pin-not-secure").await;
        assert_eq!(error["source"]["pointer"], "/data/attributes/pin");
        assert!(!error.to_string().contains(bad) || bad.len() < 4, "{error}");
    }
    for good in ["1235", "9875", "1012", "1123"] {
        let otp = app.account_otp("pia").await;
        assert_eq!(pia.put_pin(good, &otp).await.status(), 200, "{good}");
    }
    assert_eq!(pia.put_pin("4378", &otp).await.status(), 200);
    let events = app.audit_events("pia").await;
    assert!(
        events.contains(&"pin.policy-refused".to_owned()),
        "{events:?}"
    );
}

#[tokio::test]
async fn malformed_documents_are_422_with_a_pointer() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("pia").await;
    let pia = app.as_user("pia");
    for (doc, pointer) in [
        (
            json!({"data": {"type": "pins", "attributes": {"pin": "4378", "otp": otp}}}),
            "/data/type",
        ),
        (
            json!({"data": {"type": "pin", "attributes": {"otp": otp}}}),
            "/data/attributes/pin",
        ),
        (
            json!({"data": {"type": "pin", "attributes": {"pin": "4378", "otp": null}}}),
            "/data/attributes/otp",
        ),
        (json!({"data": {"type": "pin"}}), "/data"),
        (json!({}), ""),
    ] {
        let res = pia.put("/user/pin").json_api(&doc).send().await;
        let error = assert_error(res, 422, "invalid-field").await;
        assert_eq!(error["source"]["pointer"], pointer, "{doc}");
    }
    let res = pia.put("/user/pin").json_api("{\"data\":").send().await;
    assert_error(res, 400, "malformed-json").await;
}

#[tokio::test]
async fn put_pin_requires_json_api_media_types_a_token_and_the_scope() {
    let app = TestApp::spawn().await;
    let doc = json!({"data": {"type": "pin", "attributes": {"pin": "4378", "otp": "123456"}}});
    let pia = app.as_user("pia");
    let put = |content_type: &str, accept: &str| {
        pia.put("/user/pin")
            .header("content-type", content_type)
            .header("accept", accept)
            .body(doc.to_string())
            .send()
    };
    let res = put("application/json", JSON_API).await;
    assert_error(res, 415, "unsupported-media-type").await;
    let res = put("application/vnd.api+json; charset=utf-8", JSON_API).await;
    assert_error(res, 415, "unsupported-media-type").await;
    let res = put(JSON_API, "application/json").await;
    assert_error(res, 406, "not-acceptable").await;
    // With the right media types the request reaches the OTP check.
    assert_error(put(JSON_API, JSON_API).await, 403, "invalid-otp").await;
    app.assert_guarded("user:users.pin:check", |u| {
        u.put("/user/pin").json_api(&doc)
    })
    .await;
}

#[tokio::test]
async fn checks_report_what_is_set() {
    let app = TestApp::spawn().await;
    let cora = app.as_user("cora");
    for check in ["/user/pin", "/user/password"] {
        assert_error(cora.check(check).await, 404, "credential-not-set").await;
    }
    let res = cora.check("/user/pin-or-password").await;
    assert_eq!(res.status(), 200);
    assert_eq!(content_type(&res).as_deref(), Some("application/json"));
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"pin": false, "password": false})
    );

    app.set_password("cora", PASSWORD).await;
    let res = cora.check("/user/password").await;
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty());
    assert_error(cora.check("/user/pin").await, 404, "credential-not-set").await;
    let both = cora.pin_or_password().await;
    assert_eq!(both, json!({"pin": false, "password": true}));
    app.set_pin("cora", "4378").await;
    assert_eq!(cora.check("/user/pin").await.status(), 200);
    let both = cora.pin_or_password().await;
    assert_eq!(both, json!({"pin": true, "password": true}));
}

#[tokio::test]
async fn check_scopes_and_accept() {
    let app = TestApp::spawn().await;
    for (path, scope) in [
        ("/user/pin", "user:users.password:check"),
        ("/user/password", "user:users.pin:check"),
        ("/user/pin-or-password", "user:users.password:check"),
    ] {
        app.assert_guarded(scope, |u| u.get(path)).await;
    }
    // Android sends its JSON:API Accept everywhere; anything else that excludes JSON is refused.
    let cora = app.as_user("cora");
    let both = || cora.get("/user/pin-or-password");
    let res = both().header("accept", JSON_API).send().await;
    assert_eq!(res.status(), 200);
    let res = both().header("accept", "text/html").send().await;
    assert_error(res, 406, "not-acceptable").await;
}

#[tokio::test]
async fn a_timeout_out_of_range_is_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let cora = app.as_user("cora");
    for bad in ["0", "61", "-1", "abc", "1.5", ""] {
        for path in ["/user/pin", "/user/password"] {
            let res = cora.check(&format!("{path}?timeout={bad}")).await;
            let error = assert_error(res, 400, "invalid-parameter").await;
            assert_eq!(
                error["source"]["parameter"], "timeout",
                "{path}?timeout={bad}"
            );
        }
    }
}

#[tokio::test]
async fn a_long_poll_that_times_out_is_404() {
    let app = TestApp::spawn().await;
    let res = app.as_user("cora").check("/user/pin?timeout=1").await;
    assert_error(res, 404, "credential-not-set").await;
}

#[tokio::test]
async fn a_long_poll_answers_at_once_when_already_set() {
    let app = TestApp::spawn().await;
    app.set_password("cora", PASSWORD).await;
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        app.as_user("cora").check("/user/password?timeout=60"),
    )
    .await
    .expect("answered long before the 60 s timeout");
    assert_eq!(res.status(), 200);
}

/// The poll asks for 60 s; it must end because of the PIN, long before that.
#[tokio::test]
async fn a_pin_set_through_the_api_ends_a_long_poll() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("cora").await;
    let cora = app.as_user("cora");
    let poll = cora.check("/user/pin?timeout=60");
    let set = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(cora.put_pin("4378", &otp).await.status(), 200);
    };
    let (res, ()) =
        tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(poll, set) })
            .await
            .expect("the poll ended long before its 60 s timeout");
    assert_eq!(res.status(), 200);
}

/// Another replica (a second app on the same database) shares no memory: the database recheck
/// must end the wait.
#[tokio::test]
async fn a_pin_set_through_another_replica_ends_a_long_poll() {
    let app = TestApp::spawn().await;
    let other = app.sibling().spawn().await;
    let cora = app.as_user("cora");
    let poll = cora.check("/user/pin?timeout=60");
    let set = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let otp = other.account_otp("cora").await;
        assert_eq!(
            other.as_user("cora").put_pin("4378", &otp).await.status(),
            200
        );
    };
    let (res, ()) =
        tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(poll, set) })
            .await
            .expect("the poll ended long before its 60 s timeout");
    assert_eq!(res.status(), 200);
}
