//! The outermost layer: gives every request an id, refuses a declared oversize body, applies the
//! request deadline, catches panics, finishes every error into a JSON:API body that carries that
//! id, counts the request and writes its one log line (for 4xx answers up to a quota,
//! [`RejectedLines`]). All of it is [`App`], which calls the API's own table (`dispatch.rs`, which
//! notes the route) or else the router itself; the API handlers' first extractor, [`Api`], applies
//! the per-address limit (and notes the route where the router found it), and one layer per route
//! outside the API, [`RouteLayer`], does both there. None of them is a `from_fn` layer, which
//! clones and boxes the service inside it on every request, a cost a cheap rejection pays for
//! (docs/benchmark.md).

use super::dispatch::ApiTable;
use super::error::{self, ApiError, ErrorBody, ErrorCause, JSON_API};
use super::rate_limit::{RateLimiters, RateQuota, governor_quota};
use super::{AppState, deadline, json_body};
use crate::metrics::Metrics;
use crate::request_span::{self, RequestSpan};
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::{Either, Ready, lazy, ready};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceExt};

/// A `HeaderName` made once: looked up by a `&str`, the name is parsed and lower-cased again on
/// every request.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// axum's `DefaultBodyLimit` when none is set: the admin listener's limit.
const AXUM_BODY_LIMIT: usize = 2 * 1024 * 1024;
const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of one request: the caller's `Request-Id` if it is sane, otherwise a fresh xid.
fn request_id(req: &Request) -> String {
    let incoming = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v));
    incoming.map_or_else(|| xid::new().to_string(), str::to_owned)
}

/// Ids end up in logs and headers: only short, plain tokens are taken over from clients.
fn is_sane_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The request's id and span, its body limit, and the facts learned while handling it that belong
/// on its log line: one extension, so a request pays for one insert and no copy of its id.
#[derive(Debug)]
pub struct RequestNotes {
    /// The request's id, and its span once something is written in it (`request_span`).
    pub span: Arc<RequestSpan>,
    /// The most body bytes read ([`OuterSettings::max_body_bytes`], else axum's default limit):
    /// [`super::json_body::JsonBody`] applies it while reading.
    pub body_limit: usize,
    pub route: OnceLock<RouteTemplate>,
    pub client_id: OnceLock<String>,
    /// The client's address (`None` for a request that did not come over the network).
    pub peer: Option<SocketAddr>,
}

/// The route a request matched, as it was registered (never the raw path, which may carry ids):
/// its label in logs and metrics.
#[derive(Debug)]
pub enum RouteTemplate {
    /// Found by the API's own table (`dispatch.rs`).
    Api(Arc<str>),
    /// Found by axum's router.
    Axum(MatchedPath),
}

impl RouteTemplate {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Api(template) => template,
            Self::Axum(path) => path.as_str(),
        }
    }
}

/// What the outermost layer applies to every request of one listener.
pub struct OuterSettings {
    pub metrics: Metrics,
    /// The deadline of a request (a long poll adds the wait it asks for).
    pub request_timeout: Duration,
    /// A declared `Content-Length` over this is answered 413 before anything else, and no more
    /// is read of a body without one. `None` on the admin listener: axum's default limit.
    pub max_body_bytes: Option<usize>,
    /// Which request lines of rejected requests are written.
    pub rejected_lines: RejectedLines,
}

/// `log_rejected_requests`: at most a quota of request lines for answers 400..499. A flood of
/// cheap rejections (bad tokens, wrong media types) must not become a flood of log lines, each of
/// which costs more than the rejection itself (docs/benchmark.md). Every request is still counted
/// in `otpd_http_requests_total`; the lines left out are summed up in the next one written.
pub struct RejectedLines {
    /// `None`: every line is written.
    quota: Option<DefaultDirectRateLimiter>,
    left_out: AtomicU64,
}

/// Whether a rejected request's line is written.
#[derive(Debug, PartialEq, Eq)]
enum LineVerdict {
    /// Written, after a line that says how many were left out since the last one written (if
    /// any).
    Write {
        left_out_before: u64,
    },
    LeaveOut,
}

