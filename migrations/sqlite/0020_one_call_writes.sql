-- PostgreSQL gains server-side functions for the writes of issuing an OTP and its redemption looks
-- at the codes before it counts (its 0020). SQLite runs in-process and its one writer already
-- works that way (`consume_serially`): nothing to add here. The migration exists so that both
-- backends carry the same versions (`otpd copy-data` compares them).
SELECT 1;
