//! The signing-key cache: lifetime from the provider's `Cache-Control`, rotation without restart,
//! an unreachable provider, and a flood of made-up key ids. Time moves on a manual clock.

use crate::support::*;
use jsonwebtoken::{Algorithm, Header};
use otpd::service::ManualClock;
use std::sync::Arc;
use std::time::Duration;

/// `POST /user/otp` with kim's PIN and `token`, whatever it is.
async fn post_with(app: &TestApp, token: &str) -> reqwest::Response {
    let kim = app.as_user("kim").with_token(token);
    kim.create_otp_with_pin("1235").await
}

async fn status_with(app: &TestApp, token: &str) -> u16 {
    post_with(app, token).await.status().as_u16()
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()))
}

/// An app on a manual clock where kim has a PIN, and a token of kim's.
async fn kim_on_a_manual_clock() -> (Arc<ManualClock>, TestApp, String) {
    let clock = manual_clock();
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    app.set_pin("kim", "1235").await;
    let token = app.issuer.token("kim");
    (clock, app, token)
}

const OTHER_KID: &str = "test-rsa-2";

fn sign_with_other_key(app: &TestApp) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(OTHER_KID.to_owned());
    app.issuer.sign_with(
        &header,
        &app.issuer.claims("kim", ALL_SCOPES),
        &rsa_key("rsa-other-key.pem"),
    )
}

#[tokio::test]
async fn keys_are_kept_for_the_jwks_max_age_and_fetched_again_after_it() {
    let clock = manual_clock();
    let issuer = Arc::new(TestIssuer::start().await);
    issuer.set_cache_control(Some("public, max-age=900"));
    let app = TestApp::builder()
        .issuer(Arc::clone(&issuer))
        .clock(clock.clone())
        .spawn()
        .await;
    app.set_pin("kim", "1235").await;
    let token = app.issuer.token("kim");
    let fetched = issuer.jwks_fetches();
    assert_eq!(status_with(&app, &token).await, 201);
    // Past the 5-minute default but within the provider's 15 minutes: no fetch.
    clock.advance(Duration::from_secs(600));
    assert_eq!(status_with(&app, &token).await, 201);
    assert_eq!(issuer.jwks_fetches(), fetched);
    // Past max-age: the next request fetches again.
    clock.advance(Duration::from_secs(301));
    assert_eq!(status_with(&app, &token).await, 201);
    assert_eq!(issuer.jwks_fetches(), fetched + 1);
}

