//! Prometheus metrics: one recorder per app, passed around as a `Metrics` handle.
//!
//! The `metrics` crate's macros write to a process-wide recorder that can be installed once, so two
//! apps in one process (every integration test binary) would share or fight over it. Instead each
//! app builds its own `PrometheusRecorder` and the code that counts something holds this handle
//! and registers its series on that recorder directly. No global macro is used anywhere.
//!
//! Labels are a closed set: route templates (unknown paths share `unmatched`), status codes,
//! factor names, outcome words. Never a user id, a token, a code or any other caller-chosen text.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often histogram samples are folded into buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

const META: Metadata<'static> = Metadata::new("otpd", metrics::Level::INFO, Some(module_path!()));

mod catalogue;

use catalogue::{CONNECTION_CLOSE_REASONS, DESCRIPTIONS, Kind, LATENCY_BUCKETS, SMS_OUTCOMES};

/// The handle every counting part of otpd holds. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    requests: RequestSeries,
}

/// The two series of each (route, method, status) seen so far: looked up by reference on every
/// request instead of building their keys (six allocations and a registry lookup) each time.
/// Small by construction: the labels are a closed set. Keyed by route templates, never by
/// what a client sent, so a fast hash (foldhash) does, where std's SipHash cost a cheap request
/// about 200 instructions (docs/benchmark.md).
#[derive(Default)]
struct RequestSeries(RwLock<HashMap<String, Vec<RequestSeriesOf>, foldhash::fast::RandomState>>);

/// The series of one route for one method and status.
struct RequestSeriesOf {
    method: &'static str,
    status: u16,
    count: Counter,
    duration: Histogram,
}

