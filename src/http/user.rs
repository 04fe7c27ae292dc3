//! `DELETE /user`: with a valid OTP, erase every credential record of the user.

use super::Api;
use super::auth::{Authorized, UserDelete};
use super::error::ApiError;
use super::json_body::JsonBody;
use super::negotiate::{AcceptsJson, JsonContentType};
use crate::service::ServiceError;
use crate::service::account::Erasure;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct DeleteUserRequest {
    /// An account OTP or device TOTP of the user.
    #[schema(value_type = String, example = "773829")]
    otp: SecretString,
}

/// An invalid OTP on an endpoint that changes the account is a 403 (PACE's "invalid credentials").
pub fn forbidden_on_bad_otp(e: ServiceError) -> ApiError {
    match e {
        ServiceError::InvalidOtp => ApiError::OtpForbidden,
        other => other.into(),
    }
}

/// Delete the user's credentials
///
/// Erases the password, PIN, OTPs and device TOTPs of the user. The audit trail stays.
#[utoipa::path(
    delete,
    path = "/user",
    tag = "User",
    operation_id = "DeleteUser",
    request_body(content = DeleteUserRequest, content_type = "application/json"),
    responses((status = 202, description = "Every credential record of the user is erased.")),
    security(("bearer" = ["user:user:delete"]))
)]
pub async fn delete(
    Api(state): Api,
    _: AcceptsJson,
    _: JsonContentType,
    Authorized(caller, ..): Authorized<UserDelete>,
    JsonBody(body): JsonBody<DeleteUserRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .delete_user(&caller.subject, Erasure::WithOtp(&body.otp))
        .await
        .map_err(forbidden_on_bad_otp)?;
    Ok(StatusCode::ACCEPTED)
}
