//! The errors of the phone endpoints (docs/phone.md): their statuses, codes and bodies, kept
//! beside `error.rs`, which delegates to them through `ApiError::Phone`. Each code is in the
//! README's one error table (a test checks this file too).

use super::error::{ErrorBody, ErrorSource};
use crate::domain::PhoneNumberRejection;
use axum::http::StatusCode;
use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("no phone number")]
    NotSet,
    #[error("invalid phone number")]
    InvalidNumber(PhoneNumberRejection),
    #[error("invalid phone code")]
    CodeInvalid,
    #[error("SMS not configured")]
    SmsNotConfigured,
    #[error("too many SMS")]
    SmsLimit { retry_after_secs: u64 },
    #[error("SMS could not be sent")]
    SmsFailed,
}

/// How long a client should wait before retrying a failed send.
const RETRY_AFTER_SMS_FAILED: u64 = 1;

impl PhoneError {
    pub fn status(&self) -> StatusCode {
        match self {
            PhoneError::NotSet | PhoneError::CodeInvalid => StatusCode::NOT_FOUND,
            PhoneError::InvalidNumber(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PhoneError::SmsLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            PhoneError::SmsNotConfigured | PhoneError::SmsFailed => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `Retry-After` seconds, where the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            PhoneError::SmsLimit { retry_after_secs } => Some((*retry_after_secs).max(1)),
            PhoneError::SmsFailed => Some(RETRY_AFTER_SMS_FAILED),
            _ => None,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (code, title, detail): (&'static str, &'static str, Cow<'static, str>) = match self {
            PhoneError::NotSet => (
                "phone-not-set",
                "Phone number not set",
                "The user has no phone number, verified or awaiting its code.".into(),
            ),
            PhoneError::InvalidNumber(why) => (
                "phone-number-invalid",
                "Invalid phone number",
                format!("{why}. Give it in international form, e.g. +49 151 23456789.").into(),
            ),
            PhoneError::CodeInvalid => (
                "phone-code-invalid",
                "Invalid code",
                "The code is unknown, expired or already used, or no phone number awaits one.".into(),
            ),
            PhoneError::SmsNotConfigured => (
                "sms-not-configured",
                "SMS not configured",
                "This service is not configured to send SMS.".into(),
            ),
            PhoneError::SmsLimit { .. } => (
                "sms-limit",
                "Too many SMS",
                "Too many codes were sent to this user or number recently; retry after the time in Retry-After.".into(),
            ),
            PhoneError::SmsFailed => (
                "sms-failed",
                "SMS could not be sent",
                "The SMS gateway did not take the message; no code was left valid. Retry shortly.".into(),
            ),
        };
        let source = match self {
            PhoneError::InvalidNumber(_) => Some(ErrorSource::Pointer(
                "/data/attributes/phoneNumber".to_owned(),
            )),
            _ => None,
        };
        ErrorBody {
            status: self.status(),
            code,
            title,
            detail,
            source,
        }
    }
}
