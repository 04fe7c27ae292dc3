//! SIGTERM on the real binary: stop accepting, let in-flight requests finish, exit within the
//! drain deadline even when a client stalls. Its JSON log lines carry no secret.

use crate::support::process::{run_otpd, serve_binary, with_env};
use crate::support::*;
use futures::StreamExt;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// No log line is lost to a SIGTERM exit or dropped under a burst: every answered request's line is
/// on stderr, and the drain's last line is the last one (a buffered or background log writer, see
/// docs/benchmark.md, must flush before the process exits).
#[tokio::test]
async fn every_request_line_of_a_burst_is_logged_before_a_sigterm_exit() {
    let app = TestApp::spawn().await;
    // Every line of the burst of 401s is asked for: no quota on rejected requests' lines.
    let mut served = serve_binary(
        &app,
        &[
            ("OTPD_RATE_LIMIT_PER_ADDRESS", "off"),
            ("OTPD_LOG_REJECTED_REQUESTS", "off"),
        ],
    )
    .await;
    let url = format!("http://{}{}/user/otp", served.addr, app.base);
    let http = reqwest::Client::new();
    const BURST: usize = 3000;
    let done = Arc::new(AtomicUsize::new(0));
    let burst: Vec<_> = (0..BURST)
        .map(|i| {
            let sent = http
                .post(&url)
                .header("request-id", format!("burst-{i}"))
                .header("content-type", "application/json")
                .body("{\"pin\":\"1235\"}")
                .send();
            let done = Arc::clone(&done);
            async move {
                let status = sent.await.map(|r| r.status());
                done.fetch_add(1, Ordering::Relaxed);
                status
            }
        })
        .collect();
    let burst = tokio::spawn(
        futures::stream::iter(burst)
            .buffered(32)
            .collect::<Vec<_>>(),
    );
    // SIGTERM in the middle of the burst: the drain's requests log their lines right before the
    // exit, while earlier lines may still be queued for the writer thread.
    while done.load(Ordering::Relaxed) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    served.terminate();
    let answers = burst.await.unwrap();
    let status = served.wait_for_exit().await;
    assert!(status.success(), "{status}");
    let answered: Vec<usize> = (0..BURST)
        .filter(|&i| matches!(&answers[i], Ok(s) if s.as_u16() == 401))
        .collect();
    assert!(
        !answered.is_empty(),
        "no request was answered before the exit: {:?}",
        answers.iter().find(|a| a.is_err())
    );

    let logs = served.logs();
    let mut logged = vec![0; BURST];
    for line in &logs {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["message"] == "request"
            && let Some(i) = v["span"]["request_id"]
                .as_str()
                .and_then(|id| id.strip_prefix("burst-"))
        {
            logged[i.parse::<usize>().unwrap()] += 1;
        }
    }
    let missing: Vec<_> = answered.iter().filter(|&&i| logged[i] != 1).collect();
    assert!(
        missing.is_empty(),
        "request lines missing or doubled: {missing:?}"
    );
    assert!(
        logs.last().unwrap().contains("all connections finished"),
        "the drain's last line is the last one written: {:?}",
        logs.last()
    );
}

/// A start-up that fails after logging (here: the listen address is taken) still writes the lines
/// queued before the failure, ahead of the error message.
#[tokio::test]
async fn lines_logged_before_a_fatal_start_up_error_are_written() {
    let app = TestApp::spawn().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut env = with_env(
        &app.env,
        "OTPD_LISTEN",
        &taken.local_addr().unwrap().to_string(),
    );
    env.push(("OTPD_LOG_FORMAT".into(), "json".into()));
    let out = tokio::task::spawn_blocking(move || run_otpd(&env, &["serve"], ""))
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let warned = lines
        .iter()
        .position(|l| l.contains("risky setting") && l.contains("allow_insecure_idp_urls"))
        .unwrap_or_else(|| panic!("the start-up warning is missing:\n{stderr}"));
    let failed = lines
        .iter()
        .position(|l| l.starts_with("otpd: "))
        .unwrap_or_else(|| panic!("the error is missing:\n{stderr}"));
    assert!(warned < failed, "{stderr}");
}
