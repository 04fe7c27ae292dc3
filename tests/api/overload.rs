//! Load shedding: a full hashing queue is answered 503 `overloaded` at once, and costs no attempt.

use crate::support::*;
use futures::future::join_all;
use otpd::domain::Subject;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_beyond_the_hashing_queue_is_shed_with_503_and_counts_no_attempt() {
    // One hash at a time, two waiting, and hashes slow enough that a burst piles up.
    let app = TestApp::builder()
        .env("OTPD_HASH_CONCURRENCY", "1")
        .env("OTPD_HASH_QUEUE", "2")
        .env("OTPD_ARGON2", "m=8192,t=4,p=1")
        .spawn()
        .await;
    app.set_password("uma", "correct horse battery").await;
    let body = json!({"password": "correct horse battery"});
    let responses = join_all((0..40).map(|_| app.create_otp("uma", body.clone()))).await;
    let (mut created, mut shed) = (0, vec![]);
    for res in responses {
        match res.status().as_u16() {
            201 => created += 1,
            503 => shed.push(res),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(created >= 3, "the admitted requests are served: {created}");
    assert!(
        !shed.is_empty(),
        "a burst of 40 over a queue of 3 sheds some"
    );
    for res in shed.drain(..) {
        assert_eq!(res.headers()["retry-after"], "1");
        assert_error(res, 503, "overloaded").await;
    }
    let sub = Subject::parse("uma").unwrap();
    let services = app.services().await;
    let log = app.audit_events("uma").await;
    assert_eq!(log.iter().filter(|e| *e == "otp.issued").count(), created);

    // Wrong passwords in a burst: the shed ones are no guesses, so the counter holds exactly the
    // requests that were checked.
    let wrong = json!({"password": "wrong horse battery"});
    let statuses: Vec<u16> = join_all((0..40).map(|_| app.create_otp("uma", wrong.clone())))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 422).count();
    assert!(
        statuses.iter().all(|s| [422, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");
    let states = services.attempt_states(&sub).await.unwrap();
    let password = states
        .iter()
        .find(|(f, _)| f.as_str() == "password")
        .unwrap()
        .1;
    assert_eq!(password.failures as usize, checked, "{statuses:?}");
}
