//! Mistakes a newcomer's client made, each answered with the error that names the mistake: a
//! body declared too large, a parameter given twice, a key given twice, a token that cannot be
//! one, a body that is not an object.

use crate::support::*;
use reqwest::header::HeaderValue;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_at_once_without_reading_the_body() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("u1");
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /user/2022-1/user/otp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{{}}"
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The request timeout (30 s) is what today's answer waited for; the 413 must come long before.
    while !String::from_utf8_lossy(&got).contains("payload-too-large") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within seconds, not after the request timeout")
            .unwrap();
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A body sent in chunks declares no length: the limit holds while it is read. Within the limit
/// it is read whole and parsed (a 422 names the field).
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_and_one_within_it_is_parsed() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("u1");
    let chunked = |body: &str| {
        let (first, rest) = body.split_at(body.len() / 2);
        format!(
            "POST /user/2022-1/user/otp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
            first.len(),
            rest.len()
        )
    };
    let big = format!("{{\"password\": \"{}\"}}", "x".repeat(20_000));
    for (body, status, code) in [
        (big.as_str(), "413", "payload-too-large"),
        (r#"{"password": 5}"#, "422", "invalid-field"),
    ] {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(chunked(body).as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).ends_with("]}") {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        assert!(text.contains(&format!("\"code\":\"{code}\"")), "{text}");
    }
}

#[tokio::test]
async fn a_long_poll_timeout_given_twice_is_named_as_a_duplicate() {
    let app = TestApp::spawn().await;
    let alice = app.as_user("alice");
    let res = alice.check("/user/pin?timeout=1&timeout=60").await;
    let err = assert_error(res, 400, "invalid-parameter").await;
    assert_eq!(err["source"]["parameter"], "timeout");
    let detail = err["detail"].as_str().unwrap();
    assert!(detail.contains("more than once"), "{detail}");
    // One value out of range keeps its own message.
    let res = alice.check("/user/password?timeout=61").await;
    let err = assert_error(res, 400, "invalid-parameter").await;
    assert!(err["detail"].as_str().unwrap().contains("1 to 60"), "{err}");
}

#[tokio::test]
async fn a_key_given_twice_is_422_naming_the_key() {
    let app = TestApp::spawn().await;
    let alice = app.as_user("alice");
    let res = alice
        .post("/user/otp")
        .header("content-type", "application/json")
        .body(r#"{"pin":"8299","pin":"1357"}"#)
        .send()
        .await;
    let err = assert_error(res, 422, "invalid-field").await;
    assert_eq!(err["source"]["pointer"], "/pin");
    let detail = err["detail"].as_str().unwrap();
    assert!(
        detail.contains("`pin`") && detail.contains("more than once"),
        "{detail}"
    );
    assert!(!err.to_string().contains("8299") && !err.to_string().contains("1357"));

    // Nested, in a JSON:API document, and for keys otpd would otherwise ignore.
    let res = alice
        .put("/user/pin")
        .json_api(r#"{"data":{"type":"pin","attributes":{"pin":"5621","otp":"123456","note":1,"note":2}}}"#)
        .send()
        .await;
    let err = assert_error(res, 422, "invalid-field").await;
    assert_eq!(err["source"]["pointer"], "/data/attributes/note");
}

#[tokio::test]
async fn a_bearer_token_with_non_ascii_characters_is_an_invalid_token_not_a_missing_one() {
    let app = TestApp::spawn().await;
    // reqwest's header API takes the raw bytes (obs-text) a client can send.
    let res = app
        .http
        .post(app.url("/user/otp"))
        .header(
            "authorization",
            HeaderValue::from_bytes("Bearer eyJhbGciOiJFUzI1NiJ9.é.x".as_bytes()).unwrap(),
        )
        .json(&json!({"pin": "8299"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_error(res, 401, "invalid-token").await;
    // No token at all stays `missing-token`.
    let res = app.anonymous().create_otp(json!({"pin": "8299"})).await;
    assert_error(res, 401, "missing-token").await;
}

#[tokio::test]
async fn an_array_as_the_whole_body_is_422_at_the_document_saying_an_object_is_expected() {
    let app = TestApp::spawn().await;
    let err = assert_error(
        app.as_user("alice")
            .create_otp(json!([{"pin": "8299"}]))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(err["source"]["pointer"], "");
    assert!(err["detail"].as_str().unwrap().contains("object"), "{err}");
}
