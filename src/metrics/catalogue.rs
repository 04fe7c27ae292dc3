//! The catalogue of every series otpd exports (name, kind, unit, help), the latency buckets and
//! the closed label sets that are not route templates. `docs/operations.md` lists the same.

use metrics::Unit;

/// Latency buckets in seconds: from a cached 401 to a long poll.
pub(super) const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every series otpd exports: name, kind, unit, help. `docs/operations.md` lists the same.
pub(super) const DESCRIPTIONS: &[(&str, Kind, Option<Unit>, &str)] = &[
    (
        "otpd_http_requests_total",
        Kind::Counter,
        None,
        "HTTP requests answered, by matched route, method and status",
    ),
    (
        "otpd_http_request_duration_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time from receiving a request to its response, by matched route, method and status",
    ),
    (
        "otpd_otps_issued_total",
        Kind::Counter,
        None,
        "Account and login OTPs issued, by how they were earned (credential, mail, login)",
    ),
    (
        "otpd_otps_redeemed_total",
        Kind::Counter,
        None,
        "Account OTPs and device TOTPs accepted",
    ),
    (
        "otpd_otps_refused_total",
        Kind::Counter,
        None,
        "OTP redemptions refused",
    ),
    (
        "otpd_credential_failures_total",
        Kind::Counter,
        None,
        "Wrong secrets offered, by factor (password, pin, otp)",
    ),
    (
        "otpd_locks_total",
        Kind::Counter,
        None,
        "Factors locked or disabled after repeated failures, by factor",
    ),
    (
        "otpd_device_totps_revoked_total",
        Kind::Counter,
        None,
        "Device TOTPs revoked after otp_disable_after failed redemptions",
    ),
    (
        "otpd_retention_deleted_total",
        Kind::Counter,
        None,
        "Rows removed by the retention job, by kind",
    ),
    (
        "otpd_retention_runs_total",
        Kind::Counter,
        None,
        "Runs of the retention job, by result (ok, skipped: another replica ran it, error)",
    ),
    (
        "otpd_mails_total",
        Kind::Counter,
        None,
        "OTP mails, by result (sent, failed, limited; for login OTPs also no-address, not-configured)",
    ),
    (
        "otpd_sessions_total",
        Kind::Counter,
        None,
        "PUT /sessions/{sessionId}, by outcome (created, passed, unchanged, unknown-user, mismatch, unknown-session, withdrawn, error)",
    ),
    (
        "otpd_sms_total",
        Kind::Counter,
        None,
        "SMS with phone codes, by result (sent, failed, limited) and reason (none; timeout, unreachable, refused; user, number)",
    ),
    (
        "otpd_hash_queue_depth",
        Kind::Gauge,
        None,
        "Hashing requests waiting for a slot",
    ),
    (
        "otpd_hash_running",
        Kind::Gauge,
        None,
        "Hashes being computed now",
    ),
    (
        "otpd_hash_wait_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time a hashing request waited for a slot",
    ),
    (
        "otpd_hash_rejected_total",
        Kind::Counter,
        None,
        "Hashing requests refused because the queue was full (answered 503)",
    ),
    (
        "otpd_db_pool_connections",
        Kind::Gauge,
        None,
        "Database pool connections, by state (idle, in_use)",
    ),
    (
        "otpd_db_pool_max_connections",
        Kind::Gauge,
        None,
        "Configured size limit of the database pool",
    ),
    (
        "otpd_jwks_refreshes_total",
        Kind::Counter,
        None,
        "Fetches of the issuer's signing keys, by result (ok, error)",
    ),
    (
        "otpd_http_connections_open",
        Kind::Gauge,
        None,
        "Client connections open now",
    ),
    (
        "otpd_http_connections_closed_total",
        Kind::Counter,
        None,
        "Client connections closed or refused by the server to keep its slots for requests, by reason (address-limit, evicted, first-request-timeout, idle-timeout, header-read-timeout)",
    ),
    (
        "otpd_long_polls_waiting",
        Kind::Gauge,
        None,
        "Long polls waiting now",
    ),
    (
        "otpd_long_polls_cut_short_total",
        Kind::Counter,
        None,
        "Long polls answered at once because the waiter caps were reached, by cap (user, total)",
    ),
    (
        "otpd_long_poll_rechecks_total",
        Kind::Counter,
        None,
        "Database re-checks made for waiting long polls (shared by the waiters of one user)",
    ),
];

/// `(result, reason)` of `otpd_sms_total`: every pair the service counts.
pub(super) const SMS_OUTCOMES: [(&str, &str); 6] = [
    ("sent", "none"),
    ("failed", "timeout"),
    ("failed", "unreachable"),
    ("failed", "refused"),
    ("limited", "user"),
    ("limited", "number"),
];

/// Why the server closes a connection that carries no request (label of
/// `otpd_http_connections_closed_total`).
pub(super) const CONNECTION_CLOSE_REASONS: [&str; 5] = [
    "address-limit",
    "evicted",
    "first-request-timeout",
    "idle-timeout",
    "header-read-timeout",
];

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}
