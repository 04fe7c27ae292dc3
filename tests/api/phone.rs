//! The phone number (PACE CheckUserPhone, UpdateUserPhone, VerifyUserPhone) against a real HTTP
//! gateway on loopback: the code is read from what the gateway received.

use crate::support::*;
use otpd::service::OtpKey;
use serde_json::{Value, json};
use std::time::Duration;

pub const NUMBER: &str = "+49 151 23456789";
pub const E164: &str = "+4915123456789";

pub fn phone_builder(gateway: &SmsGateway) -> TestAppBuilder {
    TestApp::builder().env("OTPD_SMS_URL", &gateway.url)
}

pub fn phone_doc(number: &str) -> String {
    json!({"data": {"type": "phone", "attributes": {"phoneNumber": number}}}).to_string()
}

pub async fn put_phone(user: &User<'_>, number: &str) -> reqwest::Response {
    user.put("/user/phone")
        .json_api(phone_doc(number))
        .send()
        .await
}

pub async fn verify_phone(user: &User<'_>, code: &str) -> reqwest::Response {
    user.put("/user/phone/verify")
        .json(&json!({"code": code}))
        .send()
        .await
}

pub async fn phone_status(user: &User<'_>) -> u16 {
    user.get("/user/phone").send().await.status().as_u16()
}

/// Rows of the user's phone data in each table (numbers, codes, the user's SMS count).
pub async fn phone_rows(app: &TestApp, sub: &str) -> [i64; 3] {
    let url = &app.database_url;
    [
        scalar(
            url,
            "SELECT COUNT(*) FROM phone_numbers WHERE sub = $1",
            sub,
        )
        .await,
        scalar(url, "SELECT COUNT(*) FROM phone_codes WHERE sub = $1", sub).await,
        scalar(
            url,
            "SELECT COUNT(*) FROM sms_quota WHERE quota_key = 'u:' || $1",
            sub,
        )
        .await,
    ]
}

#[tokio::test]
async fn a_number_is_normalised_sent_a_code_and_verified_with_it_once() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).spawn().await;
    let pia = app.as_user("pia");
    assert_error(pia.get("/user/phone").send().await, 404, "phone-not-set").await;

    let res = put_phone(&pia, NUMBER).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.content_length(), Some(0), "no body");
    let sms = gateway.last();
    assert_eq!(sms.method, "POST");
    assert_eq!(sms.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_str(&sms.body).unwrap();
    assert_eq!(body["to"], E164, "{body}");
    let code = sms.code();
    assert!(
        body["text"].as_str().unwrap().contains("10 minutes"),
        "{body}"
    );
    assert_eq!(phone_status(&pia).await, 201, "set but not verified");

    // Only a digest is stored: the code is not in the table, its HMAC under the OTP key is.
    let key = OtpKey::derive(&app.config().hashing.read_pepper().unwrap());
    let digest = key.digest("pia", &format!("phone\0{E164}\0{code}"));
    let sql = "SELECT digest FROM phone_codes WHERE sub = $1";
    let stored: Vec<Vec<u8>> = on_database!(&app.database_url, |pool| sqlx::query_scalar(sql)
        .bind("pia")
        .fetch_all(&pool)
        .await
        .unwrap());
    assert_eq!(stored, vec![digest.to_vec()]);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_error(verify_phone(&pia, wrong).await, 404, "phone-code-invalid").await;
    assert_error(verify_phone(&pia, "12").await, 404, "phone-code-invalid").await;
    let res = verify_phone(&pia, &code).await;
    assert_eq!(res.status(), 200);
    assert_eq!(phone_status(&pia).await, 200, "set and verified");
    assert_error(verify_phone(&pia, &code).await, 404, "phone-code-invalid").await;

    // The verified number again, written differently: 200 and nothing sent.
    let res = put_phone(&pia, "+49 (151) 234-567-89").await;
    assert_eq!(res.status(), 200);
    assert_eq!(gateway.received().len(), 1);
    let events = app.audit_events("pia").await;
    for event in ["phone.changed", "phone.code-refused", "phone.verified"] {
        assert!(events.contains(&event.to_owned()), "{event} in {events:?}");
    }
    let trail = format!("{:?}", app.audit_trail("pia").await);
    assert!(
        !trail.contains("23456789") && !trail.contains(&code),
        "{trail}"
    );
}

