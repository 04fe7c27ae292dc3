//! Access-token validation: JWTs signed with an asymmetric key from the issuer's JWKS.
//!
//! Keys come from `jwks_url`, from OpenID discovery on the issuer, or (dev mode, tests) from a fixed
//! set. They are cached; an unknown `kid` triggers a re-fetch at most once per `REFRESH_INTERVAL`,
//! so key rotation needs no restart and a flood of made-up `kid`s cannot become a flood of fetches.

use crate::config::AuthSettings;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was refused. Logged, never sent: the client gets a generic 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    Oversized,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    #[error("header parameter `{0}` is not accepted")]
    ForbiddenHeader(&'static str),
    #[error("token type `{0}` is not an access token")]
    WrongType(String),
    #[error("no key for kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("claims rejected: {0}")]
    Rejected(String),
    #[error("the linked identity claim is missing")]
    MissingLinkedIdentity,
}

#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// What a valid token says about its caller.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    pub sub: String,
    pub scopes: Vec<String>,
    pub client_id: Option<String>,
    /// The OpenID `email` claim, when present and a string.
    pub email: Option<String>,
    /// The OpenID `email_verified` claim: a boolean, or the strings "true"/"false" some
    /// providers send. `None` when absent or anything else.
    pub email_verified: Option<bool>,
}

fn email_claims(
    other: &serde_json::Map<String, serde_json::Value>,
) -> (Option<String>, Option<bool>) {
    use serde_json::Value;
    let email = match other.get("email") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let verified = match other.get("email_verified") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "true" => Some(true),
        Some(Value::String(s)) if s == "false" => Some(false),
        _ => None,
    };
    (email, verified)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyFamily {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyFamily {
    fn of_jwk(jwk: &Jwk) -> Option<Self> {
        match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(KeyFamily::Rsa),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Some(KeyFamily::P256),
                EllipticCurve::P384 => Some(KeyFamily::P384),
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Some(KeyFamily::Ed25519)
            }
            _ => None,
        }
    }

    fn signs(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyFamily::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyFamily::P256 => alg == ES256,
            KeyFamily::P384 => alg == ES384,
            KeyFamily::Ed25519 => alg == EdDSA,
        }
    }
}

struct CachedKey {
    kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the token must use exactly that.
    alg: Option<KeyAlgorithm>,
    family: KeyFamily,
    key: DecodingKey,
}

enum KeySource {
    Fixed,
    JwksUrl(String),
    Discovery(String),
}

pub struct TokenVerifier {
    settings: AuthSettings,
    issuer: String,
    source: KeySource,
    http: reqwest::Client,
    keys: RwLock<Vec<CachedKey>>,
    loaded: AtomicBool,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Key-set fetches that succeeded / failed, for the metrics scrape.
    refreshes_ok: AtomicU64,
    refreshes_failed: AtomicU64,
}

impl TokenVerifier {
    /// A verifier that fetches keys from `settings.jwks_url` or discovers them from the issuer.
    pub fn remote(settings: AuthSettings) -> anyhow::Result<Self> {
        let issuer = settings
            .issuer
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no issuer configured"))?;
        let source = match &settings.jwks_url {
            Some(url) => KeySource::JwksUrl(url.clone()),
            None => KeySource::Discovery(issuer.clone()),
        };
        Self::build(settings, issuer, source, &JwkSet { keys: vec![] })
    }

    /// A verifier that trusts exactly `keys` (dev mode).
    pub fn fixed(settings: AuthSettings, issuer: String, keys: &JwkSet) -> anyhow::Result<Self> {
        Self::build(settings, issuer, KeySource::Fixed, keys)
    }

    fn build(
        settings: AuthSettings,
        issuer: String,
        source: KeySource,
        keys: &JwkSet,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
        let verifier = Self {
            settings,
            issuer,
            source,
            http,
            keys: RwLock::new(Vec::new()),
            loaded: AtomicBool::new(false),
            last_fetch: tokio::sync::Mutex::new(None),
            refreshes_ok: AtomicU64::new(0),
            refreshes_failed: AtomicU64::new(0),
        };
        if !keys.keys.is_empty() {
            verifier.install(keys);
        }
        Ok(verifier)
    }