#[tokio::test]
async fn a_new_key_is_accepted_and_a_withdrawn_key_refused_without_a_restart() {
    let (clock, app, old) = kim_on_a_manual_clock().await;
    assert_eq!(status_with(&app, &old).await, 201);

    // The provider publishes a new key and signs with it: the unknown kid triggers a fetch.
    app.issuer.publish(public_jwk(
        &rsa_key("rsa-other-key.pem"),
        Algorithm::RS256,
        OTHER_KID,
    ));
    clock.advance(Duration::from_secs(11));
    let new = sign_with_other_key(&app);
    assert_eq!(status_with(&app, &new).await, 201);

    // It withdraws the old key: tokens signed by it work until the cache expires, then not.
    app.issuer.withdraw(RSA_KID);
    assert_eq!(status_with(&app, &old).await, 201);
    clock.advance(Duration::from_secs(301));
    assert_refused(post_with(&app, &old).await, "no RS256 key for kid").await;
    assert_eq!(status_with(&app, &new).await, 201);
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_provider_is_unreachable() {
    let (clock, app, token) = kim_on_a_manual_clock().await;
    app.issuer.set_down(true);
    clock.advance(Duration::from_secs(3600));
    let res = post_with(&app, &token).await;
    assert_eq!(res.status(), 201);
    // The request found the cache expired, tried the provider, and went on with the cached keys.
    let id = request_id(&res);
    assert_logged(
        &id,
        "could not refresh signing keys; keeping the cached ones",
    );
    let ready = app.get_root("/health/ready").await;
    assert_eq!(ready.status(), 200, "still ready on cached keys");
    app.issuer.set_down(false);
}

#[tokio::test]
async fn otpd_starts_while_the_provider_is_down_and_becomes_ready_when_keys_load() {
    let issuer = Arc::new(TestIssuer::start().await);
    issuer.set_down(true);
    let app = TestApp::builder().issuer(Arc::clone(&issuer)).spawn().await;
    app.set_pin("kim", "1235").await;
    let ready = app.get_root("/health/ready").await;
    assert_error(ready, 503, "not-ready").await;
    // This app's warning: other apps of the run log the same words, but not about this issuer.
    let warned = log_lines_with(&issuer.url)
        .into_iter()
        .any(|l| l.contains("could not load signing keys yet; not ready until they load"));
    assert!(warned, "{:#?}", log_lines_with(&issuer.url));
    // A token cannot be judged without keys: that is the provider's outage, not the caller's fault.
    let res = post_with(&app, &issuer.token("kim")).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, 503, "identity-provider-unavailable").await;

    issuer.set_down(false);
    // The background task retries (1 s, 2 s, 4 s, …); wait for it, with a generous bound.
    let mut status = 0;
    for _ in 0..120 {
        status = app.get_root("/health/ready").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "ready once the keys load");
    assert!(issuer.jwks_fetches() >= 1, "the keys came from this issuer");
    assert_eq!(status_with(&app, &issuer.token("kim")).await, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_unknown_key_ids_causes_at_most_one_fetch() {
    let clock = manual_clock();
    let app = Arc::new(TestApp::builder().clock(clock.clone()).spawn().await);
    clock.advance(Duration::from_secs(11));
    let before = app.issuer.jwks_fetches();
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    let flood = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let app = Arc::clone(&app);
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(format!("made-up-{i}-{}", xid::new()));
                let token = app
                    .issuer
                    .sign_with(&header, &claims, &rsa_key("rsa-test-key.pem"));
                tokio::spawn(async move { status_with(&app, &token).await })
            })
            .collect();
        futures::future::join_all(tasks)
    };
    let statuses = flood(40).await;
    assert!(statuses.iter().all(|s| *s.as_ref().unwrap() == 401));
    assert!(
        app.issuer.jwks_fetches() - before <= 1,
        "{} fetches",
        app.issuer.jwks_fetches() - before
    );
    // Within the interval, another flood fetches nothing.
    let after_first = app.issuer.jwks_fetches();
    let statuses = flood(40).await;
    assert!(statuses.iter().all(|s| *s.as_ref().unwrap() == 401));
    assert_eq!(app.issuer.jwks_fetches(), after_first);
}

/// `otpd_jwt_verifications_total` on the app's `/metrics`: (remembered, signature checked).
async fn jwt_verifications(app: &TestApp) -> (f64, f64) {
    let text = app.metrics_text().await;
    let value = |via: &str| {
        let series = format!("otpd_jwt_verifications_total{{via=\"{via}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("remembered"), value("signature"))
}

#[tokio::test]
async fn a_valid_token_is_checked_by_signature_once_until_the_keys_are_fetched_again() {
    let (clock, app, token) = kim_on_a_manual_clock().await;
    let (remembered, checked) = jwt_verifications(&app).await;
    for _ in 0..3 {
        assert_eq!(status_with(&app, &token).await, 201);
    }
    assert_eq!(
        jwt_verifications(&app).await,
        (remembered + 2.0, checked + 1.0)
    );
    // A token that fails is never remembered: each use is checked again (and refused).
    let at = token.len() - 10;
    let other = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{other}{}", &token[..at], &token[at + 1..]);
    for _ in 0..2 {
        assert_eq!(status_with(&app, &forged).await, 401);
    }
    assert_eq!(
        jwt_verifications(&app).await,
        (remembered + 2.0, checked + 1.0)
    );
    // Past the key set's lifetime the keys are fetched again (a new generation): the token's
    // signature is checked against the new keys once, then remembered again.
    clock.advance(Duration::from_secs(301));
    assert_eq!(status_with(&app, &token).await, 201);
    assert_eq!(status_with(&app, &token).await, 201);
    assert_eq!(
        jwt_verifications(&app).await,
        (remembered + 3.0, checked + 2.0)
    );
}
