-- Per-user count of OTP mails in the current window (POST /user/otp/sendmail). One row per user,
-- updated by a single conditional upsert so concurrent requests cannot exceed the limit.
CREATE TABLE mail_quota (
    sub          TEXT PRIMARY KEY NOT NULL,
    window_start BIGINT NOT NULL,
    sent         BIGINT NOT NULL
);
