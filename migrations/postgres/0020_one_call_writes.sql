-- The writes of issuing an OTP in one round trip each, and a redemption that looks at the codes
-- before it counts (docs/decisions.md, "Server-side functions for PostgreSQL's hot writes").
--
-- 1. `otpd_reserve_attempt`: the attempt reservation before a password or PIN is hashed, the
--    statements of `count_attempt` (src/store/attempts.rs) in one call instead of BEGIN, the
--    counting upsert, the lock's UPDATE and COMMIT. The lock policy's arithmetic comes in as
--    arguments as for `otpd_redeem_otp` (0019): p_lock_ms[i + 1] is the lock the
--    (p_lock_from + i)-th counted failure starts. Returns whether the attempt was admitted, and
--    the counter's state after it (admitted) or as found (refused: nothing written).
CREATE FUNCTION otpd_reserve_attempt(
    p_sub TEXT, p_factor TEXT, p_now BIGINT, p_lock_from INT, p_lock_ms BIGINT[],
    p_disable_after INT
) RETURNS TABLE (admitted BOOLEAN, failures BIGINT, locked_until BIGINT, disabled BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n BIGINT; prev_lock BIGINT; lock_ms BIGINT; new_lock BIGINT; dis BOOLEAN;
BEGIN
    INSERT INTO attempts AS a (sub, factor, failures, locked_until, disabled_at, updated_at)
    VALUES (p_sub, p_factor, 1, 0, NULL, p_now)
    ON CONFLICT (sub, factor) DO UPDATE
        SET failures = a.failures + 1, updated_at = excluded.updated_at
        WHERE a.locked_until <= p_now AND a.disabled_at IS NULL
    RETURNING a.failures, a.locked_until INTO n, prev_lock;
    IF NOT FOUND THEN
        RETURN QUERY SELECT FALSE, a.failures, a.locked_until, a.disabled_at IS NOT NULL
            FROM attempts a WHERE a.sub = p_sub AND a.factor = p_factor;
        IF NOT FOUND THEN
            RETURN QUERY SELECT FALSE, 0::BIGINT, 0::BIGINT, FALSE;
        END IF;
        RETURN;
    END IF;
    lock_ms := CASE WHEN p_lock_from = 0 OR n < p_lock_from THEN 0
                    ELSE p_lock_ms[LEAST(n - p_lock_from, 31) + 1] END;
    new_lock := CASE WHEN lock_ms = 0 THEN prev_lock ELSE p_now + lock_ms END;
    dis := p_disable_after IS NOT NULL AND n >= p_disable_after;
    IF new_lock <> prev_lock OR dis THEN
        UPDATE attempts a SET locked_until = new_lock, disabled_at = CASE WHEN dis THEN p_now END
            WHERE a.sub = p_sub AND a.factor = p_factor;
    END IF;
    RETURN QUERY SELECT TRUE, n, new_lock, dis;
END;
$$;

-- 2. `otpd_issue_otp`: the write after a successful check, the statements of the store's
--    `insert_otp` (src/store/sql.rs) in one call instead of eight round trips: under the per-user
--    lock, only while the factor that passed (p_requires: 'password', 'pin' or NULL) is still set,
--    the user's expired and used OTPs pruned, the new digest inserted, the account OTPs beyond
--    p_max_live (oldest first) removed, the passing factor's counter (p_reset, or NULL) reset and
--    the audit row written. Returns `inserted`, `gone` (the factor is no longer set: nothing
--    written) or `taken` (the digest is in use: nothing written but the pruning of expired rows;
--    the caller draws another code). The new row is inserted before the cap is applied, so a
--    taken digest leaves the user's live OTPs untouched.
CREATE FUNCTION otpd_issue_otp(
    p_sub TEXT, p_digest BYTEA, p_created BIGINT, p_expires BIGINT, p_max_live INT,
    p_requires TEXT, p_reset TEXT, p_event TEXT, p_detail TEXT
) RETURNS TEXT
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_sub, 0));
    IF (p_requires = 'password'
            AND NOT EXISTS (SELECT 1 FROM users WHERE sub = p_sub AND password_hash IS NOT NULL))
        OR (p_requires = 'pin'
            AND NOT EXISTS (SELECT 1 FROM users WHERE sub = p_sub AND pin_hash IS NOT NULL)) THEN
        RETURN 'gone';
    END IF;
    DELETE FROM otps WHERE sub = p_sub AND (expires_at <= p_created OR used_at IS NOT NULL);
    INSERT INTO otps (sub, digest, created_at, expires_at, kind)
        VALUES (p_sub, p_digest, p_created, p_expires, 'account')
        ON CONFLICT (digest) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'taken';
    END IF;
    DELETE FROM otps WHERE sub = p_sub AND kind = 'account' AND id NOT IN
        (SELECT id FROM otps WHERE sub = p_sub AND kind = 'account' ORDER BY id DESC
         LIMIT p_max_live);
    IF p_reset IS NOT NULL THEN
        DELETE FROM attempts WHERE sub = p_sub AND factor = p_reset;
    END IF;
    INSERT INTO audit_events (sub, at, event, detail) VALUES (p_sub, p_created, p_event, p_detail);
    RETURN 'inserted';
