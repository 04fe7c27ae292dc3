//! The password pages, served outside the API's base path: `/password/set` and `/password/reset`
//! (the targets of mailed links) and their stylesheet and script under `/password/assets/`.
//!
//! Like `http`, this layer only extracts, calls one service and renders; it never touches the
//! store. The text comes from templates an operator can replace (`crate::templates`). Every answer
//! carries the security headers of `guard.rs`; every form post passes its origin check.

mod guard;
mod pages;

use crate::http::context::RouteLayer;
use crate::service::{PublicUrl, Services};
use axum::Router;
use axum::middleware::from_fn;
use axum::routing::get;
use std::sync::Arc;

/// What the pages need beyond the services.
#[derive(Debug, Clone)]
pub struct PageSettings {
    /// The operator's public URL: form posts must come from its origin.
    pub public_url: Option<PublicUrl>,
}

#[derive(Clone)]
struct WebState {
    services: Arc<Services>,
    /// `scheme://host[:port]` of the public URL, when one is configured.
    origin: Option<String>,
}

pub fn router(services: Arc<Services>, settings: PageSettings) -> Router {
    let state = WebState {
        services,
        origin: settings.public_url.map(|u| u.origin().to_owned()),
    };
    Router::new()
        .route(
            "/password/set",
            get(pages::show_set).post(pages::submit_set),
        )
        .route(
            "/password/reset",
            get(pages::show_reset).post(pages::submit_reset),
        )
        .route("/password/assets/{file}", get(pages::asset))
        .route_layer(RouteLayer::note())
        .layer(from_fn(guard::security_headers))
        .with_state(state)
}
