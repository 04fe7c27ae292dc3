//! Opaque tokens through RFC 7662 introspection, against a stub endpoint whose answers and health
//! the tests control (the real provider's introspection is in `real_provider`).

use crate::support::*;
use otpd::service::Clock;
use otpd::service::ManualClock;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENT_ID: &str = "otpd";
const CLIENT_SECRET: &str = "introspection-secret-7f3a9c";

/// An introspection endpoint: answers from a table of tokens, `{"active": false}` for others. It
/// counts the calls it gets, and can hold its answers back (`hold`) so tests can pile requests up.
pub(crate) struct Stub {
    url: String,
    answers: Arc<Mutex<HashMap<String, Value>>>,
    calls: Arc<AtomicUsize>,
    pub(crate) down: Arc<AtomicBool>,
    gate: Arc<tokio::sync::RwLock<()>>,
    secret_dir: tempfile::TempDir,
}

impl Stub {
    pub(crate) async fn start() -> Self {
        let answers: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(tokio::sync::RwLock::new(()));
        let (a, c, d) = (Arc::clone(&answers), Arc::clone(&calls), Arc::clone(&down));
        let g = Arc::clone(&gate);
        let router = axum::Router::new().route(
            "/introspect",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let g = Arc::clone(&g);
                let (a, c, d) = (Arc::clone(&a), Arc::clone(&c), Arc::clone(&d));
                async move {
                    use axum::http::StatusCode;
                    use axum::response::IntoResponse;
                    c.fetch_add(1, Ordering::SeqCst);
                    let _open = g.read().await;
                    if d.load(Ordering::SeqCst) {
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    use base64::Engine;
                    let expected = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
                    );
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some(expected.as_str())
                    {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    let token = body
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("token="))
                        .unwrap_or_default()
                        .to_owned();
                    let answer = a
                        .lock()
                        .unwrap()
                        .get(&token)
                        .cloned()
                        .unwrap_or(json!({"active": false}));
                    axum::Json(answer).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/introspect", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let secret_dir = tempfile::tempdir().unwrap();
        std::fs::write(
            secret_dir.path().join("secret"),
            format!("{CLIENT_SECRET}\n"),
        )
        .unwrap();
        Self {
            url,
            answers,
            calls,
            down,
            gate,
            secret_dir,
        }
    }

    /// Holds every answer back (the calls are still counted) until the guard is dropped.
    pub(crate) async fn hold(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        Arc::clone(&self.gate).write_owned().await
    }

    pub(crate) fn set(&self, token: &str, answer: Value) {
        self.answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn app(&self) -> TestAppBuilder {
        TestApp::builder()
            .env("OTPD_INTROSPECTION_URL", &self.url)
            .env("OTPD_INTROSPECTION_CLIENT_ID", CLIENT_ID)
            .env(
                "OTPD_INTROSPECTION_CLIENT_SECRET_FILE",
                &self.secret_dir.path().join("secret").display().to_string(),
            )
    }
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What a provider says about an active token of `sub` that expires at `exp` (unix seconds).
pub(crate) fn active_until(app: &TestApp, sub: &str, scope: &str, exp: i64) -> Value {
    json!({"active": true, "sub": sub, "scope": scope, "client_id": "app", "iss": app.issuer.url,
           "token_type": "Bearer", "exp": exp, "iat": exp - 600})
}

pub(crate) fn active(app: &TestApp, sub: &str, scope: &str, exp_in: i64) -> Value {
    active_until(app, sub, scope, now() + exp_in)
}

/// An app that introspects with `stub`, and kim with a PIN.
async fn kim_behind(stub: &Stub) -> TestApp {
    let app = stub.app().spawn().await;
    app.set_pin("kim", "1235").await;
    app
}

/// `POST /user/otp` with kim's PIN and `token`, whatever it is.
pub(crate) async fn post_with(app: &TestApp, token: &str) -> reqwest::Response {
    let kim = app.as_user("kim").with_token(token);
    kim.create_otp_with_pin("1235").await
}

#[tokio::test]
async fn an_active_opaque_token_is_accepted_and_an_inactive_one_refused() {
    let stub = Stub::start().await;
    let app = kim_behind(&stub).await;
    stub.set("opaque-good", active(&app, "kim", "user:otp:create", 600));
    assert_eq!(post_with(&app, "opaque-good").await.status(), 201);
    stub.set("opaque-dead", json!({"active": false}));
    assert_error(post_with(&app, "opaque-dead").await, 401, "invalid-token").await;
    assert_error(post_with(&app, "never-issued").await, 401, "invalid-token").await;
    // A JWT never goes to introspection.
    let calls = stub.calls();
    assert_eq!(
        post_with(&app, &app.issuer.token("kim")).await.status(),
        201
    );
    assert_eq!(stub.calls(), calls);
}

#[tokio::test]
async fn introspected_tokens_get_the_same_scope_and_identity_checks_as_jwts() {
    let stub = Stub::start().await;
    let app = stub
        .app()
        .env("OTPD_AUDIENCE", "otpd")
        .env("OTPD_LINKED_IDENTITY_CLAIM", "pace_linked")
        .spawn()
        .await;
    app.set_pin("kim", "1235").await;
    let with = |scope: &str, extra: Value| {
        let mut v = active(&app, "kim", scope, 600);
        v["aud"] = json!("otpd");
        v["pace_linked"] = json!("idp-1");
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    stub.set("ok", with("user:otp:create", json!({})));
    assert_eq!(post_with(&app, "ok").await.status(), 201);
    stub.set("no-scope", with("user:otp:verify", json!({})));
    assert_error(post_with(&app, "no-scope").await, 403, "insufficient-scope").await;
    stub.set(
        "unlinked",
        with("user:otp:create", json!({"pace_linked": null})),
    );
    assert_error(
        post_with(&app, "unlinked").await,
        401,
        "missing-linked-identity",
    )
    .await;
    stub.set(
        "other-aud",
        with("user:otp:create", json!({"aud": "payments"})),
    );
    assert_error(post_with(&app, "other-aud").await, 401, "invalid-token").await;
    stub.set(
        "other-iss",
        with("user:otp:create", json!({"iss": "https://evil.example"})),
    );
    assert_error(post_with(&app, "other-iss").await, 401, "invalid-token").await;
    stub.set(
        "refresh",
        with("user:otp:create", json!({"token_type": "refresh_token"})),
    );
    assert_error(post_with(&app, "refresh").await, 401, "invalid-token").await;
    stub.set(
        "expired",
        with("user:otp:create", json!({"exp": now() - 3600})),
    );
    assert_error(post_with(&app, "expired").await, 401, "invalid-token").await;
    stub.set("no-sub", with("user:otp:create", json!({"sub": null})));
    assert_error(post_with(&app, "no-sub").await, 401, "invalid-token").await;
}

#[tokio::test]
async fn answers_are_cached_briefly_and_never_past_the_tokens_exp() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let stub = Stub::start().await;
    let app = stub
        .app()
        .env("OTPD_INTROSPECTION_CACHE_SECONDS", "30")
        .clock(clock.clone())
        .spawn()
        .await;
    app.set_pin("kim", "1235").await;

    // A token with an hour to live: cached for 30 s, then asked again.
    stub.set("long", active(&app, "kim", "user:otp:create", 3600));
    assert_eq!(post_with(&app, "long").await.status(), 201);
    assert_eq!(post_with(&app, "long").await.status(), 201);
    assert_eq!(stub.calls(), 1);
    // Revoked at the provider: still cached for the rest of the 30 s, refused after.
    stub.set("long", json!({"active": false}));
    clock.advance(Duration::from_secs(20));
    assert_eq!(post_with(&app, "long").await.status(), 201);
    assert_eq!(stub.calls(), 1);
    clock.advance(Duration::from_secs(11));
    assert_error(post_with(&app, "long").await, 401, "invalid-token").await;
    assert_eq!(stub.calls(), 2);
    // The inactive answer is cached too.
    assert_error(post_with(&app, "long").await, 401, "invalid-token").await;
    assert_eq!(stub.calls(), 2);

    // A token with 5 s to live (by otpd's clock) is not served from the cache beyond those 5 s.
    let exp = (clock.now() + Duration::from_secs(5)).unix_timestamp();
    stub.set("short", active_until(&app, "kim", "user:otp:create", exp));
    assert_eq!(post_with(&app, "short").await.status(), 201);
    assert_eq!(post_with(&app, "short").await.status(), 201);
    assert_eq!(stub.calls(), 3, "cached while the token lives");
    clock.advance(Duration::from_secs(6));
    assert_eq!(post_with(&app, "short").await.status(), 201);
    assert_eq!(stub.calls(), 4, "asked again after exp");
}

#[tokio::test]
async fn a_provider_that_cannot_answer_is_503_not_401() {
    let stub = Stub::start().await;
    let app = kim_behind(&stub).await;
    stub.set("tok", active(&app, "kim", "user:otp:create", 600));
    stub.down.store(true, Ordering::SeqCst);
    let res = post_with(&app, "tok").await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, 503, "identity-provider-unavailable").await;
    stub.down.store(false, Ordering::SeqCst);
    // Provider errors are not cached: once it answers, the token works.
    assert_eq!(post_with(&app, "tok").await.status(), 201);

    // Wrong client credentials are the operator's problem, not the caller's: 503 as well.
    let wrong_dir = tempfile::tempdir().unwrap();
    std::fs::write(wrong_dir.path().join("secret"), "not-the-secret").unwrap();
    let misconfigured = stub
        .app()
        .env(
            "OTPD_INTROSPECTION_CLIENT_SECRET_FILE",
            &wrong_dir.path().join("secret").display().to_string(),
        )
        .spawn()
        .await;
    let res = post_with(&misconfigured, "tok").await;
    let id = request_id(&res);
    assert_error(res, 503, "identity-provider-unavailable").await;
    // The stub refused the wrong secret (the client id was right): the request's log says the
    // provider could not answer, and nothing of either secret reaches the logs.
    assert_logged(&id, "identity provider cannot vouch");
    let logs = captured_logs();
    assert!(!logs.contains(CLIENT_SECRET));
    assert!(!logs.contains("not-the-secret"));
}

#[tokio::test]
async fn introspection_needs_a_client_id_and_a_secret_file() {
    let load = |settings: &[(&str, &str)]| {
        let env = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>();
        otpd::config::Config::load(None, env, true).unwrap_err()
    };
    let url = ("OTPD_INTROSPECTION_URL", "https://id.example/introspect");
    let err = load(&[url]);
    assert!(err.to_string().contains("introspection_client_id"), "{err}");
    let err = load(&[url, ("OTPD_INTROSPECTION_CLIENT_ID", CLIENT_ID)]);
    assert!(
        err.to_string().contains("introspection_client_secret_file"),
        "{err}"
    );
}

#[tokio::test]
async fn the_secret_is_read_from_its_file_and_sent_with_the_client_id() {
    // The stub answers only for CLIENT_ID:CLIENT_SECRET, the secret file's content without its
    // trailing newline; with another client id and the right secret, it refuses as well.
    let stub = Stub::start().await;
    let app = kim_behind(&stub).await;
    stub.set("tok", active(&app, "kim", "user:otp:create", 600));
    let res = post_with(&app, "tok").await;
    assert_eq!(
        res.status(),
        201,
        "the secret file's content, trimmed, was sent"
    );
    let other_client = stub
        .app()
        .env("OTPD_INTROSPECTION_CLIENT_ID", "not-otpd")
        .spawn()
        .await;
    let res = post_with(&other_client, "tok").await;
    assert_error(res, 503, "identity-provider-unavailable").await;
}
