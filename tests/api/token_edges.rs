//! The edges of token checks: the leeway on `exp` and `nbf` (checked against the system clock by
//! the JWT library, so the cases keep a margin where the wall clock could tick mid-test), the
//! after-login window (the app's injected clock, so exact to the second), and `bad-request`.

use crate::support::*;
use otpd::service::Clock;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `GET /user/pin-or-password` with a token whose time claim `name` is `value`.
async fn check_with(app: &TestApp, name: &str, value: i64) -> reqwest::Response {
    let lea = app.as_user("lea").with_claims(json!({ name: value }));
    lea.check("/user/pin-or-password").await
}

/// An app whose token leeway is `secs`.
async fn with_leeway(secs: &str) -> TestApp {
    let builder = TestApp::builder().env("OTPD_TOKEN_LEEWAY_SECONDS", secs);
    builder.spawn().await
}

#[tokio::test]
async fn an_expired_token_is_accepted_within_the_configured_leeway_and_refused_a_second_past_it() {
    // 120 s: neither the library's default (60) nor ours (30).
    let app = with_leeway("120").await;
    // Refused: expired one second more than the leeway allows. Exact, as time only moves on.
    let t = now();
    let res = check_with(&app, "exp", t - 121).await;
    assert_error(res, 401, "invalid-token").await;
    // Accepted: 3 s inside the leeway (the margin is for the wall clock ticking meanwhile).
    let t = now();
    let res = check_with(&app, "exp", t - 117).await;
    assert_eq!(res.status(), 200);
    // Well inside the library's default leeway, but outside a leeway of 0.
    let strict = with_leeway("0").await;
    let t = now();
    let res = check_with(&strict, "exp", t - 1).await;
    assert_error(res, 401, "invalid-token").await;
    let res = check_with(&strict, "exp", now() + 3).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_token_not_yet_valid_is_accepted_up_to_the_leeway_and_refused_beyond_it() {
    let app = with_leeway("120").await;
    // Accepted: `nbf` exactly the leeway ahead. Exact, as time only moves on.
    let t = now();
    let res = check_with(&app, "nbf", t + 120).await;
    assert_eq!(res.status(), 200);
    // Refused: 3 s beyond the leeway (the margin is for the wall clock ticking meanwhile).
    let t = now();
    let res = check_with(&app, "nbf", t + 123).await;
    assert_error(res, 401, "invalid-token").await;
    // The default leeway is 30 s, not the library's 60 s.
    let default = TestApp::spawn().await;
    let t = now();
    let res = check_with(&default, "nbf", t + 33).await;
    assert_error(res, 401, "invalid-token").await;
    let res = check_with(&default, "nbf", now() + 30).await;
    assert_eq!(res.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// The after-login window

const DEVICE: &str = "5d0e8a7c-6a51-4d0b-9d8e-2f1c0b7e9a13";
const AFTER_LOGIN: &str = "user:device-totps:create-after-login";

/// `POST /user/devices/totp` without any proof, with the after-login scope and `created_at`.
async fn create_after_login(app: &TestApp, sub: &str, created_at: Value) -> reqwest::Response {
    let mut claims = app.issuer.claims(sub, AFTER_LOGIN);
    claims["created_at"] = created_at;
    // Signed as built: `with_claims` would drop a `null` registration time, not send it.
    let token = app.issuer.sign_rs256(&claims);
    let user = app.as_user(sub).with_token(&token);
    user.create_device(DEVICE, json!({})).await
}

async fn after_login_app(window: Option<&str>) -> (TestApp, i64) {
    let clock = manual_clock();
    let mut builder = TestApp::builder().clock(clock.clone());
    if let Some(w) = window {
        builder = builder.env("OTPD_AFTER_LOGIN_WINDOW_SECONDS", w);
    }
    let app = builder.spawn().await;
    (app, clock.now().unix_timestamp())
}

#[tokio::test]
async fn the_after_login_grant_holds_at_the_windows_edge_and_not_a_second_past() {
    let (app, now) = after_login_app(None).await;
    let res = create_after_login(&app, "nia", json!(now - 300)).await;
    assert_eq!(res.status(), 201, "registered exactly 300 s ago");
    let res = create_after_login(&app, "noa", json!(now - 301)).await;
    assert_error(res, 403, "invalid-proof").await;
    // Milliseconds (Keycloak's createdTimestamp) have the same edges.
    let res = create_after_login(&app, "nils", json!((now - 300) * 1000)).await;
    assert_eq!(res.status(), 201);
    let res = create_after_login(&app, "nina", json!((now - 301) * 1000)).await;
    assert_error(res, 403, "invalid-proof").await;

    // A configured window moves the edge.
    let (app, now) = after_login_app(Some("45")).await;
    let res = create_after_login(&app, "nia", json!(now - 45)).await;
    assert_eq!(res.status(), 201);
    let res = create_after_login(&app, "noa", json!(now - 46)).await;
    assert_error(res, 403, "invalid-proof").await;
    // A window of 0 grants nothing once the registration second has passed.
    let (app, now) = after_login_app(Some("0")).await;
    let res = create_after_login(&app, "nia", json!(now)).await;
    assert_eq!(res.status(), 201);
    let res = create_after_login(&app, "noa", json!(now - 1)).await;
    assert_error(res, 403, "invalid-proof").await;
}

#[tokio::test]
async fn a_registration_time_in_the_future_is_granted_only_within_a_minute_of_skew() {
    let (app, now) = after_login_app(None).await;
    let res = create_after_login(&app, "oda", json!(now + 60)).await;
    assert_eq!(
        res.status(),
        201,
        "60 s ahead: the provider's clock is a bit fast"
    );
    let res = create_after_login(&app, "ole", json!(now + 61)).await;
    assert_error(res, 403, "invalid-proof").await;
    let res = create_after_login(&app, "ora", json!(now + 86_400)).await;
    assert_error(res, 403, "invalid-proof").await;
    // A registration claim that is not a time grants nothing either.
    for value in [json!("yesterday"), json!(null), json!([now]), json!(true)] {
        let res = create_after_login(&app, "oto", value.clone()).await;
        assert_error(res, 403, "invalid-proof").await;
    }
}

// ---------------------------------------------------------------------------------------------
// bad-request

#[test]
fn a_client_error_without_a_code_of_its_own_is_bad_request_with_its_status() {
    use axum::http::StatusCode;
    use otpd::http::error::{for_status, render};
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::LENGTH_REQUIRED,
        StatusCode::IM_A_TEAPOT,
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ] {
        let body = for_status(status);
        assert_eq!(body.code, "bad-request", "{status}");
        assert_eq!(body.status, status);
        let doc: Value = serde_json::from_slice(&render(&body, "req-1")).unwrap();
        assert_eq!(
            doc,
            json!({"errors": [{"id": "req-1", "status": status.as_u16().to_string(),
                "code": "bad-request", "title": "Bad request",
                "detail": "The request cannot be processed."}]}),
            "{status}"
        );
    }
    // The statuses that have a code of their own keep it.
    assert_eq!(for_status(StatusCode::NOT_FOUND).code, "not-found");
    assert_eq!(
        for_status(StatusCode::METHOD_NOT_ALLOWED).code,
        "method-not-allowed"
    );
}

/// Sends `raw` (with `{path}` replaced by the path of `path` under the API's base) over a fresh
/// connection and returns everything the server answers before closing.
async fn raw_exchange(app: &TestApp, path: &str, raw: &str) -> String {
    let url = reqwest::Url::parse(&app.url(path)).unwrap();
    let raw = raw.replace("{path}", url.path());
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The documented exception (README, "Errors"): hyper refuses a request it cannot parse before any
/// of our layers runs, so there is no JSON:API body to give and no handler sees the request.
#[tokio::test]
async fn a_request_the_http_parser_refuses_gets_a_bare_400_before_any_layer_of_ours() {
    let app = TestApp::spawn().await;
    let raw = "POST {path} HTTP/1.1\r\nHost: otpd\r\nContent-Type: application/json\r\nContent-Length: many\r\n\r\n{}";
    let answer = raw_exchange(&app, "/user/otp", raw).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(body.is_empty(), "{answer}");
    assert!(
        !head.to_ascii_lowercase().contains("request-id"),
        "no layer of ours ran: {answer}"
    );
}
