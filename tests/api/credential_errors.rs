//! Failures every body-taking endpoint of the credential API shares: oversized and malformed
//! bodies, and methods a route does not have.

use crate::support::*;
use reqwest::Method;

/// (method, path, content type) of each endpoint that reads a body.
const BODY_ENDPOINTS: &[(&str, &str, &str)] = &[
    ("POST", "/user/otp/verify", "application/json"),
    ("PUT", "/user/pin", JSON_API),
    ("POST", "/user/devices/totp", JSON_API),
    ("DELETE", "/user", "application/json"),
];

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let accept = if content_type == JSON_API {
        JSON_API
    } else {
        "application/json"
    };
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    app.as_user("eve")
        .request(method, path)
        .header("content-type", content_type)
        .header("accept", accept)
        .body(body)
        .send()
        .await
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::spawn().await;
    for (method, path, content_type) in BODY_ENDPOINTS {
        let body = format!("{{\"otp\": \"{}\"}}", "1".repeat(20_000)).into_bytes();
        let res = send(&app, method, path, content_type, body).await;
        assert_error(res, 413, "payload-too-large").await;
    }
}

#[tokio::test]
async fn bodies_that_are_not_json_are_400() {
    let app = TestApp::spawn().await;
    for (method, path, content_type) in BODY_ENDPOINTS {
        for body in ["", "{", "{\"otp\": \"123456\"} trailing", "not json"] {
            let res = send(&app, method, path, content_type, body.as_bytes().to_vec()).await;
            assert_error(res, 400, "malformed-json").await;
        }
    }
}

#[tokio::test]
async fn methods_a_route_does_not_have_are_405_with_allow() {
    let app = TestApp::spawn().await;
    for (method, path, allow) in [
        (Method::GET, "/user/otp/verify", "POST"),
        (Method::POST, "/user/pin-or-password", "GET,HEAD"),
        (Method::GET, "/user/devices/totp", "POST"),
        (Method::GET, "/user", "DELETE"),
    ] {
        let res = app
            .as_user("eve")
            .request(method.clone(), path)
            .send()
            .await;
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        assert_error(res, 405, "method-not-allowed").await;
    }
}

/// HEAD is not in the API's own dispatch table (`http::dispatch`): axum's router answers it as
/// the GET without its body, as before the table.
#[tokio::test]
async fn head_on_a_get_operation_is_the_get_without_its_body() {
    let app = TestApp::spawn().await;
    let user = app.as_user("eve");
    let get = user
        .request(Method::GET, "/user/pin-or-password")
        .send()
        .await;
    let head = user
        .request(Method::HEAD, "/user/pin-or-password")
        .send()
        .await;
    assert_eq!(get.status(), 200);
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-type"],
        get.headers()["content-type"]
    );
    assert!(!get.text().await.unwrap().is_empty());
    assert!(head.text().await.unwrap().is_empty());
}
