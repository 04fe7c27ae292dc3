//! Settings: read once from an optional TOML file and `OTPD_*` environment variables, validated into
//! a `Config` assembled from each subsystem's settings. A bad value stops start-up with a message
//! naming the setting. No globals.
//!
//! The rule: each subsystem owns the *type* of its settings, next to the code that reads them
//! (`ServerSettings` in `server`, `HashingSettings` in `service`, …); nothing in `service` or
//! `domain` imports this module. What knows a setting's *name* lives here, one file per group:
//! `from_source` (parse and validate), `describe` (the `check-config` lines), and naming the
//! setting when a file it points to is unusable. A group read by several subsystems (`Limits`,
//! `MailSettings`) is a plain container defined in its file here.
//!
//! To add a setting: a row in `settings.rs`, a field in the subsystem's type, and its parsing and
//! description in the group's file below (tests fail until all three agree).

mod admin;
mod credentials;
mod hashing;
mod identity;
mod limits;
mod logging;
mod mail;
mod passwords;
mod retention;
mod server;
mod sessions;
mod settings;
mod sms;
mod store;
mod totp;

pub use limits::Limits;
pub use mail::MailSettings;
pub use settings::SETTINGS;
pub use sms::SmsSettings;

use crate::domain::{OtpSettings, PinPolicy, SessionTtl};
use crate::http::HttpSettings;
use crate::http::admin::AdminSettings;
use crate::identity::AuthSettings;
use crate::server::ServerSettings;
use crate::service::{
    DeviceTotpSettings, HashingSettings, LinkSettings, PasswordSettings, RetentionSettings,
};
use crate::store::StoreSettings;
use crate::telemetry::LogSettings;
use crate::templates::TemplateSettings;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

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

/// The effective settings, one field per subsystem. `Debug` prints `describe()`: the effective
/// settings with secrets redacted (a database URL may carry a password, and a `{:?}` in a panic or
/// a log must not show it).
pub struct Config {
    pub server: ServerSettings,
    pub http: HttpSettings,
    pub admin: AdminSettings,
    pub store: StoreSettings,
    pub identity: AuthSettings,
    pub hashing: HashingSettings,
    pub otp: OtpSettings,
    pub pin: PinPolicy,
    pub limits: Limits,
    pub totp: DeviceTotpSettings,
    pub mail: MailSettings,
    pub passwords: PasswordSettings,
    pub links: LinkSettings,
    pub templates: TemplateSettings,
    pub log: LogSettings,
    pub retention: RetentionSettings,
    /// How long a login session is known (`PUT /sessions/{sessionId}`).
    pub sessions: SessionTtl,
    /// The SMS gateway and the phone code's limits (docs/phone.md).
    pub sms: SmsSettings,
    /// `serve --dev`: a local signing key and pepper instead of an identity provider and pepper file.
    pub dev: bool,
}

/// Where raw values come from: the TOML file's table, then the environment on top.
struct Source {
    values: BTreeMap<&'static str, String>,
}

impl Source {
    /// The raw value of a setting; an empty value counts as unset.
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

/// `check-config` lines of one group: (setting name, effective value), secrets redacted.
type Lines = Vec<(&'static str, String)>;

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
        // Written in the order the settings have always been checked, so that of several bad
        // values the same one is reported first (fields are evaluated in the order written).
        Ok(Self {
            store: StoreSettings::from_source(src)?,
            identity: AuthSettings::from_source(src)?,
            hashing: HashingSettings::from_source(src)?,
            otp: OtpSettings::from_source(src)?,
            pin: PinPolicy::from_source(src)?,
            limits: Limits::from_source(src)?,
            totp: DeviceTotpSettings::from_source(src)?,
            http: HttpSettings::from_source(src)?,
            server: ServerSettings::from_source(src)?,
            admin: AdminSettings::from_source(src)?,
            mail: MailSettings::from_source(src)?,
            passwords: PasswordSettings::from_source(src)?,
            links: LinkSettings::from_source(src)?,
            templates: TemplateSettings::from_source(src)?,
            log: LogSettings::from_source(src)?,
            retention: RetentionSettings::from_source(src)?,
            sessions: SessionTtl::from_source(src)?,
            sms: SmsSettings::from_source(src)?,
            dev,
        })
    }

    /// What `serve` needs beyond well-formed values, unless in dev mode: an issuer reached over
    /// https (or explicitly allowed otherwise), an audience decision, and a pepper. (Operator
    /// commands such as `migrate` run without them.)
    pub fn require_serving_settings(&self) -> Result<(), ConfigError> {
        if self.dev {
            return Ok(());
        }
        self.identity.require_serving()?;
        if self.hashing.pepper_file.is_none() {
            return Err(invalid(
                "pepper_file",
                "required outside dev mode: create a file with at least 32 random bytes (e.g. `head -c 48 /dev/urandom > pepper`) and set OTPD_PEPPER_FILE to its path, or add --dev for development mode (`otpd serve --dev`, `otpd --dev check-config`)",
            ));
        }
        Ok(())
    }