impl RejectedLines {
    pub fn new(quota: Option<RateQuota>) -> Self {
        Self {
            quota: quota.map(|q| RateLimiter::direct(governor_quota(q))),
            left_out: AtomicU64::new(0),
        }
    }

    /// Whether the line of a request answered `status` is written. Lines of 4xx answers count
    /// against the quota; any line written first says how many were left out since the last one
    /// (a load balancer's health checks report the end of a flood that simply stopped).
    fn verdict(&self, status: u16) -> LineVerdict {
        if !(400..500).contains(&status) {
            let left_out_before = match self.left_out.load(Ordering::Relaxed) {
                0 => 0,
                _ => self.left_out.swap(0, Ordering::Relaxed),
            };
            return LineVerdict::Write { left_out_before };
        }
        match &self.quota {
            Some(quota) if quota.check().is_err() => {
                self.left_out.fetch_add(1, Ordering::Relaxed);
                LineVerdict::LeaveOut
            }
            Some(_) => LineVerdict::Write {
                left_out_before: self.left_out.swap(0, Ordering::Relaxed),
            },
            None => LineVerdict::Write { left_out_before: 0 },
        }
    }
}

/// One listener's whole HTTP service: [`request_context`] around the API's own table and the
/// router, called directly. As a `from_fn` layer it would be applied to every route (axum layers
/// routes, not the router) and would clone and box the route's service and future on every
/// request; here it costs neither, and a panic anywhere below is caught once, around the routing.
#[derive(Clone)]
pub struct App {
    /// The API's operations it answers before the router (`dispatch.rs`).
    api: Option<Arc<ApiTable>>,
    router: Router,
    outer: Arc<OuterSettings>,
}

impl App {
    pub fn new(router: Router, outer: OuterSettings) -> Self {
        Self {
            api: None,
            router,
            outer: Arc::new(outer),
        }
    }

    /// Requests for `table`'s operations go to their handlers directly, the rest to the router.
    pub fn with_api_table(self, table: ApiTable) -> Self {
        Self {
            api: Some(Arc::new(table)),
            ..self
        }
    }

    /// Answers `req`, which came from `peer`.
    pub async fn call(self, req: Request, peer: Option<SocketAddr>) -> Response {
        let Self { api, router, outer } = self;
        request_context(&outer, req, peer, |req, notes| {
            let routed = match api.as_deref().and_then(|table| table.find(&req)) {
                Some(found) => {
                    let _ = notes
                        .route
                        .set(RouteTemplate::Api(Arc::clone(found.template())));
                    Either::Left(found.call(req))
                }
                None => Either::Right(router.oneshot(req).map(|routed| match routed {
                    Ok(res) => res,
                    Err(never) => match never {},
                })),
            };
            // A handler that panics answers 500 (rendered by `finish_error`, nothing of the
            // panic in the body); the panic message goes to the panic hook, as before.
            AssertUnwindSafe(routed).catch_unwind().map(|caught| {
                caught.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
            })
        })
        .await
    }
}

