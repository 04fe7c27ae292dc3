//! No secret in the logs, the metrics or the database: a full flow with known secrets (OTPs by
//! password, PIN and mail, a verification, a PIN change, a device, a deletion, and refusals),
//! then a search of everything the app logged (JSON lines, debug level), of the `/metrics` text
//! and of every stored row.

use crate::sendmail::code_in;
use crate::support::mail::SmtpSink;
use crate::support::*;
use serde_json::{Value, json};

const DEVICE: &str = "5d0c3f0e-8a51-4c1e-b1f4-2a9e7c3d6b10";

#[tokio::test]
async fn a_full_flow_leaves_no_secret_in_logs_metrics_or_database() {
    let Some(mut smtp) = SmtpSink::start().await else {
        skip!(tool: "{}", SmtpSink::MISSING)
    };
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
    let new_pin = "61938275";
    app.set_password(sub, password).await;
    app.set_pin(sub, pin).await;
    let token = app
        .issuer
        .token_with_claims(sub, json!({ "email": email, "email_verified": true }));
    let forged = format!("{}x", &token[..token.len() - 1]);
    let user = app.as_user(sub).with_token(&token);

    let mut codes = Vec::new();
    let mut request_ids = Vec::new();
    for res in [
        user.create_otp_with_password(password).await,
        user.create_otp_with_pin(pin).await,
    ] {
        request_ids.push(request_id(&res));
        codes.push(otp_of(res).await);
    }
    assert_eq!(
        user.create_otp_with_password(wrong_password).await.status(),
        422
    );
    assert_eq!(user.create_otp_with_pin(wrong_pin).await.status(), 422);
    let forger = app.as_user(sub).with_token(&forged);
    assert_eq!(forger.create_otp_with_pin(pin).await.status(), 401);
    let res = user.sendmail().await;
    assert_eq!(res.status(), 204);
    request_ids.push(request_id(&res));
    codes.push(code_in(&smtp.next_message().await.data));

    // Every use of a secret: a verification, a PIN change, a device, and the deletion.
    assert_eq!(user.verify(&codes[0]).await.status(), 204);
    assert_eq!(user.put_pin(new_pin, &codes[1]).await.status(), 200);
    let res = user
        .create_device(DEVICE, json!({"password": password, "pin": wrong_pin}))
        .await;
    assert_eq!(res.status(), 201);
    let device = DeviceSecret::from_response(res).await;
    let database = stored_bytes(&app.database_url, app.dir.path()).await;
    assert_eq!(user.delete_user(&codes[2]).await.status(), 202);
    let database_after = stored_bytes(&app.database_url, app.dir.path()).await;
    let metrics = app.metrics_text().await;

    let logs = captured_logs();
    // The capture works: this flow's request lines are there, as JSON.
    for id in &request_ids {
        assert!(logs.contains(id.as_str()), "request {id} not logged");
    }
    for line in log_lines_with(&request_ids[0]) {
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(database.len() > 1000, "the database was read");
    let signature = token.rsplit('.').next().unwrap();
    let device_key = device.bytes();
    let mut secrets = vec![
        password.as_bytes(),
        wrong_password.as_bytes(),
        pin.as_bytes(),
        wrong_pin.as_bytes(),
        new_pin.as_bytes(),
        token.as_bytes(),
        forged.as_bytes(),
        signature.as_bytes(),
        device.secret.as_bytes(),
        &device_key,
    ];
    secrets.extend(codes.iter().map(String::as_bytes));
    let contains =
        |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    for secret in &secrets {
        let shown = String::from_utf8_lossy(secret);
        assert!(
            !contains(logs.as_bytes(), secret),
            "a secret is in the logs: {shown}"
        );
        assert!(
            !contains(metrics.as_bytes(), secret),
            "a secret is in the metrics: {shown}"
        );
        for db in [&database, &database_after] {
            assert!(
                !contains(db, secret),
                "a secret is in the database: {shown}"
            );
        }
    }
    // Metrics are about the service, not about people.
    assert!(
        !metrics.contains(sub) && !metrics.contains(email),
        "{metrics}"
    );
    assert!(!logs.contains(email), "the mail address is in the logs");
}
