//! `PUT /user/password` and `POST /user/password/reset-link`: a link mailed over real SMTP (aiosmtpd
//! on loopback), taken from the mail as a user would and followed to the page. Also the shared
//! helpers of the password page tests.

use crate::support::mail::SmtpSink;
use crate::support::*;
use otpd::service::ManualClock;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Where the operator says users reach otpd. The tests' app listens elsewhere (port 0): a link is
/// followed to the app as a reverse proxy would forward it.
pub const PUBLIC: &str = "https://account.otpd.test";

/// A sink that accepts every message, or the end of the test (skipped; failed under CI).
macro_rules! smtp_sink {
    () => {
        match SmtpSink::start().await {
            Some(sink) => sink,
            None => skip!(tool: "{}", SmtpSink::MISSING),
        }
    };
}
pub(crate) use smtp_sink;

pub fn link_builder(smtp: &SmtpSink) -> TestAppBuilder {
    TestApp::builder()
        .env("OTPD_SMTP_URL", &smtp.url())
        .env("OTPD_MAIL_FROM", "Acme Account <noreply@otpd.test>")
        .env("OTPD_PUBLIC_URL", PUBLIC)
        .env("OTPD_SERVICE_NAME", "Acme Pay")
}

/// `sub` with a token carrying a verified `<sub>@example.com`.
pub fn mailable<'a>(app: &'a TestApp, sub: &str) -> User<'a> {
    app.as_user(sub)
        .with_claims(json!({"email": format!("{sub}@example.com"), "email_verified": true}))
}

/// A mail's text as a mail program shows it: quoted-printable decoded (soft line breaks joined,
/// `=XX` turned back into bytes).
pub fn readable(mail: &str) -> String {
    let joined = mail.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The link in a mail: the line that starts with the public URL.
pub fn link_in(mail: &str) -> String {
    readable(mail)
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(PUBLIC))
        .unwrap_or_else(|| panic!("no link in {mail}"))
        .to_owned()
}

pub async fn mailed_link(smtp: &mut SmtpSink) -> String {
    link_in(&smtp.next_message().await.data)
}

/// The link's token (what the page puts into its form).
pub fn token_of(link: &str) -> String {
    link.split_once("token=").expect("a token").1.to_owned()
}

/// A page as the browser gets it.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    async fn from(res: reqwest::Response) -> Self {
        Self {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    pub fn says(&self, text: &str) -> bool {
        self.body.contains(text)
    }
}

/// `GET` of the link at the app's address.
pub async fn open(app: &TestApp, link: &str) -> Page {
    let path = link
        .strip_prefix(PUBLIC)
        .expect("a link under the public URL");
    Page::from(app.http.get(app.root_url(path)).send().await.unwrap()).await
}

/// Submits the link's form with `fields` (besides the token), as a browser on our page would.
pub async fn submit(app: &TestApp, link: &str, fields: &[(&str, &str)]) -> Page {
    submit_from(app, link, fields, Some(PUBLIC)).await
}

