//! The HTTP server loop: accepts connections, enforces connection hygiene, and drains on shutdown.
//!
//! `axum::serve` has no header-read timeout and waits for in-flight requests without a bound, so
//! otpd runs its own hyper accept loop:
//! - a connection must show its protocol (first bytes) and then send each request's headers within
//!   `header_read_timeout`; the same limit closes idle keep-alive connections;
//! - HTTP/1.1 connections are closed (`Connection: close`) after `max_requests_per_connection`;
//! - at most `max_connections` are open; beyond that new ones wait in the kernel's backlog;
//! - on shutdown the listener closes at once, idle connections are closed, in-flight requests may
//!   finish, and after `shutdown_grace` the loop returns whatever is still running.

use axum::Router;
use axum::extract::ConnectInfo;
use http::{HeaderValue, Request, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/2 liveness pings: a peer that stops answering is dropped.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
const H2_MAX_STREAMS: u32 = 128;

/// Where the server listens, and its timeouts and limits (`listen`, `metrics_listen`,
/// `header_read_timeout_seconds`, … in the settings table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// A separate admin listener for /metrics and /health/*; `None`: /metrics on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_requests_per_connection: u64,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_requests_per_connection: 1000,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Open client connections, shared by every listener of one app (read by the metrics scrape).
pub type OpenConnections = Arc<AtomicUsize>;

/// Serves `router` on `listener` until `shutdown` completes, then drains within the grace period.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    open: OpenConnections,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let open = Arc::clone(&open);
        open.fetch_add(1, Ordering::Relaxed);
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let deadline = Instant::now() + settings.header_read_timeout;
            match sniff_http2(&stream, deadline).await {
                Some(is_h2) => {
                    let service = connection_service(router, peer, settings);
                    let io = TokioIo::new(stream);
                    let result = if is_h2 {
                        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                        b.timer(TokioTimer::new())
                            .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
                            .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
                            .max_concurrent_streams(H2_MAX_STREAMS);
                        watcher.watch(b.serve_connection(io, service)).await
                    } else {
                        let mut b = hyper::server::conn::http1::Builder::new();
                        b.timer(TokioTimer::new())
                            .header_read_timeout(settings.header_read_timeout)
                            .keep_alive(true);
                        watcher.watch(b.serve_connection(io, service)).await
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection closed with an error");
                    }
                }
                None => tracing::debug!(%peer, "connection closed before sending a request"),
            }
            open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    let in_flight = graceful.count();
    tracing::info!(
        connections = in_flight,
        grace_seconds = settings.shutdown_grace.as_secs(),
        "stopped accepting connections; draining"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections finished"),
        () = tokio::time::sleep(settings.shutdown_grace) => tracing::warn!(
            connections = open.load(Ordering::Relaxed),
            "drain deadline passed; abandoning the remaining connections"
        ),
    }
}

/// Reads (without consuming) the first bytes to choose HTTP/1 or HTTP/2 (prior knowledge, as a
/// load balancer speaks it). `None` when the client closes or stays silent past `deadline`.
async fn sniff_http2(stream: &TcpStream, deadline: Instant) -> Option<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // A partial preface: peek would return the same bytes at once, so wait a little.
        tokio::time::sleep(Duration::from_millis(10)).await;
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// The per-connection service: the router, plus the peer address and the keep-alive request cap.
fn connection_service(
    router: Router,
    peer: SocketAddr,
    settings: ServerSettings,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    let served = Arc::new(AtomicU64::new(0));
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        let last = n >= settings.max_requests_per_connection && req.version() <= Version::HTTP_11;
        let router = router.clone();
        async move {
            let mut res = router.oneshot(req).await?;
            if last {
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(res)
        }
    })
}

/// Completes on SIGTERM or Ctrl-C: what ends `otpd serve`.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    // The handlers are installed here, before the caller announces that it listens: a handler
    // installed on the future's first poll leaves a window in which SIGTERM still kills the
    // process outright, without draining (seen on a loaded machine right after start-up).
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait(term) => {},
            () = wait(interrupt) => {},
        }
        tracing::info!("shutdown signal received");
    }
}