/// Values read at scrape time from the parts that own them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub hash_waiting: usize,
    pub hash_running: usize,
    pub db_idle: u32,
    pub db_in_use: u32,
    pub db_max: u32,
    pub jwks_refreshes_ok: u64,
    pub jwks_refreshes_failed: u64,
    /// Valid JWTs answered from the verified-token cache, and checked by signature.
    pub jwts_remembered: u64,
    pub jwts_checked: u64,
    pub connections_open: usize,
    pub long_polls_waiting: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        for (name, kind, unit, help) in DESCRIPTIONS {
            let key = KeyName::from_const_str(name);
            match kind {
                Kind::Counter => recorder.describe_counter(key, *unit, (*help).into()),
                Kind::Gauge => recorder.describe_gauge(key, *unit, (*help).into()),
                Kind::Histogram => recorder.describe_histogram(key, *unit, (*help).into()),
            }
        }
        let metrics = Self {
            inner: Arc::new(Inner {
                recorder,
                handle,
                requests: RequestSeries::default(),
            }),
        };
        metrics.register_known_series();
        metrics
    }

    /// Counters with a fixed label set start at 0, so a rate() over them works from the start
    /// and a missing series means a missing feature, not "nothing happened yet".
    fn register_known_series(&self) {
        for via in ["credential", "mail"] {
            self.counter("otpd_otps_issued_total", &[("via", via)])
                .increment(0);
        }
        for factor in ["password", "pin", "otp"] {
            self.counter("otpd_credential_failures_total", &[("factor", factor)])
                .increment(0);
            self.counter("otpd_locks_total", &[("factor", factor)])
                .increment(0);
        }
        for result in ["sent", "failed", "limited"] {
            self.counter("otpd_mails_total", &[("result", result)])
                .increment(0);
        }
        for (result, reason) in SMS_OUTCOMES {
            self.counter("otpd_sms_total", &[("result", result), ("reason", reason)])
                .increment(0);
        }
        self.counter("otpd_credential_failures_total", &[("factor", "phone")])
            .increment(0);
        self.counter("otpd_locks_total", &[("factor", "phone")])
            .increment(0);
        self.counter("otpd_otps_redeemed_total", &[]).increment(0);
        for kind in ["expired_otps", "stale_attempts", "old_audit_events"] {
            self.counter("otpd_retention_deleted_total", &[("kind", kind)])
                .increment(0);
        }
        self.counter("otpd_device_totps_revoked_total", &[])
            .increment(0);
        self.counter("otpd_otps_refused_total", &[]).increment(0);
        self.counter("otpd_hash_rejected_total", &[]).increment(0);
        for reason in CONNECTION_CLOSE_REASONS {
            self.counter("otpd_http_connections_closed_total", &[("reason", reason)])
                .increment(0);
        }
        for cap in ["user", "total"] {
            self.counter("otpd_long_polls_cut_short_total", &[("cap", cap)])
                .increment(0);
        }
        self.counter("otpd_long_poll_rechecks_total", &[])
            .increment(0);
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.inner
            .recorder
            .register_counter(&key(name, labels), &META)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.inner
            .recorder
            .register_gauge(&key(name, labels), &META)
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.inner
            .recorder
            .register_histogram(&key(name, labels), &META)
    }

    /// One answered request. `route` is a route template or `None` for an unknown path.
    pub fn request(
        &self,
        route: Option<&str>,
        method: &http::Method,
        status: u16,
        latency: Duration,
    ) {
        let route = route.unwrap_or("unmatched");
        let method = method_label(method);
        let record = |series: &RequestSeriesOf| {
            series.count.increment(1);
            series.duration.record(latency.as_secs_f64());
        };
        let known = self
            .inner
            .requests
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let seen = known.get(route).and_then(|of_route| {
            of_route
                .iter()
                .find(|s| s.method == method && s.status == status)
        });
        if let Some(series) = seen {
            return record(series);
        }
        drop(known);
        let status_label = status.to_string();
        let labels = [
            ("route", route),
            ("method", method),
            ("status", status_label.as_str()),
        ];
        let series = RequestSeriesOf {
            method,
            status,
            count: self.counter("otpd_http_requests_total", &labels),
            duration: self.histogram("otpd_http_request_duration_seconds", &labels),
        };
        record(&series);
        let mut known = self
            .inner
            .requests
            .0
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let of_route = known.entry(route.to_owned()).or_default();
        if !of_route
            .iter()
            .any(|s| s.method == method && s.status == status)
        {
            of_route.push(series);
        }
    }

    /// An account OTP was issued; `via` is `credential` or `mail`.
    pub fn otp_issued(&self, via: &'static str) {
        self.counter("otpd_otps_issued_total", &[("via", via)])
            .increment(1);
    }

    pub fn otp_redeemed(&self) {
        self.counter("otpd_otps_redeemed_total", &[]).increment(1);
    }

    pub fn otp_refused(&self) {
        self.counter("otpd_otps_refused_total", &[]).increment(1);
    }

    /// A wrong secret; `factor` is `password`, `pin` or `otp`.
    pub fn credential_failure(&self, factor: &'static str) {
        self.counter("otpd_credential_failures_total", &[("factor", factor)])
            .increment(1);
    }

    /// A factor locked or disabled; `factor` is `password`, `pin` or `otp`.
    pub fn lock(&self, factor: &'static str) {
        self.counter("otpd_locks_total", &[("factor", factor)])
            .increment(1);
    }

    /// Device TOTPs revoked because their codes failed too often (`otp_disable_after`).
    pub fn devices_revoked(&self, count: u64) {
        self.counter("otpd_device_totps_revoked_total", &[])
            .increment(count);
    }

    /// Rows the retention job removed; `kind` is a `PruneKind` name.
    pub fn retention_deleted(&self, kind: &'static str, rows: u64) {
        self.counter("otpd_retention_deleted_total", &[("kind", kind)])
            .increment(rows);
    }

    /// One retention run; `result` is `ok`, `skipped` or `error`.
    pub fn retention_run(&self, result: &'static str) {
        self.counter("otpd_retention_runs_total", &[("result", result)])
            .increment(1);
    }

    /// An OTP mail; `result` is `sent`, `failed` or `limited`.
    /// One outcome of `PUT /sessions/{sessionId}` (see the catalogue for the set).
    pub fn session(&self, outcome: &'static str) {
        self.counter("otpd_sessions_total", &[("outcome", outcome)])
            .increment(1);
    }

    pub fn mail(&self, result: &'static str) {
        self.counter("otpd_mails_total", &[("result", result)])
            .increment(1);
    }

    /// One SMS send, or one refused by the limits (`SMS_OUTCOMES`).
    pub fn sms(&self, result: &'static str, reason: &'static str) {
        self.counter("otpd_sms_total", &[("result", result), ("reason", reason)])
            .increment(1);
    }

    pub fn hash_wait(&self, waited: Duration) {
        self.histogram("otpd_hash_wait_seconds", &[])
            .record(waited.as_secs_f64());
    }

    pub fn hash_rejected(&self) {
        self.counter("otpd_hash_rejected_total", &[]).increment(1);
    }

    /// The server closed or refused a connection; `reason` is one of `CONNECTION_CLOSE_REASONS`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.counter("otpd_http_connections_closed_total", &[("reason", reason)])
            .increment(1);
    }

    /// A long poll answered at once because a waiter cap (`user` or `total`) was reached.
    pub fn long_poll_cut_short(&self, cap: &'static str) {
        self.counter("otpd_long_polls_cut_short_total", &[("cap", cap)])
            .increment(1);
    }

    /// One database re-check on behalf of the long polls of one user.
    pub fn long_poll_recheck(&self) {
        self.counter("otpd_long_poll_rechecks_total", &[])
            .increment(1);
    }

    /// Drains histogram samples into their buckets; run periodically so memory stays bounded
    /// between scrapes.
    pub fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// Runs `upkeep` every few seconds until the returned task is aborted.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                metrics.upkeep();
            }
        })
    }

    /// The Prometheus text exposition, with the scrape-time gauges set first.
    pub fn render(&self, g: Gauges) -> String {
        self.gauge("otpd_hash_queue_depth", &[])
            .set(g.hash_waiting as f64);
        self.gauge("otpd_hash_running", &[])
            .set(g.hash_running as f64);
        self.gauge("otpd_db_pool_connections", &[("state", "idle")])
            .set(g.db_idle);
        self.gauge("otpd_db_pool_connections", &[("state", "in_use")])
            .set(g.db_in_use);
        self.gauge("otpd_db_pool_max_connections", &[])
            .set(g.db_max);
        self.gauge("otpd_http_connections_open", &[])
            .set(g.connections_open as f64);
        self.gauge("otpd_long_polls_waiting", &[])
            .set(g.long_polls_waiting as f64);
        self.counter("otpd_jwks_refreshes_total", &[("result", "ok")])
            .absolute(g.jwks_refreshes_ok);
        self.counter("otpd_jwks_refreshes_total", &[("result", "error")])
            .absolute(g.jwks_refreshes_failed);
        self.counter("otpd_jwt_verifications_total", &[("via", "remembered")])
            .absolute(g.jwts_remembered);
        self.counter("otpd_jwt_verifications_total", &[("via", "signature")])
            .absolute(g.jwts_checked);
        self.inner.handle.render()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect();
    Key::from_parts(name, labels)
}

