//! Long polls (`GET /user/pin`, `GET /user/password` with `?timeout=`): the waiter caps per user
//! and in total, answers at once beyond them, and one shared database re-check per user.

use crate::support::*;
use futures::future::join_all;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A safety net so a broken server fails the test instead of hanging it, not a timing assertion.
const SAFETY: Duration = Duration::from_secs(30);

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing"))
}

async fn metric_reaches(app: &TestApp, series: &str, at_least: f64) {
    let wait = async {
        while value(&app.metrics_text().await, series) < at_least {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(SAFETY, wait)
        .await
        .unwrap_or_else(|_| panic!("{series} never reached {at_least}"));
}

/// Waits until `n` responses have arrived (a safety net, not a timing assertion).
async fn answers_reach(answered: &AtomicUsize, n: usize) {
    let wait = async {
        while answered.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(SAFETY, wait)
        .await
        .unwrap_or_else(|_| panic!("{n} answers never arrived"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_are_capped_per_user_and_in_total_and_the_rest_are_answered_at_once() {
    let app = TestApp::builder()
        .env("OTPD_LONG_POLL_MAX_PER_USER", "3")
        .env("OTPD_LONG_POLL_MAX_TOTAL", "5")
        .spawn()
        .await;
    let ana = app.as_user("ana");
    let bo = app.as_user("bo");
    // A poll cut short answers the state it reads when it is answered: the credentials are set
    // only after every cut-short answer has arrived, or a slow one would read them (a loaded CI
    // run met 5 × 200 for ana).
    let (ana_answered, bo_answered) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let ana_polls = join_all((0..12).map(|_| async {
        let res = ana.check("/user/pin?timeout=60").await;
        ana_answered.fetch_add(1, Ordering::SeqCst);
        res
    }));
    let bo_polls = async {
        // Once ana's polls have all arrived (3 wait, 9 answered at once), bo's 4 find room for 2.
        metric_reaches(&app, "otpd_long_polls_waiting", 3.0).await;
        metric_reaches(&app, "otpd_long_polls_cut_short_total{cap=\"user\"}", 9.0).await;
        answers_reach(&ana_answered, 9).await;
        join_all((0..4).map(|_| async {
            let res = bo.check("/user/password?timeout=60").await;
            bo_answered.fetch_add(1, Ordering::SeqCst);
            res
        }))
        .await
    };
    let while_full = async {
        metric_reaches(&app, "otpd_long_polls_waiting", 5.0).await;
        metric_reaches(&app, "otpd_long_polls_cut_short_total{cap=\"total\"}", 2.0).await;
        answers_reach(&bo_answered, 2).await;
        // Another user is served while the caps are full.
        app.set_password("cy", PASSWORD).await;
        let res =
            tokio::time::timeout(SAFETY, app.as_user("cy").create_otp_with_password(PASSWORD))
                .await
                .expect("answered while the long polls wait");
        assert_eq!(res.status(), 201);
        let text = app.metrics_text().await;
        assert_eq!(value(&text, "otpd_long_polls_waiting"), 5.0);
        // The waiters end as soon as their credential is set (seen by the database re-check).
        app.set_pin("ana", "4378").await;
        app.set_password("bo", PASSWORD).await;
    };
    let (ana_res, bo_res, ()) = tokio::time::timeout(SAFETY, async {
        tokio::join!(ana_polls, bo_polls, while_full)
    })
    .await
    .expect("the waiters ended long before their 60 s");
    let count = |res: &[reqwest::Response], status: u16| {
        res.iter().filter(|r| r.status() == status).count()
    };
    assert_eq!((count(&ana_res, 200), count(&ana_res, 404)), (3, 9));
    assert_eq!((count(&bo_res, 200), count(&bo_res, 404)), (2, 2));
    assert_eq!(
        value(&app.metrics_text().await, "otpd_long_polls_waiting"),
        0.0
    );
}

/// Eight waiters of one user for 4 s: alone, each would re-read the database about four times
/// (32 reads); sharing, they make about one read a second between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_waiters_of_one_user_share_one_database_recheck_per_interval() {
    let app = TestApp::builder()
        .env("OTPD_LONG_POLL_MAX_PER_USER", "8")
        .spawn()
        .await;
    let before = value(&app.metrics_text().await, "otpd_long_poll_rechecks_total");
    let dee = app.as_user("dee");
    let polls = join_all((0..8).map(|_| dee.check("/user/pin?timeout=4"))).await;
    assert!(polls.iter().all(|r| r.status() == 404));
    let rechecks = value(&app.metrics_text().await, "otpd_long_poll_rechecks_total") - before;
    assert!(
        (1.0..=8.0).contains(&rechecks),
        "{rechecks} database re-checks for 8 waiters over 4 s"
    );
}