    /// The risky choices this configuration still makes, one sentence each: `check-config`
    /// prints them and `serve` logs them at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.dev {
            out.push("development mode: tokens signed by a local key are accepted".into());
            return out;
        }
        self.identity.warnings(&mut out);
        if let Some(gateway) = &self.sms.gateway
            && gateway.url.starts_with("http://")
        {
            out.push(
                "sms_url uses plain http: codes and the gateway secret travel unencrypted".into(),
            );
        }
        out
    }

    /// The effective configuration as `name = value` lines, secrets redacted, in the order of
    /// `SETTINGS` after the mode.
    pub fn describe(&self) -> String {
        let mut lines = Lines::new();
        self.server.describe(&mut lines);
        self.http.describe(&mut lines);
        self.admin.describe(&mut lines);
        self.store.describe(&mut lines);
        self.identity.describe(&mut lines);
        self.hashing.describe(&mut lines);
        self.otp.describe(&mut lines);
        self.pin.describe(&mut lines);
        self.limits.describe(&mut lines);
        self.totp.describe(&mut lines);
        self.mail.describe(&mut lines);
        self.passwords.describe(&mut lines);
        self.links.describe(&mut lines);
        self.templates.describe(&mut lines);
        self.log.describe(&mut lines);
        self.retention.describe(&mut lines);
        self.sessions.describe(&mut lines);
        self.sms.describe(&mut lines);
        lines.sort_by_key(|(name, _)| SETTINGS.iter().position(|s| s.0 == *name));
        let mode = if self.dev {
            "DEVELOPMENT"
        } else {
            "production"
        };
        std::iter::once(("mode", mode.to_owned()))
            .chain(lines)
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A path a setting names, for `check-config`: the path, never the file's contents.
fn secret_path(path: Option<&PathBuf>) -> String {
    path.map(|p| format!("{} (contents not shown)", p.display()))
        .unwrap_or_default()
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

    /// `Config::load` in dev mode from `OTPD_*` pairs (shared by the groups' tests).
    pub(super) fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(None, env, true)
    }

    /// Asserts that each `OTPD_*` value is refused with a message naming `setting`.
    pub(super) fn assert_refused(cases: &[(&str, &str, &str)]) {
        for (var, value, setting) in cases {
            let e = load(&[(var, value)]).unwrap_err();
            assert!(e.to_string().contains(setting), "{var}={value}: {e}");
        }
    }

    #[test]
    fn dev_mode_needs_nothing_and_has_the_documented_defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.store.url, "sqlite://otpd.db");
        assert_eq!(c.http.base_path, "/user/2022-1");
        assert_eq!(c.otp.digits, 6);
        assert_eq!(c.otp.ttl.as_secs(), 300);
        assert_eq!(c.hashing.argon2, crate::service::Argon2Settings::default());
    }

    #[test]
    fn production_mode_refuses_to_start_without_issuer_or_pepper() {
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let c = Config::load(None, env("OTPD_PEPPER_FILE", "/p"), false).unwrap();
        let e = c.require_serving_settings().unwrap_err();
        assert!(e.to_string().contains("oidc_issuer"), "{e}");
        let mut with_issuer = env("OTPD_OIDC_ISSUER", "https://id.example");
        with_issuer.extend(env("OTPD_AUDIENCE", "otpd"));
        let c = Config::load(None, with_issuer, false).unwrap();
        let e = c.require_serving_settings().unwrap_err();
        assert!(e.to_string().contains("OTPD_PEPPER_FILE"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.toml");
        std::fs::write(&path, "otp_digits = 8\notp_ttl_seconds = 120\n").unwrap();
        let env = vec![("OTPD_OTP_DIGITS".to_owned(), "7".to_owned())];
        let c = Config::load(Some(&path), env, true).unwrap();
        assert_eq!(c.otp.digits, 7);
        assert_eq!(c.otp.ttl.as_secs(), 120);
        std::fs::write(&path, "otp_digitz = 8\n").unwrap();
        assert!(Config::load(Some(&path), vec![], true).is_err());
    }

    #[test]
    fn describe_lists_every_setting_once_in_table_order() {
        let text = load(&[]).unwrap().describe();
        let names: Vec<&str> = text
            .lines()
            .map(|l| l.split(" = ").next().unwrap())
            .collect();
        let mut expected = vec!["mode"];
        expected.extend(SETTINGS.iter().map(|s| s.0));
        assert_eq!(names, expected);
    }

    #[test]
    fn describe_redacts_database_passwords() {
        let c = load(&[("OTPD_DATABASE_URL", "postgres://u:hunter2@db/otpd")]).unwrap();
        let text = c.describe();
        assert!(!text.contains("hunter2"));
        assert!(text.contains("postgres://u:***@db/otpd"));
        assert!(!format!("{c:?}").contains("hunter2"), "Debug redacts too");
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../../README.md");
        for (name, _, _) in SETTINGS {
            let var = format!("`OTPD_{}`", name.to_uppercase());
            assert!(readme.contains(&var), "README lacks {var}");
        }
    }
}
