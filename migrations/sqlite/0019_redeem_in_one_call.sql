-- PostgreSQL gains a server-side function for the common OTP redemption (its 0019). SQLite runs
-- in-process and batches redemptions through its one writer (group commit): nothing to add here.
-- The migration exists so that both backends carry the same versions (`otpd copy-data` compares
-- them).
SELECT 1;
