-- One OTP redemption in one round trip: the common case of `POST /user/otp/verify` (an account or
-- login OTP, nothing else changed with it, a user without device TOTPs). The same steps, in the
-- same order and with the same statements, as the store's `redeem_counted` transaction
-- (src/store/attempts.rs), which still serves every other redemption; sent from Rust as one call
-- instead of BEGIN, count, consume, COMMIT and a device read before them (docs/decisions.md).
-- Everything the lock policy decides comes in as arguments, computed by the policy's own code:
--   p_lock_ms[i + 1]  the lock the (p_lock_from + i)-th counted failure starts, i = 0..31 (the
--                     doubling stops at 31); below p_lock_from, or p_lock_from = 0: no lock
--   p_events          audit events: redeemed, refused, locked, disabled, OTPs revoked
--   p_details         audit details of a redeemed account OTP and of a redeemed login OTP
-- Returns one row: outcome `account` | `login` (redeemed), `failed` (counted, nothing valid),
-- `refused` (locked or disabled: nothing counted, nothing looked at) or `devices` (the user has
-- device TOTPs and p_devices asks for them: nothing done, the caller takes the full path).
CREATE FUNCTION otpd_redeem_otp(
    p_sub TEXT, p_now BIGINT, p_account BYTEA[], p_login BYTEA[], p_devices BOOLEAN,
    p_lock_from INT, p_lock_ms BIGINT[], p_disable_after INT, p_revoke_after INT,
    p_events TEXT[], p_details TEXT[]
) RETURNS TABLE (outcome TEXT, failures BIGINT, locked_until BIGINT, disabled BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n BIGINT; prev_lock BIGINT; lock_ms BIGINT; new_lock BIGINT; dis BOOLEAN;
    d BYTEA; revoked BIGINT; cnt TEXT;
    -- The kinds of p_account and p_login, in that order (p_details follows it).
    kinds CONSTANT TEXT[] := ARRAY['account', 'login'];
BEGIN
    IF p_devices AND EXISTS (SELECT 1 FROM device_totps t WHERE t.sub = p_sub) THEN
        RETURN QUERY SELECT 'devices'::TEXT, 0::BIGINT, 0::BIGINT, FALSE;
        RETURN;
    END IF;
    -- Counting first takes the counter's row lock: the user's redemptions queue here.
    INSERT INTO attempts AS a (sub, factor, failures, locked_until, disabled_at, updated_at)
    VALUES (p_sub, 'otp', 1, 0, NULL, p_now)
    ON CONFLICT (sub, factor) DO UPDATE
        SET failures = a.failures + 1, updated_at = excluded.updated_at
        WHERE a.locked_until <= p_now AND a.disabled_at IS NULL
    RETURNING a.failures, a.locked_until INTO n, prev_lock;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'refused'::TEXT, a.failures, a.locked_until, a.disabled_at IS NOT NULL
            FROM attempts a WHERE a.sub = p_sub AND a.factor = 'otp';
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'refused'::TEXT, 0::BIGINT, 0::BIGINT, FALSE;
        END IF;
        RETURN;
    END IF;
    -- The lock the new count starts, written before anything is looked at.
    lock_ms := CASE WHEN p_lock_from = 0 OR n < p_lock_from THEN 0
                    ELSE p_lock_ms[LEAST(n - p_lock_from, 31) + 1] END;
    new_lock := CASE WHEN lock_ms = 0 THEN prev_lock ELSE p_now + lock_ms END;
    dis := p_disable_after IS NOT NULL AND n >= p_disable_after;
    IF new_lock <> prev_lock OR dis THEN
        UPDATE attempts a SET locked_until = new_lock, disabled_at = CASE WHEN dis THEN p_now END
            WHERE a.sub = p_sub AND a.factor = 'otp';
    END IF;
    -- The first valid candidate is consumed, account digests before login ones (a login OTP never
    -- answers to an account digest and the other way round); a success starts the count over.
    FOR k IN 1..2 LOOP
        FOREACH d IN ARRAY (CASE k WHEN 1 THEN p_account ELSE p_login END) LOOP
            UPDATE otps o SET used_at = p_now
                WHERE o.sub = p_sub AND o.digest = d AND o.used_at IS NULL AND o.expires_at > p_now
                  AND o.kind = kinds[k];
            IF FOUND THEN
                DELETE FROM attempts a WHERE a.sub = p_sub AND a.factor = 'otp';
                INSERT INTO audit_events (sub, at, event, detail)
                    VALUES (p_sub, p_now, p_events[1], p_details[k]);
                RETURN QUERY SELECT kinds[k], 0::BIGINT, 0::BIGINT, FALSE;
                RETURN;
            END IF;
        END LOOP;
    END LOOP;
    -- Nothing was valid: the count stays, with the failure's audit rows and revocations.
    cnt := 'failures=' || n;
    INSERT INTO audit_events (sub, at, event, detail) VALUES (p_sub, p_now, p_events[2], cnt);
    IF NOT dis AND lock_ms <> 0 THEN
        INSERT INTO audit_events (sub, at, event, detail)
            VALUES (p_sub, p_now, p_events[3], cnt || ' locked_until=' || new_lock);
    END IF;
    IF dis THEN
        INSERT INTO audit_events (sub, at, event, detail) VALUES (p_sub, p_now, p_events[4], cnt);
    END IF;
    IF p_revoke_after IS NOT NULL AND n >= p_revoke_after THEN
        DELETE FROM otps o WHERE o.sub = p_sub AND o.used_at IS NULL;
        GET DIAGNOSTICS revoked = ROW_COUNT;
        INSERT INTO audit_events (sub, at, event, detail)
            VALUES (p_sub, p_now, p_events[5], cnt || ' revoked=' || revoked);
    END IF;
    RETURN QUERY SELECT 'failed'::TEXT, n, new_lock, dis;
END;
$$;
