//! `PUT /sessions/{sessionId}` (PACE UpdateSession): the identity provider's login flow creates a
//! session and gets a login OTP, then reports it passed. See docs/sessions.md.

use super::Api;
use super::auth::{Authorized, SessionUpdate};
use super::error::ApiError;
use super::json_body::JsonBody;
use super::negotiate::{AcceptsJson, JsonContentType};
use super::otp::OtpCreated;
use crate::domain::{SessionId, session_user};
use crate::service::sessions::SessionAnswer;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSessionRequest {
    /// The user the session is for (a UUID: the user's `sub` at the identity provider).
    #[schema(value_type = String, format = Uuid, example = "6f1c2a9e-2d0b-4c11-9a3e-0c5b7f3d9e21")]
    user_id: String,
    /// `true`: the user passed the session's login OTP. Absent means `false`.
    #[serde(default, rename = "passedLoginOTP")]
    #[schema(example = false)]
    passed_login_otp: bool,
}

/// Update session
///
/// In case the session is created an OTP for the user is created and sent via email, the caller
/// can verify the OTP using VerifyOTP (`types: ["login"]`) or use the provided value. A session
/// id not seen before (or expired) with `passedLoginOTP` false creates the session: 200 with its
/// login OTP, mailed to the address otpd last mailed an OTP to for this user (if any). A known
/// session of the user: `passedLoginOTP` true records it, false changes nothing; both 204, and no
/// second OTP is issued. A mail server that refuses the login OTP's mail: 500
/// `login-mail-failed`, the session and the OTP are withdrawn.
#[utoipa::path(
    put,
    path = "/sessions/{sessionId}",
    tag = "Sessions",
    operation_id = "UpdateSession",
    params(("sessionId" = String, Path, description = "The identity provider's session id: 1..128 characters of `A-Z a-z 0-9 . _ ~ : -`; anything else is 404 `session-not-found`", min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._~:-]+$")),
    request_body(content = UpdateSessionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OTP send.", body = OtpCreated, content_type = "application/json"),
        (status = 204, description = "Session updated."),
    ),
    security(("bearer" = ["user:sessions:update"]))
)]
pub async fn update(
    Api(state): Api,
    _: AcceptsJson,
    _: JsonContentType,
    _: Authorized<SessionUpdate>,
    Path(session_id): Path<String>,
    JsonBody(body): JsonBody<UpdateSessionRequest>,
) -> Result<Response, ApiError> {
    let user = session_user(&body.user_id)
        .ok_or_else(|| ApiError::invalid_field("/userId", "Expected a UUID."))?;
    let id = SessionId::parse(&session_id).ok_or(ApiError::SessionNotFound)?;
    let answer = Arc::clone(&state.services)
        .update_session(id, user, body.passed_login_otp)
        .await?;
    Ok(match answer {
        SessionAnswer::Created(issued) => (
            StatusCode::OK,
            axum::Json(OtpCreated::new(issued.code.expose(), issued.expires_at)),
        )
            .into_response(),
        SessionAnswer::Updated => StatusCode::NO_CONTENT.into_response(),
    })
}
