//! Rate limits per client and per source address: 429 `rate-limited`, never a lock on the user.

use crate::support::*;
use futures::future::join_all;
use otpd::domain::Subject;
use serde_json::json;

/// `sub` calling through the OAuth client `client` (the token's `azp`).
fn through_client<'a>(app: &'a TestApp, sub: &str, client: &str) -> User<'a> {
    app.as_user(sub).with_claims(json!({ "azp": client }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_client_gets_429_and_other_clients_and_the_user_are_unaffected() {
    // PIN locking off: parallel checks of one PIN are counted before they are checked, and five
    // at once would reach the lock threshold; this test is about the per-client limit alone.
    let app = TestApp::builder()
        .env("OTPD_RATE_LIMIT_PER_CLIENT", "5/min")
        .admitting_bursts()
        .env("OTPD_PIN_LOCK_FROM", "0")
        .env("OTPD_PIN_DISABLE_AFTER", "0")
        .spawn()
        .await;
    app.set_pin("sara", "4378").await;
    let flooder = through_client(&app, "sara", "flooder");
    let responses = join_all((0..20).map(|_| flooder.create_otp_with_pin("4378"))).await;
    let mut created = 0;
    let mut limited = vec![];
    for res in responses {
        match res.status().as_u16() {
            201 => created += 1,
            429 => limited.push(res),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 5, "the burst of 5 passes");
    assert_eq!(limited.len(), 15);
    for res in limited {
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=12).contains(&retry), "one request every 12 s: {retry}");
        assert_error(res, 429, "rate-limited").await;
    }

    // Another client of the same user is not limited, and nothing was counted against the user.
    let other = through_client(&app, "sara", "other-app");
    let res = other.create_otp_with_pin("4378").await;
    assert_eq!(res.status(), 201);
    let states = app
        .services()
        .await
        .attempt_states(&Subject::parse("sara").unwrap())
        .await
        .unwrap();
    assert!(
        states
            .iter()
            .all(|(_, s)| s.failures == 0 && s.locked_until == 0),
        "{states:?}"
    );
}

#[tokio::test]
async fn a_flooding_address_gets_429_and_other_addresses_are_unaffected() {
    let app = TestApp::builder()
        .env("OTPD_RATE_LIMIT_PER_ADDRESS", "3/min")
        .spawn()
        .await;
    app.set_pin("tina", "4378").await;
    let tina = app.as_user("tina");
    let mut statuses = vec![];
    for _ in 0..6 {
        statuses.push(tina.create_otp_with_pin("4378").await.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429, 429]);
    let res = tina.create_otp_with_pin("4378").await;
    assert_error(res, 429, "rate-limited").await;
    // Health checks are not limited.
    let res = app.get_root("/health/live").await;
    assert_eq!(res.status(), 200);
    // Another source address (loopback is all of 127/8) has its own budget.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let tina_elsewhere = User::new(&elsewhere, app.url(""), &app.issuer, "tina");
    let res = tina_elsewhere.create_otp_with_pin("4378").await;
    assert_eq!(res.status(), 201);
}

/// Every operation of the API document applies the per-address limit before anything else of the
/// request is looked at (without a token or a body: 429, not 401, 415 or 501), and counts the
/// request under the operation's route template. Each handler does both in its first extractor
/// (`otpd::http::Api`); a handler that does not fails here.
#[tokio::test]
async fn every_api_operation_is_limited_per_address_first_and_counted_under_its_route() {
    let app = TestApp::builder()
        .env("OTPD_RATE_LIMIT_PER_ADDRESS", "1/h")
        .spawn()
        .await;
    let doc: serde_json::Value = app.get_root("/openapi.json").await.json().await.unwrap();
    let client = reqwest::Client::new();
    // The address's one request of the hour.
    let first = client.get(app.url("/user/pin")).send().await.unwrap();
    assert_ne!(first.status(), 429);
    let mut operations = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/admin/") {
            continue;
        }
        for method in ["get", "put", "post", "delete"] {
            if item.get(method).is_some() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(operations.len() >= 17, "{operations:?}");
    for (method, path) in &operations {
        // `{sessionId}` and the like: any value reaches the operation.
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let res = client
            .request(method.parse().unwrap(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 429, "{method} {path}");
        assert_error(res, 429, "rate-limited").await;
    }
    let metrics = app.metrics_text().await;
    for (method, path) in &operations {
        let series = format!(
            "otpd_http_requests_total{{route=\"{}{path}\",method=\"{method}\",status=\"429\"}} 1",
            app.base
        );
        assert!(metrics.contains(&series), "{series} missing");
    }
}
