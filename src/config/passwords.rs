//! The password lifecycle's settings: the policy (`password_min_length`, `password_blocklist_file`),
//! the links (`public_url`, `service_name`, `password_link_ttl_seconds`) and the templates of pages
//! and mails (`templates_dir`).

use super::{ConfigError, Lines, Source, invalid};
use crate::domain::password::{DEFAULT_MIN_PASSWORD_CHARS, LOWEST_MIN_PASSWORD_CHARS};
use crate::service::{LinkSettings, PasswordSettings, PublicUrl};
use crate::templates::TemplateSettings;
use std::path::PathBuf;
use std::time::Duration;

impl PasswordSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let settings = Self {
            min_length: src.in_range(
                "password_min_length",
                DEFAULT_MIN_PASSWORD_CHARS,
                LOWEST_MIN_PASSWORD_CHARS..=64,
            )?,
            blocklist_file: src.get("password_blocklist_file").map(PathBuf::from),
        };
        // Read now, so a missing or unreadable file stops start-up naming the setting.
        settings
            .policy()
            .map_err(|problem| invalid("password_blocklist_file", problem))?;
        Ok(settings)
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("password_min_length", self.min_length.to_string()),
            (
                "password_blocklist_file",
                self.blocklist_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ]);
    }
}

impl LinkSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let public_url = src
            .get("public_url")
            .map(|raw| PublicUrl::parse(raw).map_err(|p| invalid("public_url", p)))
            .transpose()?;
        let service_name = src.get("service_name").unwrap_or("otpd").trim().to_owned();
        if service_name.is_empty() || service_name.chars().count() > 64 {
            return Err(invalid("service_name", "must be 1..64 characters"));
        }
        Ok(Self {
            public_url,
            service_name,
            ttl: Duration::from_secs(src.in_range(
                "password_link_ttl_seconds",
                86_400u64,
                300..=7 * 86_400,
            )?),
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            (
                "public_url",
                self.public_url
                    .as_ref()
                    .map(|u| u.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            ("service_name", self.service_name.clone()),
            ("password_link_ttl_seconds", self.ttl.as_secs().to_string()),
        ]);
    }
}

impl TemplateSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let dir = src.get("templates_dir").map(PathBuf::from);
        if let Some(dir) = &dir {
            crate::templates::Templates::load(&Self {
                dir: Some(dir.clone()),
            })
            .map_err(|e| invalid("templates_dir", e.to_string()))?;
        }
        Ok(Self { dir })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.push((
            "templates_dir",
            self.dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};

    #[test]
    fn a_bad_password_or_link_setting_names_itself() {
        assert_refused(&[
            ("OTPD_PASSWORD_MIN_LENGTH", "7", "password_min_length"),
            ("OTPD_PASSWORD_MIN_LENGTH", "65", "password_min_length"),
            (
                "OTPD_PASSWORD_BLOCKLIST_FILE",
                "/nonexistent/list",
                "password_blocklist_file",
            ),
            ("OTPD_PUBLIC_URL", "example.com", "public_url"),
            ("OTPD_PUBLIC_URL", "https://x/?a=b", "public_url"),
            (
                "OTPD_PASSWORD_LINK_TTL_SECONDS",
                "60",
                "password_link_ttl_seconds",
            ),
            ("OTPD_TEMPLATES_DIR", "/nonexistent/dir", "templates_dir"),
        ]);
    }

    #[test]
    fn defaults_and_a_public_url() {
        let c = load(&[("OTPD_PUBLIC_URL", "https://id.example.com/otpd/")]).unwrap();
        assert_eq!(c.passwords.min_length, 8);
        assert_eq!(c.links.ttl.as_secs(), 86_400);
        assert_eq!(c.links.service_name, "otpd");
        assert_eq!(
            c.links.public_url.unwrap().as_str(),
            "https://id.example.com/otpd"
        );
    }
}