    /// Whether signing keys have been loaded at least once.
    pub fn ready(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Key-set fetches so far: (succeeded, failed).
    pub fn refreshes(&self) -> (u64, u64) {
        (
            self.refreshes_ok.load(Ordering::Relaxed),
            self.refreshes_failed.load(Ordering::Relaxed),
        )
    }

    /// Fetches the key set now (at start-up). Failure is logged by the caller; the service still
    /// starts and retries on the first token.
    pub async fn load(&self) -> anyhow::Result<()> {
        if matches!(self.source, KeySource::Fixed) {
            return Ok(());
        }
        *self.last_fetch.lock().await = Some(Instant::now());
        let set = self.fetch().await?;
        self.install(&set);
        Ok(())
    }

    pub async fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Oversized);
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(TokenError::AlgorithmNotAllowed(header.alg));
        }
        // Keys named inside the token are the attacker's choice: only the configured JWKS counts.
        for (present, name) in [
            (header.jku.is_some(), "jku"),
            (header.jwk.is_some(), "jwk"),
            (header.x5u.is_some(), "x5u"),
            (header.x5c.is_some(), "x5c"),
            (header.crit.is_some(), "crit"),
        ] {
            if present {
                return Err(TokenError::ForbiddenHeader(name));
            }
        }
        if let Some(typ) = &header.typ {
            let t = typ.to_ascii_lowercase();
            if !matches!(t.as_str(), "jwt" | "at+jwt" | "application/at+jwt") {
                return Err(TokenError::WrongType(typ.clone()));
            }
        }
        let key = match self.find_key(header.kid.as_deref(), header.alg) {
            Some(k) => k,
            None => {
                self.refresh_if_due().await;
                self.find_key(header.kid.as_deref(), header.alg)
                    .ok_or(TokenError::UnknownKey(header.kid.clone()))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.set_issuer(&[&self.issuer]);
        validation.validate_nbf = true;
        match &self.settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            }
        }
        let data = jsonwebtoken::decode::<RawClaims>(token, &key, &validation)
            .map_err(|e| TokenError::Rejected(e.to_string()))?;
        let claims = data.claims;
        let (email, email_verified) = email_claims(&claims.other);
        if let Some(name) = &self.settings.linked_identity_claim {
            let present = match claims.other.get(name) {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::String(s)) => !s.is_empty(),
                Some(serde_json::Value::Array(a)) => !a.is_empty(),
                Some(serde_json::Value::Object(o)) => !o.is_empty(),
                Some(_) => true,
            };
            if !present {
                return Err(TokenError::MissingLinkedIdentity);
            }
        }
        Ok(TokenClaims {
            sub: claims.sub,
            scopes: claims
                .scope
                .unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            client_id: claims.azp.or(claims.client_id),
            email,
            email_verified,
        })
    }

    fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let usable = |k: &&CachedKey| {
            k.family.signs(alg) && k.alg.is_none_or(|a| a.to_string() == format!("{alg:?}"))
        };
        let mut candidates = keys.iter().filter(usable);
        match kid {
            Some(kid) => candidates
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| k.key.clone()),
            // Without a kid, only an unambiguous key set is usable.
            None => {
                let first = candidates.next()?;
                candidates.next().is_none().then(|| first.key.clone())
            }
        }
    }

    async fn refresh_if_due(&self) {
        if matches!(self.source, KeySource::Fixed) {
            return;
        }
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                self.install(&set);
                tracing::info!(keys = set.keys.len(), "signing keys refreshed");
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "could not refresh signing keys; keeping the cached ones"
            ),
        }
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        let result = self.fetch_uncounted().await;
        let counter = if result.is_ok() {
            &self.refreshes_ok
        } else {
            &self.refreshes_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn fetch_uncounted(&self) -> anyhow::Result<JwkSet> {
        let jwks_url = match &self.source {
            KeySource::Fixed => anyhow::bail!("fixed key set"),
            KeySource::JwksUrl(url) => url.clone(),
            KeySource::Discovery(issuer) => {
                #[derive(Deserialize)]
                struct Discovery {
                    issuer: String,
                    jwks_uri: String,
                }
                let url = format!("{issuer}/.well-known/openid-configuration");
                let doc: Discovery = self
                    .http
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                    anyhow::bail!(
                        "discovery document at {url} names issuer {:?}, expected {issuer:?}",
                        doc.issuer
                    );
                }
                doc.jwks_uri
            }
        };
        Ok(self
            .http
            .get(&jwks_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    fn install(&self, set: &JwkSet) {
        let keys: Vec<CachedKey> = set
            .keys
            .iter()
            .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter_map(|jwk| {
                let family = KeyFamily::of_jwk(jwk)?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(CachedKey {
                    kid: jwk.common.key_id.clone(),
                    alg: jwk.common.key_algorithm,
                    family,
                    key,
                })
            })
            .collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        self.loaded.store(true, Ordering::Relaxed);
    }
}
