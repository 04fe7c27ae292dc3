//! The HTTP face of otpd: routes, extractors, content negotiation, bearer-token checks, and the
//! mapping of service results to statuses and JSON:API errors.

pub mod auth;
pub mod context;
pub mod devices;
pub mod error;
pub mod health;
pub mod introspection;
pub mod jwks;
pub mod jwt;
pub mod negotiate;
pub mod openapi;
pub mod otp;
pub mod pin;
pub mod rate_limit;
pub mod token;
pub mod user;
pub mod verify;

use crate::service::{ServiceError, Services};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use error::ApiError;
use std::sync::Arc;
use token::TokenVerifier;
use tower_http::catch_panic::CatchPanicLayer;

#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub tokens: Arc<TokenVerifier>,
    pub limits: Arc<rate_limit::RateLimiters>,
}

pub struct RouterSettings<'a> {
    pub base_path: &'a str,
    pub max_body_bytes: usize,
}

pub fn router(state: AppState, settings: RouterSettings<'_>) -> Router {
    let (api, doc) = openapi::api_routes().split_for_parts();
    let doc = openapi::finish(doc, settings.base_path)
        .to_json()
        .unwrap_or_default();
    let api = api
        .route_layer(from_fn_with_state(
            state.clone(),
            rate_limit::limit_by_address,
        ))
        .route_layer(from_fn(context::remember_route));
    let api = if settings.base_path.is_empty() {
        api
    } else {
        Router::new().nest(settings.base_path, api)
    };
    let health = Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
        )
        .route_layer(from_fn(context::remember_route));
    api.merge(health)
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(CatchPanicLayer::new())
        .layer(from_fn(context::request_context))
        .with_state(state)
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
            ServiceError::PinRejected(rejection) => ApiError::PinNotSecure(rejection),
            ServiceError::Overloaded => ApiError::Overloaded,
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::Unavailable
            }
            ServiceError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}
