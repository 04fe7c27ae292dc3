//! No secret at rest in PostgreSQL: a flow that sets, changes, guesses and uses every kind of
//! secret, then a dump of every row of every table as JSON, searched for each of them (in clear
//! and as the hex that `bytea` prints). The SQLite files get the same search in create_otp.rs.

use crate::support::*;
use serde_json::json;

const DEVICE: &str = "c4f1d2e3-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
const SUB: &str = "at-rest-user-5c2e";
const PASSWORD_AT_REST: &str = "Password-at-rest-7d3f91";
const WRONG_PASSWORD_AT_REST: &str = "Wrong-at-rest-password-4b8e";
/// The PIN set first, the one it is changed to, and a wrong one: 12 digits each.
const PINS_AT_REST: (&str, &str, &str) = ("829961730458", "573920481726", "613849275013");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        skip!("the backend is SQLite (set OTPD_TEST_DATABASE_URL to a PostgreSQL server)");
    }
    let (sub, password, wrong_password) = (SUB, PASSWORD_AT_REST, WRONG_PASSWORD_AT_REST);
    let (pin, new_pin, wrong_pin) = PINS_AT_REST;
    app.set_password(sub, password).await;
    app.set_pin(sub, pin).await;
    let user = app.as_user(sub);

    // Account OTPs: one verified, one spent on a PIN change, one left live.
    let verified = otp_of(user.create_otp_with_password(password).await).await;
    assert_eq!(user.verify(&verified).await.status(), 204);
    let for_pin = otp_of(user.create_otp_with_pin(pin).await).await;
    assert_eq!(user.put_pin(new_pin, &for_pin).await.status(), 200);
    let live = otp_of(user.create_otp_with_pin(new_pin).await).await;
    // Wrong guesses are not kept either.
    for body in [
        json!({ "password": wrong_password }),
        json!({ "pin": wrong_pin }),
    ] {
        user.refused_guesses(&body, 1).await;
    }

    // A device TOTP, enrolled and used once.
    let res = user
        .create_device(DEVICE, json!({ "password": password }))
        .await;
    assert_eq!(res.status(), 201);
    let device = DeviceSecret::from_response(res).await;
    let totp_secret = device.secret.clone();
    let totp_code = device.now();
    assert_eq!(user.verify(&totp_code).await.status(), 204);

    // Every row of every table, as JSON: `bytea` prints as hex.
    let text = stored_bytes(&app.database_url, app.dir.path()).await;
    let text = String::from_utf8(text).expect("a PostgreSQL dump is text");
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
        !lower.contains(&hex(&device.bytes())),
        "the TOTP secret's raw bytes are in the database"
    );
}
