//! The PACE prove of a password reset, on the reset page and in `POST /callbacks/password-reset`:
//! the PIN (or a current device TOTP) keeps the PIN and device TOTPs; "I don't have it" or the 4th
//! wrong prove erases them in one transaction, with an audit row, and says so.

use crate::password_links::*;
use crate::support::mail::SmtpSink;
use crate::support::*;
use serde_json::json;

const PIN: &str = "4378";
const DEVICE: &str = "738e379f-fe30-45ab-819c-ba88804b6368";

/// An app with mail; `sub` has a password, the PIN and one device; a reset link from the mail.
macro_rules! with_reset_link {
    ($sub:expr) => {{
        let mut smtp = smtp_sink!();
        let app = link_builder(&smtp).spawn().await;
        let device = app.device_secret($sub, DEVICE).await;
        app.set_pin($sub, PIN).await;
        let res = mailable(&app, $sub)
            .post("/user/password/reset-link")
            .send()
            .await;
        assert_eq!(res.status(), 202);
        let link = mailed_link(&mut smtp).await;
        (app, link, device, smtp)
    }};
}

fn reset_fields(prove: &str) -> Vec<(&str, &str)> {
    vec![
        ("password", NEW_PASSWORD),
        ("confirm", NEW_PASSWORD),
        ("prove", prove),
    ]
}

async fn has_pin_and_devices(app: &TestApp, sub: &str) -> (bool, i64) {
    let pin = app.as_user(sub).pin_or_password().await["pin"]
        .as_bool()
        .unwrap();
    let devices = scalar(
        &app.database_url,
        "SELECT COUNT(*) FROM device_totps WHERE sub = $1",
        sub,
    )
    .await;
    (pin, devices)
}

