//! Development mode: a local signing key and pepper, created once next to the database and reused,
//! so `otpd serve --dev` needs no identity provider and `otpd dev token` can mint tokens for it.
//! Never for production: the key files sit unencrypted on disk and every scope is one command away.

use crate::config::Config;
use crate::service::Pepper;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use rand::Rng;
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEV_ISSUER: &str = "urn:otpd:dev";
const DEV_KID: &str = "otpd-dev";

/// Every scope otpd knows; the default for minted development tokens.
pub const ALL_SCOPES: &str = "user:otp:create user:otp:verify user:device-totps:create \
user:device-totps:create-after-login user:users.pin:update user:users.pin:check \
user:users.password:check user:users.password:create user:callbacks:password-reset user:user:delete \
user:sessions:update \
user:users.phone:check user:users.phone:update";

pub struct DevKit {
    dir: PathBuf,
    signing: EncodingKey,
    jwk: Jwk,
    pepper: Vec<u8>,
}

/// Where dev-mode secrets live: a `.otpd-dev` folder beside the SQLite file (or the working
/// directory for other databases).
pub fn dir_for(config: &Config) -> PathBuf {
    let url = &config.store.url;
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .filter(|p| !p.starts_with(":memory:"))
        .map(|p| p.split('?').next().unwrap_or(p));
    let parent = path
        .and_then(|p| Path::new(p).parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    parent.join(".otpd-dev")
}

fn read_or_create(path: &Path, len: usize) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(URL_SAFE_NO_PAD.decode(text.trim())?);
    }
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(URL_SAFE_NO_PAD.encode(&bytes).as_bytes())?;
    Ok(bytes)
}

