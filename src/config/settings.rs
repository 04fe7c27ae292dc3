//! The table of every setting: its name, its default and one line of help. The README and the
//! packaging sample config are checked against it, and `otpd check-config` lists the settings in
//! its order.

/// Every setting: its name (the TOML key; the environment variable is `OTPD_` + upper case), its
/// default, and one line of help. A name not in here is refused in the file and ignored in the
/// environment. In the order `otpd check-config` prints them (a test keeps the two in step).
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "listen",
        "127.0.0.1:8080",
        "address and port to serve HTTP on",
    ),
    (
        "database_url",
        "sqlite://otpd.db",
        "sqlite://PATH (created on first start) or postgres://…",
    ),
    (
        "database_max_connections",
        "10",
        "connections each replica keeps open at most (1..1000); size it so replicas x this fits the server",
    ),
    (
        "database_acquire_timeout_ms",
        "2000",
        "how long a request waits for a database connection (connecting included) before it gets 503 (50..60000)",
    ),
    ("base_path", "/user/2022-1", "path prefix of the API routes"),
    (
        "oidc_issuer",
        "",
        "expected `iss` of access tokens; JWKS discovered from it unless jwks_url is set",
    ),
    (
        "jwks_url",
        "",
        "fetch signing keys from this URL instead of discovering them",
    ),
    (
        "audience",
        "",
        "expected `aud` of access tokens; required outside dev mode (`any`: not checked, with a warning)",
    ),
    (
        "allow_insecure_idp_urls",
        "false",
        "allow http:// issuer, JWKS and introspection URLs outside dev mode (a provider on the same host only)",
    ),
    (
        "token_leeway_seconds",
        "30",
        "clock skew allowed on `exp` and `nbf`",
    ),
    (
        "linked_identity_claim",
        "",
        "when set, tokens without a non-empty claim of this name get 401 missing-linked-identity",
    ),
    (
        "introspection_url",
        "",
        "RFC 7662 endpoint for opaque (non-JWT) access tokens; not used when empty",
    ),
    (
        "introspection_client_id",
        "",
        "client id otpd authenticates with at the introspection endpoint (HTTP Basic)",
    ),
    (
        "introspection_client_secret_file",
        "",
        "file holding that client's secret (never logged)",
    ),
    (
        "introspection_cache_seconds",
        "30",
        "how long an introspection answer is reused (0..300), never past the token's exp; refusals at most 10 s",
    ),
    (
        "introspection_max_per_second",
        "100",
        "calls to the introspection endpoint per second and replica at most (1..100000); beyond it 503",
    ),
    (
        "pepper_file",
        "",
        "file holding the secret pepper (at least 32 bytes); required outside dev mode",
    ),
    (
        "pepper_id",
        "p1",
        "key id stored with each hash so the pepper can be rotated (1..8 characters)",
    ),
    (
        "pepper_old_files",
        "",
        "older peppers still loaded, as id:path,id:path: hashes made under them verify and are re-hashed under the current pepper (docs/key-rotation.md)",
    ),
    (
        "argon2",
        "m=19456,t=2,p=1",
        "Argon2id memory (KiB), iterations, parallelism for new hashes",
    ),
    (
        "hash_concurrency",
        "(number of cores)",
        "hashes computed at the same time",
    ),
    (
        "hash_queue",
        "(2 x hash_concurrency)",
        "requests allowed to wait for a hashing slot; beyond it 503",
    ),
    ("otp_digits", "6", "digits of an account OTP (6..10)"),
    (
        "otp_ttl_seconds",
        "300",
        "lifetime of an account OTP (1..600)",
    ),
    (
        "otp_max_live",
        "3",
        "unused OTPs a user may hold, account and login OTPs counted apart; a new one retires the oldest of its kind (1..10)",
    ),
    ("pin_length", "4", "digits of a PIN (4..12)"),
    (
        "pin_lock_from",
        "4",
        "the consecutive wrong PIN that starts locking the PIN (0 = never lock); see docs/lockout.md",
    ),
    (
        "pin_disable_after",
        "10",
        "consecutive wrong PINs that disable the PIN until a new one is set (0 = never)",
    ),
    (
        "password_lock_from",
        "5",
        "the consecutive wrong password that starts locking the password (0 = never lock)",
    ),
    (
        "password_disable_after",
        "100",
        "consecutive wrong passwords that disable the password until it is set anew (0 = never)",
    ),
    (
        "otp_revoke_after",
        "5",
        "consecutive failed OTP/TOTP redemptions from which each failure revokes the user's live OTPs and locks redemption (0 = never)",
    ),
    (
        "audit_retention_days",
        "400",
        "audit events older than this many days are deleted by the retention job (0 = kept forever)",
    ),
    (
        "retention_interval_seconds",
        "60",
        "seconds between two runs of the retention job on this replica (0 = this replica never runs it)",
    ),
    (
        "otp_disable_after",
        "20",
        "failed redemptions that checked a device TOTP, with no success of that device between them, after which the device is revoked (0 = never)",
    ),
    (
        "phone_lock_from",
        "3",
        "the consecutive wrong phone code that starts locking phone verification (lock_base_seconds, doubling); never disabled; 0 = never",
    ),
    (
        "lock_base_seconds",
        "30",
        "the first lock of a factor; each further failure doubles it",
    ),
    ("lock_max_seconds", "900", "the longest lock of a factor"),
    (
        "rate_limit_per_client",
        "100/s",
        "requests per token client (`azp`/`client_id`) and replica: N/s, N/min or N/h (burst N), or off",
    ),
    (
        "rate_limit_per_address",
        "20/s",
        "requests per source IP address and replica (N/s, N/min, N/h or off); off behind a proxy",
    ),
    (
        "totp_key_file",
        "",
        "file with at least 32 bytes of key material for encrypting device TOTP secrets; derived from the pepper when empty",
    ),
    (
        "totp_key_id",
        "t1",
        "id recorded with each device secret sealed under totp_key_file (1..8 characters)",
    ),
    (
        "totp_old_key_files",
        "",
        "older TOTP keys still loaded, as id:path,id:path: they open what they sealed until `otpd keys reencrypt-totp` moves it to the current key",
    ),
    ("totp_digits", "6", "digits of new device TOTPs (6..8)"),
    (
        "totp_period_seconds",
        "30",
        "time step of new device TOTPs (1..300)",
    ),
    (
        "totp_algorithm",
        "SHA1",
        "HMAC of new device TOTPs: SHA1, SHA256 or SHA512 (never MD5)",
    ),
    (
        "registration_claim",
        "created_at",
        "access-token claim with the user's registration time (unix seconds or milliseconds), for the after-login grant",
    ),
    (
        "after_login_window_seconds",
        "300",
        "how long after registration `user:device-totps:create-after-login` creates a device TOTP without proof (0..3600)",
    ),
    (
        "max_body_bytes",
        "16384",
        "largest request body accepted; larger gets 413",
    ),
    (
        "metrics_listen",
        "",
        "address for a separate admin listener serving /metrics and /health/*; empty: /metrics on the main listener",
    ),
    (
        "admin_api",
        "on",
        "where the admin API (/admin/v1) is served: on (main listener, and the admin listener if set), admin-listener (only on metrics_listen) or off",
    ),
    (
        "admin_scope",
        "otpd:admin",
        "scope an access token needs for the admin API; one user tokens never carry",
    ),
    (
        "header_read_timeout_seconds",
        "5",
        "an HTTP/1 request's headers must end within this time of their first byte (1..300)",
    ),
    (
        "first_request_timeout_seconds",
        "3",
        "a new connection must send its first request within this time, HTTP/1 and HTTP/2 (1..300)",
    ),
    (
        "idle_timeout_seconds",
        "30",
        "a connection with no request in flight is closed after this, HTTP/1 and HTTP/2 (1..3600)",
    ),
    (
        "request_timeout_seconds",
        "30",
        "longest time to answer a request, plus the wait a long poll asks for (1..600); then 503 request-timeout",
    ),
    (
        "max_requests_per_connection",
        "1000",
        "HTTP/1.1 keep-alive connections are closed after this many requests (1..1000000)",
    ),
    (
        "max_connections",
        "1024",
        "open client connections; beyond it new connections wait to be accepted (1..100000)",
    ),
    (
        "max_connections_per_address",
        "64",
        "open connections from one source address (1..100000), or off; set off behind a proxy or load balancer",
    ),
    (
        "long_poll_max_per_user",
        "4",
        "long polls (GET /user/pin, /user/password with timeout) one user may have waiting per replica (0..1000); beyond it answered at once",
    ),
    (
        "long_poll_max_total",
        "256",
        "long polls waiting per replica, all users (0..100000); beyond it answered at once",
    ),
    (
        "shutdown_grace_seconds",
        "20",
        "on SIGTERM, how long in-flight requests may take before the process exits anyway (0..600)",
    ),
    (
        "smtp_url",
        "",
        "SMTP server for POST /user/otp/sendmail: smtp://host:25 (plain), smtp://host:587?tls=required (STARTTLS), smtps://host:465 (TLS); user:password@ for AUTH; empty: mail disabled (503)",
    ),
    (
        "mail_from",
        "",
        "From address of OTP mails, e.g. `otpd <noreply@example.com>`; required with smtp_url",
    ),
    (
        "mail_per_hour",
        "5",
        "OTP mails one user may request per hour (1..1000); beyond it 429",
    ),
    (
        "password_min_length",
        "8",
        "shortest new password, in characters after NFKC normalization (8..64); NIST asks 15 where a password is the only factor",
    ),
    (
        "password_blocklist_file",
        "",
        "file of further refused passwords, one per line (case-insensitive, # comments), on top of the built-in list",
    ),
    (
        "public_url",
        "",
        "https URL where users reach otpd's pages; password links are built from it (never from request headers); required for them",
    ),
    (
        "service_name",
        "otpd",
        "the service's name on pages and in mails (also refused as a password)",
    ),
    (
        "password_link_ttl_seconds",
        "86400",
        "how long a mailed password link works (300..604800)",
    ),
    (
        "templates_dir",
        "",
        "directory whose files replace the built-in page and mail templates and assets (see docs/pages.md)",
    ),
    (
        "session_ttl_seconds",
        "86400",
        "how long a login session of PUT /sessions/{sessionId} is known after its creation (300..2592000)",
    ),
    (
        "sms_url",
        "",
        "SMS gateway URL for PUT /user/phone (https://…); empty: 503 sms-not-configured (dev mode prints the SMS instead); see docs/phone.md",
    ),
    (
        "sms_method",
        "POST",
        "HTTP method of the gateway request: POST or PUT",
    ),
    (
        "sms_auth",
        "none",
        "authentication at the gateway: none, basic (sms_username + secret), bearer (secret) or header:<Name> (secret in that header)",
    ),
    (
        "sms_username",
        "",
        "user name for sms_auth = basic (Twilio: the Account SID)",
    ),
    (
        "sms_secret_file",
        "",
        "file holding the gateway secret: password, bearer token or API key (never logged); required with sms_auth",
    ),
    (
        "sms_headers",
        "",
        "extra request headers as a JSON object, e.g. {\"X-Tenant\":\"acme\"} (values never printed)",
    ),
    (
        "sms_body_format",
        "json",
        "how the body is sent: json (application/json) or form (application/x-www-form-urlencoded)",
    ),
    (
        "sms_body",
        r#"{"to":"{to}","text":"{text}"}"#,
        "the body as a JSON object whose strings may hold {to} (E.164) and {text}; both must appear; form: string values only",
    ),
    (
        "sms_timeout_seconds",
        "10",
        "longest wait for the gateway's answer (1..60); then 503 sms-failed",
    ),
    (
        "sms_per_user_per_hour",
        "5",
        "SMS one user may cause per hour (1..100); beyond it 429 sms-limit",
    ),
    (
        "sms_per_number_per_hour",
        "3",
        "SMS one phone number may receive per hour, whichever user asks (1..100); beyond it 429 sms-limit",
    ),
    (
        "phone_code_ttl_seconds",
        "600",
        "lifetime of a phone code sent by SMS (60..3600)",
    ),
    ("log", "info", "log filter (tracing EnvFilter syntax)"),
    ("log_format", "text", "text or json"),
    (
        "log_rejected_requests",
        "100/s",
        "request lines of 4xx answers written per replica (N/s, N/min, N/h, or off: every one); the rest are counted in metrics and summed up in the next line written",
    ),
];
