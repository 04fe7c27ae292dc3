//! JWT access tokens: the header checks that stop the classic attacks, then the signature against
//! the issuer's published keys (`jwks::KeyCache`) and the standard claims.

use super::AuthSettings;
use super::TokenError;
use super::jwks::KeyCache;
use jsonwebtoken::{Algorithm, Validation};
use std::sync::Arc;

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
}

impl JwtVerifier {
    pub fn new(settings: AuthSettings, issuer: String, keys: Arc<KeyCache>) -> Self {
        Self {
            settings,
            issuer,
            keys,
        }
    }

    pub fn keys(&self) -> &Arc<KeyCache> {
        &self.keys
    }

    /// The verified claims of `token`.
    pub async fn verify(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
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
        let Some(key) = self.keys.key_for(header.kid.as_deref(), header.alg).await else {
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
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| TokenError::Rejected(e.to_string()))?;
        Ok(data.claims)
    }
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
