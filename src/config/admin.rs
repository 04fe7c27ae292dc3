//! The admin API's settings (`crate::http::admin`): its scope and where it is served.

use super::{ConfigError, Lines, Source, invalid};
use crate::http::admin::{AdminExposure, AdminSettings, DEFAULT_ADMIN_SCOPE};

impl AdminSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let scope = src.get("admin_scope").unwrap_or(DEFAULT_ADMIN_SCOPE).trim();
        if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "admin_scope",
                "must be one scope name without spaces",
            ));
        }
        // User tokens carry `user:…` scopes; an admin scope among them would make every user an
        // admin.
        if scope.starts_with("user:") {
            return Err(invalid(
                "admin_scope",
                format!("`{scope}` looks like a user scope; choose one user tokens never carry"),
            ));
        }
        let exposure = match src.get("admin_api") {
            None => AdminExposure::On,
            Some(raw) => AdminExposure::parse(raw.trim()).ok_or_else(|| {
                invalid(
                    "admin_api",
                    format!("`{raw}` is not on, admin-listener or off"),
                )
            })?,
        };
        if exposure == AdminExposure::AdminListener && src.get("metrics_listen").is_none() {
            return Err(invalid(
                "admin_api",
                "admin-listener needs an admin listener: set metrics_listen too",
            ));
        }
        Ok(Self {
            scope: scope.to_owned(),
            exposure,
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("admin_api", self.exposure.as_str().to_owned()),
            ("admin_scope", self.scope.clone()),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};
    use crate::http::admin::AdminExposure;

    #[test]
    fn a_bad_admin_setting_names_itself() {
        assert_refused(&[
            ("OTPD_ADMIN_SCOPE", "two scopes", "admin_scope"),
            ("OTPD_ADMIN_SCOPE", "user:otp:create", "admin_scope"),
            ("OTPD_ADMIN_API", "sometimes", "admin_api"),
            ("OTPD_ADMIN_API", "admin-listener", "admin_api"),
        ]);
    }

    #[test]
    fn the_admin_api_is_on_with_its_own_scope_by_default() {
        let c = load(&[]).unwrap();
        assert_eq!(c.admin.scope, "otpd:admin");
        assert_eq!(c.admin.exposure, AdminExposure::On);
        let c = load(&[
            ("OTPD_ADMIN_API", "admin-listener"),
            ("OTPD_METRICS_LISTEN", "127.0.0.1:0"),
            ("OTPD_ADMIN_SCOPE", "support"),
        ])
        .unwrap();
        assert_eq!(c.admin.exposure, AdminExposure::AdminListener);
        assert_eq!(c.admin.scope, "support");
    }
}
