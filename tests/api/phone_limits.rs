//! The phone number's limits and lifecycle: SMS sending limits under parallel bursts, the attempt
//! limit of codes, the notice mail on a change, erasure, and the 24 h cancellation with the manual
//! clock.

use crate::phone::{NUMBER, phone_builder, phone_rows, phone_status, put_phone, verify_phone};
use crate::support::mail::SmtpSink;
use crate::support::*;
use futures::future::join_all;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn count_statuses(statuses: impl IntoIterator<Item = u16>) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for s in statuses {
        *counts.entry(s).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_burst_of_puts_sends_at_most_the_users_limit() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).admitting_bursts().spawn().await;
    let pia = app.as_user("pia");
    // Twenty different numbers, so only the per-user limit (5) applies.
    let numbers: Vec<String> = (0..20).map(|i| format!("+49 151 234567{i:02}")).collect();
    let answers = join_all(numbers.iter().map(|n| put_phone(&pia, n))).await;
    let mut statuses = Vec::new();
    for res in answers {
        let status = res.status().as_u16();
        if status == 429 {
            assert!(res.headers().contains_key("retry-after"));
            assert_error(res, 429, "sms-limit").await;
        }
        statuses.push(status);
    }
    let counts = count_statuses(statuses);
    assert_eq!(counts, BTreeMap::from([(201, 5), (429, 15)]), "{counts:?}");
    assert_eq!(gateway.received().len(), 5);
    let metrics = app.metrics_text().await;
    for line in [
        "otpd_sms_total{result=\"sent\",reason=\"none\"} 5",
        "otpd_sms_total{result=\"limited\",reason=\"user\"} 15",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_number_receives_at_most_its_limit_whichever_users_ask() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).admitting_bursts().spawn().await;
    let users: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    let app = &app;
    let answers = join_all(
        users
            .iter()
            .map(|u| async move { put_phone(&app.as_user(u), NUMBER).await.status().as_u16() }),
    )
    .await;
    let counts = count_statuses(answers);
    assert_eq!(counts, BTreeMap::from([(201, 3), (429, 9)]), "{counts:?}");
    assert_eq!(gateway.received().len(), 3);
    let metrics = app.metrics_text().await;
    let line = "otpd_sms_total{result=\"limited\",reason=\"number\"} 9";
    assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
}

#[tokio::test]
async fn the_limits_window_ends_after_an_hour() {
    let gateway = SmsGateway::start().await;
    let clock = manual_clock();
    let app = phone_builder(&gateway)
        .clock(clock.clone())
        .env("OTPD_SMS_PER_USER_PER_HOUR", "1")
        .spawn()
        .await;
    let pia = app.as_user("pia");
    assert_eq!(put_phone(&pia, NUMBER).await.status(), 201);
    let res = put_phone(&pia, NUMBER).await;
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
    assert_error(res, 429, "sms-limit").await;
    clock.advance(HOUR);
    assert_eq!(put_phone(&pia, NUMBER).await.status(), 201);
    assert_eq!(gateway.received().len(), 2);
}

#[tokio::test]
async fn wrong_codes_lock_verification_even_for_the_right_code() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).spawn().await;
    let pia = app.as_user("pia");
    assert_eq!(put_phone(&pia, NUMBER).await.status(), 201);
    let code = gateway.last().code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        assert_error(verify_phone(&pia, wrong).await, 404, "phone-code-invalid").await;
    }
    let res = verify_phone(&pia, &code).await;
    assert_eq!(res.headers()["retry-after"], "30");
    assert_error(res, 429, "credential-locked").await;
    assert_eq!(phone_status(&pia).await, 201, "still not verified");
    let counters = app.attempt_counters("pia").await;
    assert!(
        counters.contains(&("phone".to_owned(), 3, true, false)),
        "{counters:?}"
    );
    let events = app.audit_events("pia").await;
    assert!(events.contains(&"phone.locked".to_owned()), "{events:?}");
}

