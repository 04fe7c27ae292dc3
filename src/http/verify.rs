//! `POST /user/otp/verify`: a relying service redeems a user's OTP (account OTP, login OTP or
//! device TOTP).

use super::Api;
use super::auth::{Authorized, OtpVerify};
use super::error::ApiError;
use super::json_body::JsonBody;
use super::negotiate::{AcceptsJson, JsonContentType};
use crate::domain::OtpTypes;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct VerifyOtpRequest {
    /// The OTP or device TOTP to redeem.
    #[schema(value_type = String, example = "773829")]
    otp: SecretString,
    /// Which kinds of OTP count; `device-totp` and `account` when absent. `login` (login OTPs of
    /// `PUT /sessions/{sessionId}`) only when named; `totp` never matches (no enrolment in 2022-1).
    #[serde(default)]
    #[schema(value_type = Option<Vec<OtpTypeSchema>>, min_items = 1)]
    types: Option<Vec<String>>,
}

/// The kinds of one-time password.
#[derive(ToSchema)]
#[schema(as = OtpType)]
#[allow(dead_code)]
pub enum OtpTypeSchema {
    #[schema(rename = "account")]
    Account,
    #[schema(rename = "device-totp")]
    DeviceTotp,
    #[schema(rename = "login")]
    Login,
    #[schema(rename = "totp")]
    Totp,
}

fn otp_types(requested: Option<Vec<String>>) -> Result<OtpTypes, ApiError> {
    let Some(names) = requested else {
        return Ok(OtpTypes::ALL);
    };
    let mut types = OtpTypes::NONE;
    for (i, name) in names.iter().enumerate() {
        types = types.with(name).ok_or_else(|| {
            ApiError::invalid_field(
                &format!("/types/{i}"),
                "Unknown type; expected `account`, `device-totp`, `login` or `totp`.",
            )
        })?;
    }
    if types == OtpTypes::NONE {
        return Err(ApiError::invalid_field(
            "/types",
            "Name at least one type, or leave `types` out for `device-totp` and `account`.",
        ));
    }
    Ok(types)
}

/// Verify (and consume) a one-time password
///
/// An account or login OTP is consumed: of any number of concurrent redemptions exactly one
/// succeeds. A device TOTP value is accepted once (±1 time step of clock skew). A login OTP
/// matches only `types` that name `login`, an account OTP only those that name `account` (or
/// leave `types` out); `totp` is accepted as a name and never matches (404).
#[utoipa::path(
    post,
    path = "/user/otp/verify",
    tag = "OTP",
    operation_id = "VerifyOTP",
    request_body(content = VerifyOtpRequest, content_type = "application/json"),
    responses((status = 204, description = "The OTP was valid and is now consumed.")),
    security(("bearer" = ["user:otp:verify"]))
)]
pub async fn verify(
    Api(state): Api,
    _: AcceptsJson,
    _: JsonContentType,
    Authorized(caller, ..): Authorized<OtpVerify>,
    JsonBody(body): JsonBody<VerifyOtpRequest>,
) -> Result<StatusCode, ApiError> {
    let types = otp_types(body.types)?;
    state
        .services
        .redeem_otp(&caller.subject, &body.otp, types)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
