//! `POST /user/otp/sendmail`: mail an account OTP to the address in the caller's token.

use super::Api;
use super::auth::{Authorized, Caller, OtpCreate};
use super::error::ApiError;
use crate::domain::EmailAddress;
use axum::http::StatusCode;

/// The address in the caller's token that mail may go to (OTPs here, password links in
/// `password.rs`). Only an address the identity provider vouches for: a secret must not go to an
/// address the user may not own. A provider that says nothing has not vouched.
pub fn mail_address(caller: &Caller) -> Result<EmailAddress, ApiError> {
    let raw = caller.email.as_deref().ok_or(ApiError::EmailMissing)?;
    if caller.email_verified != Some(true) {
        return Err(ApiError::EmailNotVerified);
    }
    EmailAddress::parse(raw).ok_or(ApiError::EmailInvalid)
}

/// No body is read; 204 once the mail server has taken the message.
#[utoipa::path(
    post,
    path = "/user/otp/sendmail",
    tag = "OTP",
    operation_id = "SendOTPMail",
    description = "Issues an account OTP and mails it to the address in the token's `email` claim \
        (refused with 422 unless `email_verified` is true). Per-user hourly limit (429 with `Retry-After`). \
        If the mail cannot be sent the OTP is withdrawn and the answer is 503 `mail-failed`.",
    responses((status = 204, description = "The OTP was mailed.")),
    security(("bearer" = ["user:otp:create"]))
)]
pub async fn send(
    Api(state): Api,
    Authorized(caller, ..): Authorized<OtpCreate>,
) -> Result<StatusCode, ApiError> {
    let to = mail_address(&caller)?;
    std::sync::Arc::clone(&state.services)
        .mail_otp(caller.subject, to)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
