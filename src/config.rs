//! Settings: read once from an optional TOML file and `OTPD_*` environment variables, validated into
//! a `Config`. A bad value stops start-up with a message naming the setting. No globals.

use crate::domain::otp::{MAX_OTP_DIGITS, MAX_OTP_TTL, MIN_OTP_DIGITS};
use crate::domain::totp::{MAX_TOTP_DIGITS, MIN_TOTP_DIGITS};
use crate::domain::{
    LockPolicy, LockoutPolicies, OtpSettings, PinPolicy, TotpAlgorithm, TotpSettings,
};
use crate::identity::{AuthSettings, IntrospectionConfig};
use crate::store::PoolSettings;
use secrecy::{ExposeSecret, SecretBox};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting: its name (the TOML key; the environment variable is `OTPD_` + upper case), its
/// default, and one line of help. `otpd check-config` and the README are generated from the same
/// facts, so they cannot disagree with the parser.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "listen",
        "127.0.0.1:8080",
        "address and port to serve HTTP on",
    ),
    (
        "database_url",
        "sqlite://otpd.db",
        "sqlite://PATH (created on first start) or postgres://…",
    ),
    (
        "database_max_connections",
        "10",
        "connections each replica keeps open at most (1..1000); size it so replicas x this fits the server",
    ),
    (
        "database_acquire_timeout_ms",
        "2000",
        "how long a request waits for a database connection (connecting included) before it gets 503 (50..60000)",
    ),
    ("base_path", "/user/2022-1", "path prefix of the API routes"),
    (
        "oidc_issuer",
        "",
        "expected `iss` of access tokens; JWKS discovered from it unless jwks_url is set",
    ),
    (
        "jwks_url",
        "",
        "fetch signing keys from this URL instead of discovering them",
    ),
    (
        "audience",
        "",
        "expected `aud` of access tokens (not checked when empty)",
    ),
    (
        "token_leeway_seconds",
        "30",
        "clock skew allowed on `exp` and `nbf`",
    ),
    (
        "linked_identity_claim",
        "",
        "when set, tokens without a non-empty claim of this name get 401 missing-linked-identity",
    ),
    (
        "introspection_url",
        "",
        "RFC 7662 endpoint for opaque (non-JWT) access tokens; not used when empty",
    ),
    (
        "introspection_client_id",
        "",
        "client id otpd authenticates with at the introspection endpoint (HTTP Basic)",
    ),
    (
        "introspection_client_secret_file",
        "",
        "file holding that client's secret (never logged)",
    ),
    (
        "introspection_cache_seconds",
        "30",
        "how long an introspection answer is reused (0..300), never past the token's exp",
    ),
    (
        "pepper_file",
        "",
        "file holding the secret pepper (at least 32 bytes); required outside dev mode",
    ),
    (
        "pepper_id",
        "p1",
        "key id stored with each hash so the pepper can be rotated (1..8 characters)",
    ),
    (
        "argon2",
        "m=19456,t=2,p=1",
        "Argon2id memory (KiB), iterations, parallelism for new hashes",
    ),
    (
        "hash_concurrency",
        "(number of cores)",
        "hashes computed at the same time",
    ),
    (
        "hash_queue",
        "(2 x hash_concurrency)",
        "requests allowed to wait for a hashing slot; beyond it 503",
    ),
    (
        "pin_lock_from",
        "4",
        "the consecutive wrong PIN that starts locking the PIN (0 = never lock); see docs/lockout.md",
    ),
    (
        "pin_disable_after",
        "10",
        "consecutive wrong PINs that disable the PIN until a new one is set (0 = never)",
    ),
    (
        "password_lock_from",
        "5",
        "the consecutive wrong password that starts locking the password (0 = never lock)",
    ),
    (
        "password_disable_after",
        "100",
        "consecutive wrong passwords that disable the password until it is set anew (0 = never)",
    ),
    (
        "otp_revoke_after",
        "5",
        "consecutive failed OTP/TOTP redemptions from which each failure revokes the user's live OTPs and locks redemption (0 = never)",
    ),
    (
        "lock_base_seconds",
        "30",
        "the first lock of a factor; each further failure doubles it",
    ),
    ("lock_max_seconds", "900", "the longest lock of a factor"),
    (
        "rate_limit_per_client",
        "100/s",
        "requests per token client (`azp`/`client_id`) and replica: N/s, N/min or N/h (burst N), or off",
    ),
    (
        "rate_limit_per_address",
        "20/s",
        "requests per source IP address and replica (N/s, N/min, N/h or off); off behind a proxy",
    ),
    ("otp_digits", "6", "digits of an account OTP (6..10)"),
    (
        "otp_ttl_seconds",
        "300",
        "lifetime of an account OTP (1..600)",
    ),
    (
        "otp_max_live",
        "3",
        "unused OTPs a user may hold; a new one retires the oldest (1..10)",
    ),
    ("pin_length", "4", "digits of a PIN (4..12)"),
    (
        "totp_key_file",
        "",
        "file with at least 32 bytes of key material for encrypting device TOTP secrets; derived from the pepper when empty",
    ),
    ("totp_digits", "6", "digits of new device TOTPs (6..8)"),
    (
        "totp_period_seconds",
        "30",
        "time step of new device TOTPs (1..300)",
    ),
    (
        "totp_algorithm",
        "SHA1",
        "HMAC of new device TOTPs: SHA1, SHA256 or SHA512 (never MD5)",
    ),
    (
        "registration_claim",
        "created_at",
        "access-token claim with the user's registration time (unix seconds or milliseconds), for the after-login grant",
    ),
    (
        "after_login_window_seconds",
        "300",
        "how long after registration `user:device-totps:create-after-login` creates a device TOTP without proof (0..3600)",
    ),
    (
        "max_body_bytes",
        "16384",
        "largest request body accepted; larger gets 413",
    ),
    (
        "metrics_listen",
        "",
        "address for a separate admin listener serving /metrics and /health/*; empty: /metrics on the main listener",
    ),
    (
        "header_read_timeout_seconds",
        "5",
        "a client must send a request's headers within this time (also the idle keep-alive limit) (1..300)",
    ),
    (
        "request_timeout_seconds",
        "30",
        "longest time to answer a request, plus the wait a long poll asks for (1..600); then 503 request-timeout",
    ),
    (
        "max_requests_per_connection",
        "1000",
        "HTTP/1.1 keep-alive connections are closed after this many requests (1..1000000)",
    ),
    (
        "max_connections",
        "1024",
        "open client connections; beyond it new connections wait to be accepted (1..100000)",
    ),
    (
        "shutdown_grace_seconds",
        "20",
        "on SIGTERM, how long in-flight requests may take before the process exits anyway (0..600)",
    ),
    (
        "smtp_url",
        "",
        "SMTP server for POST /user/otp/sendmail: smtp://host:25 (plain), smtp://host:587?tls=required (STARTTLS), smtps://host:465 (TLS); user:password@ for AUTH; empty: mail disabled (503)",
    ),
    (
        "mail_from",
        "",
        "From address of OTP mails, e.g. `otpd <noreply@example.com>`; required with smtp_url",
    ),
    (
        "mail_per_hour",
        "5",
        "OTP mails one user may request per hour (1..1000); beyond it 429",
    ),
    ("log", "info", "log filter (tracing EnvFilter syntax)"),
    ("log_format", "text", "text or json"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{name}` (OTPD_{env}): {problem}")]
    Invalid {
        name: &'static str,
        env: String,
        problem: String,
    },
    #[error("config file {path}: {problem}")]
    File { path: PathBuf, problem: String },
}

impl ConfigError {
    /// A bad value of setting `name`; the message names its TOML key and environment variable.
    pub fn invalid(name: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            env: name.to_uppercase(),
            problem: problem.into(),
        }
    }
}

fn invalid(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::invalid(name, problem)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            m_kib: 19456,
            t: 2,
            p: 1,
        }
    }
}

impl fmt::Display for Argon2Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={},t={},p={}", self.m_kib, self.t, self.p)
    }
}

impl Argon2Settings {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut out = Self::default();
        let mut seen = [false; 3];
        for part in raw.split(',') {
            let (key, value) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            let value: u32 = value
                .parse()
                .map_err(|_| format!("`{value}` is not a whole number"))?;
            let slot = match key {
                "m" => (&mut out.m_kib, 0),
                "t" => (&mut out.t, 1),
                "p" => (&mut out.p, 2),
                other => return Err(format!("unknown parameter `{other}` (expected m, t, p)")),
            };
            *slot.0 = value;
            seen[slot.1] = true;
        }
        if seen != [true; 3] {
            return Err("expected all of m=…,t=…,p=…".into());
        }
        if out.p == 0 || out.p > 16 || out.t == 0 || out.t > 16 {
            return Err("t and p must be 1..16".into());
        }
        if out.m_kib < 8 * out.p || out.m_kib > 4 * 1024 * 1024 {
            return Err("m must be at least 8*p KiB and at most 4 GiB".into());
        }
        Ok(out)
    }
}

/// The pepper: a secret mixed into every password and PIN hash and kept outside the database.
pub struct Pepper {
    pub id: String,
    pub key: SecretBox<Vec<u8>>,
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pepper {{ id: {:?}, key: [REDACTED] }}", self.id)
    }
}

impl Pepper {
    pub const MIN_LEN: usize = 32;

    pub fn new(id: String, key: Vec<u8>) -> Result<Self, String> {
        if key.len() < Self::MIN_LEN {
            return Err(format!(
                "the pepper must be at least {} bytes, found {}",
                Self::MIN_LEN,
                key.len()
            ));
        }
        Ok(Self {
            id,
            key: SecretBox::new(Box::new(key)),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.key.expose_secret()
    }
}

/// A rate limit: `count` requests per `period`, all of them allowed in one burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuota {
    pub count: u32,
    pub period: Duration,
}

impl RateQuota {
    /// `N/s`, `N/min` or `N/h`; `off` (or `0`) is `None`.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw == "off" || raw == "0" {
            return Ok(None);
        }
        let (count, unit) = raw
            .split_once('/')
            .ok_or_else(|| format!("`{raw}` is not N/s, N/min, N/h or off"))?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| (1..=1_000_000).contains(c))
            .ok_or_else(|| format!("`{count}` is not a count of 1..1000000"))?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => return Err(format!("unknown period `{other}` (expected s, min or h)")),
        };
        Ok(Some(Self { count, period }))
    }
}

impl fmt::Display for RateQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub per_client: Option<RateQuota>,
    pub per_address: Option<RateQuota>,
}

/// Timeouts and limits of the HTTP server (see `crate::server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_requests_per_connection: u64,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_requests_per_connection: 1000,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Where OTP mails go out. The URL may carry SMTP credentials: never print it unredacted.
#[derive(Clone)]
pub struct MailSettings {
    pub smtp_url: String,
    pub from: String,
    pub per_hour: u32,
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_url", &redact_url_password(&self.smtp_url))
            .field("from", &self.from)
            .field("per_hour", &self.per_hour)
            .finish()
    }
}

