-- Consecutive failed redemptions that checked this device's codes without a success of this
-- device in between; at otp_disable_after the device is revoked (docs/lockout.md).
ALTER TABLE device_totps ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;

-- The retention job (docs/retention.md) removes rows by age in small batches: each batch must find
-- its rows through an index, never by reading the whole table.
CREATE INDEX otps_by_expiry ON otps (expires_at);
CREATE INDEX audit_by_at ON audit_events (at);
CREATE INDEX attempts_by_update ON attempts (updated_at);
CREATE INDEX password_links_by_expiry ON password_links (expires_at);
