//! The password pages in a real browser: Debian's headless Chromium driven by selenium
//! (tests/browser/driver.py, from the test venv), with the link taken from a real mail. Each page
//! state is saved as a screenshot under target/screenshots/ and checked with axe-core: no
//! violation of impact "serious" or "critical". Without Chromium, chromedriver, selenium or
//! axe-core the tests skip (and fail under CI).

use crate::password_links::*;
use crate::support::mail::SmtpSink;
use crate::support::*;
use otpd::service::ManualClock;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PIN: &str = "4378";
const DEVICE: &str = "5d0c8f0e-3b7a-4c41-9a55-0d8f3d1c2b7e";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One headless Chromium, commanded line by line.
struct Browser {
    /// `None` once closed: the driver's end of input, on which it quits the browser.
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    child: Child,
    /// The pid of the chromedriver the driver started.
    chromedriver: u32,
}

/// Closes the driver's input and gives it time to quit Chrome and chromedriver (`driver.quit()`
/// in driver.py). Killed at once, as `kill_on_drop` alone did, the driver left both running:
/// hundreds of orphaned browser processes after a few test runs.
impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Still running after the deadline: `kill_on_drop` ends it.
    }
}

/// Why the browser cannot run here, or `None` when it can.
fn browser_missing() -> Option<String> {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(tool).exists() {
            return Some(format!(
                "no {tool} (apt-get install -y chromium chromium-driver)"
            ));
        }
    }
    if python_with("selenium").is_none() {
        return Some("no Python with selenium (run scripts/test.sh)".into());
    }
    if !root()
        .join("tests/browser/node_modules/axe-core/axe.min.js")
        .exists()
    {
        return Some("no axe-core (npm ci --prefix tests/browser)".into());
    }
    None
}

macro_rules! browser {
    ($($arg:expr),*) => {{
        if let Some(why) = browser_missing() {
            skip!(tool: "{why}");
        }
        Browser::start(&[$($arg),*]).await
    }};
}

impl Browser {
    async fn start(args: &[&str]) -> Self {
        let python = python_with("selenium").expect("checked by browser_missing");
        let mut child = Command::new(python)
            .arg(root().join("tests/browser/driver.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the browser driver");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the browser starts")
            .unwrap()
            .expect("a ready line");
        let ready: Value = serde_json::from_str(&ready).expect("a JSON ready line");
        assert_eq!(ready["ready"], true, "{ready}");
        let chromedriver = ready["chromedriver"].as_u64().expect("chromedriver's pid") as u32;
        Self {
            stdin: Some(stdin),
            lines,
            child,
            chromedriver,
        }
    }

    /// Ends the session as every test does when it drops the browser, and checks that the
    /// driver quit on its own and took chromedriver with it.
    async fn close(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the driver quits once its input ends")
            .unwrap();
        assert!(status.success(), "the driver ended with {status}");
        let proc = PathBuf::from(format!("/proc/{}", self.chromedriver));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while proc.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !proc.exists(),
            "chromedriver {} still runs",
            self.chromedriver
        );
    }

    async fn send(&mut self, cmd: Value) -> Value {
        let line = format!("{cmd}\n");
        let stdin = self.stdin.as_mut().expect("the driver's input is open");
        stdin.write_all(line.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser does not answer {cmd}"))
            .unwrap()
            .expect("an answer line");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["ok"], true, "{cmd}: {answer}");
        answer["value"].clone()
    }

    async fn open(&mut self, url: &str) {
        self.send(json!({"op": "open", "url": url})).await;
    }

    async fn fill(&mut self, css: &str, text: &str) {
        self.send(json!({"op": "type", "css": css, "text": text}))
            .await;
    }

    /// Clicks a submit button and waits for the page it loads.
    async fn click(&mut self, css: &str) {
        self.send(json!({"op": "click", "css": css})).await;
    }

    /// Clicks a button that changes the page in place.
    async fn toggle(&mut self, css: &str) {
        self.send(json!({"op": "click", "css": css, "navigates": false}))
            .await;
    }

