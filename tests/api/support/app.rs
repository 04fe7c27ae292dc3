//! App boot: `TestApp` runs the real app in-process on port 0 with its own issuer, directory and
//! database; `TestAppBuilder` changes settings, the clock, or shares them with a sibling.

use super::databases::fresh_database_url;
use super::issuer::TestIssuer;
use super::logs::init_logging;
use futures::FutureExt;
use otpd::app::{self, Overrides};
use otpd::config::Config;
use otpd::domain::{Pin, Subject};
use otpd::service::credentials::NewCredential;
use otpd::service::{Clock, Services, SystemClock};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Cheap Argon2 parameters: tests that are not about hashing should not wait for it.
pub const TEST_ARGON2: &str = "m=256,t=1,p=1";

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
    /// The operator's view of the database, opened (and on PostgreSQL migrated) once per app.
    services: tokio::sync::OnceCell<Services>,
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

    /// `GET` of a path outside the API's base path (`/health/ready`, `/metrics`, `/openapi.json`).
    pub async fn get_root(&self, path: &str) -> reqwest::Response {
        let res = self.http.get(self.root_url(path)).send().await;
        res.expect("the request reaches the app")
    }

    /// The `/metrics` text of the main listener.
    pub async fn metrics_text(&self) -> String {
        let res = self.get_root("/metrics").await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    pub fn config(&self) -> Config {
        Config::load(None, self.env.clone(), false).expect("test config")
    }

    /// The use cases over the app's database, as an operator command would open them; one pool
    /// per app, however often a test asks.
    pub async fn services(&self) -> &Services {
        self.services
            .get_or_init(|| async {
                app::services(&self.config(), Arc::new(SystemClock))
                    .await
                    .expect("services over the test database")
            })
            .await
    }

    /// Sets the password as `otpd user set-password` does, under the password policy.
    pub async fn set_password(&self, sub: &str, password: &str) {
        self.services()
            .await
            .set_password(&Subject::parse(sub).unwrap(), SecretString::from(password))
            .await
            .unwrap();
    }

    pub async fn set_pin(&self, sub: &str, pin: &str) {
        let policy = self.config().pin;
        let new = NewCredential::Pin(Pin::parse(SecretString::from(pin), policy).unwrap());
        self.set_credential(sub, new).await;
    }

    async fn set_credential(&self, sub: &str, new: NewCredential) {
        self.services()
            .await
            .set_credential(&Subject::parse(sub).unwrap(), new)
            .await
            .unwrap();
    }

    /// The names of the user's audit events, oldest first.
    pub async fn audit_events(&self, sub: &str) -> Vec<String> {
        let trail = self.audit_trail(sub).await;
        trail.into_iter().map(|(event, _)| event).collect()
    }

    /// The user's audit events as (event, detail), oldest first.
    pub async fn audit_trail(&self, sub: &str) -> Vec<(String, String)> {
        self.services()
            .await
            .store
            .audit_events(&Subject::parse(sub).unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.detail))
            .collect()
    }

    /// (factor, consecutive failures, locked at `now`, disabled) of every guarded factor of
    /// `sub`, in the order the service lists them.
    pub async fn attempt_counters_at(
        &self,
        sub: &str,
        now: time::OffsetDateTime,
    ) -> Vec<(String, u32, bool, bool)> {
        let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
        let sub = Subject::parse(sub).unwrap();
        let states = self.services().await.attempt_states(&sub).await.unwrap();
        states
            .into_iter()
            .map(|(f, s)| {
                (
                    f.as_str().to_owned(),
                    s.failures,
                    s.locked_until > now_ms,
                    s.disabled,
                )
            })
            .collect()
    }

    /// `attempt_counters_at` the wall clock's now (an app on the system clock).
    pub async fn attempt_counters(&self, sub: &str) -> Vec<(String, u32, bool, bool)> {
        self.attempt_counters_at(sub, time::OffsetDateTime::now_utc())
            .await
    }

    /// Stops the server, finishing in-flight requests; a panic of the server task is the test's.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take()
            && let Err(e) = server.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // A server that already died of a panic fails the test that owned it, unless that test
        // is failing anyway.
        if let Some(server) = self.server.take()
            && server.is_finished()
            && let Some(Err(e)) = server.now_or_never()
            && e.is_panic()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

impl TestAppBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Drops a setting this builder had (a sibling's, say).
    pub fn without_env(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// Settings under which a burst of parallel requests is never shed: every request waits for
    /// its hashing slot and its database connection, so a test can count exact outcomes.
    pub fn admitting_bursts(self) -> Self {
        self.env("OTPD_HASH_QUEUE", "1000")
            .env("OTPD_DATABASE_ACQUIRE_TIMEOUT_MS", "60000")
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
            // The test issuer serves plain http on loopback, and its tokens name no audience;
            // tests about either setting override these.
            ("OTPD_ALLOW_INSECURE_IDP_URLS".into(), "true".into()),
            ("OTPD_AUDIENCE".into(), "any".into()),
            ("OTPD_PEPPER_FILE".into(), pepper_file.display().to_string()),
            ("OTPD_ARGON2".into(), TEST_ARGON2.into()),
            // Every test talks from 127.0.0.1 with one client id; tests about rate limits set them.
            ("OTPD_RATE_LIMIT_PER_CLIENT".into(), "off".into()),
            ("OTPD_RATE_LIMIT_PER_ADDRESS".into(), "off".into()),
            ("OTPD_MAX_CONNECTIONS_PER_ADDRESS".into(), "off".into()),
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
            app.serve_until(async move {
                let _ = rx.await;
            })
            .await
            .expect("the test app serves until it is stopped");
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
            services: tokio::sync::OnceCell::new(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }
}
