//! The settings of the identity client: which issuer to trust, where its keys are, how tokens are
//! read, and (optionally) where opaque tokens are introspected.

use super::IntrospectionSettings;
use secrecy::SecretString;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// As configured: a trailing slash is kept (discovery decides how tokens spell it).
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub audience: Audience,
    /// Whether `http://` issuer, key-set and introspection URLs are allowed outside dev mode.
    pub allow_insecure_urls: bool,
    pub leeway: Duration,
    pub linked_identity_claim: Option<String>,
    /// The claim that says when the user registered (see `registration_claim`).
    pub registration_claim: String,
    pub introspection: Option<IntrospectionConfig>,
}

/// Which `aud` access tokens must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Nothing configured: refused outside dev mode (a token for another service would do).
    Unset,
    /// `any`: the operator's explicit choice not to check `aud`.
    Any,
    /// Tokens must name this audience.
    Exactly(String),
}

impl Audience {
    /// The audience to check, if any.
    pub fn expected(&self) -> Option<&str> {
        match self {
            Audience::Exactly(aud) => Some(aud),
            Audience::Unset | Audience::Any => None,
        }
    }
}

/// RFC 7662 introspection of opaque tokens: where, as which client, and how long answers are kept.
#[derive(Clone, Debug)]
pub struct IntrospectionConfig {
    pub url: String,
    pub client_id: String,
    pub client_secret_file: PathBuf,
    pub cache_ttl: Duration,
    /// Calls per second to the provider at most; beyond it 503.
    pub max_per_second: NonZeroU32,
}

impl IntrospectionConfig {
    /// What the introspector needs, the client secret read from its file.
    pub fn load(&self, allow_insecure_urls: bool) -> Result<IntrospectionSettings, String> {
        Ok(IntrospectionSettings {
            url: self.url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.read_secret()?,
            cache_ttl: self.cache_ttl,
            max_per_second: self.max_per_second,
            allow_insecure_urls,
        })
    }

    /// Reads the client secret (trailing newlines are not part of it). The error names the file,
    /// never its contents.
    pub fn read_secret(&self) -> Result<SecretString, String> {
        let path = &self.client_secret_file;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let secret = text.trim_end_matches(['\n', '\r']);
        if secret.is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        Ok(SecretString::from(secret.to_owned()))
    }
}