#[tokio::test]
async fn paces_example_number_is_refused_with_a_pointer_and_nothing_is_sent() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).spawn().await;
    let pia = app.as_user("pia");
    for bad in ["+49 170 888 999 000", "0151 23456789", "call me"] {
        let error = assert_error(put_phone(&pia, bad).await, 422, "phone-number-invalid").await;
        assert_eq!(error["source"]["pointer"], "/data/attributes/phoneNumber");
        assert!(!error.to_string().contains("888"), "never echoed: {error}");
    }
    let missing = json!({"data": {"type": "phone", "attributes": {}}}).to_string();
    let res = pia.put("/user/phone").json_api(missing).send().await;
    let error = assert_error(res, 422, "invalid-field").await;
    assert_eq!(error["source"]["pointer"], "/data/attributes/phoneNumber");
    assert!(gateway.received().is_empty());
    assert_eq!(phone_status(&pia).await, 404);
}

#[tokio::test]
async fn the_endpoints_need_their_scopes_and_media_types() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).spawn().await;
    let check_only = app.as_user("pia").with_scope("user:users.phone:check");
    let res = put_phone(&check_only, NUMBER).await;
    assert_error(res, 403, "insufficient-scope").await;
    let update_only = app.as_user("pia").with_scope("user:users.phone:update");
    let res = update_only.get("/user/phone").send().await;
    assert_error(res, 403, "insufficient-scope").await;
    let res = app
        .as_user("pia")
        .put("/user/phone")
        .json(&json!({"phoneNumber": NUMBER}))
        .send()
        .await;
    assert_error(res, 415, "unsupported-media-type").await;
    assert!(gateway.received().is_empty());
}

#[tokio::test]
async fn without_a_gateway_a_put_is_503_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let pia = app.as_user("pia");
    assert_error(put_phone(&pia, NUMBER).await, 503, "sms-not-configured").await;
    assert_eq!(phone_status(&pia).await, 404);
}

