//! No secret in the logs or the metrics: a full flow with known secrets, then a search of
//! everything the app logged (JSON lines, debug level) and of the `/metrics` text.

use crate::sendmail::code_in;
use crate::smtp::SmtpSink;
use crate::support::*;
use serde_json::{Value, json};

#[tokio::test]
async fn a_full_flow_leaves_no_secret_in_logs_or_metrics() {
    let mut smtp = SmtpSink::start().await;
    // Long codes and PINs: a 4- or 6-digit value would turn up in timestamps by chance.
    let app = TestApp::builder()
        .env("OTPD_SMTP_URL", &smtp.url())
        .env("OTPD_MAIL_FROM", "otpd@otpd.test")
        .env("OTPD_OTP_DIGITS", "10")
        .env("OTPD_PIN_LENGTH", "8")
        .spawn()
        .await;
    let sub = "secrecy-user-8d1e";
    let email = "secrecy.user.8d1e@example.com";
    let password = "Password-5e7b9c-never-logged";
    let wrong_password = "Wrong-password-2a4f6d";
    let pin = "47395168";
    let wrong_pin = "58217394";
    app.set_password(sub, password).await;
    app.set_pin(sub, pin).await;
    let mut claims = app.issuer.claims(sub, ALL_SCOPES);
    claims["email"] = json!(email);
    let token = app.issuer.sign_rs256(&claims);
    let forged = format!("{}x", &token[..token.len() - 1]);

    let post = |body: Value, bearer: &str| {
        app.http
            .post(app.url("/user/otp"))
            .bearer_auth(bearer)
            .json(&body)
            .send()
    };
    let mut codes = Vec::new();
    let mut request_ids = Vec::new();
    for body in [json!({"password": password}), json!({"pin": pin})] {
        let res = post(body, &token).await.unwrap();
        assert_eq!(res.status(), 201);
        request_ids.push(res.headers()["request-id"].to_str().unwrap().to_owned());
        let v: Value = res.json().await.unwrap();
        codes.push(v["otp"].as_str().unwrap().to_owned());
    }
    for body in [
        json!({"password": wrong_password}),
        json!({"pin": wrong_pin}),
    ] {
        assert_eq!(post(body, &token).await.unwrap().status(), 422);
    }
    assert_eq!(
        post(json!({"pin": pin}), &forged).await.unwrap().status(),
        401
    );
    let res = app
        .http
        .post(app.url("/user/otp/sendmail"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    request_ids.push(res.headers()["request-id"].to_str().unwrap().to_owned());
    codes.push(code_in(&smtp.next_message().await.data));
    let metrics = reqwest::get(app.root_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let logs = captured_logs();
    // The capture works: this flow's request lines are there, as JSON.
    for id in &request_ids {
        assert!(logs.contains(id.as_str()), "request {id} not logged");
    }
    for line in logs.lines().filter(|l| l.contains(request_ids[0].as_str())) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let signature = token.rsplit('.').next().unwrap();
    let mut secrets = vec![
        password,
        wrong_password,
        pin,
        wrong_pin,
        token.as_str(),
        forged.as_str(),
        signature,
    ];
    secrets.extend(codes.iter().map(String::as_str));
    for secret in &secrets {
        assert!(!logs.contains(secret), "a secret is in the logs: {secret}");
        assert!(
            !metrics.contains(secret),
            "a secret is in the metrics: {secret}"
        );
    }
    // Metrics are about the service, not about people.
    assert!(
        !metrics.contains(sub) && !metrics.contains(email),
        "{metrics}"
    );
    assert!(!logs.contains(email), "the mail address is in the logs");
}