END;
$$;

-- 3. `otpd_redeem_otp` (0019) looks at the codes before it counts: a success — the common case —
-- wrote a counter row only to delete it again in the same transaction (a heap row, two index
-- entries and a dead tuple for every redemption, docs/benchmark.md). Now the counter row, if there
-- is one, is read and row-locked first; a locked or disabled user is refused with nothing written;
-- otherwise the first valid candidate is consumed and the counter row that was read (and only that
-- one) is deleted. Only when nothing was valid is the attempt counted, exactly as before (the
-- counting upsert re-checks the lock, so a lock set in between still refuses).
-- Why this is the same as counting first: with a counter row, its row lock orders this redemption
-- against the user's other counted attempts as the upsert did. Without one, a failure counted
-- concurrently is ordered after this success: its row is not touched here (a success deletes only
-- the row it read and locked), so the count it leaves is the count it would leave after the
-- success, lock included. Arguments and result as in 0019.
CREATE OR REPLACE FUNCTION otpd_redeem_otp(
    p_sub TEXT, p_now BIGINT, p_account BYTEA[], p_login BYTEA[], p_devices BOOLEAN,
    p_lock_from INT, p_lock_ms BIGINT[], p_disable_after INT, p_revoke_after INT,
    p_events TEXT[], p_details TEXT[]
) RETURNS TABLE (outcome TEXT, failures BIGINT, locked_until BIGINT, disabled BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n BIGINT; prev_lock BIGINT; lock_ms BIGINT; new_lock BIGINT; dis BOOLEAN;
    d BYTEA; revoked BIGINT; cnt TEXT;
    seen_failures BIGINT; seen_lock BIGINT; seen_disabled BOOLEAN; counted BOOLEAN;
    -- The kinds of p_account and p_login, in that order (p_details follows it).
    kinds CONSTANT TEXT[] := ARRAY['account', 'login'];
BEGIN
    IF p_devices AND EXISTS (SELECT 1 FROM device_totps t WHERE t.sub = p_sub) THEN
        RETURN QUERY SELECT 'devices'::TEXT, 0::BIGINT, 0::BIGINT, FALSE;
        RETURN;
    END IF;
    -- The counter's row lock, if the user has a counter: the user's counted attempts queue here.
    SELECT a.failures, a.locked_until, a.disabled_at IS NOT NULL
        INTO seen_failures, seen_lock, seen_disabled
        FROM attempts a WHERE a.sub = p_sub AND a.factor = 'otp' FOR UPDATE;
    counted := FOUND;
    IF counted AND (seen_lock > p_now OR seen_disabled) THEN
        RETURN QUERY SELECT 'refused'::TEXT, seen_failures, seen_lock, seen_disabled;
        RETURN;
    END IF;
    -- The first valid candidate is consumed, account digests before login ones (a login OTP never
    -- answers to an account digest and the other way round); a success starts the count over.
    FOR k IN 1..2 LOOP
        FOREACH d IN ARRAY (CASE k WHEN 1 THEN p_account ELSE p_login END) LOOP
            UPDATE otps o SET used_at = p_now
                WHERE o.sub = p_sub AND o.digest = d AND o.used_at IS NULL AND o.expires_at > p_now
                  AND o.kind = kinds[k];
            IF FOUND THEN
                IF counted THEN
                    DELETE FROM attempts a WHERE a.sub = p_sub AND a.factor = 'otp';
                END IF;
                INSERT INTO audit_events (sub, at, event, detail)
                    VALUES (p_sub, p_now, p_events[1], p_details[k]);
                RETURN QUERY SELECT kinds[k], 0::BIGINT, 0::BIGINT, FALSE;
                RETURN;
            END IF;
        END LOOP;
    END LOOP;
    -- Nothing was valid: the attempt is counted (the upsert refuses if a lock came in between).
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
    -- The lock the new count starts; the count stays, with the failure's audit rows and
    -- revocations.
    lock_ms := CASE WHEN p_lock_from = 0 OR n < p_lock_from THEN 0
                    ELSE p_lock_ms[LEAST(n - p_lock_from, 31) + 1] END;
    new_lock := CASE WHEN lock_ms = 0 THEN prev_lock ELSE p_now + lock_ms END;
    dis := p_disable_after IS NOT NULL AND n >= p_disable_after;
    IF new_lock <> prev_lock OR dis THEN
        UPDATE attempts a SET locked_until = new_lock, disabled_at = CASE WHEN dis THEN p_now END
            WHERE a.sub = p_sub AND a.factor = 'otp';
    END IF;
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
