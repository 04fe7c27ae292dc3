//! The identity settings: which issuer's tokens are trusted, where its keys are, how tokens are
//! read, and where opaque tokens are introspected (`oidc_issuer`, `introspection_*`, …).

use super::{ConfigError, Lines, Source, invalid, secret_path};
use crate::identity::{Audience, AuthSettings, IntrospectionConfig, IntrospectionSettings};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

impl AuthSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let raw_url = |name: &'static str| -> Result<Option<&str>, ConfigError> {
            match src.get(name) {
                None => Ok(None),
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => Ok(Some(u)),
                Some(_) => Err(invalid(name, "must be an http:// or https:// URL")),
            }
        };
        let url = |name| Ok(raw_url(name)?.map(|u| u.trim_end_matches('/').to_owned()));
        // Checked even without introspection_url, so a bad value is found before it is used.
        let cache_ttl =
            Duration::from_secs(src.in_range("introspection_cache_seconds", 30u64, 0..=300)?);
        let max_per_second = src.in_range("introspection_max_per_second", 100u32, 1..=100_000)?;
        let max_per_second = NonZeroU32::new(max_per_second).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            // Kept as written: the provider's discovery document says whether its `iss` ends in
            // a slash, and tokens are compared with that.
            issuer: raw_url("oidc_issuer")?.map(str::to_owned),
            jwks_url: url("jwks_url")?,
            audience: match src.get("audience") {
                None => Audience::Unset,
                Some("any") => Audience::Any,
                Some(aud) => Audience::Exactly(aud.to_owned()),
            },
            allow_insecure_urls: src.parse("allow_insecure_idp_urls", false)?,
            leeway: Duration::from_secs(src.in_range("token_leeway_seconds", 30u64, 0..=300)?),
            linked_identity_claim: src.get("linked_identity_claim").map(str::to_owned),
            registration_claim: src
                .get("registration_claim")
                .unwrap_or("created_at")
                .to_owned(),
            introspection: match url("introspection_url")? {
                None => None,
                Some(url) => Some(introspection(src, url, cache_ttl, max_per_second)?),
            },
        })
    }

    /// The introspection settings with the client secret read from its file; `None` when
    /// introspection is not configured.
    pub fn introspection_settings(&self) -> Result<Option<IntrospectionSettings>, ConfigError> {
        self.introspection
            .as_ref()
            .map(|i| {
                i.load(self.allow_insecure_urls)
                    .map_err(|problem| invalid("introspection_client_secret_file", problem))
            })
            .transpose()
    }

    /// What serving needs outside dev mode: an issuer, URLs that cannot be tampered with on the
    /// way (unless explicitly allowed), and a decision about the audience.
    pub(super) fn require_serving(&self) -> Result<(), ConfigError> {
        if self.issuer.is_none() {
            return Err(invalid(
                "oidc_issuer",
                "required outside dev mode: set OTPD_OIDC_ISSUER to your identity provider's issuer URL, or add --dev for development mode (`otpd serve --dev`, `otpd --dev check-config`)",
            ));
        }
        if !self.allow_insecure_urls
            && let Some((name, _)) = self.urls().find(|(_, url)| url.starts_with("http://"))
        {
            return Err(invalid(
                name,
                "an http:// URL lets anyone on the path swap the keys or the answers: use https://, \
                 or set OTPD_ALLOW_INSECURE_IDP_URLS=true for a provider on the same host",
            ));
        }
        if self.audience == Audience::Unset {
            return Err(invalid(
                "audience",
                "required outside dev mode: set OTPD_AUDIENCE to the `aud` your provider writes \
                 into tokens for otpd (or to `any` to accept tokens issued for any service)",
            ));
        }
        Ok(())
    }

    /// The identity provider URLs in use, by setting name.
    fn urls(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("oidc_issuer", self.issuer.as_deref()),
            ("jwks_url", self.jwks_url.as_deref()),
            (
                "introspection_url",
                self.introspection.as_ref().map(|i| i.url.as_str()),
            ),
        ]
        .into_iter()
        .filter_map(|(name, url)| Some((name, url?)))
    }

    /// The risky choices that remain allowed, one sentence each, for `check-config` and start-up.
    pub(super) fn warnings(&self, out: &mut Vec<String>) {
        if self.audience == Audience::Any {
            out.push(
                "audience = any: tokens issued for any service of the provider are accepted; set the audience otpd's tokens carry".into(),
            );
        }
        for (name, url) in self.urls().filter(|(_, u)| u.starts_with("http://")) {
            out.push(format!(
                "{name} = {url}: keys or answers travel unprotected (allow_insecure_idp_urls = true); only acceptable on the same host"
            ));
        }
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let introspection = |f: fn(&IntrospectionConfig) -> String| {
            self.introspection.as_ref().map(f).unwrap_or_default()
        };
        out.extend([
            ("oidc_issuer", opt(&self.issuer)),
            ("jwks_url", opt(&self.jwks_url)),
            (
                "audience",
                match &self.audience {
                    Audience::Unset => String::new(),
                    Audience::Any => "any".into(),
                    Audience::Exactly(aud) => aud.clone(),
                },
            ),
            (
                "allow_insecure_idp_urls",
                self.allow_insecure_urls.to_string(),
            ),
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
            (
                "introspection_max_per_second",
                introspection(|i| i.max_per_second.to_string()),
            ),
            ("registration_claim", self.registration_claim.clone()),
        ]);
    }
}

