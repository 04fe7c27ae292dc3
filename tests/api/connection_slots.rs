//! Connection slots: connections that carry no request (silent HTTP/1, an HTTP/2 preface and
//! SETTINGS then nothing) cannot keep out one that does; the per-address cap; the deadlines for
//! a first request and for idleness, HTTP/1 and HTTP/2.

use crate::connections::{SAFETY, live_over_http2, read_until_closed};
use crate::support::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const H2_EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// A counter or gauge of `/metrics`: the admin listener's when the app has one (the scrape then
/// needs no slot of the main listener, which these tests fill), else the main listener's.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = match app.admin_addr {
        Some(admin) => reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        None => app.metrics_text().await,
    };
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing"))
}

/// Waits (bounded) until `series` reaches `at_least`.
pub(crate) async fn metric_reaches(app: &TestApp, series: &str, at_least: f64) {
    let wait = async {
        while metric(app, series).await < at_least {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(SAFETY, wait)
        .await
        .unwrap_or_else(|_| panic!("{series} never reached {at_least}"));
}

/// An HTTP/2 connection that sends the preface and an empty SETTINGS frame, reads the server's
/// first frame (its SETTINGS: the server runs the connection, so it holds a slot), then nothing.
async fn idle_http2(app: &TestApp) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(H2_PREFACE).await.unwrap();
    s.write_all(H2_EMPTY_SETTINGS).await.unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(SAFETY, s.read_exact(&mut head))
        .await
        .expect("the server answers the preface")
        .unwrap();
    assert_eq!(head[3], 4, "the server's first frame is SETTINGS");
    s
}

fn slots_app() -> TestAppBuilder {
    TestApp::builder()
        .env("OTPD_MAX_CONNECTIONS", "8")
        .env("OTPD_METRICS_LISTEN", "127.0.0.1:0")
        // Far beyond the test's bounds: only giving way, not a timeout, can free a slot in time.
        .env("OTPD_FIRST_REQUEST_TIMEOUT_SECONDS", "120")
        .env("OTPD_HEADER_READ_TIMEOUT_SECONDS", "120")
        .env("OTPD_IDLE_TIMEOUT_SECONDS", "600")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_http1_and_http2_connections_holding_every_slot_give_way_to_a_real_request() {
    let app = slots_app().spawn().await;
    let mut idle = vec![];
    for _ in 0..4 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    for _ in 0..4 {
        idle.push(idle_http2(&app).await);
    }
    // All eight hold a slot (the ninth connection is the scrape on the admin listener).
    metric_reaches(&app, "otpd_http_connections_open", 9.0).await;
    // Each client keeps its connection: every request needs a slot of its own.
    let mut clients = vec![];
    for _ in 0..3 {
        let client = reqwest::Client::builder().timeout(SAFETY).build().unwrap();
        clients.push(client.clone());
        let started = Instant::now();
        let res = client.get(app.root_url("/health/live")).send().await;
        let took = started.elapsed();
        assert_eq!(res.expect("answered").status(), 200);
        // A bound with a wide margin, not a benchmark: without giving way the request would wait
        // for the 120 s deadlines of the idle connections.
        assert!(
            took < Duration::from_secs(2),
            "answered only after {took:?}"
        );
    }
    assert!(
        metric(
            &app,
            "otpd_http_connections_closed_total{reason=\"evicted\"}"
        )
        .await
            >= 3.0
    );
    // The oldest silent connection went first.
    assert_eq!(read_until_closed(&mut idle[0]).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_with_a_request_in_flight_is_never_evicted() {
    let app = slots_app().env("OTPD_MAX_CONNECTIONS", "2").spawn().await;
    app.set_password("lou", PASSWORD).await;
    // Two long polls hold both slots with a request in flight each.
    let lou = app.as_user("lou");
    let polls = futures::future::join(
        lou.check("/user/pin?timeout=3"),
        lou.check("/user/pin?timeout=3"),
    );
    let newcomer = async {
        metric_reaches(&app, "otpd_long_polls_waiting", 2.0).await;
        let res = reqwest::Client::new()
            .get(app.root_url("/health/live"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    };
    let ((a, b), ()) = futures::future::join(polls, newcomer).await;
    // Both long polls ran to their end: neither was cut off for the newcomer, which got the
    // slot of one of them once it had answered.
    assert_error(a, 404, "credential-not-set").await;
    assert_error(b, 404, "credential-not-set").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let app = slots_app()
        .env("OTPD_MAX_CONNECTIONS_PER_ADDRESS", "2")
        .spawn()
        .await;
    let first = TcpStream::connect(app.addr).await.unwrap();
    let _second = TcpStream::connect(app.addr).await.unwrap();
    metric_reaches(&app, "otpd_http_connections_open", 3.0).await;
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(read_until_closed(&mut third).await, "");
    assert_eq!(
        metric(
            &app,
            "otpd_http_connections_closed_total{reason=\"address-limit\"}"
        )
        .await,
        1.0
    );
    drop(first);
    let wait_for_room = async {
        loop {
            let res = reqwest::Client::new()
                .get(app.root_url("/health/live"))
                .send()
                .await;
            if res.is_ok_and(|r| r.status() == 200) {
                return;
            }
        }
    };
    tokio::time::timeout(SAFETY, wait_for_room)
        .await
        .expect("a slot of the address freed up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_without_a_first_request_are_closed_at_the_deadline_http1_and_http2() {
    let app = slots_app()
        .env("OTPD_FIRST_REQUEST_TIMEOUT_SECONDS", "1")
        .spawn()
        .await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut h2 = idle_http2(&app).await;
    assert_eq!(read_until_closed(&mut silent).await, "");
    read_until_closed(&mut h2).await;
    assert_eq!(
        metric(
            &app,
            "otpd_http_connections_closed_total{reason=\"first-request-timeout\"}"
        )
        .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let app = slots_app()
        .env("OTPD_IDLE_TIMEOUT_SECONDS", "1")
        .spawn()
        .await;
    let client = live_over_http2(&app).await;
    metric_reaches(
        &app,
        "otpd_http_connections_closed_total{reason=\"idle-timeout\"}",
        1.0,
    )
    .await;
    // The client notices and connects anew.
    let res = client
        .get(app.root_url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
