//! Assembly: turns a `Config` into a running service. Used by `main` and by the tests alike, and
//! the only module that knows which storage backend runs.

use crate::config::Config;
use crate::dev::{DEV_ISSUER, DevKit};
use crate::http::admin::AdminExposure;
use crate::http::rate_limit::RateLimiters;
use crate::http::{self, AppParts, AppState, RouterSettings};
use crate::identity::Identity;
use crate::mail::{ConsoleMailer, SmtpMailer};
use crate::metrics::Metrics;
use crate::server::{self, OpenConnections, ServerSettings};
use crate::service::{
    Clock, CredentialWatch, Hasher, LinkKey, Mailer, OtpKey, Pepper, PepperRing, Services,
    SmsSender, SystemClock,
};
use crate::sms::{ConsoleSms, HttpSmsGateway};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{PoolSettings, Store};
use crate::templates::Templates;
use crate::web::{self, PageSettings};
use anyhow::Context;
use rand::Rng;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Things tests replace.
#[derive(Default)]
pub struct Overrides {
    pub clock: Option<Arc<dyn Clock>>,
}

pub struct App {
    listener: TcpListener,
    router: http::App,
    /// The separate admin listener for /metrics and /health/*, when `metrics_listen` is set.
    admin: Option<(TcpListener, http::App)>,
    server: ServerSettings,
    connections: OpenConnections,
    metrics: Metrics,
    services: Arc<Services>,
}

/// Installs the process-wide TLS provider (one for every crate; see docs/decisions.md) and the
/// token-signature provider (`identity::ecdsa_ring`). Before anything signs or reads a token:
/// jsonwebtoken fixes its provider at first use.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::identity::install_jwt_crypto();
}

/// Opens the database named by the URL and applies migrations.
pub async fn open_store(url: &str, pool: PoolSettings) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(
            SqliteStore::connect(url, pool)
                .await
                .context("opening the SQLite database")?,
        )
    } else {
        Arc::new(
            PgStore::connect(url, pool)
                .await
                .context("connecting to PostgreSQL")?,
        )
    };
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// `otpd copy-data`: a SQLite deployment's data into an empty PostgreSQL database.
pub async fn copy_data(
    from: &str,
    to: &str,
    pool: PoolSettings,
) -> anyhow::Result<crate::store::copy::CopyReport> {
    if !from.starts_with("sqlite:") {
        anyhow::bail!("--from must be a sqlite: URL");
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        anyhow::bail!("the target must be a postgres:// URL");
    }
    install_crypto_provider();
    Ok(crate::store::copy::sqlite_to_postgres(from, to, pool).await?)
}

/// `otpd backup`: an online, verified copy of a SQLite database into the new file `to`. PostgreSQL
/// is backed up with its own tools (`pg_dump`), which this refuses to stand in for.
pub async fn backup(
    url: &str,
    to: &std::path::Path,
    pool: PoolSettings,
) -> anyhow::Result<crate::store::backup::BackupReport> {
    if !url.starts_with("sqlite:") {
        anyhow::bail!(
            "`otpd backup` copies the embedded SQLite database; back up PostgreSQL with pg_dump \
             (see docs/operations.md, \"Backups\")"
        );
    }
    Ok(crate::store::backup::sqlite_online_backup(url, to, pool.acquire_timeout).await?)
}

/// The peppers: the current one from the dev kit in dev mode, from `pepper_file` otherwise; the
/// older ones from `pepper_old_files`.
pub fn peppers(config: &Config, dev: Option<&DevKit>) -> anyhow::Result<PepperRing> {
    let current = match dev {
        Some(kit) => Some(kit.pepper(&config.hashing.pepper_id)?),
        None => None,
    };
    Ok(config.hashing.read_peppers(current)?)
}

