-- Device TOTP secrets (RFC 6238), encrypted with AES-256-GCM; never stored in clear.
-- last_step: the newest time step accepted for this device, so each code is accepted at most once.
CREATE TABLE device_totps (
    sub         TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    secret_ct   BLOB NOT NULL,
    algorithm   TEXT NOT NULL,
    digits      BIGINT NOT NULL,
    period_secs BIGINT NOT NULL,
    last_step   BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (sub, device_id)
);
