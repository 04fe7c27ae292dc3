//! The HTTP side of SMS: one request to a generic SMS gateway per message (Twilio's Messages API,
//! a webhook, anything that takes the recipient and the text over HTTP). `sms_*` settings say the
//! URL, method, authentication, extra headers and the body, a JSON or form template whose string
//! values may hold `{to}` (the E.164 number) and `{text}` (the message). Success is any 2xx within
//! `sms_timeout_seconds`. See docs/phone.md for ready examples.

use crate::config::redact_url_password;
use crate::service::sms::{OutgoingSms, SmsFailure, SmsSender};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How otpd authenticates at the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsAuth {
    None,
    /// HTTP Basic: `sms_username` and the secret file's content as the password (Twilio: the
    /// Account SID and the Auth Token).
    Basic {
        username: String,
    },
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// The secret in a header of this name (`X-API-Key`, …).
    Header(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsBodyFormat {
    Json,
    Form,
}

/// The gateway as configured. The secret stays in its file until the gateway is built. `Debug`
/// redacts a password in the URL and the header values (either may be a credential).
#[derive(Clone)]
pub struct SmsGatewaySettings {
    pub url: String,
    pub method: reqwest::Method,
    pub auth: SmsAuth,
    pub secret_file: Option<PathBuf>,
    /// Extra headers, sent as they are (no placeholders).
    pub headers: Vec<(String, String)>,
    pub body_format: SmsBodyFormat,
    /// A JSON value whose strings may hold `{to}` and `{text}`; for `form`, an object of strings.
    pub body: Value,
    pub timeout: Duration,
}

impl fmt::Debug for SmsGatewaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SmsGatewaySettings")
            .field("url", &redact_url_password(&self.url))
            .field("method", &self.method)
            .field("auth", &self.auth)
            .field("secret_file", &self.secret_file)
            .field("headers", &headers)
            .field("body_format", &self.body_format)
            .field("body", &self.body)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SmsGatewaySettings {
    /// Checks what can be checked without the network: the body's shape for its format.
    pub fn validate_body(format: SmsBodyFormat, body: &Value) -> Result<(), String> {
        let Value::Object(fields) = body else {
            return Err("must be a JSON object".into());
        };
        if format == SmsBodyFormat::Form && fields.values().any(|v| !v.is_string()) {
            return Err("every value must be a string for sms_body_format = form".into());
        }
        let text = body.to_string();
        if !text.contains("{to}") || !text.contains("{text}") {
            return Err("must use both {to} and {text}".into());
        }
        Ok(())
    }
}

pub struct HttpSmsGateway {
    http: reqwest::Client,
    settings: SmsGatewaySettings,
    secret: Option<SecretString>,
}

impl fmt::Debug for HttpSmsGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSmsGateway")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpSmsGateway {
    /// Reads the secret file (if the authentication needs one) and builds the client.
    pub fn new(settings: SmsGatewaySettings) -> anyhow::Result<Self> {
        let secret = match (&settings.auth, &settings.secret_file) {
            (SmsAuth::None, _) => None,
            (_, None) => anyhow::bail!(
                "setting `sms_secret_file` (OTPD_SMS_SECRET_FILE) is required with sms_auth"
            ),
            (_, Some(path)) => {
                let raw = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!(
                        "setting `sms_secret_file` (OTPD_SMS_SECRET_FILE): cannot read {}: {e}",
                        path.display()
                    )
                })?;
                let value = raw.trim_end_matches(['\r', '\n']).to_owned();
                if value.is_empty() {
                    anyhow::bail!(
                        "setting `sms_secret_file` (OTPD_SMS_SECRET_FILE): the file is empty"
                    );
                }
                Some(SecretString::from(value))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            settings,
            secret,
        })
    }

    fn body(&self, sms: &OutgoingSms) -> (String, &'static str) {
        let filled = fill(
            &self.settings.body,
            sms.to.as_str(),
            sms.text.expose_secret(),
        );
        match self.settings.body_format {
            SmsBodyFormat::Json => (filled.to_string(), "application/json"),
            SmsBodyFormat::Form => {
                let pairs = filled.as_object().into_iter().flatten().map(|(k, v)| {
                    let v = v.as_str().unwrap_or_default();
                    format!("{}={}", form_encode(k), form_encode(v))
                });
                (
                    pairs.collect::<Vec<_>>().join("&"),
                    "application/x-www-form-urlencoded",
                )
            }
        }
    }
}

