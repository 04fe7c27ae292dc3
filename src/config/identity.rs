//! The identity settings: which issuer's tokens are trusted, where its keys are, how tokens are
//! read, and where opaque tokens are introspected (`oidc_issuer`, `introspection_*`, …).

use super::{ConfigError, Lines, Source, invalid, secret_path};
use crate::identity::{AuthSettings, IntrospectionConfig, IntrospectionSettings};
use std::path::PathBuf;
use std::time::Duration;

impl AuthSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let url = |name: &'static str| -> Result<Option<String>, ConfigError> {
            match src.get(name) {
                None => Ok(None),
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Ok(Some(u.trim_end_matches('/').to_owned()))
                }
                Some(_) => Err(invalid(name, "must be an http:// or https:// URL")),
            }
        };
        // Checked even without introspection_url, so a bad value is found before it is used.
        let cache_ttl =
            Duration::from_secs(src.in_range("introspection_cache_seconds", 30u64, 0..=300)?);
        Ok(Self {
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
                Some(url) => Some(introspection(src, url, cache_ttl)?),
            },
        })
    }

    /// The introspection settings with the client secret read from its file; `None` when
    /// introspection is not configured.
    pub fn introspection_settings(&self) -> Result<Option<IntrospectionSettings>, ConfigError> {
        self.introspection
            .as_ref()
            .map(|i| {
                i.load()
                    .map_err(|problem| invalid("introspection_client_secret_file", problem))
            })
            .transpose()
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let introspection = |f: fn(&IntrospectionConfig) -> String| {
            self.introspection.as_ref().map(f).unwrap_or_default()
        };
        out.extend([
            ("oidc_issuer", opt(&self.issuer)),
            ("jwks_url", opt(&self.jwks_url)),
            ("audience", opt(&self.audience)),
            ("token_leeway_seconds", self.leeway.as_secs().to_string()),
            ("linked_identity_claim", opt(&self.linked_identity_claim)),
            ("introspection_url", introspection(|i| i.url.clone())),
            (
                "introspection_client_id",
                introspection(|i| i.client_id.clone()),
            ),
            (
                "introspection_client_secret_file",
                introspection(|i| secret_path(Some(&i.client_secret_file))),
            ),
            (
                "introspection_cache_seconds",
                introspection(|i| i.cache_ttl.as_secs().to_string()),
            ),
            ("registration_claim", self.registration_claim.clone()),
        ]);
    }
}

fn introspection(
    src: &Source,
    url: String,
    cache_ttl: Duration,
) -> Result<IntrospectionConfig, ConfigError> {
    let required = |name: &'static str| {
        src.get(name)
            .ok_or_else(|| invalid(name, "required with introspection_url"))
    };
    Ok(IntrospectionConfig {
        url,
        client_id: required("introspection_client_id")?.to_owned(),
        client_secret_file: PathBuf::from(required("introspection_client_secret_file")?),
        cache_ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};

    #[test]
    fn a_bad_identity_setting_names_itself() {
        assert_refused(&[
            (
                "OTPD_INTROSPECTION_URL",
                "https://id.example/introspect",
                "introspection_client_id",
            ),
            ("OTPD_OIDC_ISSUER", "id.example", "oidc_issuer"),
            ("OTPD_TOKEN_LEEWAY_SECONDS", "301", "token_leeway_seconds"),
        ]);
    }

    #[test]
    fn an_unreadable_client_secret_names_its_setting() {
        let c = load(&[
            ("OTPD_INTROSPECTION_URL", "https://id.example/introspect"),
            ("OTPD_INTROSPECTION_CLIENT_ID", "otpd"),
            (
                "OTPD_INTROSPECTION_CLIENT_SECRET_FILE",
                "/nonexistent/secret",
            ),
        ])
        .unwrap();
        let Err(e) = c.identity.introspection_settings() else {
            panic!("a missing secret file is refused");
        };
        assert!(
            e.to_string().contains("introspection_client_secret_file"),
            "{e}"
        );
    }
}