#[tokio::test]
async fn changing_a_verified_number_mails_a_notice_and_the_first_time_does_not() {
    let mut smtp = match SmtpSink::start().await {
        Some(sink) => sink,
        None => skip!(tool: "{}", SmtpSink::MISSING),
    };
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway)
        .env("OTPD_SMTP_URL", &smtp.url())
        .env("OTPD_MAIL_FROM", "otpd <noreply@otpd.test>")
        .spawn()
        .await;
    let pia = app
        .as_user("pia")
        .with_claims(json!({"email": "pia@example.com", "email_verified": true}));
    assert_eq!(put_phone(&pia, NUMBER).await.status(), 201);
    let code = gateway.last().code();
    assert_eq!(verify_phone(&pia, &code).await.status(), 200);
    assert_eq!(put_phone(&pia, "+49 151 87654321").await.status(), 201);
    let mail = smtp.next_message().await;
    assert_eq!(mail.to, vec!["pia@example.com".to_owned()]);
    assert!(
        mail.data.contains("phone number is being changed"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains("+49151******89"),
        "masked: {}",
        mail.data
    );
    assert!(!mail.data.contains("23456789"), "{}", mail.data);
    // The first number was set without a notice: this was the only mail.
    let metrics = app.metrics_text().await;
    let line = "otpd_mails_total{result=\"sent\"} 1";
    assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    assert_eq!(
        phone_status(&pia).await,
        200,
        "the old number stays in force"
    );
}

#[tokio::test]
async fn delete_user_and_the_admin_erase_remove_the_phone_data() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).spawn().await;
    for sub in ["pia", "ole"] {
        let user = app.as_user(sub);
        assert_eq!(put_phone(&user, NUMBER).await.status(), 201);
        let code = gateway.last().code();
        assert_eq!(verify_phone(&user, &code).await.status(), 200);
        assert_eq!(put_phone(&user, "+49 151 87654321").await.status(), 201);
        assert_eq!(phone_rows(&app, sub).await, [1, 1, 1]);
    }
    let otp = app.account_otp("pia").await;
    assert_eq!(app.as_user("pia").delete_user(&otp).await.status(), 202);
    assert_eq!(phone_rows(&app, "pia").await, [0, 0, 0]);
    assert_error(
        app.as_user("pia").get("/user/phone").send().await,
        404,
        "phone-not-set",
    )
    .await;

    assert_eq!(app.as_admin("support-1").erase("ole").await.status(), 204);
    assert_eq!(phone_rows(&app, "ole").await, [0, 0, 0]);
    assert_eq!(phone_status(&app.as_user("ole")).await, 404);
}

#[tokio::test]
async fn an_unverified_change_is_cancelled_after_24_hours_and_pruned() {
    let gateway = SmsGateway::start().await;
    let clock = manual_clock();
    let app = phone_builder(&gateway)
        .clock(clock.clone())
        .env("OTPD_RETENTION_INTERVAL_SECONDS", "0")
        .spawn()
        .await;
    let services = otpd::app::services(&app.config(), clock.clone())
        .await
        .unwrap();
    let (pia, ole) = (app.as_user("pia"), app.as_user("ole"));
    // Ole has a verified number and a pending change; Pia only a pending number.
    assert_eq!(put_phone(&ole, NUMBER).await.status(), 201);
    let code = gateway.last().code();
    assert_eq!(verify_phone(&ole, &code).await.status(), 200);
    assert_eq!(put_phone(&ole, "+49 151 87654321").await.status(), 201);
    assert_eq!(put_phone(&pia, NUMBER).await.status(), 201);

    clock.advance(23 * HOUR);
    let report = services.prune_once().await.unwrap().unwrap();
    assert_eq!(report["expired_phone_codes"], 2, "{report:?}");
    assert_eq!(report["cancelled_phone_changes"], 0, "{report:?}");
    assert_eq!(
        report["old_sms_quota"], 4,
        "two users, two numbers: {report:?}"
    );
    assert_eq!(phone_status(&pia).await, 201, "not yet cancelled");

    clock.advance(2 * HOUR);
    assert_eq!(phone_status(&pia).await, 404, "cancelled on read");
    assert_eq!(phone_status(&ole).await, 200, "the verified number stays");
    let report = services.prune_once().await.unwrap().unwrap();
    assert_eq!(report["cancelled_phone_changes"], 1, "{report:?}");
    assert_eq!(report["abandoned_phone_numbers"], 1, "{report:?}");
    assert_eq!(phone_rows(&app, "pia").await, [0, 0, 0]);
    let pending = scalar(
        &app.database_url,
        "SELECT COUNT(*) FROM phone_numbers WHERE sub = $1 AND pending_number IS NULL",
        "ole",
    )
    .await;
    assert_eq!(pending, 1);
}
