//! The settings of the identity client: which issuer to trust, where its keys are, how tokens are
//! read, and (optionally) where opaque tokens are introspected.

use super::IntrospectionSettings;
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
    pub linked_identity_claim: Option<String>,
    /// The claim that says when the user registered (see `registration_claim`).
    pub registration_claim: String,
    pub introspection: Option<IntrospectionConfig>,
}

/// RFC 7662 introspection of opaque tokens: where, as which client, and how long answers are kept.
#[derive(Clone, Debug)]
pub struct IntrospectionConfig {
    pub url: String,
    pub client_id: String,
    pub client_secret_file: PathBuf,
    pub cache_ttl: Duration,
}

impl IntrospectionConfig {
    /// What the introspector needs, the client secret read from its file.
    pub fn load(&self) -> Result<IntrospectionSettings, String> {
        Ok(IntrospectionSettings {
            url: self.url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.read_secret()?,
            cache_ttl: self.cache_ttl,
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
