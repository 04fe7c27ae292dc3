//! The admin API under `/admin/v1`, outside the base path: support staff and the identity
//! provider's automation show, unlock and erase users, revoke a lost device and read the audit
//! trail. Same bearer tokens as the user API, but a separate scope that user tokens never carry.
//! Every call is audited by the service with the caller's `sub` and client (see `domain::Actor`).

mod audit;
mod documents;
mod users;

use super::AppState;
use super::auth::authenticate;
use super::error::ApiError;
use crate::domain::{Actor, Subject};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Where the admin API is served (`admin_api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminExposure {
    /// On the main listener, and on the admin listener (`metrics_listen`) when there is one.
    On,
    /// Only on the admin listener, which must then be configured.
    AdminListener,
    Off,
}

impl AdminExposure {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "on" => Some(Self::On),
            "admin-listener" => Some(Self::AdminListener),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::AdminListener => "admin-listener",
            Self::Off => "off",
        }
    }
}

/// The admin API's settings (`admin_scope`, `admin_api`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// The scope an admin token must carry.
    pub scope: String,
    pub exposure: AdminExposure,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            scope: DEFAULT_ADMIN_SCOPE.to_owned(),
            exposure: AdminExposure::On,
        }
    }
}

pub const DEFAULT_ADMIN_SCOPE: &str = "otpd:admin";

/// A caller whose token carries the admin scope, as the audit rows name it: 401 without a valid
/// token, 403 without the scope.
pub struct AdminCaller(pub Actor);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        if !caller.has_scope(state.admin_scope) {
            return Err(ApiError::InsufficientScope(state.admin_scope));
        }
        Ok(AdminCaller(Actor::Admin {
            sub: caller.subject,
            client_id: caller.client_id,
        }))
    }
}

/// The `{sub}` of an admin path: the user acted on. A `sub` that no valid token can carry (over
/// 255 bytes, control characters) names no user otpd can have: 404.
fn target(raw: &str) -> Result<Subject, ApiError> {
    Subject::parse(raw).ok_or(ApiError::NotFound)
}

/// The admin routes with their documentation (tag `Admin`), at their full paths.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(users::show, users::erase))
        .routes(routes!(users::unlock))
        .routes(routes!(users::revoke_device))
        .routes(routes!(audit::list))
}
