//! `GET /openapi.json`: generated from the code, and the committed copy `docs/openapi.json` must
//! match it. `OTPD_UPDATE_OPENAPI=1 cargo test --test api openapi` rewrites the copy.

use crate::support::*;
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

#[tokio::test]
async fn the_served_document_matches_the_committed_copy() {
    let app = TestApp::spawn().await;
    let res = app.get_root("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: Value = res.json().await.unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    let generated = otpd::http::openapi::document_json("/user/2022-1");
    assert_eq!(served, serde_json::from_str::<Value>(&generated).unwrap());
    if std::env::var("OTPD_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(COMMITTED, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).expect("docs/openapi.json exists");
    assert_eq!(
        serde_json::from_str::<Value>(&committed).unwrap(),
        served,
        "docs/openapi.json is stale: run `OTPD_UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[tokio::test]
async fn every_operation_documents_its_scope_and_json_api_errors() {
    let doc: Value =
        serde_json::from_str(&otpd::http::openapi::document_json("/user/2022-1")).unwrap();
    let expected = [
        ("/user/otp", "post", "201"),
        ("/user/otp/verify", "post", "204"),
        ("/user/otp/sendmail", "post", "204"),
        ("/user/pin", "put", "200"),
        ("/user/pin", "get", "200"),
        ("/user/password", "get", "200"),
        ("/user/pin-or-password", "get", "200"),
        ("/user/devices/totp", "post", "201"),
        ("/user", "delete", "202"),
    ];
    for (path, method, success) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["responses"][success].is_object(),
            "{method} {path} {success}"
        );
        assert!(
            op["security"][0]["bearer"][0].is_string(),
            "{method} {path} scope"
        );
        for status in ["401", "403", "500"] {
            let content = &op["responses"][status]["content"]["application/vnd.api+json"];
            assert!(content.is_object(), "{method} {path} {status}");
        }
    }
    assert_eq!(doc["servers"][0]["url"], "/user/2022-1");
}
