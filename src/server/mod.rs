//! The HTTP server loop: accepts connections, enforces connection hygiene, and drains on shutdown.
//!
//! `axum::serve` has no header-read timeout and waits for in-flight requests without a bound, so
//! otpd runs its own hyper accept loop:
//! - a new connection must send its first request within `first_request_timeout`, then each
//!   request's headers within `header_read_timeout` (HTTP/1);
//! - a connection with no request in flight is closed after `idle_timeout`, HTTP/1 and HTTP/2;
//! - HTTP/1.1 connections are closed (`Connection: close`) after `max_requests_per_connection`;
//! - at most `max_connections` are open, at most `max_connections_per_address` from one source
//!   address; when all slots are taken, an idle connection gives way to the newcomer (`slots`);
//! - on shutdown the listener closes at once, idle connections are closed, in-flight requests may
//!   finish, and after `shutdown_grace` the loop returns whatever is still running.

mod head_watch;
mod slots;

use crate::http::App;
use crate::metrics::Metrics;
use axum::body::Body;
use head_watch::HeadWatch;
use http::{HeaderValue, Request, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use slots::{Admission, Close, Connection, SlotLimits, Slots};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/2 liveness pings: a peer that stops answering is dropped.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
const H2_MAX_STREAMS: u32 = 128;
/// How long an idle connection asked to close (timeout, eviction) may take to say goodbye
/// (HTTP/2 GOAWAY) before it is dropped. One that never sent a request is dropped at once.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Where the server listens, and its timeouts and limits (`listen`, `metrics_listen`,
/// `header_read_timeout_seconds`, … in the settings table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// A separate admin listener for /metrics and /health/*; `None`: /metrics on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub header_read_timeout: Duration,
    /// A new connection must bring its first request within this.
    pub first_request_timeout: Duration,
    /// A connection with no request in flight is closed after this (HTTP/1 and HTTP/2).
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_requests_per_connection: u64,
    pub max_connections: usize,
    /// `None`: no limit per source address (behind a proxy every connection comes from it).
    pub max_connections_per_address: Option<usize>,
    pub shutdown_grace: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            header_read_timeout: Duration::from_secs(5),
            first_request_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_requests_per_connection: 1000,
            max_connections: 1024,
            max_connections_per_address: Some(64),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Open client connections, shared by every listener of one app (read by the metrics scrape).
pub type OpenConnections = Arc<AtomicUsize>;

/// Serves `app` on `listener` until `shutdown` completes, then drains within the grace period.
pub async fn serve(
    listener: TcpListener,
    app: App,
    settings: ServerSettings,
    open: OpenConnections,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Slots::new(SlotLimits {
        max_connections: settings.max_connections,
        max_per_address: settings.max_connections_per_address,
        first_request_timeout: settings.first_request_timeout,
        idle_timeout: settings.idle_timeout,
        header_read_timeout: settings.header_read_timeout,
    });
    tokio::pin!(shutdown);
    'accept: loop {
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
        let slot = loop {
            let freed = slots.freed();
            match slots.admit(peer.ip()) {
                Admission::Admitted(slot) => break slot,
                Admission::AddressFull => {
                    tracing::debug!(%peer, "connection refused: too many from this address");
                    metrics.connection_closed("address-limit");
                    continue 'accept;
                }
                // An idle connection was asked to give way (if there was one); otherwise the
                // newcomer waits for a request to finish somewhere, as in the kernel's backlog.
                Admission::Full => tokio::select! {
                    () = freed => {}
                    () = &mut shutdown => break 'accept,
                },
            }
        };
        let _ = stream.set_nodelay(true);
        let open = Arc::clone(&open);
        open.fetch_add(1, Ordering::Relaxed);
        let app = app.clone();
        let metrics = metrics.clone();
        let limits = slots.limits();
        tokio::spawn(async move {
            let connection = Arc::clone(&slot.connection);
            let closed = run_connection(stream, peer, app, settings, &connection, limits).await;
            if let Some(why) = closed
                && why != Close::Shutdown
            {
                metrics.connection_closed(why.as_str());
            }
            open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    slots.drain();
    tracing::info!(
        connections = slots.open(),
        grace_seconds = settings.shutdown_grace.as_secs(),
        "stopped accepting connections; draining"
    );
    let drained = async {
        loop {
            let freed = slots.freed();
            if slots.open() == 0 {
                return;
            }
            freed.await;
        }
    };
    tokio::select! {
        () = drained => tracing::info!("all connections finished"),
        () = tokio::time::sleep(settings.shutdown_grace) => tracing::warn!(
            connections = open.load(Ordering::Relaxed),
            "drain deadline passed; abandoning the remaining connections"
        ),
    }
}

/// Serves one connection until it ends or is asked to close; returns why it was asked, if it was.
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: App,
    settings: ServerSettings,
    connection: &Arc<Connection>,
    limits: SlotLimits,
) -> Option<Close> {
    let close = connection.close_requested(limits);
    tokio::pin!(close);
    let is_h2 = tokio::select! {
        sniffed = sniff_http2(&stream) => match sniffed {
            Some(is_h2) => is_h2,
            None => {
                tracing::debug!(%peer, "connection closed before sending a request");
                return None;
            }
        },
        why = &mut close => return Some(why),
    };
    let service = connection_service(app, peer, settings, Arc::clone(connection));
    if is_h2 {
        let io = TokioIo::new(stream);
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
            .max_concurrent_streams(H2_MAX_STREAMS);
        drive(b.serve_connection(io, service), close, connection, peer).await
    } else {
        // The header-read timeout is the watchdog's (`head_watch`), not hyper's.
        let io = TokioIo::new(HeadWatch::new(stream, Arc::clone(connection)));
        let mut b = hyper::server::conn::http1::Builder::new();
        b.header_read_timeout(None).keep_alive(true);
        drive(b.serve_connection(io, service), close, connection, peer).await
    }
}

/// Polls a hyper connection until it ends, or until `close` asks it to go: then it shuts down
/// gracefully (in-flight requests finish), bounded for idle connections.
async fn drive<C>(
    conn: C,
    close: Pin<&mut impl Future<Output = Close>>,
    connection: &Connection,
    peer: SocketAddr,
) -> Option<Close>
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let why = tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            return None;
        }
        why = close => why,
    };
    tracing::debug!(%peer, reason = why.as_str(), "closing connection");
    conn.as_mut().graceful_shutdown();
    match why {
        // Requests in flight finish; the server's drain deadline bounds the wait.
        Close::Shutdown => {
            let _ = conn.await;
        }
        _ if !connection.served_any() => {}
        _ => {
            let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, conn).await;
        }
    }
    Some(why)
}

/// Reads (without consuming) the first bytes to choose HTTP/1 or HTTP/2 (prior knowledge, as a
/// load balancer speaks it). `None` when the client closes first; the caller bounds the wait.
async fn sniff_http2(stream: &TcpStream) -> Option<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
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
    }
}

/// The per-connection service: the app, plus the peer address, the connection's activity
/// (requests in flight keep it from counting as idle) and the keep-alive request cap.
fn connection_service(
    app: App,
    peer: SocketAddr,
    settings: ServerSettings,
    connection: Arc<Connection>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let (n, in_flight) = connection.request_started();
        let last = n >= settings.max_requests_per_connection && req.version() <= Version::HTTP_11;
        let app = app.clone();
        async move {
            let mut res = app.call(req.map(Body::new), Some(peer)).await;
            drop(in_flight);
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