    async fn text(&mut self, css: &str) -> String {
        let v = self.send(json!({"op": "text", "css": css})).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn attr(&mut self, css: &str, name: &str) -> Option<String> {
        let v = self
            .send(json!({"op": "attr", "css": css, "name": name}))
            .await;
        v.as_str().map(str::to_owned)
    }

    async fn count(&mut self, css: &str) -> u64 {
        let v = self.send(json!({"op": "count", "css": css})).await;
        v.as_u64().unwrap()
    }

    /// Saves the page under target/screenshots/`name`.png and checks it with axe-core.
    async fn capture(&mut self, name: &str) {
        self.screenshot(name).await;
        let violations = self.send(json!({"op": "axe"})).await;
        let list = violations
            .as_array()
            .unwrap_or_else(|| panic!("axe: {violations}"));
        let grave: Vec<&Value> = list
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(grave.is_empty(), "{name}: axe-core finds {grave:#?}");
    }

    /// Saves the page under target/screenshots/`name`.png (axe-core needs JavaScript: pages
    /// captured with it off are the same pages `capture` checks with it on).
    async fn screenshot(&mut self, name: &str) {
        let path = root().join(format!("target/screenshots/{name}.png"));
        self.send(json!({"op": "screenshot", "path": path})).await;
    }

    /// Types the new password twice and submits with the button `button`.
    async fn choose(&mut self, password: &str, button: &str) {
        self.fill("#password", password).await;
        self.fill("#confirm", password).await;
        self.click(button).await;
    }

    /// Submits the reset form: the new password twice and `prove` (a PIN or a device TOTP).
    async fn reset_with(&mut self, password: &str, prove: &str) {
        self.fill("#password", password).await;
        self.fill("#confirm", password).await;
        self.fill("#prove", prove).await;
        self.click("button.primary").await;
    }
}

/// A port that is free now: the browser posts from the page's origin, which must be the public
/// URL, so the app listens where the public URL says.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An app whose public URL is its own address, with mail.
async fn browser_app(smtp: &SmtpSink, clock: Option<Arc<ManualClock>>) -> (TestApp, String) {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut builder = TestApp::builder()
        .env("OTPD_LISTEN", &format!("127.0.0.1:{port}"))
        .env("OTPD_SMTP_URL", &smtp.url())
        .env("OTPD_MAIL_FROM", "Acme Pay <noreply@otpd.test>")
        .env("OTPD_PUBLIC_URL", &public)
        .env("OTPD_SERVICE_NAME", "Acme Pay");
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    (builder.spawn().await, public)
}

/// The link of the next mail (its line starts with `public`).
async fn link_from_mail(smtp: &mut SmtpSink, public: &str) -> String {
    let mail = readable(&smtp.next_message().await.data);
    mail.lines()
        .map(str::trim)
        .find(|l| l.starts_with(public))
        .unwrap_or_else(|| panic!("no link in {mail}"))
        .to_owned()
}

#[tokio::test]
async fn set_a_password_through_the_mailed_link_then_use_it() {
    let mut browser = browser!();
    let mut smtp = smtp_sink!();
    let (app, public) = browser_app(&smtp, None).await;
    let lena = app
        .as_user("lena")
        .with_claims(json!({"email": "lena@example.com", "email_verified": true}));
    assert_eq!(lena.put("/user/password").send().await.status(), 202);
    let link = link_from_mail(&mut smtp, &public).await;

    // A mail scanner fetches the link first: that must not use it up.
    let prefetch = app.http.get(&link).send().await.unwrap();
    assert_eq!(prefetch.status(), 200);

    browser.open(&link).await;
    assert_eq!(browser.text("h1").await, "Create your password");
    assert_eq!(
        browser.attr("#password", "autocomplete").await.as_deref(),
        Some("new-password")
    );
    browser.capture("set-form").await;

    // The show-password toggle (JavaScript) shows what was typed.
    browser.fill("#password", "peek a boo").await;
    assert_eq!(browser.count(".toggle").await, 2);
    browser.toggle("#password + .toggle").await;
    assert_eq!(
        browser.attr("#password", "type").await.as_deref(),
        Some("text")
    );
    browser.toggle("#password + .toggle").await;
    assert_eq!(
        browser.attr("#password", "type").await.as_deref(),
        Some("password")
    );

    // A policy failure is shown next to the field, naming the rule.
    browser.choose("Password1", "button.primary").await;
    let error = browser.text("#password-error").await;
    assert!(error.contains("commonly used or leaked"), "{error}");
    assert_eq!(
        browser.attr("#password", "aria-invalid").await.as_deref(),
        Some("true")
    );
    browser.capture("set-policy-error").await;

    browser.choose(NEW_PASSWORD, "button.primary").await;
    assert_eq!(browser.text("h1").await, "Your password is set");
    browser.capture("set-done").await;
    assert_eq!(
        lena.create_otp_with_password(NEW_PASSWORD).await.status(),
        201
    );

    // The same link a second time.
    browser.open(&link).await;
    assert_eq!(browser.text("h1").await, "This link was already used");
    browser.capture("link-used").await;
}

#[tokio::test]
async fn an_expired_link_says_so() {
    let mut browser = browser!();
    let mut smtp = smtp_sink!();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let (app, public) = browser_app(&smtp, Some(clock.clone())).await;
    let eve = app
        .as_user("eve")
        .with_claims(json!({"email": "eve@example.com", "email_verified": true}));
    assert_eq!(eve.put("/user/password").send().await.status(), 202);
    let link = link_from_mail(&mut smtp, &public).await;
    clock.advance(Duration::from_secs(24 * 3600));
    browser.open(&link).await;
    assert_eq!(browser.text("h1").await, "This link has expired");
    browser.capture("link-expired").await;
    browser.close().await;
}

/// A user with a password, the PIN and a device, and a reset link for them.
async fn reset_link_for(app: &TestApp, smtp: &mut SmtpSink, public: &str, sub: &str) -> String {
    app.device_secret(sub, DEVICE).await;
    app.set_pin(sub, PIN).await;
    let user = app
        .as_user(sub)
        .with_claims(json!({"email": format!("{sub}@example.com"), "email_verified": true}));
    assert_eq!(
        user.post("/user/password/reset-link").send().await.status(),
        202
    );
    link_from_mail(smtp, public).await
}

#[tokio::test]
async fn a_reset_with_the_right_pin_keeps_it_and_one_without_erases_pin_and_devices() {
    let mut browser = browser!();
    let mut smtp = smtp_sink!();
    let (app, public) = browser_app(&smtp, None).await;

    let link = reset_link_for(&app, &mut smtp, &public, "ada").await;
    browser.open(&link).await;
    assert_eq!(browser.text("h1").await, "Choose a new password");
    assert!(
        browser
            .text("legend")
            .await
            .contains("Keep your PIN and paired device")
    );
    browser.capture("reset-form").await;
    browser.reset_with(NEW_PASSWORD, "9876").await;
    assert!(
        browser
            .text("#prove-error")
            .await
            .contains("3 more wrong tries")
    );
    browser.capture("reset-wrong-pin").await;
    browser.reset_with(NEW_PASSWORD, PIN).await;
    assert_eq!(browser.text("h1").await, "Your password is set");
    assert_eq!(browser.count(".alert.warn").await, 0);
    assert_eq!(
        app.as_user("ada").create_otp_with_pin(PIN).await.status(),
        201
    );

    let link = reset_link_for(&app, &mut smtp, &public, "bo").await;
    browser.open(&link).await;
    browser.choose(NEW_PASSWORD, "button.secondary").await;
    assert_eq!(browser.text("h1").await, "Your password is set");
    let erased = browser.text(".alert.warn").await;
    assert!(
        erased.contains("we erased your PIN and your paired device"),
        "{erased}"
    );
    browser.capture("reset-erased").await;
    let bo = app.as_user("bo").pin_or_password().await;
    assert_eq!(bo, json!({"pin": false, "password": true}));
}

#[tokio::test]
async fn the_pages_work_with_javascript_off() {
    let mut browser = browser!("--no-js");
    let mut smtp = smtp_sink!();
    let (app, public) = browser_app(&smtp, None).await;
    let link = reset_link_for(&app, &mut smtp, &public, "cy").await;
    browser.open(&link).await;
    // No script ran: no toggles, and the form still works.
    assert_eq!(browser.count(".toggle").await, 0);
    browser.screenshot("reset-form-nojs").await;
    browser.reset_with("short", PIN).await;
    assert!(
        browser
            .text("#password-error")
            .await
            .contains("at least 8 characters")
    );
    browser.screenshot("reset-policy-error-nojs").await;
    browser.reset_with(NEW_PASSWORD, PIN).await;
    assert_eq!(browser.text("h1").await, "Your password is set");
    browser.screenshot("reset-done-nojs").await;
    let cy = app.as_user("cy");
    assert_eq!(
        cy.create_otp_with_password(NEW_PASSWORD).await.status(),
        201
    );
    assert_eq!(cy.create_otp_with_pin(PIN).await.status(), 201);
}

#[tokio::test]
async fn the_pages_fit_a_phone() {
    let mut browser = browser!("--width", "390", "--height", "844");
    let mut smtp = smtp_sink!();
    let (app, public) = browser_app(&smtp, None).await;
    let link = reset_link_for(&app, &mut smtp, &public, "dee").await;
    browser.open(&link).await;
    browser.capture("reset-form-phone").await;
    browser.choose("short", "button.primary").await;
    assert!(
        browser
            .text("#password-error")
            .await
            .contains("at least 8 characters")
    );
    browser.capture("reset-policy-error-phone").await;
}
