//! The phone number (PACE CheckUserPhone, UpdateUserPhone, VerifyUserPhone): `GET /user/phone`,
//! `PUT /user/phone` (JSON:API) and `PUT /user/phone/verify` (JSON). See docs/phone.md.

use super::Api;
use super::auth::{Authorized, PhoneCheck, PhoneUpdate as PhoneUpdateScope};
use super::error::ApiError;
use super::json_body::JsonBody;
use super::negotiate::{AcceptsJson, AcceptsJsonApi, JsonApiContentType, JsonContentType};
use super::phone_errors::PhoneError;
use super::sendmail::mail_address;
use crate::domain::PhoneNumber;
use crate::service::{PhoneRefusal, PhoneStatus, PhoneUpdate};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// The HTTP face of the phone use cases' refusals.
pub(super) fn api_error(refusal: PhoneRefusal) -> ApiError {
    ApiError::Phone(match refusal {
        PhoneRefusal::NotSet => PhoneError::NotSet,
        PhoneRefusal::CodeInvalid => PhoneError::CodeInvalid,
        PhoneRefusal::SmsNotConfigured => PhoneError::SmsNotConfigured,
        PhoneRefusal::SmsLimit { retry_after } => PhoneError::SmsLimit {
            retry_after_secs: retry_after,
        },
        PhoneRefusal::SmsFailed(cause) => {
            tracing::warn!(error = %cause, reason = cause.reason(), "phone code SMS not sent; the code was withdrawn");
            PhoneError::SmsFailed
        }
    })
}

/// Is a phone number set?
///
/// 200 when a verified number is set, 201 when a number awaits its code (and none is verified),
/// 404 when there is none. No body.
#[utoipa::path(
    get,
    path = "/user/phone",
    tag = "Phone",
    operation_id = "CheckUserPhone",
    responses(
        (status = 200, description = "Phone number is set (and verified)."),
        (status = 201, description = "Phone number is set but not verified."),
    ),
    security(("bearer" = ["user:users.phone:check"]))
)]
pub async fn check(
    Api(state): Api,
    Authorized(caller, ..): Authorized<PhoneCheck>,
) -> Result<StatusCode, ApiError> {
    match state.services.phone_status(&caller.subject).await? {
        PhoneStatus::Verified => Ok(StatusCode::OK),
        PhoneStatus::Pending => Ok(StatusCode::CREATED),
        PhoneStatus::None => Err(ApiError::Phone(PhoneError::NotSet)),
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = PhoneType)]
pub enum PhoneTypeName {
    #[serde(rename = "phone")]
    Phone,
}

#[derive(Deserialize, ToSchema)]
pub struct PhoneAttributes {
    /// The number in international form (`+` and country code); stored in E.164.
    #[serde(rename = "phoneNumber", default)]
    #[schema(value_type = String, required = true, example = "+49 151 23456789")]
    phone_number: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct PhoneResource {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: PhoneTypeName,
    /// Ignored.
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<String>,
    attributes: PhoneAttributes,
}

/// JSON:API document of `PUT /user/phone`.
#[derive(Deserialize, ToSchema)]
pub struct PhoneDocument {
    data: PhoneResource,
}

/// Set or change the phone number
///
/// Sends a 6-digit code by SMS to the number (201, set but not verified), to be entered with
/// `PUT /user/phone/verify`. The verified number again: 200, nothing sent. Changing a verified
/// number mails a notice to the token's verified `email`. An invalid number is 422
/// `phone-number-invalid`; SMS limits per user and number are 429 `sms-limit`; a failed send is
/// 503 `sms-failed` (the code is withdrawn).
#[utoipa::path(
    put,
    path = "/user/phone",
    tag = "Phone",
    operation_id = "UpdateUserPhone",
    request_body(content = PhoneDocument, content_type = "application/vnd.api+json"),
    responses(
        (status = 200, description = "Phone number is set (the verified one; nothing sent)."),
        (status = 201, description = "Phone number is set but not verified: a code was sent by SMS."),
    ),
    security(("bearer" = ["user:users.phone:update"]))
)]
pub async fn update(
    Api(state): Api,
    _: AcceptsJsonApi,
    _: JsonApiContentType,
    Authorized(caller, ..): Authorized<PhoneUpdateScope>,
    JsonBody(doc): JsonBody<PhoneDocument>,
) -> Result<StatusCode, ApiError> {
    let raw = doc.data.attributes.phone_number.ok_or_else(|| {
        ApiError::invalid_field("/data/attributes/phoneNumber", "`phoneNumber` is required.")
    })?;
    let number =
        PhoneNumber::parse(&raw).map_err(|why| ApiError::Phone(PhoneError::InvalidNumber(why)))?;
    // The notice of a change goes only to an address the identity provider vouches for.
    let notify = mail_address(&caller).ok();
    let done = Arc::clone(&state.services)
        .update_phone(caller.subject, number, notify)
        .await?;
    Ok(match done {
        PhoneUpdate::AlreadyVerified => StatusCode::OK,
        PhoneUpdate::CodeSent => StatusCode::CREATED,
    })
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyPhoneRequest {
    /// The code from the SMS.
    #[schema(value_type = String, example = "748938")]
    code: SecretString,
}

/// Verify the phone number
///
/// With the code sent by SMS: 200, the number is verified. A wrong, expired or used code is 404
/// `phone-code-invalid`; wrong codes count under their own attempt limit (429
/// `credential-locked` with `Retry-After` while locked).
#[utoipa::path(
    put,
    path = "/user/phone/verify",
    tag = "Phone",
    operation_id = "VerifyUserPhone",
    request_body(content = VerifyPhoneRequest, content_type = "application/json"),
    responses((status = 200, description = "Phone number is validated.")),
    security(("bearer" = ["user:users.phone:update"]))
)]
pub async fn verify(
    Api(state): Api,
    _: AcceptsJson,
    _: JsonContentType,
    Authorized(caller, ..): Authorized<PhoneUpdateScope>,
    JsonBody(body): JsonBody<VerifyPhoneRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .verify_phone(&caller.subject, body.code)
        .await?;
    Ok(StatusCode::OK)
}