/// The use cases over an opened store: what `serve` runs and what operator commands call.
pub async fn services(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Services> {
    let dev = config
        .dev
        .then(|| DevKit::load_or_create(config))
        .transpose()?;
    services_with(config, clock, dev.as_ref()).await
}

/// The use cases for commands that only read or clear a user's state and never check or set a
/// secret (`otpd user show`, `otpd user unlock`), so an operator can run them with database access
/// alone, in or out of dev mode. Where no pepper can be had they get a random one, which nothing
/// these commands do ever uses.
pub async fn services_for_inspection(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Services> {
    let dev = config
        .dev
        .then(|| DevKit::load_or_create(config))
        .transpose()?;
    let peppers = match peppers(config, dev.as_ref()) {
        Ok(peppers) => peppers,
        Err(_) => {
            let mut key = vec![0u8; 48];
            rand::rng().fill_bytes(&mut key);
            PepperRing::single(
                Pepper::new(config.hashing.pepper_id.clone(), key).map_err(anyhow::Error::msg)?,
            )
        }
    };
    services_with_peppers(config, clock, dev.as_ref(), peppers).await
}

async fn services_with(
    config: &Config,
    clock: Arc<dyn Clock>,
    dev: Option<&DevKit>,
) -> anyhow::Result<Services> {
    let peppers = peppers(config, dev)?;
    services_with_peppers(config, clock, dev, peppers).await
}

async fn services_with_peppers(
    config: &Config,
    clock: Arc<dyn Clock>,
    dev: Option<&DevKit>,
    peppers: PepperRing,
) -> anyhow::Result<Services> {
    install_crypto_provider();
    let otp_key = OtpKey::derive_all(&peppers);
    // Links live a day at most: they are sealed under the current pepper only.
    let link_key = LinkKey::derive(peppers.current());
    let password_policy = config
        .passwords
        .policy()
        .map_err(anyhow::Error::msg)
        .context("setting `password_blocklist_file` (OTPD_PASSWORD_BLOCKLIST_FILE)")?;
    let templates = Templates::load(&config.templates)
        .context("setting `templates_dir` (OTPD_TEMPLATES_DIR)")?;
    let totp_keys = config.totp.key_ring(&peppers)?;
    let metrics = Metrics::new();
    let hashing = &config.hashing;
    let hasher = Hasher::with_metrics(
        peppers,
        hashing.argon2,
        hashing.concurrency,
        hashing.queue,
        metrics.clone(),
    );
    let mailer = match &config.mail.smtp {
        Some(settings) => Some(Arc::new(SmtpMailer::new(settings)?) as Arc<dyn Mailer>),
        None if dev.is_some() => Some(Arc::new(ConsoleMailer) as Arc<dyn Mailer>),
        None => None,
    };
    let sms = match &config.sms.gateway {
        Some(settings) => {
            Some(Arc::new(HttpSmsGateway::new(settings.clone())?) as Arc<dyn SmsSender>)
        }
        None if dev.is_some() => Some(Arc::new(ConsoleSms) as Arc<dyn SmsSender>),
        None => None,
    };
    Ok(Services {
        store: open_store(&config.store.url, config.store.pool).await?,
        hasher,
        clock,
        otp_key,
        otp: config.otp,
        pin_policy: config.pin,
        metrics,
        mailer,
        mail_per_hour: config.mail.per_hour,
        totp: config.totp.new_devices,
        totp_keys,
        after_login_window: config.totp.after_login_window,
        watch: CredentialWatch::new(config.limits.long_polls),
        lockout: config.limits.lockout,
        retention: config.retention,
        password_policy,
        links: config.links.clone(),
        link_key,
        templates: Arc::new(templates),
        session_ttl: config.sessions,
        sms,
        phone: config.sms.phone,
    })
}

pub async fn build(config: Config) -> anyhow::Result<App> {
    build_with(config, Overrides::default()).await
}

pub async fn build_with(config: Config, overrides: Overrides) -> anyhow::Result<App> {
    config.require_serving_settings()?;
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let dev = config
        .dev
        .then(|| DevKit::load_or_create(&config))
        .transpose()?;
    let services = services_with(&config, Arc::clone(&clock), dev.as_ref()).await?;
    let tokens = match &dev {
        Some(kit) => {
            tracing::warn!(
                dir = %kit.dir().display(),
                "DEVELOPMENT MODE: tokens are signed by a local key and the pepper is stored on disk; \
                 never use this mode with real users"
            );
            Identity::fixed(
                config.identity.clone(),
                DEV_ISSUER.to_owned(),
                &kit.key_set(),
                Arc::clone(&clock),
            )?
        }
        None => Identity::remote(
            config.identity.clone(),
            config.identity.introspection_settings()?,
            Arc::clone(&clock),
        )?,
    };
    // The provider being down must not stop start-up: we report not-ready and keep trying.
    if let Err(e) = tokens.load().await {
        tracing::warn!(
            error = format!("{e:#}"),
            "could not load signing keys yet; not ready until they load (retrying in the background)"
        );
    }
    tokens.spawn_refresh();
    let metrics = services.metrics.clone();
    let services = Arc::new(services);
    let state = AppState::new(AppParts {
        services: Arc::clone(&services),
        identity: Arc::new(tokens),
        connections: OpenConnections::default(),
        limits: RateLimiters::start(config.limits.rate),
        // Leaked once per app: the scope is fixed for the process, and error bodies name it as a
        // `&'static str` like every other scope.
        admin_scope: String::leak(config.admin.scope.clone()),
    });
    let admin_api = config.admin.exposure;
    let connections = Arc::clone(&state.connections);
    let pages = web::router(
        Arc::clone(&state.services),
        PageSettings {
            public_url: config.links.public_url.clone(),
        },
    );
    let router = http::router(
        state.clone(),
        RouterSettings {
            base_path: &config.http.base_path,
            max_body_bytes: config.http.max_body_bytes,
            request_timeout: config.server.request_timeout,
            serve_metrics: config.server.metrics_listen.is_none(),
            pages,
            serve_admin: admin_api == AdminExposure::On,
            rejected_lines: config.log.rejected_lines,
        },
    );
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let admin = match config.server.metrics_listen {
        Some(addr) => {
            let admin_listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
            Some((
                admin_listener,
                http::admin_router(
                    state,
                    config.server.request_timeout,
                    admin_api != AdminExposure::Off,
                    config.log.rejected_lines,
                ),
            ))
        }
        None => None,
    };
    Ok(App {
        listener,
        router,
        admin,
        server: config.server,
        connections,
        metrics,
        services,
    })
}

impl App {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The admin listener's address, when `metrics_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish within
    /// `shutdown_grace_seconds` (see `crate::server`).
    pub async fn serve_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let upkeep = self.metrics.spawn_upkeep();
        let retention = self.services.spawn_retention();
        let admin = self.admin.map(|(listener, router)| {
            tokio::spawn(server::serve(
                listener,
                router,
                self.server,
                Arc::clone(&self.connections),
                self.metrics.clone(),
                stopped(stop_rx.clone()),
            ))
        });
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        server::serve(
            self.listener,
            self.router,
            self.server,
            self.connections,
            self.metrics.clone(),
            stopped(stop_rx),
        )
        .await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        signal.abort();
        upkeep.abort();
        retention.abort();
        Ok(())
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> std::io::Result<()> {
        let shutdown = server::shutdown_signal();
        match self.admin_addr() {
            Some(admin) => {
                tracing::info!(addr = %self.local_addr(), %admin, "otpd listening; metrics on the admin address")
            }
            None => tracing::info!(addr = %self.local_addr(), "otpd listening"),
        }
        self.serve_until(shutdown).await
    }
}
