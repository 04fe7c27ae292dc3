//! `POST /user/devices/totp`: a device gets an RFC 6238 secret, proven by an OTP, the password or
//! the PIN (checked in that order), or by the after-login grant right after registration.

use super::Api;
use super::auth::{AFTER_LOGIN_SCOPE, Authorized, DeviceTotpCreate};
use super::error::{ApiError, JSON_API};
use super::json_body::JsonBody;
use super::negotiate::{AcceptsJsonApi, JsonApiContentType};
use super::otp::offered;
use crate::domain::DeviceId;
use crate::domain::credential::{MAX_PASSWORD_BYTES, MAX_PIN_BYTES};
use crate::service::devices::{AfterLogin, DeviceProof, IssuedTotp};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, Serialize, ToSchema)]
#[schema(as = DeviceTotpType)]
pub enum DeviceTotpTypeName {
    #[serde(rename = "deviceTOTP")]
    DeviceTotp,
}

#[derive(Deserialize, ToSchema)]
pub struct DeviceTotpProof {
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "8299")]
    pin: Option<SecretString>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    /// An account OTP or device TOTP of the user.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    otp: Option<SecretString>,
}

#[derive(Deserialize, ToSchema)]
pub struct DeviceTotpRequestResource {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: DeviceTotpTypeName,
    /// The device's id: a UUID made by the client. An existing id gets a new secret.
    #[schema(format = Uuid, example = "738e379f-fe30-45ab-819c-ba88804b6368")]
    id: String,
    #[serde(default)]
    #[schema(value_type = Option<DeviceTotpProof>)]
    attributes: Option<DeviceTotpProof>,
}

/// JSON:API document of `POST /user/devices/totp`.
#[derive(Deserialize, ToSchema)]
pub struct DeviceTotpRequest {
    data: DeviceTotpRequestResource,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceTotpAttributes {
    /// RFC 4648 base32 without padding, 160 bits.
    #[schema(example = "PBVDSNDDKZ4HGZ3UG5CHUUSEMJCTCSCU")]
    secret: String,
    /// Seconds per time step.
    #[schema(example = 30)]
    period: u32,
    #[schema(minimum = 6, maximum = 8, example = 6)]
    digits: u8,
    #[schema(example = "SHA1")]
    algorithm: DeviceTotpAlgorithm,
}

#[derive(Serialize, ToSchema)]
pub enum DeviceTotpAlgorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceTotpResource {
    #[serde(rename = "type")]
    kind: DeviceTotpTypeName,
    #[schema(format = Uuid)]
    id: String,
    attributes: DeviceTotpAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceTotpCreated {
    data: DeviceTotpResource,
}

impl From<IssuedTotp> for DeviceTotpCreated {
    fn from(issued: IssuedTotp) -> Self {
        use crate::domain::TotpAlgorithm;
        Self {
            data: DeviceTotpResource {
                kind: DeviceTotpTypeName::DeviceTotp,
                id: issued.device.as_str().to_owned(),
                attributes: DeviceTotpAttributes {
                    secret: issued.secret.base32(),
                    period: issued.settings.period_secs,
                    digits: issued.settings.digits,
                    algorithm: match issued.settings.algorithm {
                        TotpAlgorithm::Sha1 => DeviceTotpAlgorithm::Sha1,
                        TotpAlgorithm::Sha256 => DeviceTotpAlgorithm::Sha256,
                        TotpAlgorithm::Sha512 => DeviceTotpAlgorithm::Sha512,
                    },
                },
            },
        }
    }
}

/// Create a device TOTP secret
///
/// Proof is checked in this order: `otp` (account OTP or device TOTP), `password`, `pin`; one valid
/// is enough. Without any, only the scope `user:device-totps:create-after-login` within the
/// after-login window of the user's registration (the token's `created_at` claim by default)
/// allows it. An existing device id gets a new secret.
#[utoipa::path(
    post,
    path = "/user/devices/totp",
    tag = "TOTP",
    operation_id = "CreateDeviceTOTP",
    request_body(content = DeviceTotpRequest, content_type = "application/vnd.api+json"),
    responses((status = 201, description = "The new secret.", body = DeviceTotpCreated, content_type = "application/vnd.api+json")),
    security(("bearer" = ["user:device-totps:create"]), ("bearer" = ["user:device-totps:create-after-login"]))
)]
pub async fn create(
    Api(state): Api,
    _: AcceptsJsonApi,
    _: JsonApiContentType,
    Authorized(caller, ..): Authorized<DeviceTotpCreate>,
    JsonBody(doc): JsonBody<DeviceTotpRequest>,
) -> Result<Response, ApiError> {
    let device = DeviceId::parse(&doc.data.id)
        .ok_or_else(|| ApiError::invalid_field("/data/id", "The id must be a UUID."))?;
    let attributes = doc.data.attributes.unwrap_or(DeviceTotpProof {
        pin: None,
        password: None,
        otp: None,
    });
    let proof = DeviceProof {
        otp: attributes.otp.filter(|o| !o.expose_secret().is_empty()),
        password: offered(
            attributes.password,
            "/data/attributes/password",
            MAX_PASSWORD_BYTES,
        )?,
        pin: offered(attributes.pin, "/data/attributes/pin", MAX_PIN_BYTES)?,
    };
    let after_login = caller.has_scope(AFTER_LOGIN_SCOPE).then_some(AfterLogin {
        registered_at: caller.registered_at,
    });
    let issued = state
        .services
        .create_device_totp(&caller.subject, device, proof, after_login)
        .await?;
    let mut res = (
        StatusCode::CREATED,
        axum::Json(DeviceTotpCreated::from(issued)),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    Ok(res)
}
