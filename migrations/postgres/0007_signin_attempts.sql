-- Sign-in attempts are counted before their password or code is checked: a row is
-- written first and deleted again when the password or code was right, so the table
-- holds failures and attempts still being checked. A browser that presents a device
-- cookie for the account is counted in a bucket of its own: `device` is that cookie's
-- id, NULL for every other browser (and for every row written before this migration).
-- A column, not a new table: a replica still running the previous version keeps
-- counting its failures where this one reads them.
ALTER TABLE login_failures ADD COLUMN device TEXT;

CREATE INDEX login_failures_by_device ON login_failures (device, at);
