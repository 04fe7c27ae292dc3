//! The phone settings: the SMS gateway (`sms_*`, the adapter's part) and the code's lifetime and
//! the send limits (`phone_code_ttl_seconds`, `sms_per_*_per_hour`, the use case's part).

use super::{ConfigError, Lines, Source, invalid, redact_url_password, secret_path};
use crate::service::PhoneSettings;
use crate::sms::{SmsAuth, SmsBodyFormat, SmsGatewaySettings};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The default body: a plain webhook's `{"to": …, "text": …}`.
const DEFAULT_BODY: &str = r#"{"to":"{to}","text":"{text}"}"#;

#[derive(Clone, Debug)]
pub struct SmsSettings {
    /// `None` when `sms_url` is empty: `PUT /user/phone` answers 503 (dev mode prints instead).
    pub gateway: Option<SmsGatewaySettings>,
    pub phone: PhoneSettings,
}

impl SmsSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let phone = PhoneSettings {
            code_ttl: Duration::from_secs(src.in_range(
                "phone_code_ttl_seconds",
                600u64,
                60..=3600,
            )?),
            per_user_per_hour: src.in_range("sms_per_user_per_hour", 5u32, 1..=100)?,
            per_number_per_hour: src.in_range("sms_per_number_per_hour", 3u32, 1..=100)?,
        };
        let method = match src
            .get("sms_method")
            .unwrap_or("POST")
            .to_uppercase()
            .as_str()
        {
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            _ => return Err(invalid("sms_method", "must be POST or PUT")),
        };
        let auth = match src.get("sms_auth").unwrap_or("none") {
            "none" => SmsAuth::None,
            "basic" => SmsAuth::Basic {
                username: src
                    .get("sms_username")
                    .ok_or_else(|| invalid("sms_username", "required with sms_auth = basic"))?
                    .to_owned(),
            },
            "bearer" => SmsAuth::Bearer,
            other => match other.strip_prefix("header:") {
                Some(name) if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                    SmsAuth::Header(name.to_owned())
                }
                _ => {
                    return Err(invalid(
                        "sms_auth",
                        "must be none, basic, bearer or header:<Header-Name>",
                    ));
                }
            },
        };
        let body_format = match src.get("sms_body_format").unwrap_or("json") {
            "json" => SmsBodyFormat::Json,
            "form" => SmsBodyFormat::Form,
            _ => return Err(invalid("sms_body_format", "must be json or form")),
        };
        let body: Value = serde_json::from_str(src.get("sms_body").unwrap_or(DEFAULT_BODY))
            .map_err(|e| invalid("sms_body", format!("not JSON: {e}")))?;
        SmsGatewaySettings::validate_body(body_format, &body)
            .map_err(|p| invalid("sms_body", p))?;
        let headers = match src.get("sms_headers") {
            None => Vec::new(),
            Some(raw) => parse_headers(raw).map_err(|p| invalid("sms_headers", p))?,
        };
        let secret_file = src.get("sms_secret_file").map(PathBuf::from);
        if auth != SmsAuth::None && secret_file.is_none() {
            return Err(invalid("sms_secret_file", "required with sms_auth"));
        }
        let timeout = Duration::from_secs(src.in_range("sms_timeout_seconds", 10u64, 1..=60)?);
        let gateway = match src.get("sms_url") {
            None => None,
            Some(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(invalid("sms_url", "must start with https:// (or http://)"));
                }
                Some(SmsGatewaySettings {
                    url: url.to_owned(),
                    method,
                    auth,
                    secret_file,
                    headers,
                    body_format,
                    body,
                    timeout,
                })
            }
        };
        Ok(Self { gateway, phone })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        let g = self.gateway.as_ref();
        let auth = g.map(|g| match &g.auth {
            SmsAuth::None => "none".to_owned(),
            SmsAuth::Basic { .. } => "basic".to_owned(),
            SmsAuth::Bearer => "bearer".to_owned(),
            SmsAuth::Header(name) => format!("header:{name}"),
        });
        let username = g.and_then(|g| match &g.auth {
            SmsAuth::Basic { username } => Some(username.clone()),
            _ => None,
        });
        out.extend([
            (
                "sms_url",
                g.map(|g| redact_url_password(&g.url)).unwrap_or_default(),
            ),
            (
                "sms_method",
                g.map_or("POST".into(), |g| g.method.to_string()),
            ),
            ("sms_auth", auth.unwrap_or_else(|| "none".into())),
            ("sms_username", username.unwrap_or_default()),
            (
                "sms_secret_file",
                secret_path(g.and_then(|g| g.secret_file.as_ref())),
            ),
            (
                "sms_headers",
                // Header values may be credentials: names only.
                g.map(|g| {
                    g.headers
                        .iter()
                        .map(|(k, _)| format!("{k}: ***"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            ),
            (
                "sms_body_format",
                match g.map(|g| g.body_format) {
                    Some(SmsBodyFormat::Form) => "form".into(),
                    _ => "json".into(),
                },
            ),
            (
                "sms_body",
                g.map_or(DEFAULT_BODY.into(), |g| g.body.to_string()),
            ),
            (
                "sms_timeout_seconds",
                g.map_or(10, |g| g.timeout.as_secs()).to_string(),
            ),
            (
                "sms_per_user_per_hour",
                self.phone.per_user_per_hour.to_string(),
            ),
            (
                "sms_per_number_per_hour",
                self.phone.per_number_per_hour.to_string(),
            ),
            (
                "phone_code_ttl_seconds",
                self.phone.code_ttl.as_secs().to_string(),
            ),
        ]);
    }
}

/// `{"X-Tenant": "acme"}`: a JSON object of header names and string values.
fn parse_headers(raw: &str) -> Result<Vec<(String, String)>, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("must be a JSON object of header names and values".into());
    };
    fields
        .into_iter()
        .map(|(name, value)| {
            let value = value
                .as_str()
                .ok_or_else(|| format!("the value of {name} must be a string"))?
                .to_owned();
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name} is not a header name"))?;
            reqwest::header::HeaderValue::from_str(&value)
                .map_err(|_| format!("the value of {name} is not a header value"))?;
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};

    #[test]
    fn a_twilio_gateway_parses_and_its_secrets_are_not_described() {
        let c = load(&[
            (
                "OTPD_SMS_URL",
                "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json",
            ),
            ("OTPD_SMS_AUTH", "basic"),
            ("OTPD_SMS_USERNAME", "AC123"),
            ("OTPD_SMS_SECRET_FILE", "/run/secrets/twilio"),
            ("OTPD_SMS_BODY_FORMAT", "form"),
            (
                "OTPD_SMS_BODY",
                r#"{"To":"{to}","From":"+15005550006","Body":"{text}"}"#,
            ),
            ("OTPD_SMS_HEADERS", r#"{"X-Extra":"s3cr3t"}"#),
        ])
        .unwrap();
        let text = c.describe();
        assert!(text.contains("sms_auth = basic"), "{text}");
        assert!(text.contains("sms_headers = X-Extra: ***"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn a_plain_http_gateway_is_warned_about_outside_dev_mode() {
        let env = |url: &str| vec![("OTPD_SMS_URL".to_owned(), url.to_owned())];
        let c = crate::config::Config::load(None, env("http://sms.local/send"), false).unwrap();
        assert!(
            c.warnings().iter().any(|w| w.contains("sms_url")),
            "{:?}",
            c.warnings()
        );
        let c = crate::config::Config::load(None, env("https://sms.local/send"), false).unwrap();
        assert!(!c.warnings().iter().any(|w| w.contains("sms_url")));
    }

    #[test]
    fn bad_gateway_settings_are_refused_by_name() {
        assert_refused(&[
            ("OTPD_SMS_URL", "ftp://x", "sms_url"),
            ("OTPD_SMS_METHOD", "GET", "sms_method"),
            ("OTPD_SMS_AUTH", "digest", "sms_auth"),
            ("OTPD_SMS_AUTH", "bearer", "sms_secret_file"),
            ("OTPD_SMS_AUTH", "basic", "sms_username"),
            ("OTPD_SMS_BODY_FORMAT", "xml", "sms_body_format"),
            ("OTPD_SMS_BODY", r#"{"to":"{to}"}"#, "sms_body"),
            ("OTPD_SMS_BODY", "not json", "sms_body"),
            ("OTPD_SMS_HEADERS", r#"{"X":1}"#, "sms_headers"),
            ("OTPD_SMS_TIMEOUT_SECONDS", "0", "sms_timeout_seconds"),
            ("OTPD_SMS_PER_USER_PER_HOUR", "0", "sms_per_user_per_hour"),
            (
                "OTPD_SMS_PER_NUMBER_PER_HOUR",
                "101",
                "sms_per_number_per_hour",
            ),
            (
                "OTPD_PHONE_CODE_TTL_SECONDS",
                "30",
                "phone_code_ttl_seconds",
            ),
            ("OTPD_PHONE_LOCK_FROM", "x", "phone_lock_from"),
        ]);
    }
}
