//! Every client-caused failure of `POST /user/otp` and the framework's own failures, all JSON:API.

use crate::support::*;
use serde_json::json;

async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app.as_user("u1").post("/user/otp").body(body);
    for (name, value) in [("content-type", content_type), ("accept", accept)] {
        if let Some(value) = value {
            req = req.header(name, value);
        }
    }
    req.send().await
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;
    let res = post_raw(&app, Some("application/json"), None, b"{\"pin\": ".to_vec()).await;
    assert_error(res, 400, "malformed-json").await;
}

#[tokio::test]
async fn neither_pin_nor_password_is_422_pointing_at_the_document() {
    let app = TestApp::spawn().await;
    for body in [
        json!({}),
        json!({"pin": null, "password": null}),
        json!({"pin": ""}),
    ] {
        let err = assert_error(app.create_otp("u1", body).await, 422, "missing-credential").await;
        assert_eq!(err["source"]["pointer"], "");
    }
}

#[tokio::test]
async fn wrong_types_are_422_pointing_at_the_field_without_echoing_it() {
    let app = TestApp::spawn().await;
    let err = assert_error(
        app.create_otp("u1", json!({"pin": 8299})).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(err["source"]["pointer"], "/pin");
    assert!(!err.to_string().contains("8299"));
    let err = assert_error(
        app.create_otp("u1", json!({"password": ["x"]})).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(err["source"]["pointer"], "/password");
    let err = assert_error(
        app.create_otp("u1", json!("just a string")).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(err["source"]["pointer"], "");
}

#[tokio::test]
async fn over_long_values_are_422() {
    let app = TestApp::spawn().await;
    let err = assert_error(
        app.create_otp("u1", json!({"password": "x".repeat(1025)}))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(err["source"]["pointer"], "/password");
    let err = assert_error(
        app.create_otp("u1", json!({"pin": "1".repeat(65)})).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(err["source"]["pointer"], "/pin");
}

#[tokio::test]
async fn an_accept_header_that_excludes_json_is_406() {
    let app = TestApp::spawn().await;
    let res = post_raw(
        &app,
        Some("application/json"),
        Some("text/html"),
        b"{}".to_vec(),
    )
    .await;
    assert_error(res, 406, "not-acceptable").await;
    for ok in ["*/*", "application/*", "application/json"] {
        let res = post_raw(&app, Some("application/json"), Some(ok), b"{}".to_vec()).await;
        assert_eq!(res.status(), 422, "Accept: {ok}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_415() {
    let app = TestApp::spawn().await;
    assert_error(
        post_raw(&app, Some("text/plain"), None, b"{}".to_vec()).await,
        415,
        "unsupported-media-type",
    )
    .await;
    assert_error(
        post_raw(&app, None, None, b"{}".to_vec()).await,
        415,
        "unsupported-media-type",
    )
    .await;
    let res = post_raw(
        &app,
        Some("application/json; charset=utf-8"),
        None,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(res.status(), 422, "a charset parameter is fine");
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = TestApp::spawn().await;
    let body = format!("{{\"password\": \"{}\"}}", "x".repeat(20_000));
    assert_error(
        post_raw(&app, Some("application/json"), None, body.into_bytes()).await,
        413,
        "payload-too-large",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_api_errors() {
    let app = TestApp::spawn().await;
    let res = app.get_root("/nowhere").await;
    assert_error(res, 404, "not-found").await;
    let res = app.request(reqwest::Method::GET, "/user/otp").send().await;
    assert_eq!(res.headers()["allow"], "POST");
    assert_error(res, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn a_sane_request_id_is_kept_and_a_strange_one_replaced() {
    let app = TestApp::spawn().await;
    let nowhere = |id: &str| {
        let req = app.http.get(app.root_url("/nowhere"));
        req.header("request-id", id).send()
    };
    let res = nowhere("client-id-123").await.unwrap();
    assert_eq!(res.headers()["request-id"], "client-id-123");
    let err = assert_error(res, 404, "not-found").await;
    assert_eq!(err["id"], "client-id-123");
    let id = request_id(&nowhere("<script>").await.unwrap());
    assert_eq!(id.len(), 20, "a fresh xid: {id}");
}

#[tokio::test]
async fn an_internal_error_is_500_without_internals_and_logged_with_its_cause() {
    let app = TestApp::spawn().await;
    app.set_pin("broken", "1235").await;
    // Corrupt the stored hash behind the service's back.
    corrupt_pin_hash(&app.database_url, "broken").await;
    let res = app.create_otp("broken", json!({"pin": "1235"})).await;
    let request_id = request_id(&res);
    let err = assert_error(res, 500, "internal-error").await;
    let text = err.to_string();
    assert!(
        !text.contains("PHC") && !text.contains("hash") && !text.contains("argon"),
        "{text}"
    );
    let lines = log_lines_with(&request_id);
    let line = lines
        .iter()
        .find(|l| l.contains("request failed"))
        .expect("logged");
    assert!(line.contains("stored hash unusable"), "{line}");
}

async fn corrupt_pin_hash(url: &str, sub: &str) {
    let sql = "UPDATE users SET pin_hash = 'not a hash' WHERE sub = $1";
    assert_eq!(execute(url, sql, sub).await, 1);
}

/// With the per-request lines turned off (`OTPD_LOG=info,otpd::http::context=warn`, the operator's
/// option for cheap requests, docs/operations.md), a failed request is still logged with its cause
/// and its request id, and every request is still counted in the metrics.
#[tokio::test]
async fn with_request_lines_off_a_failed_request_is_still_logged_with_its_id() {
    let app = TestApp::spawn().await;
    app.set_pin("broken", "1235").await;
    corrupt_pin_hash(&app.database_url, "broken").await;
    let mut served = crate::support::process::serve_binary(
        &app,
        &[("OTPD_LOG", "info,otpd::http::context=warn")],
    )
    .await;
    let url = format!("http://{}{}/user/otp", served.addr, app.base);
    let http = reqwest::Client::new();
    let post = |id: &'static str| {
        http.post(&url)
            .header("request-id", id)
            .json(&json!({"pin": "1235"}))
    };
    let failed = post("broken-1")
        .bearer_auth(app.issuer.token("broken"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    assert_eq!(post("plain-1").send().await.unwrap().status(), 401);
    let metrics = served.metrics().await;
    served.terminate();
    assert!(served.wait_for_exit().await.success());

    let logs = served.json_logs();
    let failure = logs
        .iter()
        .find(|v| v["message"] == "request failed")
        .unwrap_or_else(|| panic!("no failure line: {logs:?}"));
    assert_eq!(failure["request_id"], "broken-1", "{failure}");
    assert!(
        failure["error"]
            .as_str()
            .is_some_and(|e| e.contains("stored hash unusable")),
        "{failure}"
    );
    assert!(
        !logs.iter().any(|v| v["message"] == "request"),
        "request lines are off: {logs:?}"
    );
    for status in ["500", "401"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("otpd_http_requests_total")
                    && l.contains(&format!("status=\"{status}\""))),
            "{status} not counted:\n{metrics}"
        );
    }
}

/// A flood of rejections writes only `log_rejected_requests` of request lines (docs/operations.md):
/// with a quota of 3 a minute, 20 refused tokens give 3 lines, every one of the 20 is counted in
/// the metrics, and a request that is not refused still gets its line, after one that says 17 were
/// left out.
#[tokio::test]
async fn a_flood_of_rejections_writes_only_its_quota_of_request_lines() {
    let app = TestApp::spawn().await;
    let mut served = crate::support::process::serve_binary(
        &app,
        &[
            ("OTPD_LOG", "info"),
            ("OTPD_LOG_REJECTED_REQUESTS", "3/min"),
        ],
    )
    .await;
    let url = format!("http://{}{}/user/otp", served.addr, app.base);
    let http = reqwest::Client::new();
    let refused = (0..20).map(|i| {
        http.post(&url)
            .header("request-id", format!("flood-{i}"))
            .json(&json!({"pin": "1235"}))
            .send()
    });
    for res in futures::future::join_all(refused).await {
        assert_eq!(res.unwrap().status(), 401);
    }
    let live = http
        .get(format!("http://{}/health/live", served.addr))
        .header("request-id", "after-the-flood")
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let metrics = served.metrics().await;
    served.terminate();
    assert!(served.wait_for_exit().await.success());

    let logs = served.json_logs();
    let lines_of = |status: u64| {
        logs.iter()
            .filter(|v| v["message"] == "request" && v["status"] == status)
            .count()
    };
    assert_eq!(lines_of(401), 3, "{logs:#?}");
    let summaries: Vec<_> = logs
        .iter()
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("request lines of rejected requests left out"))
        })
        .map(|v| v["left_out"].clone())
        .collect();
    assert_eq!(
        summaries,
        [json!(17)],
        "the next line written says so: {logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|v| v["message"] == "request" && v["span"]["request_id"] == "after-the-flood"),
        "the 200 after the flood has its line: {logs:#?}"
    );
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("otpd_http_requests_total") && l.contains("status=\"401\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, 20.0, "every 401 is counted:\n{metrics}");
}
