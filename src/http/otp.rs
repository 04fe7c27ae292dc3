//! `POST /user/otp`: a PIN or password in, a one-time password out.

use super::Api;
use super::auth::{Authorized, OtpCreate};
use super::error::ApiError;
use super::json_body::JsonBody;
use super::negotiate::{AcceptsJson, JsonContentType};
use crate::domain::Attempt;
use crate::domain::credential::{MAX_PASSWORD_BYTES, MAX_PIN_BYTES};
use crate::service::otp::{IssuedOtp, Proof};
use axum::Json;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct CreateOtpRequest {
    /// The user's PIN.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "8299")]
    pin: Option<SecretString>,
    /// The user's password (checked first).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtpCreated {
    /// The one-time password: a string of digits.
    #[schema(example = "773829")]
    otp: String,
    /// UTC, literal `Z`, no fractional seconds.
    #[schema(format = DateTime, example = "2026-11-25T20:31:00Z")]
    expires_at: String,
}

impl OtpCreated {
    /// The answer for an issued OTP (also the login OTP of `PUT /sessions/{sessionId}`).
    pub fn new(otp: &str, expires_at: OffsetDateTime) -> Self {
        Self {
            otp: otp.to_owned(),
            expires_at: pace_datetime(expires_at),
        }
    }
}

/// `2026-11-25T20:31:00Z`: UTC, literal Z, no fraction (the only form older iOS SDKs parse).
pub fn pace_datetime(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// An offered factor: empty counts as not offered; longer than any stored value can be is a 422.
pub(super) fn offered(
    value: Option<SecretString>,
    pointer: &str,
    max: usize,
) -> Result<Option<Attempt>, ApiError> {
    match value {
        Some(v) if v.expose_secret().is_empty() => Ok(None),
        Some(v) => Attempt::bounded(v, max)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field(pointer, format!("At most {max} bytes."))),
        None => Ok(None),
    }
}

/// Create OTP
///
/// Verifies that the passed PIN or password is valid for the user account and generates a one
/// time password (OTP). One of the provided values need to be valid. First check is on the
/// password, 2nd on the PIN.
#[utoipa::path(
    post,
    path = "/user/otp",
    tag = "OTP",
    operation_id = "CreateOTP",
    request_body(content = CreateOtpRequest, content_type = "application/json"),
    responses((status = 201, description = "Valid OTP.", body = OtpCreated, content_type = "application/json")),
    security(("bearer" = ["user:otp:create"]))
)]
pub async fn create(
    Api(state): Api,
    _: AcceptsJson,
    _: JsonContentType,
    Authorized(caller, ..): Authorized<OtpCreate>,
    JsonBody(body): JsonBody<CreateOtpRequest>,
) -> Result<(StatusCode, Json<OtpCreated>), ApiError> {
    let proof = Proof {
        password: offered(body.password, "/password", MAX_PASSWORD_BYTES)?,
        pin: offered(body.pin, "/pin", MAX_PIN_BYTES)?,
    };
    if proof.password.is_none() && proof.pin.is_none() {
        return Err(ApiError::MissingCredential);
    }
    let IssuedOtp { code, expires_at } = state.services.issue_otp(&caller.subject, proof).await?;
    Ok((
        StatusCode::CREATED,
        Json(OtpCreated {
            otp: code.expose().to_owned(),
            expires_at: pace_datetime(expires_at),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_have_no_fraction_and_a_literal_z() {
        assert_eq!(
            pace_datetime(datetime!(2026-11-25 20:31:00.999 UTC)),
            "2026-11-25T20:31:00Z"
        );
        assert_eq!(
            pace_datetime(datetime!(2026-11-25 21:31:00 +1)),
            "2026-11-25T20:31:00Z"
        );
    }
}
