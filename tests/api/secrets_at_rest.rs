//! No secret at rest in PostgreSQL: a flow that sets, changes, guesses and uses every kind of
//! secret, then a dump of every row of every table as text, searched for each of them (in clear
//! and as the hex that `bytea` prints). The SQLite files get the same search in create_otp.rs.

use crate::support::*;
use otpd::domain::totp::{code_at, step_at};
use otpd::domain::{TotpAlgorithm, TotpSettings};
use serde_json::{Value, json};
use sqlx::Row;

const JSON_API: &str = "application/vnd.api+json";
const DEVICE: &str = "c4f1d2e3-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every row of every table of the app's schema, as PostgreSQL renders a row as text.
async fn dump(database_url: &str) -> String {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut text = String::new();
    for table in &tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {quoted} AS t"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        for row in rows {
            text.push_str(table);
            text.push(' ');
            text.push_str(&row.get::<String, _>(0));
            text.push('\n');
        }
    }
    pool.close().await;
    text
}

async fn otp_with(app: &TestApp, sub: &str, body: Value) -> String {
    let res = app.create_otp(sub, body).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["otp"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn json_api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    sub: &str,
    doc: Value,
) -> reqwest::Response {
    app.http
        .request(method, app.url(path))
        .bearer_auth(app.issuer.token(sub))
        .header("content-type", JSON_API)
        .header("accept", JSON_API)
        .body(doc.to_string())
        .send()
        .await
        .unwrap()
}

async fn verify(app: &TestApp, sub: &str, otp: &str) -> u16 {
    app.http
        .post(app.url("/user/otp/verify"))
        .bearer_auth(app.issuer.token(sub))
        .json(&json!({ "otp": otp }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn no_password_pin_otp_totp_secret_or_pepper_is_stored_in_postgresql() {
    // Long codes and PINs: short ones would turn up in timestamps and digests by chance.
    let app = TestApp::builder()
        .env("OTPD_OTP_DIGITS", "10")
        .env("OTPD_PIN_LENGTH", "12")
        .env("OTPD_TOTP_DIGITS", "8")
        .spawn()
        .await;
    if is_sqlite(&app.database_url) {
        eprintln!(
            "SKIPPED no_password_pin_otp_totp_secret_or_pepper_is_stored_in_postgresql: \
             the backend is SQLite (set OTPD_TEST_DATABASE_URL to a PostgreSQL server)"
        );
        return;
    }
    let sub = "at-rest-user-5c2e";
    let password = "Password-at-rest-7d3f91";
    let wrong_password = "Wrong-at-rest-password-4b8e";
    let pin = "829961730458";
    let new_pin = "573920481726";
    let wrong_pin = "613849275013";
    app.set_password(sub, password).await;
    app.set_pin(sub, pin).await;

    // Account OTPs: one verified, one spent on a PIN change, one left live.
    let verified = otp_with(&app, sub, json!({ "password": password })).await;
    assert_eq!(verify(&app, sub, &verified).await, 204);
    let for_pin = otp_with(&app, sub, json!({ "pin": pin })).await;
    let doc = json!({"data": {"type": "pin", "attributes": {"pin": new_pin, "otp": for_pin}}});
    let res = json_api(&app, reqwest::Method::PUT, "/user/pin", sub, doc).await;
    assert_eq!(res.status(), 200);
    let live = otp_with(&app, sub, json!({ "pin": new_pin })).await;
    // Wrong guesses are not kept either.
    for body in [
        json!({ "password": wrong_password }),
        json!({ "pin": wrong_pin }),
    ] {
        assert_eq!(app.create_otp(sub, body).await.status(), 422);
    }

    // A device TOTP, enrolled and used once.
    let doc = json!({"data": {"type": "deviceTOTP", "id": DEVICE,
        "attributes": {"password": password}}});
    let res = json_api(&app, reqwest::Method::POST, "/user/devices/totp", sub, doc).await;
    assert_eq!(res.status(), 201);
    let attrs = res.json::<Value>().await.unwrap()["data"]["attributes"].clone();
    let totp_secret = attrs["secret"].as_str().unwrap().to_owned();
    let totp_bytes = data_encoding::BASE32_NOPAD
        .decode(totp_secret.as_bytes())
        .unwrap();
    let settings = TotpSettings {
        period_secs: attrs["period"].as_u64().unwrap() as u32,
        digits: attrs["digits"].as_u64().unwrap() as u8,
        algorithm: TotpAlgorithm::parse(attrs["algorithm"].as_str().unwrap()).unwrap(),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let totp_code = code_at(&totp_bytes, settings, step_at(now, settings.period_secs));
    assert_eq!(verify(&app, sub, &totp_code).await, 204);

    let text = dump(&app.database_url).await;
    // The dump sees the flow: the user's rows, hashes, the device and the audit trail...
    for expected in [
        sub,
        "$argon2id$",
        DEVICE,
        "otp.issued",
        "pin.set",
        "device-totp.created",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` not in the dump:\n{text}"
        );
    }
    assert!(
        text.lines().any(|l| l.starts_with("otps ")),
        "the live OTP's row is in the dump:\n{text}"
    );
    // ...and would show a secret kept as bytes: `bytea` prints as hex, as the live OTP's digest.
    let key = otpd::service::OtpKey::derive(&app.config().hashing.read_pepper().unwrap());
    let digest = key.digest(sub, &live);
    assert!(
        text.to_ascii_lowercase().contains(&hex(&digest)),
        "the live OTP's digest, as hex, is in the dump:\n{text}"
    );
    let token = app.issuer.token(sub);
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let pepper = "test pepper: 32 bytes or more, never in the database";
    let secrets: Vec<(&str, &str)> = vec![
        ("password", password),
        ("wrong password", wrong_password),
        ("PIN", pin),
        ("new PIN", new_pin),
        ("wrong PIN", wrong_pin),
        ("verified OTP", &verified),
        ("OTP spent on the PIN change", &for_pin),
        ("live OTP", &live),
        ("TOTP secret (base32)", &totp_secret),
        ("TOTP code", &totp_code),
        ("token signature", &signature),
        ("pepper", pepper),
    ];
    let lower = text.to_ascii_lowercase();
    for (what, secret) in &secrets {
        assert!(
            !lower.contains(&secret.to_ascii_lowercase()),
            "{what} in the database in clear"
        );
        assert!(
            !lower.contains(&hex(secret.as_bytes())),
            "{what} in the database as bytes"
        );
    }
    assert!(
        !lower.contains(&hex(&totp_bytes)),
        "the TOTP secret's raw bytes are in the database"
    );
}
