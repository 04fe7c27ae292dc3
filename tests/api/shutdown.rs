//! SIGTERM on the real binary: stop accepting, let in-flight requests finish, exit within the
//! drain deadline even when a client stalls. Its JSON log lines carry no secret.

use crate::support::process::serve_binary;
use crate::support::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SAFETY: Duration = Duration::from_secs(60);

/// A `POST /user/otp` that is in its handler: sent with `Expect: 100-continue`, and returned
/// once the server has answered `100 Continue`, which it does when the handler starts reading
/// the body. Then `split` bytes of the body are sent.
async fn start_request(
    addr: SocketAddr,
    app: &TestApp,
    token: &str,
    body: &str,
    split: usize,
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {}/user/otp HTTP/1.1\r\nHost: otpd\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        app.base,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(SAFETY, stream.read(&mut byte))
            .await
            .expect("100 Continue")
            .unwrap();
        assert_eq!(n, 1, "closed: {}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    stream.write_all(&body.as_bytes()[..split]).await.unwrap();
    stream
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits() {
    let app = TestApp::spawn().await;
    let password = "sigterm password 51d0c";
    app.set_password("tom", password).await;
    let token = app.issuer.token("tom");
    let mut served = serve_binary(&app, &[("OTPD_SHUTDOWN_GRACE_SECONDS", "30")]).await;

    let body = format!("{{\"password\":\"{password}\"}}");
    let mut in_flight = start_request(served.addr, &app, &token, &body, 5).await;
    let mut idle = TcpStream::connect(served.addr).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: otpd\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    served.terminate();
    served.wait_until_refusing().await;

    // The idle keep-alive connection is closed; the in-flight request still completes.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(SAFETY, idle.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection left open"
    );
    in_flight.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(SAFETY, in_flight.read_to_string(&mut response))
        .await
        .expect("the in-flight request is answered and its connection closed")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let otp = response
        .split_once("\"otp\":\"")
        .and_then(|(_, r)| r.split('"').next())
        .expect("an OTP")
        .to_owned();

    let status = served.wait_for_exit().await;
    assert!(status.success(), "{status}");
    let logs = served.logs();
    assert!(
        logs.iter().any(|l| l.contains("all connections finished")),
        "{logs:#?}"
    );
    for line in &logs {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
        for secret in [password, token.as_str(), otp.as_str()] {
            assert!(!line.contains(secret), "secret in log line: {line}");
        }
    }
}

#[tokio::test]
async fn a_stalled_client_cannot_hold_shutdown_beyond_the_grace_period() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("ivy");
    let mut served = serve_binary(
        &app,
        &[
            ("OTPD_SHUTDOWN_GRACE_SECONDS", "1"),
            // Without the drain deadline, this request would hold the process for 10 minutes.
            ("OTPD_REQUEST_TIMEOUT_SECONDS", "600"),
        ],
    )
    .await;
    let body = "{\"pin\":\"4378\"}";
    let _stalled = start_request(served.addr, &app, &token, body, 3).await;
    served.terminate();
    let status = served.wait_for_exit().await;
    assert!(status.success(), "{status}");
    let logs = served.logs();
    assert!(
        logs.iter().any(|l| l.contains("drain deadline passed")),
        "{logs:#?}"
    );
}