/// Methods outside the standard set share one label: clients choose the method text.
fn method_label(m: &http::Method) -> &'static str {
    use http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_apps_in_one_process_count_separately() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.otp_issued("credential");
        a.otp_issued("credential");
        b.otp_issued("mail");
        let text_a = a.render(Gauges::default());
        let text_b = b.render(Gauges::default());
        assert!(
            text_a.contains("otpd_otps_issued_total{via=\"credential\"} 2"),
            "{text_a}"
        );
        assert!(
            text_a.contains("otpd_otps_issued_total{via=\"mail\"} 0"),
            "{text_a}"
        );
        assert!(
            text_b.contains("otpd_otps_issued_total{via=\"mail\"} 1"),
            "{text_b}"
        );
    }

    #[test]
    fn request_latency_is_a_histogram_with_buckets() {
        let m = Metrics::new();
        m.request(
            Some("/health/live"),
            &http::Method::GET,
            200,
            Duration::from_millis(3),
        );
        m.request(
            None,
            &http::Method::from_bytes(b"BREW").unwrap(),
            404,
            Duration::from_millis(1),
        );
        let text = m.render(Gauges::default());
        assert!(
            text.contains("# TYPE otpd_http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                "otpd_http_requests_total{route=\"/health/live\",method=\"GET\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("route=\"unmatched\",method=\"other\",status=\"404\""),
            "{text}"
        );
    }
}
