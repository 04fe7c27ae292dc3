-- Attempt limits per user and factor ('password', 'pin', 'otp'). An attempt is counted here
-- before its secret is checked and a success deletes the row (see docs/lockout.md).
CREATE TABLE attempts (
    sub          TEXT NOT NULL,
    factor       TEXT NOT NULL,
    -- Consecutive failures, including attempts reserved and still being checked.
    failures     BIGINT NOT NULL,
    -- No attempt is admitted before this time (milliseconds since the Unix epoch).
    locked_until BIGINT NOT NULL,
    -- Set when too many failures disabled the factor until it is set anew.
    disabled_at  BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (sub, factor)
);