/// `Debug` prints `describe()`: the effective settings with secrets redacted (a database URL may
/// carry a password, and a `{:?}` in a panic or a log must not show it).
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub database_pool: PoolSettings,
    pub base_path: String,
    pub auth: AuthSettings,
    pub pepper_file: Option<PathBuf>,
    pub pepper_id: String,
    pub argon2: Argon2Settings,
    pub hash_concurrency: usize,
    pub hash_queue: usize,
    pub otp: OtpSettings,
    pub pin_policy: PinPolicy,
    pub lockout: LockoutPolicies,
    pub rate_limits: RateLimits,
    pub totp: TotpSettings,
    pub totp_key_file: Option<PathBuf>,
    pub after_login_window: Duration,
    pub max_body_bytes: usize,
    pub metrics_listen: Option<SocketAddr>,
    pub server: ServerSettings,
    /// `None` when `smtp_url` is empty: the mail endpoint answers 503.
    pub mail: Option<MailSettings>,
    pub mail_per_hour: u32,
    pub log: String,
    pub log_format: LogFormat,
    /// `serve --dev`: a local signing key and pepper instead of an identity provider and pepper file.
    pub dev: bool,
}

/// Where raw values come from: the TOML file's table, then the environment on top.
struct Source {
    values: BTreeMap<&'static str, String>,
}

