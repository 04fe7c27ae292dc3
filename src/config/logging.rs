//! The logging settings: the filter (`log`), the line format (`log_format`) and how many request
//! lines of rejected requests are written (`log_rejected_requests`).

use super::{ConfigError, Lines, Source, invalid};
use crate::http::rate_limit::RateQuota;
use crate::telemetry::{LogFormat, LogSettings};

impl LogSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let format = match src.get("log_format").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("`{other}` is not text or json"),
                ));
            }
        };
        let filter = src.get("log").unwrap_or("info");
        // Refused here rather than replaced at start-up: a typo must not silently log less.
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(filter) {
            return Err(invalid(
                "log",
                format!("`{filter}` is not a log filter: {e}"),
            ));
        }
        let rejected = src.get("log_rejected_requests").unwrap_or("100/s");
        let rejected_lines =
            RateQuota::parse(rejected).map_err(|p| invalid("log_rejected_requests", p))?;
        Ok(Self {
            filter: filter.to_owned(),
            format,
            rejected_lines,
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("log", self.filter.clone()),
            ("log_format", format!("{:?}", self.format).to_lowercase()),
            (
                "log_rejected_requests",
                self.rejected_lines.map_or("off".into(), |q| q.to_string()),
            ),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_refused;

    #[test]
    fn a_bad_log_format_names_itself() {
        assert_refused(&[("OTPD_LOG_FORMAT", "xml", "log_format")]);
    }

    #[test]
    fn a_bad_rejected_line_quota_names_itself() {
        assert_refused(&[(
            "OTPD_LOG_REJECTED_REQUESTS",
            "lots",
            "log_rejected_requests",
        )]);
    }

    #[test]
    fn a_malformed_log_filter_names_itself() {
        assert_refused(&[("OTPD_LOG", "otpd=verbose", "log")]);
    }
}
