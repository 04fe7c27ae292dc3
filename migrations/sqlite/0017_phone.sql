-- The user's phone number (PACE CheckUserPhone / UpdateUserPhone / VerifyUserPhone, docs/phone.md).
-- One row per user: the verified number in force, and a change awaiting its SMS code. Numbers are
-- E.164. A pending change older than 24 h counts as cancelled (ignored on read, cleared by the
-- retention job).
CREATE TABLE phone_numbers (
    sub             TEXT PRIMARY KEY NOT NULL,
    verified_number TEXT,
    verified_at     BIGINT,
    pending_number  TEXT,
    pending_since   BIGINT,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX phone_numbers_by_pending ON phone_numbers (pending_since);

-- Codes sent by SMS, stored only as HMAC digests of (user, number, code) under the OTP key. A new
-- code replaces every earlier one of the user; a code is consumed by one conditional UPDATE.
CREATE TABLE phone_codes (
    digest     BLOB PRIMARY KEY NOT NULL,
    sub        TEXT NOT NULL,
    number     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX phone_codes_by_sub ON phone_codes (sub);
CREATE INDEX phone_codes_by_expiry ON phone_codes (expires_at);

-- SMS sent per window, per user ('u:' || sub) and per number ('n:' || hex HMAC of the number, so
-- the table holds no number). Counted by conditional upserts in one transaction, so a burst of
-- requests cannot send more than the limits.
CREATE TABLE sms_quota (
    quota_key    TEXT PRIMARY KEY NOT NULL,
    window_start BIGINT NOT NULL,
    sent         BIGINT NOT NULL
);
CREATE INDEX sms_quota_by_window ON sms_quota (window_start);
