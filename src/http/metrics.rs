//! `GET /metrics`: the Prometheus text exposition of the app's own recorder.

use super::AppState;
use crate::metrics::Gauges;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;

const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn scrape(State(state): State<AppState>) -> Response {
    let load = state.services.hasher.load();
    let pool = state.services.store.pool_usage();
    let (jwks_ok, jwks_failed) = state.identity.refreshes();
    let (jwts_remembered, jwts_checked) = state.identity.jwt_verifications();
    let text = state.services.metrics.render(Gauges {
        hash_waiting: load.waiting,
        hash_running: load.running,
        db_idle: pool.idle,
        db_in_use: pool.in_use,
        db_max: pool.max,
        jwks_refreshes_ok: jwks_ok,
        jwks_refreshes_failed: jwks_failed,
        jwts_remembered,
        jwts_checked,
        connections_open: state.connections.load(Ordering::Relaxed),
        long_polls_waiting: state.services.watch.waiting(),
    });
    let mut res = text.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION));
    res
}
