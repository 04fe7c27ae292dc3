-- Mailed links to set or reset a password. The token itself is never stored: `digest` is an HMAC
-- of it (the lookup key) and `seal` an HMAC of the token with the user, purpose, email and expiry,
-- checked on every lookup, so a row cannot be re-pointed without the key. A link is consumed by
-- one conditional UPDATE of `used_at`; a newer link for the user sets `retired_at` on older ones.
CREATE TABLE password_links (
    digest     BLOB PRIMARY KEY NOT NULL,
    seal       BLOB NOT NULL,
    sub        TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    email      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    retired_at BIGINT
);
CREATE INDEX password_links_by_sub ON password_links (sub);

-- Wrong PACE "proves" (PIN or device TOTP) during a password reset, per user, in a window that
-- starts with the first of them. More than 3 erase the PIN and device TOTPs.
CREATE TABLE reset_proves (
    sub          TEXT PRIMARY KEY NOT NULL,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);
