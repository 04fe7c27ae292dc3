//! The only place that knows status codes and JSON:API error bodies.
//!
//! Handlers and extractors return `ApiError`; it travels to `context::request_context` inside the
//! response, which renders it with the request id. Responses that did not come from us (axum's
//! rejections, 405, the body limit, a caught panic) are rewritten there too, so every error a client
//! sees has the same shape.

use super::negotiate::APPLICATION_JSON;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;

pub use super::error_document::{JSON_API, for_status, render};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON")]
    MalformedJson,
    #[error("invalid field {pointer}: {detail}")]
    InvalidField { pointer: String, detail: String },
    #[error("neither pin nor password given")]
    MissingCredential,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("credential not set")]
    CredentialNotSet,
    /// Too many recent failures of the factor; the secret was not checked.
    #[error("credential locked")]
    CredentialLocked { retry_after_secs: u64 },
    /// Too many failures: the factor must be set anew.
    #[error("credential disabled")]
    CredentialDisabled,
    /// The caller (client or source address) exceeded its request rate; nothing about the user.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("invalid OTP")]
    InvalidOtp,
    #[error("OTP refused")]
    OtpForbidden,
    #[error("no valid proof")]
    NoValidProof,
    /// Admin API: the user has no device with this id.
    #[error("device not found")]
    DeviceNotFound,
    #[error("PIN not secure")]
    PinNotSecure(crate::domain::PinRejection),
    #[error("invalid parameter {parameter}")]
    InvalidParameter {
        parameter: &'static str,
        detail: String,
    },
    #[error("{} not set", .0.as_str())]
    FactorNotSet(crate::domain::Factor),
    #[error("token missing")]
    MissingToken,
    #[error("invalid token")]
    InvalidToken,
    #[error("missing linked identity")]
    MissingLinkedIdentity,
    #[error("insufficient scope")]
    InsufficientScope(&'static str),
    #[error("not acceptable")]
    NotAcceptable(&'static str),
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    #[error("not found")]
    NotFound,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("overloaded")]
    Overloaded,
    #[error("database unavailable")]
    Unavailable,
    /// A stored credential names a key (pepper or TOTP key) this service has not loaded.
    #[error("key unavailable")]
    KeyUnavailable,
    #[error("not ready")]
    NotReady,
    #[error("request timed out")]
    RequestTimeout,
    #[error("the token has no email claim")]
    EmailMissing,
    #[error("the token's email is not verified")]
    EmailNotVerified,
    #[error("the token's email is not a usable address")]
    EmailInvalid,
    #[error("too many OTP mails")]
    MailLimit { retry_after_seconds: u64 },
    #[error("mail is not configured")]
    MailNotConfigured,
    #[error("mail could not be sent")]
    MailFailed,
    #[error("identity provider unavailable")]
    IdentityProviderUnavailable,
    #[error("the user already has a password")]
    PasswordAlreadySet,
    #[error("no public URL configured")]
    PublicUrlNotConfigured,
    #[error("PIN and device TOTPs erased")]
    CredentialsErased,
    #[error("not implemented")]
    NotImplemented(&'static str),
    // --- Login sessions (`PUT /sessions/{sessionId}`, docs/sessions.md) ---
    /// otpd has no record of the body's `userId`.
    #[error("unknown user")]
    UnknownUser,
    /// The session id is in use for another user.
    #[error("session mismatch")]
    SessionMismatch,
    /// No live session with this id to be passed (or an id that cannot be one).
    #[error("session not found")]
    SessionNotFound,
    /// The login OTP's mail was refused: PACE's declared 500, with a body that says no more.
    #[error("login OTP mail failed")]
    LoginMailFailed,
    /// The phone endpoints' own errors (`phone_errors.rs`).
    #[error(transparent)]
    Phone(super::phone_errors::PhoneError),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

/// How long a client should wait before retrying a 503, in seconds.
const RETRY_AFTER_UNAVAILABLE: u32 = 1;
/// ... and after `key-unavailable`, which lasts until an operator acts.
const RETRY_AFTER_KEY_UNAVAILABLE: u32 = 300;

/// One entry of a JSON:API `errors` array, before the request id is known.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorSource {
    Pointer(String),
    Parameter(String),
}

/// The cause of a 5xx, carried to the request log line and never to the client.
#[derive(Clone)]
pub struct ErrorCause(pub Arc<anyhow::Error>);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson | ApiError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidOtp | ApiError::FactorNotSet(_) => StatusCode::NOT_FOUND,
            ApiError::OtpForbidden | ApiError::NoValidProof => StatusCode::FORBIDDEN,
            ApiError::PinNotSecure(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::InvalidField { .. }
            | ApiError::MissingCredential
            | ApiError::InvalidCredentials
            | ApiError::EmailMissing
            | ApiError::EmailNotVerified
            | ApiError::EmailInvalid => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MailLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PasswordAlreadySet => StatusCode::CONFLICT,
            ApiError::CredentialsErased => StatusCode::GONE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::UnknownUser | ApiError::SessionMismatch | ApiError::SessionNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::LoginMailFailed => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::CredentialNotSet | ApiError::NotFound | ApiError::DeviceNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::CredentialLocked { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::CredentialDisabled => StatusCode::LOCKED,
            ApiError::MissingToken | ApiError::InvalidToken | ApiError::MissingLinkedIdentity => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded
            | ApiError::Unavailable
            | ApiError::KeyUnavailable
            | ApiError::NotReady
            | ApiError::IdentityProviderUnavailable
            | ApiError::RequestTimeout
            | ApiError::MailNotConfigured
            | ApiError::PublicUrlNotConfigured
            | ApiError::MailFailed => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Phone(e) => e.status(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (code, title, detail): (&'static str, &'static str, Cow<'static, str>) = match self {
            ApiError::MalformedJson => ("malformed-json", "Malformed JSON", "The request body is not valid JSON.".into()),
            ApiError::InvalidField { detail, .. } => ("invalid-field", "Invalid field", detail.clone().into()),
            ApiError::MissingCredential => (
                "missing-credential",
                "No credential given",
                "Give a pin or a password (or both).".into(),
            ),
            ApiError::InvalidCredentials => (
                "invalid-credentials",
                "Invalid credentials",
                "None of the given credentials is valid.".into(),
            ),
            ApiError::CredentialNotSet => (
                "credential-not-set",
                "Credential not set",
                "None of the given credentials is set for this user.".into(),
            ),
            ApiError::CredentialLocked { retry_after_secs } => (
                "credential-locked",
                "Credential locked",
                format!(
                    "Too many failed attempts: this credential is locked and was not checked. Retry in {retry_after_secs} s."
                ).into(),
            ),
            ApiError::CredentialDisabled => (
                "credential-disabled",
                "Credential disabled",
                "Too many failed attempts: this credential is disabled until it is set anew.".into(),
            ),
            ApiError::RateLimited { retry_after_secs } => (
                "rate-limited",
                "Too many requests",
                format!("This client or address sends too many requests. Retry in {retry_after_secs} s.").into(),
            ),
            ApiError::InvalidOtp | ApiError::OtpForbidden => (
                "invalid-otp",
                "Invalid OTP",
                "The one-time password is unknown, expired or already used.".into(),
            ),
            ApiError::NoValidProof => (
                "invalid-proof",
                "No valid proof",
                "None of the given OTP, password or PIN is valid, and no after-login grant applies.".into(),
            ),
            ApiError::PinNotSecure(rejection) => (
                "pin-not-secure",
                "PIN not secure",
                format!("The PIN does not meet the PIN policy: {rejection}.").into(),
            ),
            ApiError::InvalidParameter { detail, .. } => {
                ("invalid-parameter", "Invalid parameter", detail.clone().into())
            }
            ApiError::FactorNotSet(factor) => (
                "credential-not-set",
                "Credential not set",
                format!("The user has no {} set.", factor.as_str()).into(),
            ),
            ApiError::MissingToken => (
                "missing-token",
                "Missing access token",
                "Send an OAuth2 access token as `Authorization: Bearer <token>`.".into(),
            ),
            ApiError::InvalidToken => (
                "invalid-token",
                "Invalid access token",
                "The access token is malformed, expired, not yet valid, or not issued for this service.".into(),
            ),
            // Title and detail as the PACE API documents them.
            ApiError::MissingLinkedIdentity => (
                "missing-linked-identity",
                "Missing linked identity for authorized access",
                "Linked identity is needed to access this resource, please check why the user does not have a linked identity".into(),
            ),
            ApiError::InsufficientScope(scope) => (
                "insufficient-scope",
                "Insufficient scope",
                format!("The access token lacks the scope `{scope}`.").into(),
            ),
            ApiError::NotAcceptable(offered) => (
                "not-acceptable",
                "Not acceptable",
                not_acceptable_detail(offered),
            ),
            ApiError::UnsupportedMediaType(expected) => (
                "unsupported-media-type",
                "Unsupported media type",
                unsupported_media_type_detail(expected),
            ),
            ApiError::NotFound => ("not-found", "Not found", "No such resource.".into()),
            ApiError::DeviceNotFound => (
                "device-not-found",
                "Device not found",
                "The user has no device TOTP with this id.".into(),
            ),
            ApiError::PayloadTooLarge => (
                "payload-too-large",
                "Payload too large",
                "The request body exceeds the size limit.".into(),
            ),
            ApiError::Overloaded => (
                "overloaded",
                "Service overloaded",
                "Too many requests are waiting; retry shortly.".into(),
            ),
            ApiError::Unavailable => (
                "service-unavailable",
                "Service unavailable",
                "The service cannot reach its database; retry shortly.".into(),
            ),
            ApiError::KeyUnavailable => (
                "key-unavailable",
                "Key unavailable",
                "The service cannot check this credential right now: a key it needs is not loaded. The request id identifies it in our logs.".into(),
            ),
            ApiError::IdentityProviderUnavailable => (
                "identity-provider-unavailable",
                "Identity provider unavailable",
                "The service cannot check access tokens with its identity provider right now; retry shortly.".into(),
            ),
            ApiError::NotReady => ("not-ready", "Not ready", "The service is not ready to serve requests.".into()),
            ApiError::RequestTimeout => (
                "request-timeout",
                "Request timeout",
                "The request could not be answered in time; retry shortly.".into(),
            ),
            ApiError::EmailMissing => (
                "email-missing",
                "No email address",
                "The access token carries no `email` claim to send the one-time password to.".into(),
            ),
            ApiError::EmailNotVerified => (
                "email-not-verified",
                "Email address not verified",
                "The access token does not say the email address is verified (`email_verified` is not true).".into(),
            ),
            ApiError::EmailInvalid => (
                "email-invalid",
                "Unusable email address",
                "The `email` claim of the access token is not a usable email address.".into(),
            ),
            ApiError::MailLimit { .. } => (
                "mail-limit",
                "Too many mails",
                "Too many one-time passwords were mailed to this user recently; retry after the time in Retry-After.".into(),
            ),
            ApiError::MailNotConfigured => (
                "mail-not-configured",
                "Mail not configured",
                "This service is not configured to send mail.".into(),
            ),
            ApiError::MailFailed => (
                "mail-failed",
                "Mail could not be sent",
                "The mail server did not accept the message; no one-time password was issued. Retry shortly.".into(),
            ),
            ApiError::PasswordAlreadySet => (
                "password-already-set",
                "Password is already set",
                "The user already has a password; a link to create one is only sent to users without one.".into(),
            ),
            ApiError::PublicUrlNotConfigured => (
                "public-url-not-configured",
                "Public URL not configured",
                "This service is not configured with the public address its links point to.".into(),
            ),
            ApiError::CredentialsErased => (
                "credentials-erased",
                "PIN and devices erased",
                "The prove was skipped or wrong more than 3 times: the user's PIN and device TOTPs are erased.".into(),
            ),
            ApiError::NotImplemented(why) => ("not-implemented", "Not implemented", Cow::Borrowed(*why)),
            ApiError::UnknownUser => (
                "unknown-user",
                "Unknown user",
                "otpd has no record of this user: no password, PIN, device or mail address.".into(),
            ),
            ApiError::SessionMismatch => (
                "session-mismatch",
                "Session mismatch",
                "This session belongs to another user.".into(),
            ),
            ApiError::SessionNotFound => (
                "session-not-found",
                "Session not found",
                "No live session with this id: create it (passedLoginOTP false) first.".into(),
            ),
            ApiError::LoginMailFailed => (
                "login-mail-failed",
                "Login OTP not sent",
                "The login one-time password could not be mailed; the session was not created. Retry shortly.".into(),
            ),
            ApiError::Phone(e) => {
                let body = e.body();
                (body.code, body.title, body.detail)
            }
            ApiError::Internal(_) => (
                "internal-error",
                "Internal server error",
                "Something went wrong on our side. The request id identifies it in our logs.".into(),
            ),
        };
        let source = match self {
            ApiError::InvalidField { pointer, .. } => Some(ErrorSource::Pointer(pointer.clone())),
            ApiError::MissingCredential => Some(ErrorSource::Pointer(String::new())),
            ApiError::PinNotSecure(_) => {
                Some(ErrorSource::Pointer("/data/attributes/pin".to_owned()))
            }
            ApiError::InvalidParameter { parameter, .. } => {
                Some(ErrorSource::Parameter((*parameter).to_owned()))
            }
            ApiError::Phone(e) => e.body().source,
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

    pub fn invalid_field(pointer: &str, detail: impl Into<String>) -> Self {
        ApiError::InvalidField {
            pointer: pointer.to_owned(),
            detail: detail.into(),
        }
    }
}

/// The detail of a 406: static text for the media types otpd answers with, so that its document
/// is rendered once and kept (`error_document::render`) as for the other cheap rejections.
fn not_acceptable_detail(offered: &'static str) -> Cow<'static, str> {
    match offered {
        APPLICATION_JSON => {
            "This endpoint answers with application/json; the Accept header does not allow it.".into()
        }
        JSON_API => {
            "This endpoint answers with application/vnd.api+json; the Accept header does not allow it."
                .into()
        }
        other => {
            format!("This endpoint answers with {other}; the Accept header does not allow it.").into()
        }
    }
}

/// The detail of a 415, static for the media types otpd reads (as [`not_acceptable_detail`]).
fn unsupported_media_type_detail(expected: &'static str) -> Cow<'static, str> {
    match expected {
        APPLICATION_JSON => "Send the request body as application/json.".into(),
        JSON_API => "Send the request body as application/vnd.api+json.".into(),
        other => format!("Send the request body as {other}.").into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut res = body.status.into_response();
        let headers = res.headers_mut();
        match &self {
            ApiError::MissingToken => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::InvalidToken | ApiError::MissingLinkedIdentity => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            ApiError::InsufficientScope(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
                );
            }
            ApiError::Overloaded
            | ApiError::Unavailable
            | ApiError::NotReady
            | ApiError::IdentityProviderUnavailable
            | ApiError::RequestTimeout
            | ApiError::MailFailed => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(RETRY_AFTER_UNAVAILABLE),
                );
            }
            // Fixed only when the operator loads the key: a quick retry would not help.
            ApiError::KeyUnavailable => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(RETRY_AFTER_KEY_UNAVAILABLE),
                );
            }
            ApiError::MailLimit {
                retry_after_seconds,
            } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from((*retry_after_seconds).max(1)),
                );
            }
            ApiError::CredentialLocked { retry_after_secs }
            | ApiError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Phone(e) => {
                if let Some(secs) = e.retry_after() {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
            }
            _ => {}
        }
        if let ApiError::Internal(cause) = self {
            res.extensions_mut().insert(ErrorCause(Arc::new(cause)));
        }
        // Rendered here when the request's id is at hand (a handler's or an extractor's error,
        // inside the request): without the trip through the response's extensions, a map and a
        // box per error. Otherwise the outermost layer renders it (`context::finish_error`).
        match crate::request_span::with_current_id(|id| render(&body, id)) {
            Some(document) => {
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
                *res.body_mut() = axum::body::Body::from(document);
            }
            None => {
                res.extensions_mut().insert(body);
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_errors_have_static_details_that_say_what_the_format_says() {
        for media in [APPLICATION_JSON, JSON_API] {
            let detail = not_acceptable_detail(media);
            assert!(matches!(detail, Cow::Borrowed(_)), "{media}");
            assert_eq!(
                detail,
                format!("This endpoint answers with {media}; the Accept header does not allow it.")
            );
            let detail = unsupported_media_type_detail(media);
            assert!(matches!(detail, Cow::Borrowed(_)), "{media}");
            assert_eq!(detail, format!("Send the request body as {media}."));
        }
        assert_eq!(
            unsupported_media_type_detail("text/csv"),
            "Send the request body as text/csv."
        );
    }
}