#[tokio::test]
async fn a_failed_or_slow_send_withdraws_the_code_and_answers_503() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway)
        .env("OTPD_SMS_TIMEOUT_SECONDS", "1")
        .spawn()
        .await;
    let pia = app.as_user("pia");
    gateway.answer(500, Duration::ZERO);
    let res = put_phone(&pia, NUMBER).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, 503, "sms-failed").await;
    let code = gateway.last().code();
    assert_eq!(phone_status(&pia).await, 404, "the change is withdrawn");
    assert_error(verify_phone(&pia, &code).await, 404, "phone-code-invalid").await;

    gateway.answer(201, Duration::from_secs(3));
    assert_error(put_phone(&pia, NUMBER).await, 503, "sms-failed").await;
    assert_eq!(phone_rows(&app, "pia").await[..2], [0, 0]);
    let events = app.audit_events("pia").await;
    assert!(
        events.contains(&"phone.code-withdrawn".to_owned()),
        "{events:?}"
    );
    let metrics = app.metrics_text().await;
    for line in [
        "otpd_sms_total{result=\"failed\",reason=\"refused\"} 1",
        "otpd_sms_total{result=\"failed\",reason=\"timeout\"} 1",
        "otpd_sms_total{result=\"sent\",reason=\"none\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_twilio_style_gateway_gets_a_form_with_basic_auth_and_extra_headers() {
    let gateway = SmsGateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("twilio-token");
    std::fs::write(&secret, "auth-token-123\n").unwrap();
    let app = phone_builder(&gateway)
        .env("OTPD_SMS_AUTH", "basic")
        .env("OTPD_SMS_USERNAME", "AC123")
        .env("OTPD_SMS_SECRET_FILE", secret.to_str().unwrap())
        .env("OTPD_SMS_BODY_FORMAT", "form")
        .env(
            "OTPD_SMS_BODY",
            r#"{"To":"{to}","From":"+15005550006","Body":"{text}"}"#,
        )
        .env("OTPD_SMS_HEADERS", r#"{"X-Tenant":"acme"}"#)
        .spawn()
        .await;
    assert_eq!(put_phone(&app.as_user("pia"), NUMBER).await.status(), 201);
    let sms = gateway.last();
    assert_eq!(
        sms.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // base64("AC123:auth-token-123"): the trailing newline of the file is not part of it.
    assert_eq!(
        sms.header("authorization"),
        Some("Basic QUMxMjM6YXV0aC10b2tlbi0xMjM=")
    );
    assert_eq!(sms.header("x-tenant"), Some("acme"));
    let mut fields: Vec<&str> = sms
        .body
        .split('&')
        .map(|f| f.split('=').next().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["Body", "From", "To"], "{}", sms.body);
    for field in [
        "To=%2B4915123456789",
        "From=%2B15005550006",
        "+is+your+otpd+code",
    ] {
        assert!(sms.body.contains(field), "{field} in {}", sms.body);
    }
    assert_eq!(sms.code().len(), 6);
}

#[tokio::test]
async fn an_api_key_header_and_put_are_sent_as_configured() {
    let gateway = SmsGateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("key");
    std::fs::write(&secret, "k-42").unwrap();
    let app = phone_builder(&gateway)
        .env("OTPD_SMS_AUTH", "header:X-API-Key")
        .env("OTPD_SMS_SECRET_FILE", secret.to_str().unwrap())
        .env("OTPD_SMS_METHOD", "PUT")
        .env(
            "OTPD_SMS_BODY",
            r#"{"message":{"to":["{to}"],"body":"{text}"}}"#,
        )
        .spawn()
        .await;
    assert_eq!(put_phone(&app.as_user("pia"), NUMBER).await.status(), 201);
    let sms = gateway.last();
    assert_eq!(sms.method, "PUT");
    assert_eq!(sms.header("x-api-key"), Some("k-42"));
    assert_eq!(sms.header("authorization"), None);
    let body: Value = serde_json::from_str(&sms.body).unwrap();
    assert_eq!(body["message"]["to"], json!([E164]));
}

#[tokio::test]
async fn a_new_number_replaces_the_pending_one_and_its_code() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).spawn().await;
    let pia = app.as_user("pia");
    assert_eq!(put_phone(&pia, NUMBER).await.status(), 201);
    let first = gateway.last().code();
    assert_eq!(put_phone(&pia, "+49 151 87654321").await.status(), 201);
    let second = gateway.last().code();
    if first != second {
        assert_error(verify_phone(&pia, &first).await, 404, "phone-code-invalid").await;
    }
    assert_eq!(verify_phone(&pia, &second).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_valid_code_fired_in_parallel_verifies_exactly_once() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).admitting_bursts().spawn().await;
    let pia = app.as_user("pia");
    assert_eq!(put_phone(&pia, NUMBER).await.status(), 201);
    let code = gateway.last().code();
    let answers = futures::future::join_all((0..20).map(|_| verify_phone(&pia, &code))).await;
    let mut counts = std::collections::BTreeMap::new();
    for res in answers {
        *counts.entry(res.status().as_u16()).or_insert(0) += 1;
    }
    assert_eq!(counts.get(&200), Some(&1), "{counts:?}");
    assert!(
        counts.keys().all(|s| [200, 404, 429].contains(s)),
        "{counts:?}"
    );
    let verified = app
        .audit_events("pia")
        .await
        .iter()
        .filter(|e| *e == "phone.verified")
        .count();
    assert_eq!(verified, 1);
}

#[tokio::test]
async fn logs_metrics_and_support_views_show_the_state_never_the_number_or_code() {
    let gateway = SmsGateway::start().await;
    let app = phone_builder(&gateway).spawn().await;
    let quin = app.as_user("quin");
    let admin = app.as_admin("support-1");
    let res = put_phone(&quin, "+49 151 24681357").await;
    assert_eq!(res.status(), 201);
    let put_id = request_id(&res);
    let code = gateway.last().code();
    assert_eq!(
        admin.show_ok("quin").await["data"]["attributes"]["phone"]["status"],
        "pending"
    );
    assert!(app.user_status("quin").await.contains("phone     pending"));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(verify_phone(&quin, wrong).await.status(), 404);
    let res = verify_phone(&quin, &code).await;
    assert_eq!(res.status(), 200);
    let verify_id = request_id(&res);
    let phone = &admin.show_ok("quin").await["data"]["attributes"]["phone"];
    assert_eq!(phone["status"], "verified");
    assert_eq!(phone["failures"], 0, "a success resets the counter");
    let shown = app.user_status("quin").await;
    assert!(shown.contains("phone     verified"), "{shown}");

    let logs = captured_logs();
    assert!(
        logs.contains(&put_id) && logs.contains(&verify_id),
        "the capture works"
    );
    let metrics = app.metrics_text().await;
    let trail = format!("{:?}", app.audit_trail("quin").await);
    for text in [&logs, &metrics, &shown, &trail, &phone.to_string()] {
        assert!(!text.contains("24681357"), "the number leaked");
        assert!(
            !text.contains(&format!("\"{code}\"")) && !text.contains(&format!(" {code} ")),
            "the code leaked"
        );
    }
}
