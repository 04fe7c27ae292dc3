//! Rate limits per client and per source address: 429 `rate-limited`, never a lock on the user.

use crate::support::*;
use futures::future::join_all;
use otpd::domain::Subject;
use serde_json::json;

fn token_for_client(app: &TestApp, sub: &str, client: &str) -> String {
    let mut claims = app.issuer.claims(sub, ALL_SCOPES);
    claims["azp"] = json!(client);
    app.issuer.sign_rs256(&claims)
}

async fn create_otp_with(
    app: &TestApp,
    http: &reqwest::Client,
    token: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    http.post(app.url("/user/otp"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flooding_client_gets_429_and_other_clients_and_the_user_are_unaffected() {
    let app = TestApp::builder()
        .env("OTPD_RATE_LIMIT_PER_CLIENT", "5/min")
        .env("OTPD_HASH_QUEUE", "100")
        .spawn()
        .await;
    app.set_pin("sara", "4378").await;
    let flooder = token_for_client(&app, "sara", "flooder");
    let body = json!({"pin": "4378"});
    let responses =
        join_all((0..20).map(|_| create_otp_with(&app, &app.http, &flooder, body.clone()))).await;
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
    let other = token_for_client(&app, "sara", "other-app");
    let res = create_otp_with(&app, &app.http, &other, body.clone()).await;
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
    let token = app.issuer.token("tina");
    let body = json!({"pin": "4378"});
    let mut statuses = vec![];
    for _ in 0..6 {
        statuses.push(
            create_otp_with(&app, &app.http, &token, body.clone())
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429, 429]);
    let res = create_otp_with(&app, &app.http, &token, body.clone()).await;
    assert_error(res, 429, "rate-limited").await;
    // Health checks are not limited.
    let res = app
        .http
        .get(app.root_url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Another source address (loopback is all of 127/8) has its own budget.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let res = create_otp_with(&app, &elsewhere, &token, body).await;
    assert_eq!(res.status(), 201);
}
