//! `PUT /sessions/{sessionId}` (PACE UpdateSession) and login OTPs (`types: ["login"]`): what a new
//! session answers, how a known one is passed, who is refused, single use under parallel load,
//! mail, expiry and erasure. docs/sessions.md has the rules.

use crate::sendmail::code_in;
use crate::support::mail::SmtpSink;
use crate::support::*;
use futures::future::join_all;
use serde_json::{Value, json};
use std::time::Duration;

/// Users of this API are UUIDs (the body's `userId`).
const LENA: &str = "6f1c2a9e-2d0b-4c11-9a3e-0c5b7f3d9e21";
const OLE: &str = "0b7e1f4a-8c3d-4e5f-9a1b-2c3d4e5f6a7b";
const NOBODY: &str = "99999999-9999-4999-8999-999999999999";

/// `PUT /sessions/{id}` as the identity provider (a token with every scope; its `sub` is not the
/// user).
async fn put_session(app: &TestApp, id: &str, user: &str, passed: bool) -> reqwest::Response {
    app.as_user("identity-provider")
        .put(&format!("/sessions/{id}"))
        .json(&json!({"userId": user, "passedLoginOTP": passed}))
        .send()
        .await
}

/// The login OTP of a new session.
async fn login_otp(app: &TestApp, id: &str, user: &str) -> String {
    let res = put_session(app, id, user, false).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["otp"].as_str().expect("an otp").to_owned()
}

async fn rows(app: &TestApp, sql: &str, sub: &str) -> i64 {
    scalar(&app.config().store.url, sql, sub).await
}

const SESSIONS: &str = "SELECT COUNT(*) FROM sessions WHERE sub = $1";
const LOGIN_OTPS: &str = "SELECT COUNT(*) FROM otps WHERE sub = $1 AND kind = 'login'";

#[tokio::test]
async fn a_new_session_answers_a_login_otp_that_only_types_login_redeems() {
    let app = TestApp::spawn().await;
    app.set_password(LENA, PASSWORD).await;
    let res = put_session(&app, "sess-1", LENA, false).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    let otp = body["otp"].as_str().unwrap().to_owned();
    assert_eq!(otp.len(), 6);
    assert!(otp.bytes().all(|b| b.is_ascii_digit()));
    // The expiresAt of POST /user/otp: UTC, a literal Z, no fraction.
    let expires = body["expiresAt"].as_str().unwrap();
    assert_eq!(expires.len(), 20, "{expires}");
    assert!(
        expires.ends_with('Z') && !expires.contains('.'),
        "{expires}"
    );

    let lena = app.as_user(LENA);
    assert_error(lena.verify_as(&otp, &["account"]).await, 404, "invalid-otp").await;
    assert_error(lena.verify(&otp).await, 404, "invalid-otp").await;
    assert_error(lena.verify_as(&otp, &["totp"]).await, 404, "invalid-otp").await;
    assert_eq!(lena.verify_as(&otp, &["login"]).await.status(), 204);
    assert_error(lena.verify_as(&otp, &["login"]).await, 404, "invalid-otp").await;

    let events = app.audit_events(LENA).await;
    for event in ["session.created", "otp.issued", "otp.redeemed"] {
        assert!(events.contains(&event.to_owned()), "{event} in {events:?}");
    }
    // The audit trail names the session by a digest prefix, never by its id.
    let trail = app.audit_trail(LENA).await;
    assert!(
        trail.iter().all(|(_, d)| !d.contains("sess-1")),
        "{trail:?}"
    );
    assert!(trail.iter().any(|(_, d)| d == "type=login"), "{trail:?}");
}

#[tokio::test]
async fn an_account_otp_never_matches_types_login_and_totp_matches_nothing() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp(LENA).await;
    let lena = app.as_user(LENA);
    assert_error(lena.verify_as(&otp, &["login"]).await, 404, "invalid-otp").await;
    assert_error(lena.verify_as(&otp, &["totp"]).await, 404, "invalid-otp").await;
    assert_eq!(
        lena.verify_as(&otp, &["account", "login"]).await.status(),
        204
    );
    // An unknown name is still refused.
    let res = lena.verify_as(&otp, &["sms"]).await;
    assert_error(res, 422, "invalid-field").await;
}

