//! Test harness: a token issuer, a booted app, and helpers to talk to both.

#![allow(dead_code)]

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use otpd::app::{self, Overrides};
use otpd::config::Config;
use otpd::domain::{Pin, Subject};
use otpd::service::credentials::NewCredential;
use otpd::service::{Clock, Services, SystemClock};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const ALL_SCOPES: &str = otpd::dev::ALL_SCOPES;
/// Cheap Argon2 parameters: tests that are not about hashing should not wait for it.
pub const TEST_ARGON2: &str = "m=256,t=1,p=1";

// ---------------------------------------------------------------------------------------------
// Captured logs

/// Everything the app logs during the whole test run, for tests that check what never appears.
pub fn captured_logs() -> String {
    let buf = log_buffer().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buf).into_owned()
}

/// The captured log lines that mention `needle` (a request id, say).
pub fn log_lines_with(needle: &str) -> Vec<String> {
    captured_logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUF: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUF.get_or_init(|| Mutex::new(Vec::new()))
}

struct BufferWriter;

impl std::io::Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        log_buffer()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter("debug")
            .with_writer(|| BufferWriter)
            .try_init();
    });
}

// ---------------------------------------------------------------------------------------------
// Token issuer

/// A stand-in identity provider: publishes an RSA and an EC key over HTTP (JWKS and discovery)
/// and signs tokens with them. Tests can change the published keys, the JWKS `Cache-Control`,
/// take it down (503 on every path), and count JWKS fetches.
pub struct TestIssuer {
    pub url: String,
    rsa: EncodingKey,
    ec: EncodingKey,
    keys: Arc<Mutex<JwkSet>>,
    served: Arc<Served>,
}

#[derive(Default)]
struct Served {
    down: AtomicBool,
    jwks_fetches: AtomicUsize,
    cache_control: Mutex<Option<String>>,
}

pub const RSA_KID: &str = "test-rsa";
pub const EC_KID: &str = "test-ec";

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture(name)).expect("RSA fixture")
}

pub fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("JWK from key");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::RS256,
    });
    jwk
}

impl TestIssuer {
    pub async fn start() -> Self {
        let rsa = rsa_key("rsa-test-key.pem");
        let ec = EncodingKey::from_ec_pem(&fixture("ec-test-key.pem")).expect("EC fixture");
        let keys = Arc::new(Mutex::new(JwkSet {
            keys: vec![
                public_jwk(&rsa, Algorithm::RS256, RSA_KID),
                public_jwk(&ec, Algorithm::ES256, EC_KID),
            ],
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let served_keys = Arc::clone(&keys);
        let served = Arc::new(Served::default());
        let issuer = url.clone();
        let jwks_served = Arc::clone(&served);
        let router = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let issuer = issuer.clone();
                    async move {
                        axum::Json(
                            json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")}),
                        )
                    }
                }),
            )
            .route(
                "/jwks.json",
                axum::routing::get(move || {
                    let keys = Arc::clone(&served_keys);
                    let served = Arc::clone(&jwks_served);
                    async move {
                        use axum::response::IntoResponse;
                        served.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                        let body = axum::Json(keys.lock().unwrap().clone());
                        match served.cache_control.lock().unwrap().clone() {
                            Some(cc) => ([("cache-control", cc)], body).into_response(),
                            None => body.into_response(),
                        }
                    }
                }),
            );
        let down = Arc::clone(&served);
        let router = router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let down = down.down.load(Ordering::SeqCst);
                async move {
                    use axum::response::IntoResponse;
                    if down {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                    } else {
                        next.run(req).await
                    }
                }
            },
        ));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            rsa,
            ec,
            keys,
            served,
        }
    }

    /// Takes the issuer down (every path answers 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.served.down.store(down, Ordering::SeqCst);
    }

    /// How many times the JWKS has been served.
    pub fn jwks_fetches(&self) -> usize {
        self.served.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The `Cache-Control` header of JWKS responses (none by default).
    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.served.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    /// Publishes `jwk` in addition to the current keys.
    pub fn publish(&self, jwk: Jwk) {
        self.keys.lock().unwrap().keys.push(jwk);
    }

    /// Stops publishing the key `kid`.
    pub fn withdraw(&self, kid: &str) {
        self.keys
            .lock()
            .unwrap()
            .keys
            .retain(|k| k.common.key_id.as_deref() != Some(kid));
    }

    /// Standard claims for `sub` with `scope`, valid for an hour.
    pub fn claims(&self, sub: &str, scope: &str) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        json!({"iss": self.url, "sub": sub, "scope": scope, "azp": "test-client", "iat": now, "nbf": now, "exp": now + 3600})
    }

    pub fn sign_rs256(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(RSA_KID.to_owned());
        jsonwebtoken::encode(&header, claims, &self.rsa).unwrap()
    }

    pub fn sign_es256(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(EC_KID.to_owned());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &self.ec).unwrap()
    }

    pub fn sign_with(&self, header: &Header, claims: &Value, key: &EncodingKey) -> String {
        jsonwebtoken::encode(header, claims, key).unwrap()
    }

    /// An RS256 token for `sub` with every scope.
    pub fn token(&self, sub: &str) -> String {
        self.sign_rs256(&self.claims(sub, ALL_SCOPES))
    }

    pub fn token_with_scope(&self, sub: &str, scope: &str) -> String {
        self.sign_rs256(&self.claims(sub, scope))
    }
}

