//! The one door for access tokens: a JWT goes to signature verification, anything else to RFC 7662
//! introspection (when configured), and the claims of either end in the same checks (subject,
//! scopes, linked identity), so a token means the same whichever way it was validated.

use super::introspection::{IntrospectionSettings, Introspector};
use super::jwks::KeyCache;
use super::jwt::{JwtVerifier, looks_like_jwt};
use crate::config::AuthSettings;
use crate::service::Clock;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused. Logged, never sent: the client gets a generic 401 (or a 503 for
/// `ProviderUnavailable`).
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
    #[error("no {1:?} key for kid {0:?}")]
    UnknownKey(Option<String>, Algorithm),
    #[error("claims rejected: {0}")]
    Rejected(String),
    #[error("the provider says the token is not active")]
    Inactive,
    #[error("the linked identity claim is missing")]
    MissingLinkedIdentity,
    #[error("the identity provider cannot vouch for tokens now: {0}")]
    ProviderUnavailable(String),
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
    /// When the user registered (unix seconds), from the configured `registration_claim`.
    pub registered_at: Option<i64>,
}

/// A registration time as identity providers write it: unix seconds, or milliseconds (Keycloak's
/// `createdTimestamp`), as a number or a numeric string. Values past the year 5138 in seconds are
/// taken as milliseconds.
fn unix_seconds(value: &Value) -> Option<i64> {
    let n = match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(if n > 99_999_999_999 { n / 1000 } else { n })
}

pub struct TokenVerifier {
    settings: AuthSettings,
    jwt: JwtVerifier,
    introspection: Option<Introspector>,
}

impl TokenVerifier {
    /// A verifier for the configured issuer: keys from `jwks_url` or discovery, and introspection
    /// when `introspection` is given.
    pub fn remote(
        settings: AuthSettings,
        introspection: Option<IntrospectionSettings>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let issuer = settings
            .issuer
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no issuer configured"))?;
        let keys = KeyCache::remote(&issuer, settings.jwks_url.as_deref(), Arc::clone(&clock))?;
        let introspection = introspection
            .map(|i| {
                Introspector::new(
                    i,
                    issuer.clone(),
                    settings.audience.clone(),
                    settings.leeway,
                    Arc::clone(&clock),
                )
            })
            .transpose()?;
        Ok(Self {
            jwt: JwtVerifier::new(settings.clone(), issuer, Arc::new(keys)),
            settings,
            introspection,
        })
    }

    /// A verifier that trusts exactly `keys` (dev mode).
    pub fn fixed(
        settings: AuthSettings,
        issuer: String,
        keys: &JwkSet,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let keys = KeyCache::fixed(keys, clock)?;
        Ok(Self {
            jwt: JwtVerifier::new(settings.clone(), issuer, Arc::new(keys)),
            settings,
            introspection: None,
        })
    }

    /// Whether signing keys have been loaded at least once.
    pub fn ready(&self) -> bool {
        self.jwt.keys().ready()
    }

    /// Fetches the signing keys now (at start-up).
    pub async fn load(&self) -> anyhow::Result<()> {
        self.jwt.keys().load().await
    }

    /// Key-set fetches so far: (succeeded, failed), for the metrics scrape.
    pub fn refreshes(&self) -> (u64, u64) {
        self.jwt.keys().fetch_counts()
    }

    /// Starts the background key refresh (retries until loaded, then refreshes on expiry).
    pub fn spawn_refresh(&self) {
        self.jwt.keys().spawn_refresh();
    }

    pub async fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Oversized);
        }
        let claims = if looks_like_jwt(token) {
            self.jwt.verify(token).await?
        } else if let Some(introspection) = &self.introspection {
            introspection.introspect(token).await?.as_ref().clone()
        } else {
            return Err(TokenError::Malformed(
                "not a JWT, and no introspection is configured".into(),
            ));
        };
        self.caller(claims)
    }

    /// The checks and the reading that both kinds of token share.
    fn caller(&self, claims: Map<String, Value>) -> Result<TokenClaims, TokenError> {
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::Rejected("no `sub`".into())),
        };
        if let Some(name) = &self.settings.linked_identity_claim {
            let present = match claims.get(name) {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Object(o)) => !o.is_empty(),
                Some(_) => true,
            };
            if !present {
                return Err(TokenError::MissingLinkedIdentity);
            }
        }
        // `scope` (RFC 6749/7662/9068: space-separated); some providers send `scp` as a list.
        let scopes = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => {
                s.split_ascii_whitespace().map(str::to_owned).collect()
            }
            (None, Some(Value::Array(list))) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let client_id = ["azp", "client_id"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let email_verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s == "true" => Some(true),
            Some(Value::String(s)) if s == "false" => Some(false),
            _ => None,
        };
        let registered_at = claims
            .get(&self.settings.registration_claim)
            .and_then(unix_seconds);
        Ok(TokenClaims {
            sub,
            scopes,
            client_id,
            email,
            email_verified,
            registered_at,
        })
    }
}
