//! `/admin/v1/users/{sub}`: show, unlock, erase, and revoke one device.

use super::documents::AdminUserDocument;
use super::{AdminCaller, target};
use crate::domain::{DeviceId, GuardedFactor};
use crate::http::AppState;
use crate::http::error::{ApiError, JSON_API};
use crate::http::negotiate::AcceptsJsonApi;
use crate::service::account::Erasure;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Show a user
///
/// Which factors are set, their consecutive failures and locks, and the user's device TOTPs (ids
/// and creation times). Never a secret. A user otpd has never seen looks like one with nothing
/// set. Audited (`admin.user-shown`) with the caller's `sub` and client.
#[utoipa::path(
    get,
    path = "/admin/v1/users/{sub}",
    tag = "Admin",
    operation_id = "AdminShowUser",
    params(("sub" = String, Path, description = "The user's `sub` (percent-encoded); one no token can carry (over 255 bytes, control characters) is 404", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses((status = 200, description = "The user's credential state.", body = AdminUserDocument, content_type = "application/vnd.api+json")),
    security(("bearer" = ["otpd:admin"]))
)]
pub async fn show(
    State(state): State<AppState>,
    _: AcceptsJsonApi,
    AdminCaller(actor): AdminCaller,
    Path(sub): Path<String>,
) -> Result<Response, ApiError> {
    let sub = target(&sub)?;
    let status = state.services.user_status(&sub, &actor).await?;
    let mut res = Json(AdminUserDocument::from(status)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    Ok(res)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnlockQuery {
    /// `pin`, `password` or `otp`; absent: all three.
    #[param(inline, value_type = Option<UnlockFactor>)]
    factor: Option<String>,
}

/// The factors an unlock can name (the schema of `factor`; parsed as `GuardedFactor`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
pub enum UnlockFactor {
    Pin,
    Password,
    Otp,
    Phone,
}

/// Unlock a user
///
/// Clears the consecutive failures, locks and disabling of one factor (`factor`) or of all. A
/// disabled PIN or password works again. One audit row per factor (`pin.unlocked`, …) names the
/// caller.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{sub}/unlock",
    tag = "Admin",
    operation_id = "AdminUnlockUser",
    params(("sub" = String, Path, description = "The user's `sub` (percent-encoded); one no token can carry (over 255 bytes, control characters) is 404", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"), UnlockQuery),
    responses((status = 204, description = "Unlocked.")),
    security(("bearer" = ["otpd:admin"]))
)]
pub async fn unlock(
    State(state): State<AppState>,
    AdminCaller(actor): AdminCaller,
    Path(sub): Path<String>,
    Query(query): Query<UnlockQuery>,
) -> Result<StatusCode, ApiError> {
    let sub = target(&sub)?;
    let factors = match query.factor.as_deref().map(GuardedFactor::parse) {
        None => GuardedFactor::ALL.to_vec(),
        Some(Some(factor)) => vec![factor],
        Some(None) => {
            return Err(ApiError::InvalidParameter {
                parameter: "factor",
                detail: "factor must be pin, password, otp or phone.".into(),
            });
        }
    };
    state.services.unlock(&sub, &factors, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Erase a user
///
/// Erases the password, PIN, OTPs, device TOTPs and attempt counters of the user, exactly as
/// `DELETE /user` does, without an OTP: for the identity provider's user-deleted hook. The audit
/// trail stays, with a `user.deleted` row naming the caller. Erasing a user with nothing stored
/// succeeds too, so a repeated hook is harmless.
#[utoipa::path(
    delete,
    path = "/admin/v1/users/{sub}",
    tag = "Admin",
    operation_id = "AdminEraseUser",
    params(("sub" = String, Path, description = "The user's `sub` (percent-encoded); one no token can carry (over 255 bytes, control characters) is 404", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses((status = 204, description = "Every credential record of the user is erased.")),
    security(("bearer" = ["otpd:admin"]))
)]
pub async fn erase(
    State(state): State<AppState>,
    AdminCaller(actor): AdminCaller,
    Path(sub): Path<String>,
) -> Result<StatusCode, ApiError> {
    let sub = target(&sub)?;
    state
        .services
        .delete_user(&sub, Erasure::RequestedBy(&actor))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a device TOTP
///
/// Deletes one device TOTP secret (a lost phone): its codes stop working at once. Audited
/// (`device-totp.revoked`) with the device and the caller.
#[utoipa::path(
    delete,
    path = "/admin/v1/users/{sub}/devices/{id}",
    tag = "Admin",
    operation_id = "AdminRevokeDevice",
    params(
        ("sub" = String, Path, description = "The user's `sub` (percent-encoded); one no token can carry (over 255 bytes, control characters) is 404", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"),
        ("id" = uuid::Uuid, Path, description = "The device id (a UUID)")
    ),
    responses((status = 204, description = "The device TOTP is revoked.")),
    security(("bearer" = ["otpd:admin"]))
)]
pub async fn revoke_device(
    State(state): State<AppState>,
    AdminCaller(actor): AdminCaller,
    Path((sub, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sub = target(&sub)?;
    // A malformed id names no device any user could have.
    let device = DeviceId::parse(&id).ok_or(ApiError::DeviceNotFound)?;
    state.services.revoke_device(&sub, &device, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
