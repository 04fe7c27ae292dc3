//! Connection hygiene, on raw TCP: slow headers, silent and idle connections, stalled bodies,
//! the keep-alive request cap.

use crate::connection_slots::metric_reaches;
use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous upper bound for things that should happen within a second or two: a safety net so a
/// broken server fails the test instead of hanging it, not a timing assertion.
pub(crate) const SAFETY: Duration = Duration::from_secs(15);

/// Reads until the server closes the connection; returns what it sent.
pub(crate) async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(SAFETY, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open; got so far: {}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response whose body is `Content-Length` long.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        let n = tokio::time::timeout(SAFETY, stream.read(&mut buf))
            .await
            .expect("a response")
            .expect("reading");
        assert!(n > 0, "closed before a full response: {text}");
        out.extend_from_slice(&buf[..n]);
    }
}

/// Waits (bounded) until one connection closed for `reason` is counted: the count follows the
/// close, so a client can see the close first.
async fn closes_counted(app: &TestApp, reason: &str) {
    let series = format!("otpd_http_connections_closed_total{{reason=\"{reason}\"}}");
    metric_reaches(app, &series, 1.0).await;
}

const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: otpd\r\n\r\n";

/// An app that waits at most a second for a request's headers, and a raw connection to it.
async fn app_with_header_timeout() -> (TestApp, TcpStream) {
    let app = TestApp::builder()
        .env("OTPD_HEADER_READ_TIMEOUT_SECONDS", "1")
        .spawn()
        .await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    (app, stream)
}

/// Sends `request` and reads the response, which must be a 200.
async fn ok_response(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let response = read_response(stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test]
async fn a_client_dribbling_headers_is_cut_off() {
    let (app, mut stream) = app_with_header_timeout().await;
    // The request line and one header, without the blank line that ends the headers.
    stream.write_all(&LIVE[..LIVE.len() - 2]).await.unwrap();
    // One more header line every 100 ms, never the blank line that ends the headers.
    let dribble = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream
                .write_all(format!("X-Slow-{i}: x\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            let mut probe = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => panic!(
                    "answered a request whose headers never ended: {}",
                    String::from_utf8_lossy(&probe[..n])
                ),
                Err(_) => {}
            }
        }
    };
    tokio::time::timeout(SAFETY, dribble)
        .await
        .expect("the server cut off the slow client");
    // Others are served as usual, and the cut is counted by its reason.
    assert_eq!(app.get_root("/health/live").await.status(), 200);
    closes_counted(&app, "header-read-timeout").await;
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let (_app, mut stream) = app_with_header_timeout().await;
    assert_eq!(read_until_closed(&mut stream).await, "");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_and_closes_at_the_idle_timeout()
{
    let app = TestApp::builder()
        .env("OTPD_HEADER_READ_TIMEOUT_SECONDS", "1")
        .env("OTPD_IDLE_TIMEOUT_SECONDS", "5")
        .spawn()
        .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    ok_response(&mut stream, LIVE).await;
    // Silent for twice the header timeout: a keep-alive connection waiting for its next request
    // is idle, not slow (hyper's header timer closed it here).
    tokio::time::sleep(Duration::from_secs(2)).await;
    ok_response(&mut stream, LIVE).await;
    assert_eq!(read_until_closed(&mut stream).await, "");
    closes_counted(&app, "idle-timeout").await;
}

#[tokio::test]
async fn a_head_begun_on_an_idle_keep_alive_connection_is_cut_at_the_header_timeout() {
    // The idle timeout (30 s) is longer than SAFETY: only the watchdog's look every header
    // timeout finds a head that began while it slept towards the idle deadline.
    let app = TestApp::builder()
        .env("OTPD_HEADER_READ_TIMEOUT_SECONDS", "1")
        .env("OTPD_FIRST_REQUEST_TIMEOUT_SECONDS", "1")
        .spawn()
        .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    ok_response(&mut stream, LIVE).await;
    // Past the first-request deadline, so the watchdog has looked and seen an idle connection.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stream.write_all(&LIVE[..LIVE.len() - 2]).await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, "");
    closes_counted(&app, "header-read-timeout").await;
}

#[tokio::test]
async fn a_request_whose_body_stalls_gets_a_json_api_503_at_the_request_timeout() {
    let app = TestApp::builder()
        .env("OTPD_REQUEST_TIMEOUT_SECONDS", "1")
        .spawn()
        .await;
    let token = app.issuer.token("nia");
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {}/user/otp HTTP/1.1\r\nHost: otpd\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"pin\":",
        app.base
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let res = read_response(&mut stream).await;
    assert!(res.starts_with("HTTP/1.1 503"), "{res}");
    assert!(
        res.to_ascii_lowercase()
            .contains("content-type: application/vnd.api+json"),
        "{res}"
    );
    assert!(res.to_ascii_lowercase().contains("retry-after: "), "{res}");
    assert!(res.contains("\"code\":\"request-timeout\""), "{res}");
}

#[tokio::test]
async fn keep_alive_connections_close_after_the_request_cap() {
    let app = TestApp::builder()
        .env("OTPD_MAX_REQUESTS_PER_CONNECTION", "2")
        .spawn()
        .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let first = ok_response(&mut stream, LIVE).await;
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    let second = ok_response(&mut stream, LIVE).await;
    assert!(
        second.to_ascii_lowercase().contains("connection: close"),
        "{second}"
    );
    assert_eq!(read_until_closed(&mut stream).await, "");
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let app = TestApp::spawn().await;
    live_over_http2(&app).await;
}

/// `GET /health/live` on a connection that speaks HTTP/2 from the first byte: served as HTTP/2.
/// Returns the client, whose connection stays open.
pub(crate) async fn live_over_http2(app: &TestApp) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = client
        .get(app.root_url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    client
}
