//! The PIN and password as resources: `PUT /user/pin` (JSON:API) and the checks whether a PIN or
//! password is set, with an optional long poll.

use super::auth::{Authorized, PasswordCheck, PinCheck, PinUpdate};
use super::error::ApiError;
use super::json_body::JsonBody;
use super::negotiate::{AcceptsJsonApi, AcceptsJsonLeniently, JsonApiContentType};
use super::user::forbidden_on_bad_otp;
use super::{Api, AppState};
use crate::domain::Factor;
use axum::Json;
use axum::extract::Query;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[schema(as = PinType)]
pub enum PinTypeName {
    #[serde(rename = "pin")]
    Pin,
}

#[derive(Deserialize, ToSchema)]
pub struct PinAttributes {
    /// The new PIN.
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "4378")]
    pin: Option<SecretString>,
    /// An account OTP or device TOTP of the user.
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "773829")]
    otp: Option<SecretString>,
}

#[derive(Deserialize, ToSchema)]
pub struct PinResource {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: PinTypeName,
    /// Ignored; iOS sends none, Android a random UUID.
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<String>,
    attributes: PinAttributes,
}

/// JSON:API document of `PUT /user/pin`.
#[derive(Deserialize, ToSchema)]
pub struct PinDocument {
    data: PinResource,
}

/// Set or replace the PIN
///
/// Needs a valid OTP (account OTP or device TOTP), which is consumed only when the PIN is
/// accepted. 406 when the PIN breaks the policy, 403 when the OTP is not valid.
#[utoipa::path(
    put,
    path = "/user/pin",
    tag = "PIN",
    operation_id = "UpdateUserPIN",
    request_body(content = PinDocument, content_type = "application/vnd.api+json"),
    responses((status = 200, description = "The PIN is set.")),
    security(("bearer" = ["user:users.pin:update"]))
)]
pub async fn update(
    Api(state): Api,
    _: AcceptsJsonApi,
    _: JsonApiContentType,
    Authorized(caller, ..): Authorized<PinUpdate>,
    JsonBody(doc): JsonBody<PinDocument>,
) -> Result<StatusCode, ApiError> {
    let PinAttributes { pin, otp } = doc.data.attributes;
    let missing = |field: &str| {
        ApiError::invalid_field(
            &format!("/data/attributes/{field}"),
            format!("`{field}` is required."),
        )
    };
    // Any over-long PIN breaks the PIN policy, so it gets the policy's 406 (Pin::parse looks at
    // the length first; the body limit bounds the work).
    let pin = pin.ok_or_else(|| missing("pin"))?;
    let otp = otp.ok_or_else(|| missing("otp"))?;
    state
        .services
        .change_pin(&caller.subject, pin, &otp)
        .await
        .map_err(forbidden_on_bad_otp)?;
    Ok(StatusCode::OK)
}

/// The query of the long polls (for the OpenAPI document; parsed by `long_poll`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LongPoll {
    /// Wait up to this many seconds for the credential to be set (1..60); without it, answer at once.
    #[param(minimum = 1, maximum = 60)]
    timeout: Option<u64>,
}

type RawPairs = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

/// Parses `?timeout=` by hand, so a bad value is our 400 with `source.parameter`, and a value
/// given twice is named as such rather than reported as out of range.
fn long_poll(query: RawPairs) -> Result<Option<Duration>, ApiError> {
    let bad = |detail: &str| ApiError::InvalidParameter {
        parameter: "timeout",
        detail: detail.into(),
    };
    let out_of_range = || bad("`timeout` must be a whole number of seconds from 1 to 60.");
    let Query(pairs) = query.map_err(|_| out_of_range())?;
    let mut values = pairs.iter().filter(|(k, _)| k == "timeout").map(|(_, v)| v);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad(
            "`timeout` is given more than once; give it once (1 to 60 seconds).",
        ));
    }
    match value.parse::<u64>() {
        Ok(s @ 1..=60) => Ok(Some(Duration::from_secs(s))),
        _ => Err(out_of_range()),
    }
}

async fn check(
    state: &AppState,
    caller: &super::auth::Caller,
    factor: Factor,
    timeout: Option<Duration>,
) -> Result<StatusCode, ApiError> {
    if state
        .services
        .wait_for_credential(&caller.subject, factor, timeout)
        .await?
    {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::FactorNotSet(factor))
    }
}

/// Is a PIN set?
///
/// 200 when the user has a PIN, 404 when not. With `timeout`, waits up to that many seconds for a
/// PIN to be set (a PIN set through any replica ends the wait within about a second).
#[utoipa::path(
    get,
    path = "/user/pin",
    tag = "PIN",
    operation_id = "CheckUserPIN",
    params(LongPoll),
    responses((status = 200, description = "A PIN is set.")),
    security(("bearer" = ["user:users.pin:check"]))
)]
pub async fn check_pin(
    Api(state): Api,
    Authorized(caller, ..): Authorized<PinCheck>,
    query: RawPairs,
) -> Result<StatusCode, ApiError> {
    check(&state, &caller, Factor::Pin, long_poll(query)?).await
}

/// Is a password set?
///
/// 200 when the user has a password, 404 when not; `timeout` as for `GET /user/pin`.
#[utoipa::path(
    get,
    path = "/user/password",
    tag = "Password",
    operation_id = "CheckUserPassword",
    params(LongPoll),
    responses((status = 200, description = "A password is set.")),
    security(("bearer" = ["user:users.password:check"]))
)]
pub async fn check_password(
    Api(state): Api,
    Authorized(caller, ..): Authorized<PasswordCheck>,
    query: RawPairs,
) -> Result<StatusCode, ApiError> {
    check(&state, &caller, Factor::Password, long_poll(query)?).await
}

#[derive(Serialize, ToSchema)]
pub struct FactorsSetResponse {
    pin: bool,
    password: bool,
}

/// Which of PIN and password are set
#[utoipa::path(
    get,
    path = "/user/pin-or-password",
    tag = "PIN",
    operation_id = "CheckUserPinOrPassword",
    responses((status = 200, description = "What is set.", body = FactorsSetResponse, content_type = "application/json")),
    security(("bearer" = ["user:users.pin:check"]))
)]
pub async fn pin_or_password(
    Api(state): Api,
    _: AcceptsJsonLeniently,
    Authorized(caller, ..): Authorized<PinCheck>,
) -> Result<Json<FactorsSetResponse>, ApiError> {
    let set = state.services.factors_set(&caller.subject).await?;
    Ok(Json(FactorsSetResponse {
        pin: set.pin,
        password: set.password,
    }))
}