fn introspection(
    src: &Source,
    url: String,
    cache_ttl: Duration,
    max_per_second: NonZeroU32,
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
        max_per_second,
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
            (
                "OTPD_INTROSPECTION_MAX_PER_SECOND",
                "0",
                "introspection_max_per_second",
            ),
        ]);
    }

    /// A production configuration: `pairs` on top of an https issuer, an audience and a pepper.
    fn serving(pairs: &[(&str, &str)]) -> crate::config::Config {
        let mut env: Vec<(String, String)> = [
            ("OTPD_OIDC_ISSUER", "https://id.example/"),
            ("OTPD_AUDIENCE", "otpd"),
            ("OTPD_PEPPER_FILE", "/p"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        crate::config::Config::load(None, env, false).unwrap()
    }

    #[test]
    fn outside_dev_mode_http_provider_urls_are_refused_unless_allowed() {
        for (var, url, setting) in [
            ("OTPD_OIDC_ISSUER", "http://id.example", "oidc_issuer"),
            ("OTPD_JWKS_URL", "http://id.example/jwks", "jwks_url"),
        ] {
            let e = serving(&[(var, url)])
                .require_serving_settings()
                .unwrap_err()
                .to_string();
            assert!(e.contains(setting) && e.contains("ALLOW_INSECURE"), "{e}");
            let allowed = serving(&[(var, url), ("OTPD_ALLOW_INSECURE_IDP_URLS", "true")]);
            allowed.require_serving_settings().unwrap();
            assert!(
                allowed.warnings().iter().any(|w| w.contains(url)),
                "{:?}",
                allowed.warnings()
            );
        }
        let c = serving(&[]);
        c.require_serving_settings().unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        assert_refused(&[(
            "OTPD_ALLOW_INSECURE_IDP_URLS",
            "yes please",
            "allow_insecure_idp_urls",
        )]);
    }

    #[test]
    fn outside_dev_mode_an_audience_or_an_explicit_any_is_required() {
        let e = serving(&[("OTPD_AUDIENCE", "")])
            .require_serving_settings()
            .unwrap_err()
            .to_string();
        assert!(e.contains("audience"), "{e}");
        let any = serving(&[("OTPD_AUDIENCE", "any")]);
        any.require_serving_settings().unwrap();
        assert_eq!(any.identity.audience.expected(), None);
        assert!(
            any.warnings()
                .iter()
                .any(|w| w.starts_with("audience = any")),
            "{:?}",
            any.warnings()
        );
        // Dev mode needs neither.
        load(&[]).unwrap().require_serving_settings().unwrap();
    }

    #[test]
    fn the_issuer_is_kept_as_written() {
        assert_eq!(
            serving(&[]).identity.issuer.as_deref(),
            Some("https://id.example/")
        );
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
