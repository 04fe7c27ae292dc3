-- Login sessions (PUT /sessions/{sessionId}, docs/sessions.md) and login OTPs.
-- A login OTP is a row of `otps` like an account OTP, told apart by `kind`: the same digests,
-- single use and attempt limits; a redemption names the kinds it accepts.
ALTER TABLE otps ADD COLUMN kind TEXT NOT NULL DEFAULT 'account';

-- The identity provider's session ids are kept only as SHA-256 digests (`id_digest`): the table
-- does not hand out ids that might still be live in someone's browser.
CREATE TABLE sessions (
    id_digest  BYTEA PRIMARY KEY NOT NULL,
    sub        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Set when the identity provider reported the login OTP passed.
    passed_at  BIGINT
);
CREATE INDEX sessions_by_sub ON sessions (sub);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- The verified email address of the user's own token that otpd last mailed an OTP or a password
-- link to: where login OTPs are mailed. Personal data: erased with the user.
CREATE TABLE user_emails (
    sub     TEXT PRIMARY KEY NOT NULL,
    email   TEXT NOT NULL,
    seen_at BIGINT NOT NULL
);