pub async fn submit_from(
    app: &TestApp,
    link: &str,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> Page {
    let path = link
        .strip_prefix(PUBLIC)
        .expect("a link under the public URL");
    let page = path.split('?').next().unwrap();
    let token = token_of(link);
    let mut form: Vec<(&str, &str)> = vec![("token", &token)];
    form.extend_from_slice(fields);
    let mut req = app.http.post(app.root_url(page)).form(&form);
    if let Some(origin) = origin {
        let site = if origin == PUBLIC {
            "same-origin"
        } else {
            "cross-site"
        };
        req = req.header("origin", origin).header("sec-fetch-site", site);
    }
    Page::from(req.send().await.unwrap()).await
}

/// Submits a new password (typed twice).
pub async fn choose(app: &TestApp, link: &str, password: &str) -> Page {
    submit(app, link, &[("password", password), ("confirm", password)]).await
}

pub const NEW_PASSWORD: &str = "blue lantern over quiet fields";

#[tokio::test]
async fn a_mailed_link_creates_the_password_and_the_password_then_gets_an_otp() {
    let mut smtp = smtp_sink!();
    let app = link_builder(&smtp).spawn().await;
    let lena = mailable(&app, "lena");
    let res = lena.put("/user/password").send().await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.content_length(), Some(0));

    let mail = smtp.next_message().await;
    assert_eq!(mail.to, vec!["lena@example.com".to_owned()]);
    assert!(
        mail.data.contains("Subject: Create your Acme Pay password"),
        "{}",
        mail.data
    );
    assert!(
        readable(&mail.data).contains("for 24 hours"),
        "{}",
        mail.data
    );
    let link = link_in(&mail.data);
    assert!(link.starts_with(&format!("{PUBLIC}/password/set?token=")));
    assert!(
        token_of(&link).len() >= 43,
        "at least 32 random bytes: {}",
        mail.data
    );

    let page = open(&app, &link).await;
    assert_eq!(page.status, 200);
    assert!(page.says("Create your password") && page.says("lena@example.com"));
    assert!(page.says(r#"autocomplete="new-password""#));
    assert_eq!(lena.check("/user/password").await.status(), 404);

    let done = choose(&app, &link, NEW_PASSWORD).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.says("Your password is set"));
    assert_eq!(lena.check("/user/password").await.status(), 200);
    assert_eq!(
        lena.create_otp_with_password(NEW_PASSWORD).await.status(),
        201
    );
    let trail = app.audit_trail("lena").await;
    assert!(trail.contains(&(
        "password-link.issued".into(),
        "purpose=set retired=0".into()
    )));
    assert!(trail.contains(&("password.set".into(), "via=link purpose=set".into())));
}

#[tokio::test]
async fn a_user_with_a_password_gets_409_and_no_mail() {
    let mut smtp = smtp_sink!();
    let app = link_builder(&smtp).spawn().await;
    app.set_password("omar", PASSWORD).await;
    let res = mailable(&app, "omar").put("/user/password").send().await;
    assert_error(res, 409, "password-already-set").await;
    // The next mail the sink sees is the one asked for now, not one for omar.
    assert_eq!(
        mailable(&app, "nora")
            .put("/user/password")
            .send()
            .await
            .status(),
        202
    );
    assert_eq!(
        smtp.next_message().await.to,
        vec!["nora@example.com".to_owned()]
    );
}

#[tokio::test]
async fn the_address_must_be_there_verified_and_usable() {
    let smtp = smtp_sink!();
    let app = link_builder(&smtp).spawn().await;
    let put = |claims: serde_json::Value| {
        let user = app.as_user("ivy").with_claims(claims);
        async move { user.put("/user/password").send().await }
    };
    assert_error(put(json!({})).await, 422, "email-missing").await;
    let unverified = json!({"email": "ivy@example.com", "email_verified": false});
    assert_error(put(unverified).await, 422, "email-not-verified").await;
    let absent = json!({"email": "ivy@example.com"});
    assert_error(put(absent).await, 422, "email-not-verified").await;
    let unusable = json!({"email": "ivy@", "email_verified": true});
    assert_error(put(unusable).await, 422, "email-invalid").await;
    let reset = app
        .as_user("ivy")
        .post("/user/password/reset-link")
        .send()
        .await;
    assert_error(reset, 422, "email-missing").await;
}

#[tokio::test]
async fn without_mail_or_a_public_url_the_answer_is_503() {
    let app = TestApp::builder()
        .env("OTPD_PUBLIC_URL", PUBLIC)
        .spawn()
        .await;
    let res = mailable(&app, "ben").put("/user/password").send().await;
    assert_error(res, 503, "mail-not-configured").await;
    let smtp = smtp_sink!();
    let app = TestApp::builder()
        .env("OTPD_SMTP_URL", &smtp.url())
        .env("OTPD_MAIL_FROM", "noreply@otpd.test")
        .spawn()
        .await;
    let res = mailable(&app, "ben").put("/user/password").send().await;
    assert_error(res, 503, "public-url-not-configured").await;
}

#[tokio::test]
async fn a_rejected_mail_is_503_and_leaves_no_usable_link() {
    let Some(smtp) = SmtpSink::rejecting().await else {
        skip!(tool: "{}", SmtpSink::MISSING);
    };
    let app = link_builder(&smtp).spawn().await;
    let res = mailable(&app, "rita").put("/user/password").send().await;
    assert_error(res, 503, "mail-failed").await;
    let events = app.audit_events("rita").await;
    assert_eq!(
        events,
        vec!["password-link.issued", "password-link.withdrawn"]
    );
    let live = scalar(
        &app.database_url,
        "SELECT COUNT(*) FROM password_links WHERE sub = $1 AND retired_at IS NULL",
        "rita",
    )
    .await;
    assert_eq!(live, 0);
}

#[tokio::test]
async fn each_new_request_retires_the_earlier_links() {
    let mut smtp = smtp_sink!();
    let app = link_builder(&smtp).spawn().await;
    let kai = mailable(&app, "kai");
    assert_eq!(kai.put("/user/password").send().await.status(), 202);
    let first = mailed_link(&mut smtp).await;
    assert_eq!(kai.put("/user/password").send().await.status(), 202);
    let second = mailed_link(&mut smtp).await;
    assert_ne!(first, second);

    let page = open(&app, &first).await;
    assert_eq!(page.status, 410);
    assert!(page.says("A newer link was sent"), "{}", page.body);
    assert_eq!(choose(&app, &first, NEW_PASSWORD).await.status, 410);
    assert_eq!(choose(&app, &second, NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn links_count_against_the_hourly_mail_limit() {
    let mut smtp = smtp_sink!();
    let app = link_builder(&smtp)
        .env("OTPD_MAIL_PER_HOUR", "2")
        .spawn()
        .await;
    let zoe = mailable(&app, "zoe");
    assert_eq!(zoe.sendmail().await.status(), 204);
    assert_eq!(zoe.put("/user/password").send().await.status(), 202);
    let res = zoe.put("/user/password").send().await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "mail-limit").await;
    smtp.next_message().await;
    mailed_link(&mut smtp).await;
}

#[tokio::test]
async fn a_reset_link_needs_a_password_and_opens_the_reset_page() {
    let mut smtp = smtp_sink!();
    let app = link_builder(&smtp).spawn().await;
    let res = mailable(&app, "uli")
        .post("/user/password/reset-link")
        .send()
        .await;
    assert_error(res, 404, "credential-not-set").await;
    app.set_password("uli", PASSWORD).await;
    let res = mailable(&app, "uli")
        .post("/user/password/reset-link")
        .send()
        .await;
    assert_eq!(res.status(), 202);
    let mail = smtp.next_message().await;
    assert!(mail.data.contains("Subject: Reset your Acme Pay password"));
    let link = link_in(&mail.data);
    assert!(link.starts_with(&format!("{PUBLIC}/password/reset?token=")));
    // A reset link is no set link: the other page does not know it.
    let wrong_page = link.replace("/password/reset?", "/password/set?");
    assert_eq!(open(&app, &wrong_page).await.status, 404);
    let page = open(&app, &link).await;
    assert_eq!(page.status, 200);
    assert!(page.says("Choose a new password"));
    assert!(
        !page.says(r#"name="prove""#),
        "no PIN, no devices: nothing to prove"
    );
    assert_eq!(choose(&app, &link, NEW_PASSWORD).await.status, 200);
    let uli = app.as_user("uli");
    assert_error(
        uli.create_otp_with_password(PASSWORD).await,
        422,
        "invalid-credentials",
    )
    .await;
    assert_eq!(
        uli.create_otp_with_password(NEW_PASSWORD).await.status(),
        201
    );
}

#[tokio::test]
async fn the_link_never_comes_from_request_headers() {
    let mut smtp = smtp_sink!();
    let app = link_builder(&smtp).spawn().await;
    let res = mailable(&app, "hal")
        .put("/user/password")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "http")
        .header("forwarded", "host=evil.example;proto=http")
        .send()
        .await;
    assert_eq!(res.status(), 202);
    let mail = smtp.next_message().await;
    assert!(!mail.data.contains("evil.example"));
    assert!(link_in(&mail.data).starts_with(PUBLIC));
}

#[tokio::test]
async fn the_scopes_guard_the_link_endpoints() {
    let app = TestApp::spawn().await;
    app.assert_guarded("user:otp:create", |u| u.put("/user/password"))
        .await;
    app.assert_guarded("user:users.password:check", |u| {
        u.post("/user/password/reset-link")
    })
    .await;
    app.assert_guarded("user:users.password:create", |u| {
        u.post("/callbacks/password-reset")
            .json(&json!({"skip": true}))
    })
    .await;
}

#[tokio::test]
async fn pace_reset_password_names_no_user_and_is_501() {
    let app = TestApp::spawn().await;
    let res = app
        .request(reqwest::Method::PUT, "/user/password/reset?pin=4378")
        .send()
        .await;
    let err = assert_error(res, 501, "not-implemented").await;
    assert!(!err.to_string().contains("4378"));
}

#[tokio::test]
async fn an_expired_link_shows_its_page_with_410() {
    let mut smtp = smtp_sink!();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = link_builder(&smtp)
        .env("OTPD_PASSWORD_LINK_TTL_SECONDS", "3600")
        .clock(clock.clone())
        .spawn()
        .await;
    assert_eq!(
        mailable(&app, "eve")
            .put("/user/password")
            .send()
            .await
            .status(),
        202
    );
    let link = mailed_link(&mut smtp).await;
    clock.advance(Duration::from_secs(3599));
    assert_eq!(open(&app, &link).await.status, 200);
    clock.advance(Duration::from_secs(1));
    let page = open(&app, &link).await;
    assert_eq!(page.status, 410);
    assert!(page.says("This link has expired") && page.says("Ask for a new link"));
    let page = choose(&app, &link, NEW_PASSWORD).await;
    assert_eq!(page.status, 410);
    assert_eq!(
        app.as_user("eve").check("/user/password").await.status(),
        404
    );
}

#[tokio::test]
async fn deleting_the_user_kills_a_live_link() {
    let mut smtp = smtp_sink!();
    let app = link_builder(&smtp).spawn().await;
    assert_eq!(
        mailable(&app, "del")
            .put("/user/password")
            .send()
            .await
            .status(),
        202
    );
    let link = mailed_link(&mut smtp).await;
    app.set_password("del", PASSWORD).await;
    let otp = app
        .as_user("del")
        .new_otp(json!({ "password": PASSWORD }))
        .await;
    assert_eq!(app.as_user("del").delete_user(&otp).await.status(), 202);
    assert_eq!(open(&app, &link).await.status, 404);
    assert_eq!(choose(&app, &link, NEW_PASSWORD).await.status, 404);
}
