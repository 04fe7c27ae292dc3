//! The password lifecycle: PACE `PUT /user/password` (mail a link to create the first password),
//! otpd's `POST /user/password/reset-link` (mail a link to replace a forgotten one), PACE
//! `POST /callbacks/password-reset` (the identity provider's reset asks otpd for the prove), and
//! PACE `PUT /user/password/reset`, which names no user and is answered 501.

use super::Api;
use super::auth::{Authorized, PasswordCreate, PasswordResetCallback};
use super::error::{ApiError, JSON_API};
use super::json_body::JsonBody;
use super::negotiate::{APPLICATION_JSON, AcceptsJsonLeniently, is_media_type};
use super::sendmail::mail_address;
use crate::domain::LinkPurpose;
use crate::domain::credential::MAX_PIN_BYTES;
use crate::service::password_reset::CallbackOutcome;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// Create the user's password
///
/// PACE CreateUserPassword: mails a link to the page where the user creates a password, to the
/// verified `email` of the token. Only for users without a password (409 otherwise). The link
/// works once, for `password_link_ttl_seconds` (24 h by default); a new request retires earlier
/// links. Mails count against the same hourly limit as `sendmail`.
#[utoipa::path(
    put,
    path = "/user/password",
    tag = "Password",
    operation_id = "CreateUserPassword",
    responses((status = 202, description = "Password request received, confirmation pending: the mail is sent.")),
    security(("bearer" = ["user:users.password:create"]))
)]
pub async fn create(
    Api(state): Api,
    Authorized(caller, ..): Authorized<PasswordCreate>,
) -> Result<StatusCode, ApiError> {
    let to = mail_address(&caller)?;
    Arc::clone(&state.services)
        .mail_password_link(caller.subject, to, LinkPurpose::Set)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Mail a password reset link (otpd extension)
///
/// Not part of PACE's API: mails a link to the page where a user who has a password and forgot it
/// chooses a new one (404 when the user has no password). The page asks for the PIN or a device
/// TOTP to keep them (PACE's prove). Same mail rules and limits as `PUT /user/password`.
#[utoipa::path(
    post,
    path = "/user/password/reset-link",
    tag = "Password",
    operation_id = "SendPasswordResetLink",
    responses((status = 202, description = "The mail with the reset link is sent.")),
    security(("bearer" = ["user:users.password:create"]))
)]
pub async fn reset_link(
    Api(state): Api,
    Authorized(caller, ..): Authorized<PasswordCreate>,
) -> Result<StatusCode, ApiError> {
    let to = mail_address(&caller)?;
    Arc::clone(&state.services)
        .mail_password_link(caller.subject, to, LinkPurpose::Reset)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The body is declared `application/vnd.api+json` by PACE but is a flat object; plain
/// `application/json` is taken as well (415 for anything else).
pub struct JsonOrJsonApiContentType;

impl<S: Send + Sync> FromRequestParts<S> for JsonOrJsonApiContentType {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if is_media_type(ct, JSON_API) || is_media_type(ct, APPLICATION_JSON) {
            Ok(Self)
        } else {
            Err(ApiError::UnsupportedMediaType(JSON_API))
        }
    }
}

/// PACE's flat body of `POST /callbacks/password-reset`.
#[derive(Deserialize, ToSchema)]
pub struct PasswordResetProve {
    /// The user's PIN, to keep the PIN and device TOTPs.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "5621")]
    pin: Option<SecretString>,
    /// `true`: the user cannot prove; erase the PIN and device TOTPs.
    #[serde(default)]
    skip: Option<bool>,
}

/// Check the prove of a password reset
///
/// PACE CallbackPasswordReset, for identity providers that own the login password and reset it
/// themselves: the user is the token's `sub`. 204 when the PIN is right (PIN and device TOTPs are
/// kept); 422 `invalid-credentials` when it is wrong (counted under the PIN's attempt limits);
/// 404 when the user has no PIN to prove; 410 `credentials-erased` after `skip: true` or on the
/// 4th wrong prove of a reset: the PIN and every device TOTP are erased in one transaction.
#[utoipa::path(
    post,
    path = "/callbacks/password-reset",
    tag = "Password",
    operation_id = "CallbackPasswordReset",
    request_body(content = PasswordResetProve, content_type = "application/vnd.api+json"),
    responses((status = 204, description = "PIN is correct, data will be retained.")),
    security(("bearer" = ["user:callbacks:password-reset"]))
)]
pub async fn callback(
    Api(state): Api,
    _: AcceptsJsonLeniently,
    _: JsonOrJsonApiContentType,
    Authorized(caller, ..): Authorized<PasswordResetCallback>,
    JsonBody(body): JsonBody<PasswordResetProve>,
) -> Result<StatusCode, ApiError> {
    let pin = body.pin.filter(|p| !p.expose_secret().is_empty());
    let skip = body.skip.unwrap_or(false);
    if let Some(pin) = &pin
        && pin.expose_secret().len() > MAX_PIN_BYTES
    {
        return Err(ApiError::invalid_field("/pin", "`pin` is too long."));
    }
    if pin.is_none() && !skip {
        return Err(ApiError::invalid_field(
            "/pin",
            "Give the `pin`, or `skip: true` to erase the PIN and device TOTPs.",
        ));
    }
    match state
        .services
        .password_reset_callback(&caller.subject, pin, skip)
        .await?
    {
        CallbackOutcome::Retained => Ok(StatusCode::NO_CONTENT),
        CallbackOutcome::Erased(_) => Err(ApiError::CredentialsErased),
    }
}

/// Reset the password with a recovery PIN (not implemented)
///
/// PACE ResetPassword carries no token and no user, only an optional `pin`: there is no way to know
/// whose password to reset, so otpd answers 501 `not-implemented`. Use
/// `POST /user/password/reset-link` (a mailed link) or `POST /callbacks/password-reset`.
#[utoipa::path(
    put,
    path = "/user/password/reset",
    tag = "Password",
    operation_id = "ResetPassword",
    responses((status = 501, description = "Not implemented: the request names no user.", body = super::openapi::ErrorDocument, content_type = "application/vnd.api+json"))
)]
pub async fn reset(_: Api) -> ApiError {
    ApiError::NotImplemented(
        "This request names no user. Ask for a reset link (POST /user/password/reset-link) instead.",
    )
}