#[tokio::test]
async fn a_known_session_is_passed_once_and_strangers_get_404() {
    let app = TestApp::spawn().await;
    app.set_password(LENA, PASSWORD).await;
    app.set_pin(OLE, "4378").await;
    login_otp(&app, "sess-2", LENA).await;

    // Asking again issues nothing new.
    assert_eq!(put_session(&app, "sess-2", LENA, false).await.status(), 204);
    assert_eq!(rows(&app, LOGIN_OTPS, LENA).await, 1);
    // Passed: recorded once, however often it is said.
    assert_eq!(put_session(&app, "sess-2", LENA, true).await.status(), 204);
    assert_eq!(put_session(&app, "sess-2", LENA, true).await.status(), 204);
    let passed = app.audit_events(LENA).await;
    assert_eq!(passed.iter().filter(|e| *e == "session.passed").count(), 1);

    // Another (known) user naming this session, either way.
    for passed in [false, true] {
        let res = put_session(&app, "sess-2", OLE, passed).await;
        assert_error(res, 404, "session-mismatch").await;
    }
    assert_eq!(rows(&app, SESSIONS, OLE).await, 0);
    // A user otpd has no record of.
    let res = put_session(&app, "sess-3", NOBODY, false).await;
    assert_error(res, 404, "unknown-user").await;
    assert_eq!(rows(&app, SESSIONS, NOBODY).await, 0);
    // Passing a session never created.
    let res = put_session(&app, "sess-4", LENA, true).await;
    assert_error(res, 404, "session-not-found").await;
    // An id that cannot be a session id.
    let res = put_session(&app, "a~b%20c", LENA, false).await;
    assert_error(res, 404, "session-not-found").await;
    // A userId that is not a UUID.
    let res = put_session(&app, "sess-5", "lena", false).await;
    let doc = assert_error(res, 422, "invalid-field").await;
    assert_eq!(doc["source"]["pointer"], "/userId");
    assert_eq!(rows(&app, SESSIONS, LENA).await, 1);

    let metrics = app.metrics_text().await;
    for line in [
        "otpd_sessions_total{outcome=\"created\"} 1",
        "otpd_sessions_total{outcome=\"passed\"} 1",
        "otpd_sessions_total{outcome=\"unchanged\"} 2",
        "otpd_sessions_total{outcome=\"mismatch\"} 2",
        "otpd_sessions_total{outcome=\"unknown-user\"} 1",
        // The malformed id is refused before any session is looked up.
        "otpd_sessions_total{outcome=\"unknown-session\"} 1",
        "otpd_otps_issued_total{via=\"login\"} 1",
        "otpd_mails_total{result=\"not-configured\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn login_and_account_otps_have_live_caps_of_their_own() {
    let app = TestApp::builder()
        .env("OTPD_OTP_MAX_LIVE", "1")
        .spawn()
        .await;
    let account = app.account_otp(LENA).await;
    let first = login_otp(&app, "sess-cap-1", LENA).await;
    let second = login_otp(&app, "sess-cap-2", LENA).await;
    let lena = app.as_user(LENA);
    // The second login OTP retired the first, and neither touched the account OTP.
    assert_error(lena.verify_as(&first, &["login"]).await, 404, "invalid-otp").await;
    assert_eq!(lena.verify_as(&second, &["login"]).await.status(), 204);
    assert_eq!(lena.verify(&account).await.status(), 204);
}

#[tokio::test]
async fn the_scope_is_user_sessions_update() {
    let app = TestApp::spawn().await;
    app.assert_guarded("user:otp:verify", |u| {
        u.put("/sessions/sess-g")
            .json(&json!({"userId": LENA, "passedLoginOTP": false}))
    })
    .await;
    let idp = app
        .as_user("identity-provider")
        .with_scope("user:sessions:update");
    app.set_password(LENA, PASSWORD).await;
    let res = idp
        .put("/sessions/sess-g")
        .json(&json!({"userId": LENA}))
        .send()
        .await;
    assert_eq!(res.status(), 200, "passedLoginOTP may be left out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_new_session_put_in_parallel_creates_one_session_and_one_login_otp() {
    let app = TestApp::builder().admitting_bursts().spawn().await;
    app.set_password(LENA, PASSWORD).await;
    let answers = join_all((0..20).map(|_| put_session(&app, "sess-race", LENA, false))).await;
    let mut created = 0;
    let mut unchanged = 0;
    for res in answers {
        match res.status().as_u16() {
            200 => created += 1,
            204 => unchanged += 1,
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!((created, unchanged), (1, 19));
    assert_eq!(rows(&app, SESSIONS, LENA).await, 1);
    assert_eq!(rows(&app, LOGIN_OTPS, LENA).await, 1);
    let events = app.audit_events(LENA).await;
    assert_eq!(events.iter().filter(|e| *e == "session.created").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_login_otp_verified_in_parallel_succeeds_exactly_once() {
    let app = TestApp::builder().admitting_bursts().spawn().await;
    app.set_password(LENA, PASSWORD).await;
    let otp = login_otp(&app, "sess-once", LENA).await;
    let lena = app.as_user(LENA);
    // Four failures stay below the OTP attempt limit, so every loser is a plain 404.
    let answers = join_all((0..5).map(|_| lena.verify_as(&otp, &["login"]))).await;
    let mut accepted = 0;
    for res in answers {
        if res.status() == 204 {
            accepted += 1;
        } else {
            assert_error(res, 404, "invalid-otp").await;
        }
    }
    assert_eq!(accepted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_users_racing_for_one_new_session_id_get_one_session_and_one_otp() {
    let app = TestApp::builder().admitting_bursts().spawn().await;
    app.set_password(LENA, PASSWORD).await;
    app.set_password(OLE, PASSWORD).await;
    let answers = join_all((0..20).map(|i| {
        put_session(
            &app,
            "sess-shared",
            if i % 2 == 0 { LENA } else { OLE },
            false,
        )
    }))
    .await;
    let mut tally = std::collections::BTreeMap::new();
    for res in answers {
        let status = res.status().as_u16();
        if status == 404 {
            assert_error(res, 404, "session-mismatch").await;
        }
        *tally.entry(status).or_insert(0) += 1;
    }
    // One winner; the winner's other nine calls see their own session (204), the loser's ten
    // see another user's (404).
    assert_eq!(tally, [(200, 1), (204, 9), (404, 10)].into(), "{tally:?}");
    let sessions = rows(&app, SESSIONS, LENA).await + rows(&app, SESSIONS, OLE).await;
    let otps = rows(&app, LOGIN_OTPS, LENA).await + rows(&app, LOGIN_OTPS, OLE).await;
    assert_eq!((sessions, otps), (1, 1));
}

#[tokio::test]
async fn wrong_login_otps_count_against_the_users_one_otp_limit() {
    let clock = manual_clock();
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    let account = app.account_otp(LENA).await;
    let login = login_otp(&app, "sess-guess", LENA).await;
    let lena = app.as_user(LENA);
    let wrong = ["000000", "111111", "222222"]
        .into_iter()
        .find(|w| *w != login && *w != account)
        .unwrap();
    // OTPD_OTP_REVOKE_AFTER (5): the 5th consecutive failure revokes every live OTP of the user,
    // of both kinds, and locks redemption.
    for _ in 0..5 {
        assert_eq!(lena.verify_as(wrong, &["login"]).await.status(), 404);
    }
    let live = "SELECT COUNT(*) FROM otps WHERE sub = $1 AND used_at IS NULL";
    assert_eq!(rows(&app, live, LENA).await, 0);
    assert_error(
        lena.verify_as(&login, &["login"]).await,
        429,
        "credential-locked",
    )
    .await;
    clock.advance(Duration::from_secs(30));
    // Revoked with the account OTP (no live row is left, above); this 6th failure locks anew.
    assert_error(lena.verify_as(&login, &["login"]).await, 404, "invalid-otp").await;
    assert_error(lena.verify(&account).await, 429, "credential-locked").await;
}

#[tokio::test]
async fn the_login_otp_goes_to_the_address_the_users_last_otp_mail_went_to() {
    let mut smtp = match SmtpSink::start().await {
        Some(sink) => sink,
        None => skip!(tool: "{}", SmtpSink::MISSING),
    };
    let app = TestApp::builder()
        .env("OTPD_SMTP_URL", &smtp.url())
        .env("OTPD_MAIL_FROM", "otpd <noreply@otpd.test>")
        .spawn()
        .await;
    let lena = app
        .as_user(LENA)
        .with_claims(json!({"email": "lena@example.com", "email_verified": true}));
    assert_eq!(lena.sendmail().await.status(), 204);
    smtp.next_message().await;

    let otp = login_otp(&app, "sess-mail", LENA).await;
    let mail = smtp.next_message().await;
    assert_eq!(mail.to, vec!["lena@example.com".to_owned()]);
    assert_eq!(code_in(&mail.data), otp);
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "otpd_mails_total{result=\"sent\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_user_known_only_by_a_password_link_gets_the_login_otp_by_mail() {
    let mut smtp = match SmtpSink::start().await {
        Some(sink) => sink,
        None => skip!(tool: "{}", SmtpSink::MISSING),
    };
    let app = crate::password_links::link_builder(&smtp).spawn().await;
    // No password, PIN or device yet: unknown, and nothing is written for the session.
    let res = put_session(&app, "sess-link", OLE, false).await;
    assert_error(res, 404, "unknown-user").await;
    let ole = app
        .as_user(OLE)
        .with_claims(json!({"email": "ole@example.com", "email_verified": true}));
    assert_eq!(ole.put("/user/password").send().await.status(), 202);
    smtp.next_message().await;

    let otp = login_otp(&app, "sess-link", OLE).await;
    let mail = smtp.next_message().await;
    assert_eq!(mail.to, vec!["ole@example.com".to_owned()]);
    assert_eq!(code_in(&mail.data), otp);
}

#[tokio::test]
async fn a_refused_mail_is_500_and_leaves_neither_session_nor_otp() {
    let smtp = match SmtpSink::rejecting().await {
        Some(sink) => sink,
        None => skip!(tool: "{}", SmtpSink::MISSING),
    };
    let app = TestApp::builder()
        .env("OTPD_SMTP_URL", &smtp.url())
        .env("OTPD_MAIL_FROM", "otpd <noreply@otpd.test>")
        .spawn()
        .await;
    let url = app.config().store.url;
    let remember =
        "INSERT INTO user_emails (sub, email, seen_at) VALUES ($1, 'lena@example.com', 0)";
    execute(&url, remember, LENA).await;
    let res = put_session(&app, "sess-fail", LENA, false).await;
    let doc = assert_error(res, 500, "login-mail-failed").await;
    assert!(!doc.to_string().contains("smtp"), "{doc}");
    assert_eq!(rows(&app, SESSIONS, LENA).await, 0);
    assert_eq!(
        rows(&app, "SELECT COUNT(*) FROM otps WHERE sub = $1", LENA).await,
        0
    );
    let events = app.audit_events(LENA).await;
    assert_eq!(
        events,
        vec!["session.created", "otp.issued", "session.withdrawn"]
    );
}

#[tokio::test]
async fn sessions_expire_after_the_configured_time_and_the_retention_job_removes_them() {
    let clock = manual_clock();
    let app = TestApp::builder()
        .clock(clock.clone())
        .env("OTPD_SESSION_TTL_SECONDS", "3600")
        .env("OTPD_RETENTION_INTERVAL_SECONDS", "0")
        .spawn()
        .await;
    let services = otpd::app::services(&app.config(), clock.clone())
        .await
        .unwrap();
    app.set_password(LENA, PASSWORD).await;
    login_otp(&app, "sess-old", LENA).await;
    clock.advance(Duration::from_secs(3599));
    let report = services.prune_once().await.unwrap().expect("the lease");
    assert_eq!(report["expired_sessions"], 0, "{report:?}");
    assert_eq!(
        put_session(&app, "sess-old", LENA, true).await.status(),
        204
    );

    clock.advance(Duration::from_secs(1));
    let res = put_session(&app, "sess-old", LENA, true).await;
    assert_error(res, 404, "session-not-found").await;
    let report = services.prune_once().await.unwrap().unwrap();
    assert_eq!(report["expired_sessions"], 1, "{report:?}");
    assert_eq!(rows(&app, SESSIONS, LENA).await, 0);
    // An expired id starts anew.
    login_otp(&app, "sess-old", LENA).await;
}

#[tokio::test]
async fn deleting_the_user_or_an_admin_erase_removes_sessions_and_the_address() {
    let app = TestApp::spawn().await;
    let url = app.config().store.url;
    let remember = "INSERT INTO user_emails (sub, email, seen_at) VALUES ($1, 'x@example.com', 0)";
    for (sub, by_admin) in [(LENA, false), (OLE, true)] {
        app.set_password(sub, PASSWORD).await;
        execute(&url, remember, sub).await;
        login_otp(&app, &format!("sess-del-{by_admin}"), sub).await;
        assert_eq!(rows(&app, SESSIONS, sub).await, 1);
        if by_admin {
            assert_eq!(app.as_admin("support").erase(sub).await.status(), 204);
        } else {
            let otp = app
                .as_user(sub)
                .new_otp(json!({"password": PASSWORD}))
                .await;
            assert_eq!(app.as_user(sub).delete_user(&otp).await.status(), 202);
        }
        assert_eq!(rows(&app, SESSIONS, sub).await, 0, "{sub}");
        let emails = "SELECT COUNT(*) FROM user_emails WHERE sub = $1";
        assert_eq!(rows(&app, emails, sub).await, 0, "{sub}");
        // Erased: unknown from now on.
        let res = put_session(&app, "sess-after", sub, false).await;
        assert_error(res, 404, "unknown-user").await;
    }
}

#[tokio::test]
async fn a_session_id_and_its_login_otp_are_in_no_log_metric_or_row() {
    // A long code: a 6-digit value would turn up in timestamps by chance.
    let app = TestApp::builder()
        .env("OTPD_OTP_DIGITS", "10")
        .spawn()
        .await;
    app.set_password(LENA, PASSWORD).await;
    let session = "sess-0c9d7e1f-never-stored";
    let res = put_session(&app, session, LENA, false).await;
    let created = request_id(&res);
    assert_eq!(res.status(), 200);
    let otp = res.json::<Value>().await.unwrap()["otp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(otp.len(), 10);
    assert_eq!(put_session(&app, session, LENA, true).await.status(), 204);
    let database = stored_bytes(&app.database_url, app.dir.path()).await;
    assert_eq!(
        app.as_user(LENA).verify_as(&otp, &["login"]).await.status(),
        204
    );

    let logs = captured_logs();
    assert!(logs.contains(created.as_str()), "the capture works");
    let metrics = app.metrics_text().await;
    assert!(database.len() > 1000, "the database was read");
    let contains = |haystack: &[u8], needle: &str| {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    for secret in [session, otp.as_str()] {
        assert!(!contains(logs.as_bytes(), secret), "{secret} in the logs");
        assert!(
            !contains(metrics.as_bytes(), secret),
            "{secret} in the metrics"
        );
        assert!(!contains(&database, secret), "{secret} in the database");
    }
}
