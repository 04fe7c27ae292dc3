//! The HTTP front's settings: where the server listens and its connection limits and timeouts
//! (`crate::server`), and where the API's routes sit and how large a body may be (`crate::http`).

use super::{ConfigError, Lines, Source, invalid};
use crate::http::HttpSettings;
use crate::server::ServerSettings;
use std::net::SocketAddr;
use std::time::Duration;

impl ServerSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let listen = src.parse("listen", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        let metrics_listen = match src.get("metrics_listen") {
            None => None,
            Some(raw) => Some(
                raw.trim()
                    .parse()
                    .map_err(|_| invalid("metrics_listen", format!("`{raw}` is not host:port")))?,
            ),
        };
        let secs = |name, default, range| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(src.in_range(name, default, range)?))
        };
        Ok(Self {
            listen,
            metrics_listen,
            header_read_timeout: secs("header_read_timeout_seconds", 5, 1..=300)?,
            first_request_timeout: secs("first_request_timeout_seconds", 3, 1..=300)?,
            idle_timeout: secs("idle_timeout_seconds", 30, 1..=3600)?,
            request_timeout: secs("request_timeout_seconds", 30, 1..=600)?,
            max_requests_per_connection: src.in_range(
                "max_requests_per_connection",
                1000u64,
                1..=1_000_000,
            )?,
            max_connections: src.in_range("max_connections", 1024usize, 1..=100_000)?,
            max_connections_per_address: match src.get("max_connections_per_address") {
                Some(raw) if raw.trim() == "off" => None,
                _ => Some(src.in_range("max_connections_per_address", 64usize, 1..=100_000)?),
            },
            shutdown_grace: secs("shutdown_grace_seconds", 20, 0..=600)?,
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        let metrics_listen = self.metrics_listen.map(|a| a.to_string());
        out.extend([
            ("listen", self.listen.to_string()),
            ("metrics_listen", metrics_listen.unwrap_or_default()),
            (
                "header_read_timeout_seconds",
                self.header_read_timeout.as_secs().to_string(),
            ),
            (
                "first_request_timeout_seconds",
                self.first_request_timeout.as_secs().to_string(),
            ),
            (
                "idle_timeout_seconds",
                self.idle_timeout.as_secs().to_string(),
            ),
            (
                "request_timeout_seconds",
                self.request_timeout.as_secs().to_string(),
            ),
            (
                "max_requests_per_connection",
                self.max_requests_per_connection.to_string(),
            ),
            ("max_connections", self.max_connections.to_string()),
            (
                "max_connections_per_address",
                self.max_connections_per_address
                    .map_or("off".into(), |n| n.to_string()),
            ),
            (
                "shutdown_grace_seconds",
                self.shutdown_grace.as_secs().to_string(),
            ),
        ]);
    }
}

impl HttpSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let base_path = src
            .get("base_path")
            .unwrap_or("/user/2022-1")
            .trim_end_matches('/')
            .to_owned();
        if !base_path.is_empty() && !base_path.starts_with('/') {
            return Err(invalid("base_path", "must start with /"));
        }
        Ok(Self {
            base_path,
            max_body_bytes: src.in_range("max_body_bytes", 16 * 1024usize, 1024..=1024 * 1024)?,
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("base_path", self.base_path.clone()),
            ("max_body_bytes", self.max_body_bytes.to_string()),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};

    #[test]
    fn a_bad_server_setting_names_itself() {
        assert_refused(&[
            ("OTPD_LISTEN", "nowhere", "listen"),
            ("OTPD_METRICS_LISTEN", "nowhere", "metrics_listen"),
            ("OTPD_BASE_PATH", "user", "base_path"),
            ("OTPD_MAX_BODY_BYTES", "1", "max_body_bytes"),
            (
                "OTPD_REQUEST_TIMEOUT_SECONDS",
                "601",
                "request_timeout_seconds",
            ),
            (
                "OTPD_SHUTDOWN_GRACE_SECONDS",
                "601",
                "shutdown_grace_seconds",
            ),
            (
                "OTPD_FIRST_REQUEST_TIMEOUT_SECONDS",
                "0",
                "first_request_timeout_seconds",
            ),
            ("OTPD_IDLE_TIMEOUT_SECONDS", "3601", "idle_timeout_seconds"),
            (
                "OTPD_MAX_CONNECTIONS_PER_ADDRESS",
                "0",
                "max_connections_per_address",
            ),
        ]);
    }

    #[test]
    fn the_connection_cap_per_address_can_be_switched_off() {
        let c = load(&[("OTPD_MAX_CONNECTIONS_PER_ADDRESS", "off")]).unwrap();
        assert_eq!(c.server.max_connections_per_address, None);
        let c = load(&[("OTPD_MAX_CONNECTIONS_PER_ADDRESS", "8")]).unwrap();
        assert_eq!(c.server.max_connections_per_address, Some(8));
    }

    #[test]
    fn a_trailing_slash_of_the_base_path_is_dropped() {
        let c = load(&[("OTPD_BASE_PATH", "/api/")]).unwrap();
        assert_eq!(c.http.base_path, "/api");
    }
}
