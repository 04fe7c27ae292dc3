//! The one door for access tokens: a JWT goes to signature verification, anything else to RFC 7662
//! introspection (when configured), and the claims of either end in the same checks (subject,
//! scopes, linked identity), so a token means the same whichever way it was validated.

use super::introspection::{IntrospectionSettings, Introspector};
use super::jwks::KeyCache;
use super::jwt::{JwtVerifier, looks_like_jwt};
use super::{AuthSettings, Caller, TokenError};
use crate::clock::Clock;
use crate::domain::Subject;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

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

/// Whether a linked-identity claim names something: a non-empty string, array or object, or
/// `true`. `false`, `0`, `""`, `[]`, `{}` and `null` are how providers write "not linked", so
/// they never count.
fn names_an_identity(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(b) => *b,
        Value::Number(_) | Value::Null => false,
    }
}

/// Turns a bearer string into a verified [`Caller`]. Built once per app; cheap to share.
pub struct Identity {
    settings: AuthSettings,
    jwt: JwtVerifier,
    introspection: Option<Introspector>,
}

impl Identity {
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
        let keys = KeyCache::remote(
            &issuer,
            settings.jwks_url.as_deref(),
            settings.allow_insecure_urls,
            Arc::clone(&clock),
        )?;
        let introspection = introspection
            .map(|i| {
                Introspector::new(
                    i,
                    issuer.clone(),
                    settings.audience.expected().map(str::to_owned),
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

    /// Valid JWTs so far: (remembered from an earlier check, signature checked), for the scrape.
    pub fn jwt_verifications(&self) -> (u64, u64) {
        self.jwt.verifications()
    }

    /// Starts the background key refresh (retries until loaded, then refreshes on expiry).
    pub fn spawn_refresh(&self) {
        self.jwt.keys().spawn_refresh();
    }

    /// The one entry point: the caller a bearer token stands for, or why it stands for nobody.
    pub async fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Oversized);
        }
        let claims = if looks_like_jwt(token) {
            self.jwt.verify(token).await?
        } else if let Some(introspection) = &self.introspection {
            // Boxed, as the full JWT check is (jwt.rs): a network call's future is large.
            Box::pin(introspection.introspect(token)).await?
        } else {
            return Err(TokenError::Malformed(
                "not a JWT, and no introspection is configured".into(),
            ));
        };
        self.caller(&claims)
    }

    /// The checks and the reading that both kinds of token share.
    fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, TokenError> {
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => {
                Subject::parse(s).ok_or_else(|| TokenError::Rejected("unusable `sub`".into()))?
            }
            _ => return Err(TokenError::Rejected("no `sub`".into())),
        };
        if let Some(name) = &self.settings.linked_identity_claim
            && !claims.get(name).is_some_and(names_an_identity)
        {
            return Err(TokenError::MissingLinkedIdentity);
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
        Ok(Caller {
            subject,
            scopes,
            client_id,
            email,
            email_verified,
            registered_at,
        })
    }
}
