//! `/metrics`: Prometheus text from the app's own recorder, on the main or an admin listener.

use crate::support::*;
use serde_json::json;

async fn scrape(url: String) -> String {
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    res.text().await.unwrap()
}

/// The value of the series whose line starts with `series ` (name and labels exactly).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let app = TestApp::spawn().await;
    app.set_password("uma", "correct horse battery").await;
    let ok = app
        .create_otp("uma", json!({"password": "correct horse battery"}))
        .await;
    assert_eq!(ok.status(), 201);
    let wrong = app
        .create_otp("uma", json!({"password": "wrong horse battery"}))
        .await;
    assert_eq!(wrong.status(), 422);
    for path in ["/nope/uma-7f3a9", "/nope/other-1c2b"] {
        assert_eq!(app.get_root(path).await.status(), 404);
    }
    let text = scrape(app.root_url("/metrics")).await;

    let otp_route = format!("route=\"{}/user/otp\",method=\"POST\"", app.base);
    for (series, expected) in [
        (
            format!("otpd_http_requests_total{{{otp_route},status=\"201\"}}"),
            1.0,
        ),
        (
            format!("otpd_http_requests_total{{{otp_route},status=\"422\"}}"),
            1.0,
        ),
        (
            "otpd_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
                .to_owned(),
            2.0,
        ),
        (
            format!("otpd_http_request_duration_seconds_count{{{otp_route},status=\"201\"}}"),
            1.0,
        ),
        ("otpd_otps_issued_total{via=\"credential\"}".to_owned(), 1.0),
        (
            "otpd_credential_failures_total{factor=\"password\"}".to_owned(),
            1.0,
        ),
        ("otpd_hash_wait_seconds_count".to_owned(), 2.0),
        ("otpd_hash_queue_depth".to_owned(), 0.0),
        ("otpd_hash_running".to_owned(), 0.0),
        (
            "otpd_jwks_refreshes_total{result=\"error\"}".to_owned(),
            0.0,
        ),
    ] {
        assert_eq!(value(&text, &series), Some(expected), "{series} in\n{text}");
    }
    assert!(text.contains("# TYPE otpd_http_request_duration_seconds histogram"));
    assert!(text.contains(&format!(
        "otpd_http_request_duration_seconds_bucket{{{otp_route},status=\"201\",le=\"0.1\"}}"
    )));
    // At least the start-up fetch (a scheduled refresh may have followed).
    assert!(value(&text, "otpd_jwks_refreshes_total{result=\"ok\"}").is_some_and(|v| v >= 1.0));
    assert!(value(&text, "otpd_db_pool_max_connections").is_some_and(|v| v >= 1.0));
    assert!(value(&text, "otpd_db_pool_connections{state=\"idle\"}").is_some());
    assert!(value(&text, "otpd_http_connections_open").is_some_and(|v| v >= 1.0));
    // Raw paths never become labels, and neither does the user.
    assert!(!text.contains("7f3a9") && !text.contains("uma"), "{text}");
}

#[tokio::test]
async fn a_separate_admin_listener_serves_metrics_and_health_and_nothing_else() {
    let app = TestApp::builder()
        .env("OTPD_METRICS_LISTEN", "127.0.0.1:0")
        .spawn()
        .await;
    let admin = app.admin_addr.expect("an admin listener");
    assert_ne!(admin, app.addr);
    assert_error(app.get_root("/metrics").await, 404, "not-found").await;
    let text = scrape(format!("http://{admin}/metrics")).await;
    assert!(text.contains("otpd_jwks_refreshes_total"), "{text}");
    for path in ["/health/live", "/health/ready"] {
        assert_eq!(
            reqwest::get(format!("http://{admin}{path}"))
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(app.get_root(path).await.status(), 200);
    }
    let res = reqwest::Client::new()
        .post(format!("http://{admin}{}/user/otp", app.base))
        .json(&json!({"pin": "4378"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "not-found").await;
}

#[tokio::test]
async fn failures_and_locks_are_counted_by_factor() {
    let app = TestApp::builder()
        .env("OTPD_PIN_LOCK_FROM", "3")
        .spawn()
        .await;
    app.set_pin("vic", "4378").await;
    for pin in ["5821", "5822", "5823"] {
        let res = app.create_otp("vic", json!({"pin": pin})).await;
        assert_eq!(res.status(), 422);
    }
    let text = scrape(app.root_url("/metrics")).await;
    for (series, expected) in [
        ("otpd_credential_failures_total{factor=\"pin\"}", 3.0),
        ("otpd_credential_failures_total{factor=\"password\"}", 0.0),
        ("otpd_locks_total{factor=\"pin\"}", 1.0),
        ("otpd_locks_total{factor=\"password\"}", 0.0),
        ("otpd_otps_issued_total{via=\"credential\"}", 0.0),
    ] {
        assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
    }
}
