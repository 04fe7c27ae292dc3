//! Against a real, certified OpenID provider: `oidc-provider` (npm) run by `tests/oidc/provider.mjs`
//! on loopback, issuing real access tokens by the client-credentials grant — JWTs (RS256, or
//! ES256 via a resource indicator) and opaque tokens for introspection.
//!
//! These tests need Node and `npm ci --prefix tests/oidc` (scripts/test.sh does it). Without them
//! they are skipped with a message, except under CI (`CI=true`), where that is a failure.

use crate::support::*;
use otpd::service::ManualClock;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const RSA: &str = "rsa-test-key";
const EC: &str = "ec-test-key";
const RSA_NEXT: &str = "rsa-other-key";
const APP_CLIENT: (&str, &str) = ("app", "app-secret");
const INTROSPECTION_CLIENT: (&str, &str) = ("otpd", "otpd-introspection-secret");
const RS256_RESOURCE: &str = "https://otpd.test/rs256";
const ES256_RESOURCE: &str = "https://otpd.test/es256";
const OPAQUE_RESOURCE: &str = "https://otpd.test/opaque";
const PAYMENTS_RESOURCE: &str = "https://payments.test";

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Why the provider cannot run here, if it cannot.
fn missing_node() -> Option<String> {
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("`node` is not installed".into());
    }
    if !oidc_dir()
        .join("node_modules/oidc-provider/package.json")
        .exists()
    {
        return Some("tests/oidc/node_modules is missing: run `npm ci --prefix tests/oidc`".into());
    }
    None
}

/// A running provider, killed when dropped.
struct Provider {
    issuer: String,
    port: u16,
    child: tokio::process::Child,
    http: reqwest::Client,
    _log_dir: tempfile::TempDir,
}

impl Provider {
    /// The provider signing with `keys`, or `None` (after saying so) when Node is unavailable
    /// outside CI.
    async fn start_or_skip(test: &str, keys: &[&str]) -> Option<Self> {
        if let Some(why) = missing_node() {
            report_missing_tool(&format!("real_provider::{test}"), &why);
            return None;
        }
        Some(Self::start_on(0, keys).await)
    }

    async fn start_on(port: u16, keys: &[&str]) -> Self {
        Self::try_start_on(port, keys)
            .await
            .unwrap_or_else(|log| panic!("the provider did not start: {log}"))
    }

