//! What an opaque token can cost the identity provider: identical tokens in flight share one
//! call, the calls per second are bounded (503 beyond), and refusals are remembered apart from
//! active answers, briefly. Against the counting stub of `introspection`.

use crate::introspection::{Stub, active, post_with};
use crate::support::*;
use futures::future::join_all;
use otpd::service::ManualClock;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// An app introspecting with `stub` on a clock that stands still, and kim with a PIN.
async fn kim_behind(stub: &Stub, max_per_second: &str) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = stub
        .app()
        .env("OTPD_INTROSPECTION_MAX_PER_SECOND", max_per_second)
        .env("OTPD_INTROSPECTION_CACHE_SECONDS", "30")
        // Attempts are counted before the check: a dozen correct PINs in flight at once would
        // reach the lock and disable thresholds and meet 429s and 423s that have nothing to do
        // with introspection.
        .env("OTPD_PIN_LOCK_FROM", "0")
        .env("OTPD_PIN_DISABLE_AFTER", "0")
        .admitting_bursts()
        .clock(clock.clone())
        .spawn()
        .await;
    app.set_pin("kim", "1235").await;
    (app, clock)
}

/// Waits until the app has at least `n` client connections open (the metrics scrape's own
/// included), so requests sent in parallel have all arrived.
async fn until_connections(app: &TestApp, n: usize) {
    loop {
        let text = app.metrics_text().await;
        let open = text
            .lines()
            .find_map(|l| l.strip_prefix("otpd_http_connections_open "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if open >= n as f64 {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_tokens_in_flight_share_one_provider_call() {
    let stub = Stub::start().await;
    // One call a second: a second call for the same token would be refused 503, so every 201
    // below is a request that waited for the first call's answer (or found it cached).
    let (app, _clock) = kim_behind(&stub, "1").await;
    stub.set("shared", active(&app, "kim", "user:otp:create", 600));
    let held = stub.hold().await;
    let requests = join_all((0..12).map(|_| post_with(&app, "shared")));
    let release = async {
        until_connections(&app, 13).await;
        drop(held);
    };
    let (answers, ()) = tokio::join!(requests, release);
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, vec![201; 12]);
    assert_eq!(
        stub.calls(),
        1,
        "one provider call for twelve identical tokens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_calls_beyond_the_rate_are_503_and_cached_tokens_still_work() {
    let stub = Stub::start().await;
    let (app, clock) = kim_behind(&stub, "5").await;
    stub.set("known", active(&app, "kim", "user:otp:create", 600));
    assert_eq!(post_with(&app, "known").await.status(), 201);
    for n in 0..40 {
        stub.set(
            &format!("fresh-{n}"),
            active(&app, "kim", "user:otp:create", 600),
        );
    }
    // 40 different unknown tokens at once, the clock standing still: 4 calls are left of this
    // second's 5, the other 36 requests are told to come back.
    let answers = join_all((0..40).map(|n| {
        let app = &app;
        async move { (n, post_with(app, &format!("fresh-{n}")).await) }
    }))
    .await;
    let (mut ok, mut shed) = (0, Vec::new());
    for (n, res) in answers {
        match res.status().as_u16() {
            201 => ok += 1,
            503 => {
                assert_eq!(res.headers()["retry-after"], "1");
                assert_error(res, 503, "identity-provider-unavailable").await;
                shed.push(n);
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, shed.len()), (4, 36));
    assert_eq!(stub.calls(), 5);
    // A cached token costs no call, so it is served while the budget is spent; one that was
    // turned away (which four got through depends on scheduling) still is.
    assert_eq!(post_with(&app, "known").await.status(), 201);
    assert_error(
        post_with(&app, &format!("fresh-{}", shed[0])).await,
        503,
        "identity-provider-unavailable",
    )
    .await;
    assert_eq!(stub.calls(), 5);
    // A second later the budget is back.
    clock.advance(Duration::from_secs(1));
    let mut served_now = 0;
    for n in 0..40 {
        if post_with(&app, &format!("fresh-{n}")).await.status() == 201 {
            served_now += 1;
        }
    }
    assert_eq!(served_now, 4 + 5, "the four cached ones and five new calls");
    assert_eq!(stub.calls(), 10);
}

#[tokio::test]
async fn refusals_are_remembered_briefly_and_apart_from_active_answers() {
    let stub = Stub::start().await;
    let (app, clock) = kim_behind(&stub, "100").await;
    stub.set("alive", active(&app, "kim", "user:otp:create", 3600));
    assert_eq!(post_with(&app, "alive").await.status(), 201);
    stub.set("dead", json!({"active": false}));
    assert_error(post_with(&app, "dead").await, 401, "invalid-token").await;
    assert_error(post_with(&app, "dead").await, 401, "invalid-token").await;
    assert_eq!(stub.calls(), 2, "a replayed dead token costs nothing");
    // Active but not for us: a refusal as well, remembered the same way.
    stub.set(
        "foreign",
        json!({"active": true, "sub": "kim", "scope": "user:otp:create", "iss": "https://evil.example"}),
    );
    assert_error(post_with(&app, "foreign").await, 401, "invalid-token").await;
    assert_error(post_with(&app, "foreign").await, 401, "invalid-token").await;
    assert_eq!(stub.calls(), 3);
    // After 10 s the refusals are forgotten; the active answer lives its 30 s.
    clock.advance(Duration::from_secs(11));
    assert_eq!(post_with(&app, "alive").await.status(), 201);
    assert_eq!(stub.calls(), 3);
    assert_error(post_with(&app, "dead").await, 401, "invalid-token").await;
    assert_error(post_with(&app, "foreign").await, 401, "invalid-token").await;
    assert_eq!(stub.calls(), 5);
}
