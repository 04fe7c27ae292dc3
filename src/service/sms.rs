//! What a use case needs to send an SMS: the message, the sender (an HTTP gateway in production,
//! see `crate::sms`), why a send failed, and the text from the operator-replaceable template.

use super::{ServiceError, Services};
use crate::domain::PhoneNumber;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// The window of the per-user and per-number SMS limits.
pub const SMS_WINDOW: Duration = Duration::from_secs(3600);

/// One text to one number. The text holds a code, so it is a secret.
pub struct OutgoingSms {
    pub to: PhoneNumber,
    pub text: SecretString,
}

impl std::fmt::Debug for OutgoingSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingSms")
            .field("to", &self.to)
            .field("text_len", &self.text.expose_secret().len())
            .finish()
    }
}

/// Why the gateway did not take a message. Never holds the number, the text or the gateway's
/// answer body (which may echo either).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SmsFailure {
    #[error("the SMS gateway did not answer within the timeout")]
    Timeout,
    #[error("the SMS gateway could not be reached: {0}")]
    Unreachable(String),
    #[error("the SMS gateway answered {0}")]
    Refused(u16),
}

impl SmsFailure {
    /// The `reason` label of `otpd_sms_total{result="failed"}`.
    pub fn reason(&self) -> &'static str {
        match self {
            SmsFailure::Timeout => "timeout",
            SmsFailure::Unreachable(_) => "unreachable",
            SmsFailure::Refused(_) => "refused",
        }
    }
}

#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Hands the message to the gateway; `Err` when it did not take it.
    async fn send(&self, sms: OutgoingSms) -> Result<(), SmsFailure>;
}

impl Services {
    /// The code's SMS from `sms/phone-code.txt` (variables `code`, `minutes`, `service_name`).
    pub(super) fn compose_code_sms(
        &self,
        to: &PhoneNumber,
        code: &str,
    ) -> Result<OutgoingSms, ServiceError> {
        let name = "sms/phone-code.txt";
        let text = self
            .templates
            .render(
                name,
                minijinja::context! {
                    code => code,
                    minutes => self.phone.code_ttl.as_secs().div_ceil(60),
                    service_name => self.links.service_name.as_str(),
                },
            )
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("SMS template {name}: {e}")))?;
        Ok(OutgoingSms {
            to: to.clone(),
            text: SecretString::from(text.trim().to_owned()),
        })
    }
}
