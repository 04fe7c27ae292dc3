//! The retention job, driven by the manual clock on the configured backend: what it removes, what
//! it must keep, and that one replica at a time runs it.

use crate::lockout::{count, events};
use crate::store_contract::contract;
use crate::support::*;
use otpd::service::{Clock, ManualClock, Services};
use std::sync::Arc;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The tests run the job themselves: the app's own background run (the first at start-up, which
/// on PostgreSQL holds the advisory lock) is turned off, or a test's run could find the lease taken.
async fn services_on(app: &TestApp, clock: &Arc<ManualClock>) -> Services {
    otpd::app::services(&app.config(), clock.clone())
        .await
        .unwrap()
}

async fn rows(app: &TestApp, table_sql: &str, sub: &str) -> i64 {
    scalar(&app.config().store.url, table_sql, sub).await
}

#[tokio::test]
async fn the_job_removes_expired_otps_idle_otp_counters_and_old_audit_events_and_nothing_else() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .clock(clock.clone())
        .env("OTPD_AUDIT_RETENTION_DAYS", "30")
        .env("OTPD_RETENTION_INTERVAL_SECONDS", "0")
        .spawn()
        .await;
    let services = services_on(&app, &clock).await;
    let otp = app.account_otp("kai").await;
    app.set_pin("kai", "4378").await;
    let wrong_pin = app.as_user("kai").create_otp_with_pin("1235").await;
    assert_eq!(wrong_pin.status(), 422);
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    assert_eq!(app.as_user("kai").verify(wrong).await.status(), 404);
    let audit_before = events(&app, "kai").await.len();

    let report = services.prune_once().await.unwrap().expect("the lease");
    assert!(
        report.values().all(|n| *n == 0),
        "nothing is old yet: {report:?}"
    );

    clock.advance(2 * DAY);
    let report = services.prune_once().await.unwrap().unwrap();
    assert_eq!(report["expired_otps"], 1, "{report:?}");
    assert_eq!(
        report["stale_attempts"], 1,
        "only the OTP counter: {report:?}"
    );
    assert_eq!(report["old_audit_events"], 0, "{report:?}");
    let otps = "SELECT COUNT(*) FROM otps WHERE sub = $1";
    assert_eq!(rows(&app, otps, "kai").await, 0);
    let counters = "SELECT COUNT(*) FROM attempts WHERE sub = $1";
    assert_eq!(
        rows(&app, counters, "kai").await,
        1,
        "the PIN counter stays"
    );

    // A month later the early events go; one written now stays.
    clock.advance(30 * DAY);
    assert_eq!(app.as_user("kai").verify(wrong).await.status(), 404);
    let report = services.prune_once().await.unwrap().unwrap();
    assert_eq!(
        report["old_audit_events"], audit_before as u64,
        "{report:?}"
    );
    let log = events(&app, "kai").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(count(&log, "otp.refused"), 1);
    let metrics = app.metrics_text().await;
    // The series exist from the start (this test's runs counted in its own Services).
    assert!(metrics.contains("otpd_retention_deleted_total{kind=\"expired_otps\"}"));
}

#[tokio::test]
async fn audit_events_are_kept_forever_with_a_retention_of_zero() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .clock(clock.clone())
        .env("OTPD_AUDIT_RETENTION_DAYS", "0")
        .env("OTPD_RETENTION_INTERVAL_SECONDS", "0")
        .spawn()
        .await;
    let services = services_on(&app, &clock).await;
    app.set_pin("lou", "4378").await;
    clock.advance(3650 * DAY);
    let report = services.prune_once().await.unwrap().unwrap();
    assert!(!report.contains_key("old_audit_events"), "{report:?}");
    assert_eq!(events(&app, "lou").await, ["pin.set"]);
}

#[tokio::test]
async fn one_process_at_a_time_holds_the_job_on_postgresql() {
    let c = contract().await;
    let other = otpd::app::open_store(&c.url, otpd::store::PoolSettings::default())
        .await
        .unwrap();
    let first = c.store.retention_lease().await.unwrap();
    assert!(first.is_some());
    let second = other.retention_lease().await.unwrap();
    if is_sqlite(&c.url) {
        assert!(second.is_some(), "one process owns a SQLite file: no lock");
        return;
    }
    assert!(second.is_none(), "another replica holds it");
    drop(first);
    // Dropping the lease closes its connection; the server releases the lock with the session.
    let mut again = None;
    for _ in 0..50 {
        again = other.retention_lease().await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "released when the holder let go");
}

#[tokio::test]
async fn expired_password_links_go_a_week_after_their_expiry() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .clock(clock.clone())
        .env("OTPD_RETENTION_INTERVAL_SECONDS", "0")
        .spawn()
        .await;
    let services = services_on(&app, &clock).await;
    let store = otpd::app::open_store(
        &app.config().store.url,
        otpd::store::PoolSettings::default(),
    )
    .await
    .unwrap();
    let now = clock.now().unix_timestamp() * 1000;
    let hour = 3_600_000;
    // Two users' links, both expiring in an hour.
    for (sub, digest) in [("mia", [1u8; 32]), ("noa", [2u8; 32])] {
        let link = otpd::store::NewLink {
            digest: &digest,
            seal: &[0u8; 32],
            purpose: otpd::domain::LinkPurpose::Reset,
            email: "someone@example.com",
            created_at: now,
            expires_at: now + hour,
        };
        let sub = otpd::domain::Subject::parse(sub).unwrap();
        store.insert_password_link(&sub, link).await.unwrap();
    }
    let links = "SELECT COUNT(*) FROM password_links WHERE sub = $1";

    // Expired, but within the week in which a click still gets the explanatory page.
    clock.advance(2 * DAY);
    let report = services.prune_once().await.unwrap().unwrap();
    assert_eq!(report["expired_password_links"], 0, "{report:?}");
    assert_eq!(rows(&app, links, "mia").await, 1);

    clock.advance(6 * DAY);
    let report = services.prune_once().await.unwrap().unwrap();
    assert_eq!(report["expired_password_links"], 2, "{report:?}");
    assert_eq!(rows(&app, links, "mia").await, 0);
    assert_eq!(rows(&app, links, "noa").await, 0);
}

#[tokio::test]
async fn a_serving_process_runs_the_job_at_start_up_unless_its_interval_is_zero() {
    let ran = |text: &str| {
        text.lines().any(|l| {
            l.starts_with("otpd_retention_runs_total{result=\"ok\"}") && !l.ends_with(" 0")
        })
    };
    let on = TestApp::spawn().await;
    let mut seen = false;
    for _ in 0..100 {
        if ran(&on.metrics_text().await) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the first run is at start-up");

    let off = TestApp::builder()
        .env("OTPD_RETENTION_INTERVAL_SECONDS", "0")
        .spawn()
        .await;
    assert_eq!(off.as_user("kai").verify("123456").await.status(), 404);
    assert!(
        !ran(&off.metrics_text().await),
        "turned off on this replica"
    );
}
