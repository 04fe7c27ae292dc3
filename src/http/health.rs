//! `/health/live` and `/health/ready`: unauthenticated, cheap, outside the base path.

use super::AppState;
use super::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and signing keys are loaded.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Err(e) = state.services.store.ping().await {
        tracing::warn!(error = %e, "not ready: database unreachable");
        return Err(ApiError::NotReady);
    }
    if !state.identity.ready() {
        tracing::warn!("not ready: no signing keys loaded yet");
        return Err(ApiError::NotReady);
    }
    Ok(Json(json!({"status": "ok"})))
}