/// Replaces `{to}` and `{text}` in every string of `template` (keys included).
fn fill(template: &Value, to: &str, text: &str) -> Value {
    let sub = |s: &str| s.replace("{to}", to).replace("{text}", text);
    match template {
        Value::String(s) => Value::String(sub(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, to, text)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (sub(k), fill(v, to, text)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `application/x-www-form-urlencoded` (space as `+`, as Twilio and every form parser expect).
fn form_encode(s: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    const FORM: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'*')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b' ');
    utf8_percent_encode(s, FORM).to_string().replace(' ', "+")
}

#[async_trait]
impl SmsSender for HttpSmsGateway {
    async fn send(&self, sms: OutgoingSms) -> Result<(), SmsFailure> {
        let (body, content_type) = self.body(&sms);
        let mut request = self
            .http
            .request(self.settings.method.clone(), &self.settings.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in &self.settings.headers {
            request = request.header(name, value);
        }
        let secret = self.secret.as_ref().map(|s| s.expose_secret());
        request = match (&self.settings.auth, secret) {
            (SmsAuth::Basic { username }, Some(secret)) => {
                request.basic_auth(username, Some(secret))
            }
            (SmsAuth::Bearer, Some(secret)) => request.bearer_auth(secret),
            (SmsAuth::Header(name), Some(secret)) => request.header(name, secret),
            _ => request,
        };
        let answer = request.send().await.map_err(|e| {
            if e.is_timeout() {
                SmsFailure::Timeout
            } else {
                SmsFailure::Unreachable(e.without_url().to_string())
            }
        })?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            // The gateway's answer body may echo the number or the text: never logged.
            Err(SmsFailure::Refused(status.as_u16()))
        }
    }
}

/// Development mode without `sms_url`: each SMS is printed on the standard error of
/// `otpd serve --dev` instead of being sent, like `ConsoleMailer`. Never used outside
/// development mode: it shows the code.
pub struct ConsoleSms;

#[async_trait]
impl SmsSender for ConsoleSms {
    async fn send(&self, sms: OutgoingSms) -> Result<(), SmsFailure> {
        eprintln!(
            "\n--- development mode: this SMS was not sent ---\nTo: {}\n\n{}\n--- end of SMS ---\n",
            sms.to.as_str(),
            sms.text.expose_secret()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_in_nested_json_and_form_values_are_encoded() {
        let body = json!({"message": {"to": "{to}", "parts": ["{text}"]}, "n": 1});
        let filled = fill(&body, "+4915123456789", "Code: 123 \"x\"");
        assert_eq!(
            filled,
            json!({"message": {"to": "+4915123456789", "parts": ["Code: 123 \"x\""]}, "n": 1})
        );
        assert_eq!(form_encode("+49 1&2=ü"), "%2B49+1%262%3D%C3%BC");
    }

    #[test]
    fn debug_output_hides_header_values_and_url_passwords() {
        let settings = SmsGatewaySettings {
            url: "https://u:pw-123@sms.example.com/send".into(),
            method: reqwest::Method::POST,
            auth: SmsAuth::None,
            secret_file: None,
            headers: vec![("X-Key".into(), "hdr-456".into())],
            body_format: SmsBodyFormat::Json,
            body: json!({"to": "{to}", "text": "{text}"}),
            timeout: Duration::from_secs(1),
        };
        let text = format!("{settings:?}");
        assert!(
            !text.contains("pw-123") && !text.contains("hdr-456"),
            "{text}"
        );
        assert!(text.contains("X-Key"), "{text}");
    }

    #[test]
    fn a_body_must_name_both_placeholders_and_forms_hold_only_strings() {
        let ok = json!({"To": "{to}", "Body": "{text}"});
        assert!(SmsGatewaySettings::validate_body(SmsBodyFormat::Form, &ok).is_ok());
        let nested = json!({"to": {"n": "{to}"}, "t": "{text}"});
        assert!(SmsGatewaySettings::validate_body(SmsBodyFormat::Json, &nested).is_ok());
        assert!(SmsGatewaySettings::validate_body(SmsBodyFormat::Form, &nested).is_err());
        let no_text = json!({"to": "{to}"});
        assert!(SmsGatewaySettings::validate_body(SmsBodyFormat::Json, &no_text).is_err());
        assert!(SmsGatewaySettings::validate_body(SmsBodyFormat::Json, &json!([1])).is_err());
    }
}