#[tokio::test]
async fn the_reset_page_asks_for_the_prove_and_the_right_pin_keeps_everything() {
    let (app, link, _device, _smtp) = with_reset_link!("ada");
    let page = open(&app, &link).await;
    assert_eq!(page.status, 200);
    assert!(
        page.says("Keep your PIN and paired device"),
        "{}",
        page.body
    );
    assert!(page.says(r#"name="prove""#) && page.says("I don't have it"));

    let done = submit(&app, &link, &reset_fields(PIN)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.says("Your password is set") && !done.says("What we erased"));
    assert_eq!(has_pin_and_devices(&app, "ada").await, (true, 1));
    let ada = app.as_user("ada");
    assert_eq!(ada.create_otp_with_pin(PIN).await.status(), 201);
    assert_eq!(
        ada.create_otp_with_password(NEW_PASSWORD).await.status(),
        201
    );
    assert!(
        !app.audit_events("ada")
            .await
            .contains(&"credentials.erased".to_owned())
    );
}

#[tokio::test]
async fn a_current_device_code_is_a_prove_too() {
    let (app, link, device, _smtp) = with_reset_link!("bea");
    let done = submit(&app, &link, &reset_fields(&device.now())).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(has_pin_and_devices(&app, "bea").await, (true, 1));
}

#[tokio::test]
async fn i_dont_have_it_erases_the_pin_and_devices_and_the_page_says_so() {
    let (app, link, _device, _smtp) = with_reset_link!("cid");
    let mut fields = reset_fields("");
    fields.push(("skip", "1"));
    let done = submit(&app, &link, &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.says("What we erased"));
    assert!(
        done.says("we erased your PIN and your paired device"),
        "{}",
        done.body
    );
    assert_eq!(has_pin_and_devices(&app, "cid").await, (false, 0));
    let trail = app.audit_trail("cid").await;
    let erased = trail
        .iter()
        .find(|(e, _)| e == "credentials.erased")
        .unwrap();
    assert_eq!(erased.1, "reason=skipped via=reset-page pin=1 devices=1");
    assert_error(
        app.as_user("cid").create_otp_with_pin(PIN).await,
        404,
        "credential-not-set",
    )
    .await;
    assert_eq!(
        app.as_user("cid")
            .create_otp_with_password(NEW_PASSWORD)
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn a_missing_prove_is_asked_for_and_a_wrong_one_counts_down_to_the_erasure() {
    let (app, link, _device, _smtp) = with_reset_link!("dan");
    let page = submit(&app, &link, &reset_fields("")).await;
    assert_eq!(page.status, 422);
    assert!(
        page.says(r#"<p class="error" id="prove-error">Enter your PIN"#),
        "{}",
        page.body
    );
    for left in [
        "3 more wrong tries",
        "2 more wrong tries",
        "One more wrong try",
    ] {
        let page = submit(&app, &link, &reset_fields("9876")).await;
        assert_eq!(page.status, 422);
        assert!(page.says(left), "{left} in {}", page.body);
        assert_eq!(has_pin_and_devices(&app, "dan").await, (true, 1));
    }
    // The 4th wrong prove: erased, and the new password set (the mailbox was proven by the link).
    let done = submit(&app, &link, &reset_fields("9876")).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.says("wrong more than three times"));
    assert_eq!(has_pin_and_devices(&app, "dan").await, (false, 0));
    let trail = app.audit_trail("dan").await;
    assert!(trail.contains(&(
        "credentials.erased".into(),
        "reason=wrong-proves via=reset-page pin=1 devices=1".into()
    )));
}

#[tokio::test]
async fn the_callback_keeps_data_for_the_right_pin() {
    let app = TestApp::spawn().await;
    app.device_secret("eli", DEVICE).await;
    app.set_pin("eli", PIN).await;
    let eli = app.as_user("eli");
    // PACE declares JSON:API for the flat body; plain JSON is taken too.
    let res = eli
        .post("/callbacks/password-reset")
        .json_api(json!({ "pin": PIN }))
        .send()
        .await;
    assert_eq!(res.status(), 204);
    let res = eli
        .post("/callbacks/password-reset")
        .json(&json!({ "pin": PIN, "skip": false }))
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(has_pin_and_devices(&app, "eli").await, (true, 1));
    let res = eli
        .post("/callbacks/password-reset")
        .header("content-type", "text/plain")
        .body(r#"{"pin":"4378"}"#)
        .send()
        .await;
    assert_error(res, 415, "unsupported-media-type").await;
}

#[tokio::test]
async fn the_callback_refuses_a_wrong_pin_and_erases_on_the_fourth() {
    let app = TestApp::spawn().await;
    app.device_secret("fay", DEVICE).await;
    app.set_pin("fay", PIN).await;
    let fay = app.as_user("fay");
    let prove = |pin: &'static str| {
        fay.post("/callbacks/password-reset")
            .json_api(json!({ "pin": pin }))
            .send()
    };
    for _ in 0..3 {
        assert_error(prove("9876").await, 422, "invalid-credentials").await;
        assert_eq!(has_pin_and_devices(&app, "fay").await, (true, 1));
    }
    assert_error(prove("9876").await, 410, "credentials-erased").await;
    assert_eq!(has_pin_and_devices(&app, "fay").await, (false, 0));
    let events = app.audit_events("fay").await;
    assert_eq!(
        events.iter().filter(|e| *e == "pin.refused").count(),
        4,
        "{events:?}"
    );
    let trail = app.audit_trail("fay").await;
    assert!(trail.contains(&(
        "credentials.erased".into(),
        "reason=wrong-proves via=callback pin=1 devices=1".into()
    )));
    // No prove left: 404.
    assert_error(prove(PIN).await, 404, "credential-not-set").await;
}

#[tokio::test]
async fn a_right_pin_forgives_the_wrong_proves_before_it() {
    let app = TestApp::spawn().await;
    app.set_pin("gus", PIN).await;
    let gus = app.as_user("gus");
    let prove = |pin: &'static str| {
        gus.post("/callbacks/password-reset")
            .json(&json!({ "pin": pin }))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(prove("9876").await.status(), 422);
    }
    assert_eq!(prove(PIN).await.status(), 204);
    for _ in 0..3 {
        assert_eq!(prove("9876").await.status(), 422);
    }
    assert_eq!(has_pin_and_devices(&app, "gus").await, (true, 0));
}

#[tokio::test]
async fn skip_erases_and_no_prove_is_404() {
    let app = TestApp::spawn().await;
    let hal = app.as_user("hal");
    let call = |body: serde_json::Value| hal.post("/callbacks/password-reset").json(&body).send();
    assert_error(call(json!({ "pin": PIN })).await, 404, "credential-not-set").await;
    assert_error(
        call(json!({ "skip": true })).await,
        404,
        "credential-not-set",
    )
    .await;
    let missing = assert_error(call(json!({})).await, 422, "invalid-field").await;
    assert_eq!(missing["source"]["pointer"], "/pin");
    app.device_secret("hal", DEVICE).await;
    // Devices but no PIN: the callback can only carry a PIN, so there is no prove…
    assert_error(call(json!({ "pin": PIN })).await, 404, "credential-not-set").await;
    // …but skipping still erases the devices.
    assert_error(
        call(json!({ "skip": true })).await,
        410,
        "credentials-erased",
    )
    .await;
    assert_eq!(has_pin_and_devices(&app, "hal").await, (false, 0));
    let trail = app.audit_trail("hal").await;
    assert!(trail.contains(&(
        "credentials.erased".into(),
        "reason=skipped via=callback pin=0 devices=1".into()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_proves_erase_once_and_never_allow_more_than_three_wrong_answers() {
    // Room in the hashing queue for all of them: a 503 would say nothing about the limit.
    let app = TestApp::builder()
        .env("OTPD_HASH_QUEUE", "16")
        .spawn()
        .await;
    app.device_secret("ivo", DEVICE).await;
    app.set_pin("ivo", PIN).await;
    let ivo = app.as_user("ivo");
    let calls = (0..8).map(|_| {
        ivo.post("/callbacks/password-reset")
            .json(&json!({ "pin": "9876" }))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    // The PIN admits four checks before it locks (every check is counted before it runs, the 4th
    // starts the lock): each of those four is a wrong prove, answered 422 or, for the 4th and for
    // any whose count came after the 4th had erased the PIN, with the erasure (410). So at most
    // three 422s, possibly none (a CI run met all four counted before the first answered). The
    // rest were refused by the lock (429), or started after the erasure and found no PIN (404).
    assert!(count(422) <= 3, "{statuses:?}");
    assert!(count(410) >= 1, "{statuses:?}");
    assert!(count(422) + count(410) >= 4, "{statuses:?}");
    assert_eq!(
        count(422) + count(410) + count(429) + count(404),
        8,
        "{statuses:?}"
    );
    let events = app.audit_events("ivo").await;
    assert_eq!(
        events.iter().filter(|e| *e == "credentials.erased").count(),
        1
    );
    assert_eq!(has_pin_and_devices(&app, "ivo").await, (false, 0));
}
