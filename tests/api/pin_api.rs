//! `PUT /user/pin`, `GET /user/pin`, `GET /user/password` (with long poll), `GET /user/pin-or-password`.

use crate::credential_support::*;
use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_pin_set_with_an_otp_gives_200_without_body_and_then_works() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("pia").await;
    let res = app.put_pin("pia", "4378", &otp).await;
    assert_eq!(res.status(), 200);
    assert_eq!(content_type(&res), None);
    assert!(res.bytes().await.unwrap().is_empty());
    assert_eq!(
        app.create_otp("pia", json!({"pin": "4378"})).await.status(),
        201
    );
    // The OTP was consumed.
    assert_error(app.put_pin("pia", "1235", &otp).await, 403, "invalid-otp").await;
    let events = app.audit_events("pia").await;
    assert!(events.contains(&"pin.set".to_owned()), "{events:?}");
}

#[tokio::test]
async fn a_missing_id_or_any_id_is_fine() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("pia").await;
    let doc = json!({"data": {"type": "pin", "id": "5c1a3a8e-0e0e-4c59-9b0e-4f3e1a2b3c4d", "attributes": {"pin": "9875", "otp": otp}}});
    let res = app
        .json_api(Method::PUT, "/user/pin", "pia")
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_bad_otp_is_403() {
    let app = TestApp::spawn().await;
    app.account_otp("pia").await;
    assert_error(
        app.put_pin("pia", "4378", "000000").await,
        403,
        "invalid-otp",
    )
    .await;
    assert_error(app.put_pin("pia", "4378", "nope").await, 403, "invalid-otp").await;
}

#[tokio::test]
async fn an_insecure_pin_is_406_and_leaves_the_otp_usable() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("pia").await;
    let overlong = "7".repeat(100);
    for bad in [
        "1234", "9012", "0987", "1111", "1122", "12345", "12a5", &overlong,
    ] {
        let error = assert_error(app.put_pin("pia", bad, &otp).await, 406, "pin-not-secure").await;
        assert_eq!(error["source"]["pointer"], "/data/attributes/pin");
        assert!(!error.to_string().contains(bad) || bad.len() < 4, "{error}");
    }
    for good in ["1235", "9875", "1012", "1123"] {
        let otp = app.account_otp("pia").await;
        assert_eq!(app.put_pin("pia", good, &otp).await.status(), 200, "{good}");
    }
    assert_eq!(app.put_pin("pia", "4378", &otp).await.status(), 200);
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
        let res = app
            .json_api(Method::PUT, "/user/pin", "pia")
            .body(doc.to_string())
            .send()
            .await
            .unwrap();
        let error = assert_error(res, 422, "invalid-field").await;
        assert_eq!(error["source"]["pointer"], pointer, "{doc}");
    }
    let res = app
        .json_api(Method::PUT, "/user/pin", "pia")
        .body("{\"data\":")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "malformed-json").await;
}

#[tokio::test]
async fn put_pin_requires_json_api_media_types_a_token_and_the_scope() {
    let app = TestApp::spawn().await;
    let doc = json!({"data": {"type": "pin", "attributes": {"pin": "4378", "otp": "123456"}}})
        .to_string();
    let put = |content_type: &'static str, accept: &'static str| {
        app.http
            .put(app.url("/user/pin"))
            .bearer_auth(app.issuer.token("pia"))
            .header("content-type", content_type)
            .header("accept", accept)
            .body(doc.clone())
            .send()
    };
    let res = put("application/json", JSON_API).await.unwrap();
    assert_error(res, 415, "unsupported-media-type").await;
    let res = put("application/vnd.api+json; charset=utf-8", JSON_API)
        .await
        .unwrap();
    assert_error(res, 415, "unsupported-media-type").await;
    let res = put(JSON_API, "application/json").await.unwrap();
    assert_error(res, 406, "not-acceptable").await;
    // With the right media types the request reaches the OTP check.
    assert_error(put(JSON_API, JSON_API).await.unwrap(), 403, "invalid-otp").await;
    let res = app
        .http
        .put(app.url("/user/pin"))
        .header("content-type", JSON_API)
        .body(doc.clone())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "missing-token").await;
    let res = app
        .http
        .put(app.url("/user/pin"))
        .bearer_auth(app.issuer.token_with_scope("pia", "user:users.pin:check"))
        .header("content-type", JSON_API)
        .body(doc)
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "insufficient-scope").await;
}

#[tokio::test]
async fn checks_report_what_is_set() {
    let app = TestApp::spawn().await;
    assert_error(
        app.get_check("/user/pin", "cora").await,
        404,
        "credential-not-set",
    )
    .await;
    assert_error(
        app.get_check("/user/password", "cora").await,
        404,
        "credential-not-set",
    )
    .await;
    let res = app.get_check("/user/pin-or-password", "cora").await;
    assert_eq!(res.status(), 200);
    assert_eq!(content_type(&res).as_deref(), Some("application/json"));
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"pin": false, "password": false})
    );

    app.set_password("cora", PASSWORD).await;
    let res = app.get_check("/user/password", "cora").await;
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty());
    assert_error(
        app.get_check("/user/pin", "cora").await,
        404,
        "credential-not-set",
    )
    .await;
    let both: Value = app
        .get_check("/user/pin-or-password", "cora")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(both, json!({"pin": false, "password": true}));
    app.set_pin("cora", "4378").await;
    assert_eq!(app.get_check("/user/pin", "cora").await.status(), 200);
    let both: Value = app
        .get_check("/user/pin-or-password", "cora")
        .await
        .json()
        .await
        .unwrap();
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
        let res = app
            .http
            .get(app.url(path))
            .bearer_auth(app.issuer.token_with_scope("cora", scope))
            .send()
            .await
            .unwrap();
        assert_error(res, 403, "insufficient-scope").await;
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_error(res, 401, "missing-token").await;
    }
    // Android sends its JSON:API Accept everywhere; anything else that excludes JSON is refused.
    let res = app
        .http
        .get(app.url("/user/pin-or-password"))
        .bearer_auth(app.issuer.token("cora"))
        .header("accept", JSON_API)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .get(app.url("/user/pin-or-password"))
        .bearer_auth(app.issuer.token("cora"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_error(res, 406, "not-acceptable").await;
}

#[tokio::test]
async fn a_timeout_out_of_range_is_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for bad in ["0", "61", "-1", "abc", "1.5", ""] {
        for path in ["/user/pin", "/user/password"] {
            let res = app
                .get_check(&format!("{path}?timeout={bad}"), "cora")
                .await;
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
    let res = app.get_check("/user/pin?timeout=1", "cora").await;
    assert_error(res, 404, "credential-not-set").await;
}

#[tokio::test]
async fn a_long_poll_answers_at_once_when_already_set() {
    let app = TestApp::spawn().await;
    app.set_password("cora", PASSWORD).await;
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        app.get_check("/user/password?timeout=60", "cora"),
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
    let poll = app.get_check("/user/pin?timeout=60", "cora");
    let set = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(app.put_pin("cora", "4378", &otp).await.status(), 200);
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
    let poll = app.get_check("/user/pin?timeout=60", "cora");
    let set = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let otp = other.account_otp("cora").await;
        assert_eq!(other.put_pin("cora", "4378", &otp).await.status(), 200);
    };
    let (res, ()) =
        tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(poll, set) })
            .await
            .expect("the poll ended long before its 60 s timeout");
    assert_eq!(res.status(), 200);
}
