//! The HTTP face of otpd: routes, extractors, content negotiation, the extractor that asks
//! `identity` who is calling, and the mapping of service results to statuses and JSON:API errors.

pub mod admin;
pub mod auth;
pub mod context;
pub mod deadline;
pub mod devices;
pub mod dispatch;
pub mod error;
mod error_document;
pub mod health;
pub mod json_body;
pub mod metrics;
pub mod negotiate;
pub mod openapi;
pub mod otp;
pub mod password;
pub mod phone;
mod phone_errors;
pub mod pin;
pub mod rate_limit;
pub mod sendmail;
pub mod sessions;
pub mod user;
pub mod verify;

use crate::identity::Identity;
use crate::server::OpenConnections;
use crate::service::{ServiceError, Services};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::get;
pub use context::{Api, App};
use context::{OuterSettings, RouteLayer};
use error::ApiError;
use std::sync::Arc;
use std::time::Duration;

/// What every handler reads: behind one `Arc`, so the clone each handler's `State` makes is one
/// counter, not one per part (a cheap request paid for each).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
    pub services: Arc<Services>,
    pub identity: Arc<Identity>,
    /// Client connections open on this app's listeners.
    pub connections: OpenConnections,
    pub limits: Arc<rate_limit::RateLimiters>,
    /// The scope admin tokens must carry (`admin_scope`); fixed for the life of the process.
    pub admin_scope: &'static str,
}

/// The HTTP API's own settings: where its routes sit and how large a body may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// Path prefix of the API routes, without a trailing `/` (empty: at the root).
    pub base_path: String,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
}

pub struct RouterSettings<'a> {
    pub base_path: &'a str,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Whether `/metrics` is served here (false when a separate admin listener serves it).
    pub serve_metrics: bool,
    /// Routes served beside the API, outside its base path (the password pages); they get the
    /// same outer layers: request id, log line, metrics, timeout.
    pub pages: Router,
    /// Whether the admin API (`/admin/v1`) is served here.
    pub serve_admin: bool,
    /// `log_rejected_requests`.
    pub rejected_lines: Option<rate_limit::RateQuota>,
}

pub fn router(state: AppState, settings: RouterSettings<'_>) -> App {
    let operations = openapi::operations();
    let doc = openapi::api_routes(&operations).into_openapi();
    let (admin, admin_doc) = admin::routes().split_for_parts();
    // The document describes the admin API wherever it is served (its paths say so).
    let doc = openapi::finish(doc.merge_from(admin_doc), settings.base_path)
        .to_json()
        .unwrap_or_default();
    // The API's handlers note their route and apply the per-address limit in their first
    // extractor (`context::Api`); the admin API beside them does both in a route layer. Most of
    // the API's requests are dispatched by its own table (`dispatch.rs`) before axum's router,
    // which still holds every route for the rest.
    let table = dispatch::ApiTable::new(state.clone(), settings.base_path, &operations);
    let api = openapi::api_router(settings.base_path, &operations);
    let api = if settings.serve_admin {
        api.merge(admin.route_layer(RouteLayer::limited(Arc::clone(&state.limits))))
    } else {
        api
    };
    let openapi = Router::new()
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
        )
        .route_layer(RouteLayer::note());
    let router = api
        .merge(operations_routes(settings.serve_metrics))
        .merge(openapi)
        .with_state(state.clone())
        // The pages read their forms with axum's extractor, which takes its limit from this
        // layer; the API's JSON bodies are limited by `JsonBody` (json_body.rs).
        .merge(
            settings
                .pages
                .layer(DefaultBodyLimit::max(settings.max_body_bytes)),
        )
        .fallback(|| async { ApiError::NotFound });
    App::new(
        router,
        OuterSettings {
            metrics: state.services.metrics.clone(),
            request_timeout: settings.request_timeout,
            max_body_bytes: Some(settings.max_body_bytes),
            rejected_lines: context::RejectedLines::new(settings.rejected_lines),
        },
    )
    .with_api_table(table)
}

/// The admin listener's router: health and metrics, and the admin API where configured.
pub fn admin_router(
    state: AppState,
    request_timeout: Duration,
    serve_admin: bool,
    rejected_lines: Option<rate_limit::RateQuota>,
) -> App {
    let routes = operations_routes(true);
    let routes = if serve_admin {
        let (admin, _) = admin::routes().split_for_parts();
        routes.merge(admin.route_layer(RouteLayer::note()))
    } else {
        routes
    };
    let outer = OuterSettings {
        metrics: state.services.metrics.clone(),
        request_timeout,
        max_body_bytes: None,
        rejected_lines: context::RejectedLines::new(rejected_lines),
    };
    let router = routes
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);
    App::new(router, outer)
}

/// Health (always) and metrics (where configured): unauthenticated, outside the base path.
fn operations_routes(with_metrics: bool) -> Router<AppState> {
    let routes = Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready));
    let routes = if with_metrics {
        routes.route("/metrics", get(metrics::scrape))
    } else {
        routes
    };
    routes.route_layer(RouteLayer::note())
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::InvalidCredentials => ApiError::InvalidCredentials,
            ServiceError::CredentialNotSet => ApiError::CredentialNotSet,
            ServiceError::CredentialLocked { retry_after } => ApiError::CredentialLocked {
                retry_after_secs: crate::domain::lockout::retry_after_secs(retry_after),
            },
            ServiceError::CredentialDisabled => ApiError::CredentialDisabled,
            ServiceError::InvalidOtp => ApiError::InvalidOtp,
            ServiceError::NoValidProof => ApiError::NoValidProof,
            ServiceError::DeviceNotFound => ApiError::DeviceNotFound,
            ServiceError::PinRejected(rejection) => ApiError::PinNotSecure(rejection),
            ServiceError::PasswordRejected(rejection) => {
                ApiError::invalid_field("/password", rejection.to_string())
            }
            ServiceError::PasswordAlreadySet => ApiError::PasswordAlreadySet,
            ServiceError::PublicUrlNotConfigured => ApiError::PublicUrlNotConfigured,
            ServiceError::Overloaded => ApiError::Overloaded,
            ServiceError::MailNotConfigured => ApiError::MailNotConfigured,
            ServiceError::MailLimit { retry_after } => ApiError::MailLimit {
                retry_after_seconds: retry_after,
            },
            ServiceError::MailFailed(cause) => {
                tracing::warn!(
                    error = format!("{cause:#}"),
                    "OTP mail not sent; the OTP was withdrawn"
                );
                ApiError::MailFailed
            }
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::Unavailable
            }
            ServiceError::KeyUnavailable(what) => {
                // The operator's to fix: say exactly which key is missing, once, at error level.
                tracing::error!(problem = %what, "a credential cannot be checked: its key is not loaded");
                ApiError::KeyUnavailable
            }
            ServiceError::UnknownUser => ApiError::UnknownUser,
            ServiceError::SessionMismatch => ApiError::SessionMismatch,
            ServiceError::SessionNotFound => ApiError::SessionNotFound,
            ServiceError::LoginMailFailed(cause) => {
                tracing::warn!(
                    error = format!("{cause:#}"),
                    "login OTP mail not sent; the session and its OTP were withdrawn"
                );
                ApiError::LoginMailFailed
            }
            ServiceError::Phone(refusal) => phone::api_error(refusal),
            ServiceError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}
