//! JWT access tokens: the header checks that stop the classic attacks, then the signature against
//! the issuer's published keys (`jwks::KeyCache`) and the standard claims.
//!
//! A token that passed is remembered until it expires, by a SHA-256 digest of the installed key
//! set's generation and the token (never the token itself): a client sends the same token with
//! every request while it lives, and its signature check (tens of µs) is most of what a cheap
//! request costs. Installing keys — a refresh, a rotation, a removed key — starts a new
//! generation, so every token is checked against the new set on its next use; while the key set
//! is stale nothing remembered is used, so requests still trigger its refresh. A token is kept
//! under the generation of the key that checked it, never a later one.

use super::AuthSettings;
use super::TokenError;
use super::answer_cache::{AnswerCache, Entry, TokenDigest, Verdict};
use super::jwks::KeyCache;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// The only algorithms accepted: asymmetric ones. `none` and HMAC are absent on purpose — an HMAC
/// "signature" keyed with the issuer's public key is the classic algorithm-confusion forgery.
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

/// Whether `token` has the shape of a JWS compact serialization (three base64url parts), as
/// opposed to an opaque token for introspection.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

pub struct JwtVerifier {
    settings: AuthSettings,
    issuer: String,
    keys: Arc<KeyCache>,
    /// Tokens that passed, until they expire (only the `active` side is used).
    verified: AnswerCache,
    /// Valid tokens answered from `verified`, and signatures checked: for the metrics scrape.
    remembered: AtomicU64,
    checked: AtomicU64,
}

impl JwtVerifier {
    pub fn new(settings: AuthSettings, issuer: String, keys: Arc<KeyCache>) -> Self {
        Self {
            settings,
            issuer,
            keys,
            verified: AnswerCache::default(),
            remembered: AtomicU64::new(0),
            checked: AtomicU64::new(0),
        }
    }

    /// JWTs found valid so far: (remembered from an earlier check, signature checked now).
    pub fn verifications(&self) -> (u64, u64) {
        (
            self.remembered.load(Ordering::Relaxed),
            self.checked.load(Ordering::Relaxed),
        )
    }

    pub fn keys(&self) -> &Arc<KeyCache> {
        &self.keys
    }

    /// The verified claims of `token`: remembered, or checked now.
    pub async fn verify(&self, token: &str) -> Result<Arc<Map<String, Value>>, TokenError> {
        let now = OffsetDateTime::now_utc();
        // Stale keys are refreshed by the full check, as if nothing were remembered.
        if !self.keys.is_stale()
            && let Some(Verdict::Active(claims)) = self
                .verified
                .get(&digest(self.keys.generation(), token), now)
        {
            self.remembered.fetch_add(1, Ordering::Relaxed);
            return Ok(claims);
        }
        // Boxed: the full check may fetch keys, and its future is kilobytes that every request's
        // future would otherwise carry and copy, a remembered token and a 401 alike.
        let (claims, generation) = Box::pin(self.check(token)).await?;
        let claims = Arc::new(claims);
        self.checked.fetch_add(1, Ordering::Relaxed);
        // Valid for as long as `exp` (with the leeway) allows; `nbf` has passed already. Kept
        // under the generation of the key that checked it: a newer key set never finds it.
        let until = claims
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|exp| exp.checked_add(i64::try_from(self.settings.leeway.as_secs()).ok()?))
            .and_then(|end| OffsetDateTime::from_unix_timestamp(end).ok());
        if let Some(until) = until {
            let entry = Entry {
                verdict: Verdict::Active(Arc::clone(&claims)),
                until,
            };
            self.verified.put(digest(generation, token), entry, now);
        }
        Ok(claims)
    }

    /// Checks `token`'s header, signature and standard claims; the claims, and the generation of
    /// the key set whose key checked it.
    async fn check(&self, token: &str) -> Result<(Map<String, Value>, u64), TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(TokenError::AlgorithmNotAllowed(header.alg));
        }
        // Keys named inside the token are the attacker's choice: only the configured JWKS counts.
        // `crit` would oblige us to understand extensions we do not implement.
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
        let Some((key, generation)) = self.keys.key_for(header.kid.as_deref(), header.alg).await
        else {
            if !self.keys.ready() {
                return Err(TokenError::ProviderUnavailable(
                    "no signing keys loaded yet".into(),
                ));
            }
            return Err(TokenError::UnknownKey(header.kid.clone(), header.alg));
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        // As the provider published it in discovery, so a configured issuer that differs by a
        // trailing slash still matches; without discovery, exactly as configured.
        let issuer = self
            .keys
            .published_issuer()
            .unwrap_or_else(|| self.issuer.clone());
        validation.set_issuer(&[issuer]);
        validation.validate_nbf = true;
        match self.settings.audience.expected() {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            }
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| TokenError::Rejected(e.to_string()))?;
        Ok((data.claims, generation))
    }
}

/// Where a token checked under key-set `generation` is remembered.
fn digest(generation: u64, token: &str) -> TokenDigest {
    let mut hasher = Sha256::new();
    hasher.update(generation.to_le_bytes());
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_told_from_opaque_tokens_by_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJrIn0.c2ln"));
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJrIn0."));
        assert!(!looks_like_jwt(
            "Y2G2vrIaH7hX47kERgl3whVr2w9uwR2p4uDYGy_BYbS"
        ));
        assert!(!looks_like_jwt("a.b.c.d.e"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a+b.c/d.e="));
        assert!(!looks_like_jwt(".."));
    }
}