impl DevKit {
    pub fn load_or_create(config: &Config) -> anyhow::Result<Self> {
        let dir = dir_for(config);
        std::fs::create_dir_all(&dir)?;
        let pepper = read_or_create(&dir.join("pepper"), 48)?;
        let key_path = dir.join("signing-key");
        let secret = loop {
            let bytes = read_or_create(&key_path, 32)?;
            match p256::SecretKey::from_slice(&bytes) {
                Ok(k) => break k,
                // Out of the curve's range (about 1 in 2^32): draw again.
                Err(_) => std::fs::remove_file(&key_path)?,
            }
        };
        let der = secret.to_pkcs8_der()?;
        let signing = EncodingKey::from_ec_der(der.as_bytes());
        let mut jwk = Jwk::from_encoding_key(&signing, Algorithm::ES256)?;
        jwk.common.key_id = Some(DEV_KID.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self {
            dir,
            signing,
            jwk,
            pepper,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pepper(&self, id: &str) -> anyhow::Result<Pepper> {
        Pepper::new(id.to_owned(), self.pepper.clone()).map_err(anyhow::Error::msg)
    }

    pub fn key_set(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// A signed access token for the request, which must have passed `TokenRequest::check`.
    pub fn mint(&self, request: &TokenRequest<'_>) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            scope: &'a str,
            client_id: &'a str,
            iat: i64,
            nbf: i64,
            exp: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            email: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            email_verified: Option<bool>,
        }
        request.check()?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            iss: DEV_ISSUER,
            sub: request.sub,
            scope: request.scope,
            client_id: "otpd-dev",
            iat: now,
            nbf: now,
            exp: now + i64::try_from(request.ttl.as_secs())?,
            email: request.email,
            // A dev user's address counts as verified unless the token is to say otherwise.
            email_verified: request.email_verified.or(request.email.map(|_| true)),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(DEV_KID.to_owned());
        header.typ = Some("at+jwt".to_owned());
        Ok(jsonwebtoken::encode(&header, &claims, &self.signing)?)
    }
}

/// The longest lifetime `otpd dev token` mints: a development token should not outlive the work.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What `otpd dev token` is asked to put into a token.
pub struct TokenRequest<'a> {
    pub sub: &'a str,
    /// Space-separated scopes.
    pub scope: &'a str,
    pub ttl: Duration,
    /// For `POST /user/otp/sendmail`, which mails the OTP to this claim.
    pub email: Option<&'a str>,
    pub email_verified: Option<bool>,
    /// The configured admin scope (`admin_scope`), which a dev token may carry too.
    pub admin_scope: &'a str,
}

impl TokenRequest<'_> {
    /// Refuses, with what to do instead, a token that no endpoint of `serve --dev` would take.
    pub fn check(&self) -> anyhow::Result<()> {
        if crate::domain::Subject::parse(self.sub).is_none() {
            anyhow::bail!(
                "--sub must name the user: 1..255 printable characters (every endpoint acts for the token's sub)"
            );
        }
        let known: Vec<&str> = ALL_SCOPES
            .split_whitespace()
            .chain([self.admin_scope])
            .collect();
        let asked: Vec<&str> = self.scope.split_whitespace().collect();
        if asked.is_empty() {
            anyhow::bail!(
                "--scope is empty: every endpoint would answer 403; leave --scope out for all scopes, or name some of: {}",
                known.join(" ")
            );
        }
        let unknown: Vec<&str> = asked
            .iter()
            .copied()
            .filter(|s| !known.contains(s))
            .collect();
        if !unknown.is_empty() {
            anyhow::bail!(
                "--scope names scopes no endpoint accepts: {}; the known scopes are: {}",
                unknown.join(" "),
                known.join(" ")
            );
        }
        if self.ttl.is_zero() || self.ttl > MAX_TOKEN_TTL {
            anyhow::bail!(
                "--ttl must be 1..{} seconds (a token with --ttl 0 is expired when it is made)",
                MAX_TOKEN_TTL.as_secs()
            );
        }
        if self.email_verified.is_some() && self.email.is_none() {
            anyhow::bail!(
                "--email-verified needs --email: it says whether that address is verified"
            );
        }
        Ok(())
    }
}

/// `otpd --dev check-config`: the configuration as dev mode uses it, with the development issuer
/// and pepper in place of the (unset) production ones.
pub fn describe_effective(config: &Config) -> String {
    let dir = dir_for(config);
    config
        .describe()
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some(("oidc_issuer", _)) => format!(
                "oidc_issuer = {DEV_ISSUER} (development key in {})\n",
                dir.display()
            ),
            Some(("pepper_file", _)) => format!(
                "pepper_file = {} (development pepper, contents not shown)\n",
                dir.join("pepper").display()
            ),
            _ => format!("{line}\n"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> Config {
        Config::load(
            None,
            vec![("OTPD_DATABASE_URL".to_owned(), url.to_owned())],
            true,
        )
        .unwrap()
    }

    #[test]
    fn dev_check_config_shows_the_issuer_and_pepper_dev_mode_uses() {
        let text = describe_effective(&config("sqlite://otpd.db"));
        assert!(
            text.lines()
                .any(|l| l.starts_with("oidc_issuer = urn:otpd:dev ")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("pepper_file = ./.otpd-dev/pepper ")),
            "{text}"
        );
    }

    #[test]
    fn dev_files_sit_beside_the_sqlite_file() {
        assert_eq!(
            dir_for(&config("sqlite://otpd.db")),
            PathBuf::from("./.otpd-dev")
        );
        assert_eq!(
            dir_for(&config("sqlite:///var/lib/otpd/o.db?mode=rwc")),
            PathBuf::from("/var/lib/otpd/.otpd-dev")
        );
        assert_eq!(
            dir_for(&config("postgres://localhost/x")),
            PathBuf::from("./.otpd-dev")
        );
    }

    #[test]
    fn the_kit_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/otpd.db", dir.path().display());
        let a = DevKit::load_or_create(&config(&url)).unwrap();
        let b = DevKit::load_or_create(&config(&url)).unwrap();
        assert_eq!(a.pepper, b.pepper);
        assert_eq!(
            serde_json::to_string(&a.jwk).unwrap(),
            serde_json::to_string(&b.jwk).unwrap()
        );
    }
}
