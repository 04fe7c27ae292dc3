-- The TOTP key that sealed each device secret; NULL for secrets sealed before key ids were
-- recorded (any loaded key may open those; `otpd keys reencrypt-totp` labels them).
ALTER TABLE device_totps ADD COLUMN key_id TEXT;
-- Bumped whenever a device's secret is replaced, never when it is only sealed anew under another
-- key: a redemption consumes a step only for the secret it was computed from, and re-encryption
-- running alongside does not invalidate a code being redeemed.
ALTER TABLE device_totps ADD COLUMN secret_gen BIGINT NOT NULL DEFAULT 0;
