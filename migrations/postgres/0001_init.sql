-- Times are integer milliseconds since the Unix epoch; digests are bytes; ids are text.
CREATE TABLE users (
    sub           TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT,
    pin_hash      TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Account OTPs, stored only as HMAC digests keyed with a key derived from the pepper.
CREATE TABLE otps (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sub        TEXT NOT NULL,
    digest     BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX otps_by_sub ON otps (sub, id);

-- Credential events, never with a secret. Kept when a user's credentials are erased.
CREATE TABLE audit_events (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sub    TEXT NOT NULL,
    at     BIGINT NOT NULL,
    event  TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_by_sub ON audit_events (sub, id);