impl Source {
    fn get(&self, name: &'static str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| invalid(name, format!("cannot parse `{raw}`"))),
        }
    }

    fn in_range<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let v = self.parse(name, default)?;
        if !range.contains(&v) {
            return Err(invalid(
                name,
                format!("{v} is outside {}..={}", range.start(), range.end()),
            ));
        }
        Ok(v)
    }
}

fn known(name: &str) -> Option<&'static str> {
    SETTINGS.iter().map(|s| s.0).find(|k| *k == name)
}

impl Config {
    /// Reads the file (if any) and the `OTPD_*` variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        dev: bool,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let file_err = |problem: String| ConfigError::File {
                path: path.to_owned(),
                problem,
            };
            let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
            let table: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
            for (key, value) in table {
                let name =
                    known(&key).ok_or_else(|| file_err(format!("unknown setting `{key}`")))?;
                let raw = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(file_err(format!(
                            "`{key}` must be a string or number, not {other}"
                        )));
                    }
                };
                values.insert(name, raw);
            }
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("OTPD_") else {
                continue;
            };
            if let Some(name) = known(&rest.to_lowercase()) {
                values.insert(name, value);
            }
        }
        Self::from_source(&Source { values }, dev)
    }

    /// Reads the process environment.
    pub fn from_env(file: Option<&Path>, dev: bool) -> Result<Self, ConfigError> {
        Self::load(file, std::env::vars(), dev)
    }

    fn from_source(src: &Source, dev: bool) -> Result<Self, ConfigError> {
        let listen = src.parse("listen", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        let database_url = src
            .get("database_url")
            .unwrap_or("sqlite://otpd.db")
            .to_owned();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let database_pool = PoolSettings {
            max_connections: src.in_range("database_max_connections", 10u32, 1..=1000)?,
            acquire_timeout: Duration::from_millis(src.in_range(
                "database_acquire_timeout_ms",
                2000u64,
                50..=60_000,
            )?),
        };
        let base_path = src
            .get("base_path")
            .unwrap_or("/user/2022-1")
            .trim_end_matches('/')
            .to_owned();
        if !base_path.is_empty() && !base_path.starts_with('/') {
            return Err(invalid("base_path", "must start with /"));
        }
        let url = |name: &'static str| -> Result<Option<String>, ConfigError> {
            match src.get(name) {
                None => Ok(None),
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Ok(Some(u.trim_end_matches('/').to_owned()))
                }
                Some(_) => Err(invalid(name, "must be an http:// or https:// URL")),
            }
        };
        let auth = AuthSettings {
            issuer: url("oidc_issuer")?,
            jwks_url: url("jwks_url")?,
            audience: src.get("audience").map(str::to_owned),
            leeway: Duration::from_secs(src.in_range("token_leeway_seconds", 30u64, 0..=300)?),
            linked_identity_claim: src.get("linked_identity_claim").map(str::to_owned),
            registration_claim: src
                .get("registration_claim")
                .unwrap_or("created_at")
                .to_owned(),
            introspection: match url("introspection_url")? {
                None => None,
                Some(url) => Some(IntrospectionConfig {
                    url,
                    client_id: src
                        .get("introspection_client_id")
                        .ok_or_else(|| {
                            invalid("introspection_client_id", "required with introspection_url")
                        })?
                        .to_owned(),
                    client_secret_file: src
                        .get("introspection_client_secret_file")
                        .map(PathBuf::from)
                        .ok_or_else(|| {
                            invalid(
                                "introspection_client_secret_file",
                                "required with introspection_url",
                            )
                        })?,
                    cache_ttl: Duration::from_secs(src.in_range(
                        "introspection_cache_seconds",
                        30u64,
                        0..=300,
                    )?),
                }),
            },
        };
        let pepper_file = src.get("pepper_file").map(PathBuf::from);
        let pepper_id = src.get("pepper_id").unwrap_or("p1").to_owned();
        if pepper_id.is_empty()
            || pepper_id.len() > 8
            || !pepper_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid("pepper_id", "must be 1..8 ASCII letters or digits"));
        }
        let argon2 = match src.get("argon2") {
            None => Argon2Settings::default(),
            Some(raw) => Argon2Settings::parse(raw).map_err(|p| invalid("argon2", p))?,
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let hash_concurrency = src.in_range("hash_concurrency", cores, 1..=256)?;
        let hash_queue = src.in_range("hash_queue", 2 * hash_concurrency, 0..=10_000)?;
        let otp = OtpSettings {
            digits: src.in_range("otp_digits", 6u8, MIN_OTP_DIGITS..=MAX_OTP_DIGITS)?,
            ttl: Duration::from_secs(src.in_range(
                "otp_ttl_seconds",
                300u64,
                1..=MAX_OTP_TTL.as_secs(),
            )?),
            max_live: src.in_range("otp_max_live", 3u32, 1..=10)?,
        };
        let pin_policy = PinPolicy {
            length: src.in_range("pin_length", 4usize, 4..=12)?,
        };
        let lockout = lockout_policies(src)?;
        let quota = |name: &'static str, default: &str| {
            RateQuota::parse(src.get(name).unwrap_or(default)).map_err(|p| invalid(name, p))
        };
        let rate_limits = RateLimits {
            per_client: quota("rate_limit_per_client", "100/s")?,
            per_address: quota("rate_limit_per_address", "20/s")?,
        };
        let totp = TotpSettings {
            period_secs: src.in_range("totp_period_seconds", 30u32, 1..=300)?,
            digits: src.in_range("totp_digits", 6u8, MIN_TOTP_DIGITS..=MAX_TOTP_DIGITS)?,
            algorithm: match src.get("totp_algorithm") {
                None => TotpAlgorithm::Sha1,
                Some(raw) => TotpAlgorithm::parse(raw).ok_or_else(|| {
                    invalid(
                        "totp_algorithm",
                        format!("`{raw}` is not SHA1, SHA256 or SHA512"),
                    )
                })?,
            },
        };
        let totp_key_file = src.get("totp_key_file").map(PathBuf::from);
        let after_login_window =
            Duration::from_secs(src.in_range("after_login_window_seconds", 300u64, 0..=3600)?);
        let max_body_bytes = src.in_range("max_body_bytes", 16 * 1024usize, 1024..=1024 * 1024)?;
        let metrics_listen = match src.get("metrics_listen") {
            None => None,
            Some(raw) => Some(
                raw.trim()
                    .parse()
                    .map_err(|_| invalid("metrics_listen", format!("`{raw}` is not host:port")))?,
            ),
        };
        let secs = |name, default, range| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(src.in_range(name, default, range)?))
        };
        let server = ServerSettings {
            header_read_timeout: secs("header_read_timeout_seconds", 5, 1..=300)?,
            request_timeout: secs("request_timeout_seconds", 30, 1..=600)?,
            max_requests_per_connection: src.in_range(
                "max_requests_per_connection",
                1000u64,
                1..=1_000_000,
            )?,
            max_connections: src.in_range("max_connections", 1024usize, 1..=100_000)?,
            shutdown_grace: secs("shutdown_grace_seconds", 20, 0..=600)?,
        };
        let mail_per_hour = src.in_range("mail_per_hour", 5u32, 1..=1000)?;
        let mail = match src.get("smtp_url") {
            None => None,
            Some(url) => {
                if !["smtp://", "smtps://"].iter().any(|p| url.starts_with(p)) {
                    return Err(invalid("smtp_url", "must start with smtp:// or smtps://"));
                }
                let from = src
                    .get("mail_from")
                    .ok_or_else(|| invalid("mail_from", "required when smtp_url is set"))?;
                Some(MailSettings {
                    smtp_url: url.to_owned(),
                    from: from.to_owned(),
                    per_hour: mail_per_hour,
                })
            }
        };
        let log = src.get("log").unwrap_or("info").to_owned();
        let log_format = match src.get("log_format").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("`{other}` is not text or json"),
                ));
            }
        };
        Ok(Self {
            listen,
            database_url,
            database_pool,
            base_path,
            auth,
            pepper_file,
            pepper_id,
            argon2,
            hash_concurrency,
            hash_queue,
            otp,
            pin_policy,
            lockout,
            rate_limits,
            totp,
            totp_key_file,
            after_login_window,
            max_body_bytes,
            metrics_listen,
            server,
            mail,
            mail_per_hour,
            log,
            log_format,
            dev,
        })
    }

    /// What `serve` needs beyond well-formed values: an issuer and a pepper, unless in dev mode.
    /// (Operator commands such as `migrate` run without them.)
    pub fn require_serving_settings(&self) -> Result<(), ConfigError> {
        if self.dev {
            return Ok(());
        }
        if self.auth.issuer.is_none() {
            return Err(invalid(
                "oidc_issuer",
                "required outside dev mode: set OTPD_OIDC_ISSUER to your identity provider's issuer URL (or run `otpd serve --dev`)",
            ));
        }
        if self.pepper_file.is_none() {
            return Err(invalid(
                "pepper_file",
                "required outside dev mode: create a file with at least 32 random bytes (e.g. `head -c 48 /dev/urandom > pepper`) and set OTPD_PEPPER_FILE to its path",
            ));
        }
        Ok(())
    }

    /// Reads the pepper file named by the configuration.
    pub fn read_pepper(&self) -> Result<Pepper, ConfigError> {
        let path = self
            .pepper_file
            .as_ref()
            .ok_or_else(|| invalid("pepper_file", "not set"))?;
        let mut bytes = std::fs::read(path).map_err(|e| {
            invalid(
                "pepper_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        // A trailing newline from `echo`/an editor is not part of the secret.
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        Pepper::new(self.pepper_id.clone(), bytes).map_err(|p| invalid("pepper_file", p))
    }

    /// The key material for device TOTP secrets: `totp_key_file` when set (at least 32 bytes),
    /// otherwise `None` and the pepper is used.
    pub fn read_totp_key(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = &self.totp_key_file else {
            return Ok(None);
        };
        let mut bytes = std::fs::read(path).map_err(|e| {
            invalid(
                "totp_key_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.len() < 32 {
            return Err(invalid("totp_key_file", "must hold at least 32 bytes"));
        }
        Ok(Some(bytes))
    }

    /// The effective configuration as `name = value` lines, secrets redacted.
    pub fn describe(&self) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let lines = [
            (
                "mode",
                if self.dev {
                    "DEVELOPMENT".to_owned()
                } else {
                    "production".to_owned()
                },
            ),
            ("listen", self.listen.to_string()),
            ("database_url", redact_url_password(&self.database_url)),
            (
                "database_max_connections",
                self.database_pool.max_connections.to_string(),
            ),
            (
                "database_acquire_timeout_ms",
                self.database_pool.acquire_timeout.as_millis().to_string(),
            ),
            ("base_path", self.base_path.clone()),
            ("oidc_issuer", opt(&self.auth.issuer)),
            ("jwks_url", opt(&self.auth.jwks_url)),
            ("audience", opt(&self.auth.audience)),
            (
                "token_leeway_seconds",
                self.auth.leeway.as_secs().to_string(),
            ),
            (
                "linked_identity_claim",
                opt(&self.auth.linked_identity_claim),
            ),
            (
                "introspection_url",
                self.auth
                    .introspection
                    .as_ref()
                    .map(|i| i.url.clone())
                    .unwrap_or_default(),
            ),
            (
                "introspection_client_id",
                self.auth
                    .introspection
                    .as_ref()
                    .map(|i| i.client_id.clone())
                    .unwrap_or_default(),
            ),
            (
                "introspection_client_secret_file",
                self.auth
                    .introspection
                    .as_ref()
                    .map(|i| format!("{} (contents not shown)", i.client_secret_file.display()))
                    .unwrap_or_default(),
            ),
            (
                "introspection_cache_seconds",
                self.auth
                    .introspection
                    .as_ref()
                    .map(|i| i.cache_ttl.as_secs().to_string())
                    .unwrap_or_default(),
            ),
            (
                "pepper_file",
                self.pepper_file
                    .as_ref()
                    .map(|p| format!("{} (contents not shown)", p.display()))
                    .unwrap_or_default(),
            ),
            ("pepper_id", self.pepper_id.clone()),
            ("argon2", self.argon2.to_string()),
            ("hash_concurrency", self.hash_concurrency.to_string()),
            ("hash_queue", self.hash_queue.to_string()),
            ("otp_digits", self.otp.digits.to_string()),
            ("otp_ttl_seconds", self.otp.ttl.as_secs().to_string()),
            ("otp_max_live", self.otp.max_live.to_string()),
            ("pin_length", self.pin_policy.length.to_string()),
            ("pin_lock_from", self.lockout.pin.lock_from.to_string()),
            (
                "pin_disable_after",
                self.lockout.pin.disable_after.unwrap_or(0).to_string(),
            ),
            (
                "password_lock_from",
                self.lockout.password.lock_from.to_string(),
            ),
            (
                "password_disable_after",
                self.lockout.password.disable_after.unwrap_or(0).to_string(),
            ),
            (
                "otp_revoke_after",
                self.lockout.otp.revoke_after.unwrap_or(0).to_string(),
            ),
            (
                "lock_base_seconds",
                self.lockout.pin.base_lock.as_secs().to_string(),
            ),
            (
                "lock_max_seconds",
                self.lockout.pin.max_lock.as_secs().to_string(),
            ),
            (
                "rate_limit_per_client",
                self.rate_limits
                    .per_client
                    .map_or("off".into(), |q| q.to_string()),
            ),
            (
                "rate_limit_per_address",
                self.rate_limits
                    .per_address
                    .map_or("off".into(), |q| q.to_string()),
            ),
            (
                "totp_key_file",
                self.totp_key_file
                    .as_ref()
                    .map(|p| format!("{} (contents not shown)", p.display()))
                    .unwrap_or_else(|| "(derived from the pepper)".to_owned()),
            ),
            ("totp_digits", self.totp.digits.to_string()),
            ("totp_period_seconds", self.totp.period_secs.to_string()),
            ("totp_algorithm", self.totp.algorithm.as_str().to_owned()),
            ("registration_claim", self.auth.registration_claim.clone()),
            (
                "after_login_window_seconds",
                self.after_login_window.as_secs().to_string(),
            ),
            ("max_body_bytes", self.max_body_bytes.to_string()),
            (
                "metrics_listen",
                self.metrics_listen
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            ),
            (
                "header_read_timeout_seconds",
                self.server.header_read_timeout.as_secs().to_string(),
            ),
            (
                "request_timeout_seconds",
                self.server.request_timeout.as_secs().to_string(),
            ),
            (
                "max_requests_per_connection",
                self.server.max_requests_per_connection.to_string(),
            ),
            ("max_connections", self.server.max_connections.to_string()),
            (
                "shutdown_grace_seconds",
                self.server.shutdown_grace.as_secs().to_string(),
            ),
            (
                "smtp_url",
                self.mail
                    .as_ref()
                    .map(|m| redact_url_password(&m.smtp_url))
                    .unwrap_or_default(),
            ),
            (
                "mail_from",
                self.mail
                    .as_ref()
                    .map(|m| m.from.clone())
                    .unwrap_or_default(),
            ),
            ("mail_per_hour", self.mail_per_hour.to_string()),
            ("log", self.log.clone()),
            (
                "log_format",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
        ];
        lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
    }
}

/// The attempt limits of password, PIN and OTP redemption (docs/lockout.md).
fn lockout_policies(src: &Source) -> Result<LockoutPolicies, ConfigError> {
    let base = Duration::from_secs(src.in_range("lock_base_seconds", 30u64, 1..=3600)?);
    let max = Duration::from_secs(src.in_range("lock_max_seconds", 900u64, 1..=86_400)?);
    if max < base {
        return Err(invalid(
            "lock_max_seconds",
            "must not be shorter than lock_base_seconds",
        ));
    }
    let nonzero = |n: u32| (n > 0).then_some(n);
    let policy = |lock_from: u32, disable_after: u32, revoke_after: u32| LockPolicy {
        lock_from,
        base_lock: base,
        max_lock: max,
        disable_after: nonzero(disable_after),
        revoke_after: nonzero(revoke_after),
    };
    let otp_revoke_after = src.in_range("otp_revoke_after", 5u32, 0..=1000)?;
    Ok(LockoutPolicies {
        pin: policy(
            src.in_range("pin_lock_from", 4u32, 0..=1000)?,
            src.in_range("pin_disable_after", 10u32, 0..=1000)?,
            0,
        ),
        password: policy(
            src.in_range("password_lock_from", 5u32, 0..=10_000)?,
            src.in_range("password_disable_after", 100u32, 0..=10_000)?,
            0,
        ),
        // Redemption locks where it starts revoking: otherwise parallel guesses could race the
        // revocation (docs/lockout.md).
        otp: policy(otp_revoke_after, 0, otp_revoke_after),
    })
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest
        .split_once('/')
        .map_or((rest, None), |(a, t)| (a, Some(t)));
    let redacted_authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match tail {
        Some(t) => format!("{scheme}://{redacted_authority}/{t}"),
        None => format!("{scheme}://{redacted_authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dev_mode_needs_nothing_and_has_the_documented_defaults() {
        let c = Config::load(None, env(&[]), true).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://otpd.db");
        assert_eq!(c.base_path, "/user/2022-1");
        assert_eq!(c.otp.digits, 6);
        assert_eq!(c.otp.ttl.as_secs(), 300);
        assert_eq!(c.argon2, Argon2Settings::default());
    }

    #[test]
    fn production_mode_refuses_to_start_without_issuer_or_pepper() {
        let c = Config::load(None, env(&[("OTPD_PEPPER_FILE", "/p")]), false).unwrap();
        let e = c.require_serving_settings().unwrap_err();
        assert!(e.to_string().contains("oidc_issuer"), "{e}");
        let c = Config::load(
            None,
            env(&[("OTPD_OIDC_ISSUER", "https://id.example")]),
            false,
        )
        .unwrap();
        let e = c.require_serving_settings().unwrap_err();
        assert!(e.to_string().contains("OTPD_PEPPER_FILE"), "{e}");
    }

    #[test]
    fn a_bad_value_names_its_setting() {
        for (k, v, name) in [
            ("OTPD_OTP_DIGITS", "5", "otp_digits"),
            ("OTPD_OTP_TTL_SECONDS", "601", "otp_ttl_seconds"),
            ("OTPD_ARGON2", "m=19456,t=2", "argon2"),
            ("OTPD_LISTEN", "nowhere", "listen"),
            ("OTPD_DATABASE_URL", "mysql://x", "database_url"),
            (
                "OTPD_DATABASE_MAX_CONNECTIONS",
                "0",
                "database_max_connections",
            ),
            (
                "OTPD_DATABASE_ACQUIRE_TIMEOUT_MS",
                "10",
                "database_acquire_timeout_ms",
            ),
            ("OTPD_LOG_FORMAT", "xml", "log_format"),
            ("OTPD_TOTP_ALGORITHM", "MD5", "totp_algorithm"),
            ("OTPD_TOTP_DIGITS", "9", "totp_digits"),
            (
                "OTPD_INTROSPECTION_URL",
                "https://id.example/introspect",
                "introspection_client_id",
            ),
        ] {
            let e = Config::load(None, env(&[(k, v)]), true).unwrap_err();
            assert!(e.to_string().contains(name), "{k}={v}: {e}");
        }
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.toml");
        std::fs::write(&path, "otp_digits = 8\notp_ttl_seconds = 120\n").unwrap();
        let c = Config::load(Some(&path), env(&[("OTPD_OTP_DIGITS", "7")]), true).unwrap();
        assert_eq!(c.otp.digits, 7);
        assert_eq!(c.otp.ttl.as_secs(), 120);
        std::fs::write(&path, "otp_digitz = 8\n").unwrap();
        assert!(Config::load(Some(&path), env(&[]), true).is_err());
    }

    #[test]
    fn describe_redacts_database_passwords() {
        let c = Config::load(
            None,
            env(&[("OTPD_DATABASE_URL", "postgres://u:hunter2@db/otpd")]),
            true,
        )
        .unwrap();
        let text = c.describe();
        assert!(!text.contains("hunter2"));
        assert!(text.contains("postgres://u:***@db/otpd"));
        assert!(!format!("{c:?}").contains("hunter2"), "Debug redacts too");
    }

    #[test]
    fn smtp_credentials_are_redacted_and_mail_needs_a_sender() {
        let url = "smtp://otpd:s3cr3t-pw@mail.example.com:587?tls=required";
        let e = Config::load(None, env(&[("OTPD_SMTP_URL", url)]), true).unwrap_err();
        assert!(e.to_string().contains("mail_from"), "{e}");
        let c = Config::load(
            None,
            env(&[
                ("OTPD_SMTP_URL", url),
                ("OTPD_MAIL_FROM", "otpd@example.com"),
            ]),
            true,
        )
        .unwrap();
        assert!(!c.describe().contains("s3cr3t"), "{}", c.describe());
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(
            c.describe()
                .contains("smtp_url = smtp://otpd:***@mail.example.com:587?tls=required")
        );
        let e = Config::load(None, env(&[("OTPD_SMTP_URL", "http://x")]), true).unwrap_err();
        assert!(e.to_string().contains("smtp_url"), "{e}");
    }

    #[test]
    fn the_lockout_defaults_are_the_documented_policy() {
        let c = Config::load(None, env(&[]), true).unwrap();
        assert_eq!(c.lockout, LockoutPolicies::default());
        let q = |count, secs| {
            Some(RateQuota {
                count,
                period: Duration::from_secs(secs),
            })
        };
        assert_eq!(c.rate_limits.per_client, q(100, 1));
        assert_eq!(c.rate_limits.per_address, q(20, 1));
        let c = Config::load(
            None,
            env(&[
                ("OTPD_PIN_DISABLE_AFTER", "0"),
                ("OTPD_RATE_LIMIT_PER_CLIENT", "5/min"),
                ("OTPD_RATE_LIMIT_PER_ADDRESS", "off"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(c.lockout.pin.disable_after, None);
        assert_eq!(c.rate_limits.per_client, q(5, 60));
        assert_eq!(c.rate_limits.per_address, None);
        for (k, v) in [
            ("OTPD_RATE_LIMIT_PER_CLIENT", "5/day"),
            ("OTPD_LOCK_MAX_SECONDS", "10"),
        ] {
            assert!(Config::load(None, env(&[(k, v)]), true).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for (name, _, _) in SETTINGS {
            let var = format!("`OTPD_{}`", name.to_uppercase());
            assert!(readme.contains(&var), "README lacks {var}");
        }
    }

    #[test]
    fn a_short_pepper_is_refused() {
        assert!(Pepper::new("p1".into(), vec![0; 31]).is_err());
        let p = Pepper::new("p1".into(), vec![7; 32]).unwrap();
        assert!(!format!("{p:?}").contains('7'));
    }
}