    /// The provider on `port` (0: any), or its log if it did not come up.
    async fn try_start_on(port: u16, keys: &[&str]) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let keys: Vec<String> = keys
            .iter()
            .map(|k| fixtures.join(format!("{k}.pem")).display().to_string())
            .collect();
        let log_dir = tempfile::tempdir().unwrap();
        let log_path = log_dir.path().join("provider.log");
        let mut child = tokio::process::Command::new("node")
            .arg("provider.mjs")
            .current_dir(oidc_dir())
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_KEYS", keys.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let Some(first) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
        else {
            return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
        };
        // Keep draining its notices so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let issuer = serde_json::from_str::<Value>(&first).unwrap()["issuer"]
            .as_str()
            .unwrap()
            .to_owned();
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Ok(Self {
            issuer,
            port,
            child,
            http: reqwest::Client::new(),
            _log_dir: log_dir,
        })
    }

    /// The same issuer (same port) with another key set: a key rotation. The port is free only
    /// once the old process is gone, and something else may take it first: a few tries.
    async fn restart_with(mut self, keys: &[&str]) -> Self {
        let _ = self.child.kill().await;
        let mut log = String::new();
        for _ in 0..10 {
            match Self::try_start_on(self.port, keys).await {
                Ok(provider) => return provider,
                Err(l) => log = l,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "the provider did not start again on port {}: {log}",
            self.port
        );
    }

    /// A client-credentials access token for `resource`, about the user `sub`, with `claims` added.
    async fn token(&self, resource: &str, scope: &str, sub: &str, claims: Value) -> String {
        let body = format!(
            "grant_type=client_credentials&scope={}&resource={}",
            encode(scope),
            encode(resource)
        );
        let res = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(APP_CLIENT.0, Some(APP_CLIENT.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-test-subject", sub)
            .header("x-test-claims", claims.to_string())
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let doc: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "token request: {doc}");
        doc["access_token"].as_str().unwrap().to_owned()
    }

    async fn revoke(&self, token: &str) {
        let res = self
            .http
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth(APP_CLIENT.0, Some(APP_CLIENT.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", encode(token)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    /// An otpd trusting this provider, with audience `otpd` and a linked-identity claim.
    fn app(&self) -> TestAppBuilder {
        TestApp::builder()
            .env("OTPD_OIDC_ISSUER", &self.issuer)
            .env("OTPD_AUDIENCE", "otpd")
            .env("OTPD_LINKED_IDENTITY_CLAIM", "pace_linked")
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn linked() -> Value {
    json!({"pace_linked": "idp-1"})
}

/// `POST /user/otp` with kim's PIN and `token` from the provider.
async fn create_otp(app: &TestApp, token: &str) -> reqwest::Response {
    let kim = app.as_user("kim").with_token(token);
    kim.create_otp_with_pin("1235").await
}

fn header_alg(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .map(|h| format!("{:?}", h.alg))
        .unwrap_or_default()
}

#[tokio::test]
async fn real_rs256_and_es256_access_tokens_are_accepted_end_to_end() {
    let test = "real_rs256_and_es256_access_tokens_are_accepted_end_to_end";
    let Some(provider) = Provider::start_or_skip(test, &[RSA, EC]).await else {
        return;
    };
    let app = provider.app().spawn().await;
    app.set_pin("kim", "1235").await;
    for (resource, alg) in [(RS256_RESOURCE, "RS256"), (ES256_RESOURCE, "ES256")] {
        let token = provider
            .token(resource, "user:otp:create", "kim", linked())
            .await;
        assert_eq!(header_alg(&token), alg);
        let res = create_otp(&app, &token).await;
        assert_eq!(res.status(), 201, "{alg}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["otp"]
                .as_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit())
        );
    }
    // The provider's scope and linked-identity claims are what otpd checks.
    let token = provider
        .token(RS256_RESOURCE, "user:otp:verify", "kim", linked())
        .await;
    assert_error(create_otp(&app, &token).await, 403, "insufficient-scope").await;
    let token = provider
        .token(RS256_RESOURCE, "user:otp:create", "kim", json!({}))
        .await;
    assert_error(
        create_otp(&app, &token).await,
        401,
        "missing-linked-identity",
    )
    .await;
}

#[tokio::test]
async fn a_real_token_for_another_audience_or_from_another_issuer_is_refused() {
    let test = "a_real_token_for_another_audience_or_from_another_issuer_is_refused";
    let Some(provider) = Provider::start_or_skip(test, &[RSA, EC]).await else {
        return;
    };
    let app = provider.app().spawn().await;
    app.set_pin("kim", "1235").await;
    let payments = provider
        .token(PAYMENTS_RESOURCE, "user:otp:create", "kim", linked())
        .await;
    assert_refused(create_otp(&app, &payments).await, "InvalidAudience").await;
    // Another provider: same software, same keys even — but not the issuer otpd trusts.
    let other = Provider::start_on(0, &[RSA, EC]).await;
    let foreign = other
        .token(RS256_RESOURCE, "user:otp:create", "kim", linked())
        .await;
    assert_refused(create_otp(&app, &foreign).await, "InvalidIssuer").await;
    let own = provider
        .token(RS256_RESOURCE, "user:otp:create", "kim", linked())
        .await;
    assert_eq!(create_otp(&app, &own).await.status(), 201);
}

#[tokio::test]
async fn keys_rotate_when_the_provider_restarts_with_a_new_key_set() {
    let test = "keys_rotate_when_the_provider_restarts_with_a_new_key_set";
    let Some(provider) = Provider::start_or_skip(test, &[RSA, EC]).await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = provider.app().clock(clock.clone()).spawn().await;
    app.set_pin("kim", "1235").await;
    let old = provider
        .token(RS256_RESOURCE, "user:otp:create", "kim", linked())
        .await;
    assert_eq!(create_otp(&app, &old).await.status(), 201);

    let provider = provider.restart_with(&[RSA_NEXT, EC]).await;
    clock.advance(Duration::from_secs(11));
    let new = provider
        .token(RS256_RESOURCE, "user:otp:create", "kim", linked())
        .await;
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
        Some(RSA_NEXT)
    );
    // The unknown kid makes otpd fetch the new key set: the new key works, the old one is gone.
    assert_eq!(create_otp(&app, &new).await.status(), 201);
    assert_refused(create_otp(&app, &old).await, "no RS256 key for kid").await;
}

#[tokio::test]
async fn a_real_opaque_token_is_introspected_and_refused_once_revoked() {
    let test = "a_real_opaque_token_is_introspected_and_refused_once_revoked";
    let Some(provider) = Provider::start_or_skip(test, &[RSA, EC]).await else {
        return;
    };
    let secret_dir = tempfile::tempdir().unwrap();
    let secret_file = secret_dir.path().join("introspection-secret");
    std::fs::write(&secret_file, INTROSPECTION_CLIENT.1).unwrap();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = provider
        .app()
        .env(
            "OTPD_INTROSPECTION_URL",
            &format!("{}/token/introspection", provider.issuer),
        )
        .env("OTPD_INTROSPECTION_CLIENT_ID", INTROSPECTION_CLIENT.0)
        .env(
            "OTPD_INTROSPECTION_CLIENT_SECRET_FILE",
            &secret_file.display().to_string(),
        )
        .clock(clock.clone())
        .spawn()
        .await;
    app.set_pin("kim", "1235").await;
    let opaque = provider
        .token(OPAQUE_RESOURCE, "user:otp:create", "kim", linked())
        .await;
    assert!(!opaque.contains('.'), "an opaque token: {opaque}");
    assert_eq!(create_otp(&app, &opaque).await.status(), 201);
    // The provider checks the secret from the file, not only the client id: with the right id
    // and a wrong secret it answers no introspection, which is the operator's problem (503).
    let wrong_file = secret_dir.path().join("wrong-secret");
    std::fs::write(&wrong_file, "not-the-introspection-secret").unwrap();
    let wrong_secret = app
        .sibling()
        .env(
            "OTPD_INTROSPECTION_CLIENT_SECRET_FILE",
            &wrong_file.display().to_string(),
        )
        .spawn()
        .await;
    let res = create_otp(&wrong_secret, &opaque).await;
    assert_error(res, 503, "identity-provider-unavailable").await;
    // Same scope and identity rules as for JWTs.
    let narrow = provider
        .token(OPAQUE_RESOURCE, "user:otp:verify", "kim", linked())
        .await;
    assert_error(create_otp(&app, &narrow).await, 403, "insufficient-scope").await;
    let unlinked = provider
        .token(OPAQUE_RESOURCE, "user:otp:create", "kim", json!({}))
        .await;
    assert_error(
        create_otp(&app, &unlinked).await,
        401,
        "missing-linked-identity",
    )
    .await;

    provider.revoke(&opaque).await;
    clock.advance(Duration::from_secs(31));
    assert_refused(create_otp(&app, &opaque).await, "not active").await;
    assert_refused(create_otp(&app, "never-issued-token").await, "not active").await;
    assert!(!captured_logs().contains(INTROSPECTION_CLIENT.1));
}