/// The outermost work on every request (module doc); `route` finds the request's handler (noting
/// its route if it can) and gives the future that answers it.
async fn request_context<F, Fut>(
    settings: &OuterSettings,
    mut req: Request,
    peer: Option<SocketAddr>,
    route: F,
) -> Response
where
    F: FnOnce(Request, &RequestNotes) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let span = RequestSpan::new(request_id(&req));
    let notes = Arc::new(RequestNotes {
        span: Arc::clone(&span),
        body_limit: settings.max_body_bytes.unwrap_or(AXUM_BODY_LIMIT),
        route: OnceLock::new(),
        client_id: OnceLock::new(),
        peer,
    });
    req.extensions_mut().insert(Arc::clone(&notes));
    let method = req.method().clone();

    let oversize = settings
        .max_body_bytes
        .is_some_and(|max| json_body::declares_more_than(&req, max));
    let budget = deadline::budget(settings.request_timeout, &req);
    // Routed only if not oversize; a request past its deadline is dropped with the rest of this
    // function. Its span is made only if a line is written in it (`request_span`).
    let routed = if oversize {
        // Rendered in the request's poll, where its id is at hand.
        Either::Left(lazy(|_| ApiError::PayloadTooLarge.into_response()))
    } else {
        Either::Right(route(req, &notes))
    };
    let mut routed = pin!(request_span::in_request(span, routed));
    // A cheap rejection is answered on its first poll: the deadline's timer (a registration in
    // the runtime's timer wheel and its removal) is only set up for a request that waits.
    let first = std::future::poll_fn(|cx| Poll::Ready(routed.as_mut().poll(cx))).await;
    let mut res = match first {
        Poll::Ready(res) => res,
        Poll::Pending => {
            let deadline = tokio::time::Instant::from_std(started) + budget;
            match tokio::time::timeout_at(deadline, routed.as_mut()).await {
                Ok(res) => res,
                Err(_) => ApiError::RequestTimeout.into_response(),
            }
        }
    };
    let id = notes.span.id();
    finish_error(&mut res, id);
    if let Ok(value) = HeaderValue::from_str(id) {
        res.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let status = res.status().as_u16();
    let matched = notes.route.get().map(RouteTemplate::as_str);
    let route = matched.unwrap_or("(unmatched)");
    let client_id = notes.client_id.get().map_or("", String::as_str);
    let latency = started.elapsed();
    settings.metrics.request(matched, &method, status, latency);
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let verdict = settings.rejected_lines.verdict(status);
    if let LineVerdict::Write { left_out_before } = verdict
        && left_out_before > 0
    {
        tracing::info!(
            left_out = left_out_before,
            "request lines of rejected requests left out (log_rejected_requests)"
        );
    }
    // The span is made, or entered, only to write a line in it: most rejections write none.
    if let Some(ErrorCause(cause)) = res.extensions().get::<ErrorCause>() {
        let error = format!("{cause:#}");
        notes.span.in_scope(|span_on| {
            if span_on {
                tracing::error!(%method, route, status, latency_ms, client_id, error, "request failed");
            } else {
                // The request lines are off (`OTPD_LOG=…,otpd::http::context=warn`,
                // docs/operations.md), and the span with them: the failure still names its request.
                let request_id = id;
                tracing::error!(request_id, %method, route, status, latency_ms, client_id, error, "request failed");
            }
        });
    } else if verdict != LineVerdict::LeaveOut {
        notes.span.in_scope(|_| {
            tracing::info!(%method, route, status, latency_ms, client_id, "request");
        });
    }
    res
}

/// Notes the matched route template (never the raw path, which may carry ids) for the request's
/// line and metrics, and with `limits` applies the per-address rate limit.
fn note_route(
    extensions: &http::Extensions,
    limits: Option<&RateLimiters>,
) -> Result<(), ApiError> {
    let notes = extensions.get::<Arc<RequestNotes>>();
    if let (Some(path), Some(notes)) = (extensions.get::<MatchedPath>(), notes) {
        let _ = notes.route.set(RouteTemplate::Axum(path.clone()));
    }
    match limits {
        Some(limits) => limits.check_peer(notes.and_then(|n| n.peer)),
        None => Ok(()),
    }
}

/// The first extractor of every API handler, and what hands it the app's state: notes the route
/// and applies the per-address rate limit before anything else of the request is looked at, as
/// [`RouteLayer`] does for the other routes. An extractor, not a route layer, on the API's routes:
/// axum clones and boxes each layer of a route, and the route's future, on every request, a
/// twentieth of a cheap rejection's work (docs/benchmark.md). A test sends every operation of the
/// API document from an address over its limit and expects 429 under the operation's route.
pub struct Api(pub AppState);

impl FromRequestParts<AppState> for Api {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        note_route(&parts.extensions, Some(&state.limits))?;
        Ok(Self(state.clone()))
    }
}

/// The layer of the routes outside the API (`Router::route_layer`): notes the matched route, and
/// on the admin API served beside the API applies the per-address limit too. A `Service` of its
/// own rather than a `from_fn` layer, which would clone and box the route's service and future on
/// every request.
#[derive(Clone)]
pub struct RouteLayer {
    limits: Option<Arc<RateLimiters>>,
}