// ---------------------------------------------------------------------------------------------
// Database per test

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", xid::new())
}

/// A fresh database URL: a SQLite file in `dir`, or a new PostgreSQL database when
/// `OTPD_TEST_DATABASE_URL` points at a server.
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    match std::env::var("OTPD_TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => {
            use sqlx::Connection;
            // scripts/test.sh gives each run its own prefix, so it drops only what it created.
            let prefix =
                std::env::var("OTPD_TEST_DB_PREFIX").unwrap_or_else(|_| "otpd_t".to_owned());
            let name = unique_name(&prefix);
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("test PostgreSQL reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let (prefix, _) = base.rsplit_once('/').expect("URL with a database name");
            format!("{prefix}/{name}")
        }
        _ => format!("sqlite://{}/otpd.db", dir.display()),
    }
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

// ---------------------------------------------------------------------------------------------
// The app

pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (/metrics, /health/*) when `OTPD_METRICS_LISTEN` is set.
    pub admin_addr: Option<SocketAddr>,
    pub base: String,
    pub issuer: Arc<TestIssuer>,
    pub database_url: String,
    pub dir: Arc<tempfile::TempDir>,
    pub env: Vec<(String, String)>,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub struct TestAppBuilder {
    env: Vec<(String, String)>,
    clock: Option<Arc<dyn Clock>>,
    issuer: Option<Arc<TestIssuer>>,
    dir: Option<Arc<tempfile::TempDir>>,
    database_url: Option<String>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            env: vec![],
            clock: None,
            issuer: None,
            dir: None,
            database_url: None,
        }
    }

    /// A builder for a second app sharing this one's issuer, directory and database (a restart,
    /// or another replica).
    pub fn sibling(&self) -> TestAppBuilder {
        TestAppBuilder {
            env: self.env.clone(),
            clock: None,
            issuer: Some(Arc::clone(&self.issuer)),
            dir: Some(Arc::clone(&self.dir)),
            database_url: Some(self.database_url.clone()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}{}", self.addr, self.base, path)
    }

    pub fn root_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn config(&self) -> Config {
        Config::load(None, self.env.clone(), false).expect("test config")
    }

    /// The use cases over the app's database, as an operator command would open them.
    pub async fn services(&self) -> Services {
        app::services(&self.config(), Arc::new(SystemClock))
            .await
            .unwrap()
    }

    pub async fn set_password(&self, sub: &str, password: &str) {
        self.services()
            .await
            .set_password(&Subject::parse(sub).unwrap(), SecretString::from(password))
            .await
            .unwrap();
    }

    pub async fn set_pin(&self, sub: &str, pin: &str) {
        let config = self.config();
        let new = NewCredential::Pin(Pin::parse(SecretString::from(pin), config.pin).unwrap());
        self.services()
            .await
            .set_credential(&Subject::parse(sub).unwrap(), new)
            .await
            .unwrap();
    }

    /// `POST /user/otp` with a JSON body and a token for `sub` with every scope.
    pub async fn create_otp(&self, sub: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/user/otp"))
            .bearer_auth(self.issuer.token(sub))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Stops the server, finishing in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestAppBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Uses this database instead of a fresh one.
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses `issuer` instead of starting a new one (e.g. one that is down at start-up).
    pub fn issuer(mut self, issuer: Arc<TestIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    pub async fn spawn(self) -> TestApp {
        init_logging();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let issuer = match self.issuer {
            Some(i) => i,
            None => Arc::new(TestIssuer::start().await),
        };
        let dir = self
            .dir
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
        let database_url = match self.database_url {
            Some(u) => u,
            None => fresh_database_url(dir.path()).await,
        };
        let pepper_file = dir.path().join("pepper");
        if !pepper_file.exists() {
            std::fs::write(
                &pepper_file,
                b"test pepper: 32 bytes or more, never in the database",
            )
            .unwrap();
        }
        let mut env: Vec<(String, String)> = vec![
            ("OTPD_LISTEN".into(), "127.0.0.1:0".into()),
            ("OTPD_DATABASE_URL".into(), database_url.clone()),
            ("OTPD_OIDC_ISSUER".into(), issuer.url.clone()),
            ("OTPD_PEPPER_FILE".into(), pepper_file.display().to_string()),
            ("OTPD_ARGON2".into(), TEST_ARGON2.into()),
            // Every test talks from 127.0.0.1 with one client id; tests about rate limits set them.
            ("OTPD_RATE_LIMIT_PER_CLIENT".into(), "off".into()),
            ("OTPD_RATE_LIMIT_PER_ADDRESS".into(), "off".into()),
        ];
        for (k, v) in self.env {
            env.retain(|(key, _)| *key != k);
            env.push((k, v));
        }
        let config = Config::load(None, env.clone(), false).expect("test config");
        let base = config.http.base_path.clone();
        let app = app::build_with(config, Overrides { clock: self.clock })
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let admin_addr = app.admin_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = app
                .serve_until(async move {
                    let _ = rx.await;
                })
                .await;
        });
        TestApp {
            addr,
            admin_addr,
            base,
            issuer,
            database_url,
            dir,
            env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions

/// Checks that `res` is a JSON:API error with `status` and `code`, whose `id` is the response's
/// `Request-Id`, and returns the error object.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/vnd.api+json"),
        "content type"
    );
    let request_id = res
        .headers()
        .get("request-id")
        .expect("request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = res.json().await.expect("JSON body");
    let error = body["errors"][0].clone();
    assert_eq!(error["code"], code, "code in {body}");
    assert_eq!(
        error["status"],
        status.to_string(),
        "status member in {body}"
    );
    assert_eq!(error["id"], request_id.as_str(), "id member in {body}");
    assert!(
        error["title"].is_string() && error["detail"].is_string(),
        "{body}"
    );
    error
}

const GENERIC_TOKEN_DETAIL: &str =
    "The access token is malformed, expired, not yet valid, or not issued for this service.";

/// Checks that `res` is the generic 401 for a bad token, and that its request's log line gives
/// `reason` (which the body must not).
pub async fn assert_refused(res: reqwest::Response, reason: &str) {
    let id = res.headers()["request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let err = assert_error(res, 401, "invalid-token").await;
    assert_eq!(err["detail"], GENERIC_TOKEN_DETAIL, "a generic detail only");
    let lines = log_lines_with(&id);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("access token refused") && l.contains(reason)),
        "`{reason}` not in the log of request {id}: {lines:#?}"
    );
}