impl RouteLayer {
    /// Notes the route only (operations, pages, the admin listener).
    pub fn note() -> Self {
        Self { limits: None }
    }

    /// Notes the route and applies the per-address limit (the admin API beside the API).
    pub fn limited(limits: Arc<RateLimiters>) -> Self {
        Self {
            limits: Some(limits),
        }
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Routed<S>;

    fn layer(&self, inner: S) -> Routed<S> {
        Routed {
            inner,
            limits: self.limits.clone(),
        }
    }
}

/// A route behind [`RouteLayer`].
#[derive(Clone)]
pub struct Routed<S> {
    inner: S,
    limits: Option<Arc<RateLimiters>>,
}

impl<S> Service<Request> for Routed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if let Err(limited) = note_route(req.extensions(), self.limits.as_deref()) {
            return Either::Left(ready(Ok(limited.into_response())));
        }
        Either::Right(self.inner.call(req))
    }
}

fn finish_error(res: &mut Response, request_id: &str) {
    let body = match res.extensions_mut().remove::<ErrorBody>() {
        Some(body) => body,
        None if res.status().is_client_error() || res.status().is_server_error() => {
            // A JSON:API body, or a page (the password pages answer their errors as HTML).
            let already_ours = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
                v.as_bytes().starts_with(JSON_API.as_bytes())
                    || v.as_bytes().starts_with(b"text/html")
            });
            if already_ours {
                return;
            }
            error::for_status(res.status())
        }
        None => return,
    };
    let bytes = error::render(&body, request_id);
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    headers.remove(header::CONTENT_LENGTH);
    *res.body_mut() = Body::from(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_lines_beyond_the_quota_are_left_out_and_counted_in_the_next_one() {
        let lines = RejectedLines::new(Some(RateQuota {
            count: 2,
            period: Duration::from_secs(1),
        }));
        let write = |n| LineVerdict::Write { left_out_before: n };
        assert_eq!(lines.verdict(401), write(0));
        assert_eq!(lines.verdict(415), write(0));
        for _ in 0..3 {
            assert_eq!(lines.verdict(401), LineVerdict::LeaveOut);
        }
        // The quota refills one line every 500 ms.
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(lines.verdict(404), write(3));
        assert_eq!(lines.verdict(404), write(0));
        // Other answers never count against the quota, and report what was left out before them.
        for _ in 0..2 {
            assert_eq!(lines.verdict(401), LineVerdict::LeaveOut);
        }
        assert_eq!(lines.verdict(200), write(2));
        for _ in 0..100 {
            assert_eq!(lines.verdict(204), write(0));
            assert_eq!(lines.verdict(500), write(0));
        }

        let every = RejectedLines::new(None);
        for _ in 0..1000 {
            assert_eq!(every.verdict(401), write(0));
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_json_api_500_without_the_panic_in_it() {
        async fn boom() -> &'static str {
            panic!("secret detail 8299")
        }
        let router = Router::new().route("/boom", axum::routing::get(boom));
        let app = App::new(
            router,
            OuterSettings {
                metrics: Metrics::new(),
                request_timeout: Duration::from_secs(5),
                max_body_bytes: None,
                rejected_lines: RejectedLines::new(None),
            },
        );
        let req = Request::builder().uri("/boom").body(Body::empty()).unwrap();
        let res = app.call(req, None).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[header::CONTENT_TYPE], JSON_API);
        assert!(res.headers().contains_key(&REQUEST_ID));
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains(r#""status":"500""#), "{body}");
        assert!(!body.contains("8299") && !body.contains("secret"), "{body}");
    }

    #[test]
    fn request_ids_from_clients_must_be_short_and_plain() {
        assert!(is_sane_request_id("cbgmhslmp1o9or9kh1p0"));
        assert!(is_sane_request_id("3f2b-11:aa.b_c"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("a b"));
        assert!(!is_sane_request_id("x\"y"));
        assert!(!is_sane_request_id(&"a".repeat(65)));
    }
}
