-- Secrets at rest (issue 15, part 6).
--
-- TOTP seeds are kept sealed (AES-256-GCM under a key in keys/seal/, the user id bound
-- in as associated data): `totp_sealed` holds hex(nonce || ciphertext || tag) and
-- `totp_key_id` the id of the key that sealed it, so a rotated key can still open old
-- rows and the desk re-seals them. `totp_secret` held the seed in clear; the desk seals
-- every clear seed at start and empties that column (the code migrates the rows, as the
-- key is not the database's to know).
ALTER TABLE users ADD COLUMN totp_sealed TEXT;
ALTER TABLE users ADD COLUMN totp_key_id TEXT;

-- The typed keys, the signed response file and one-time codes are kept only while a
-- mail waits to be sent. Mail delivered or dead before this migration is emptied now; a
-- dead response mail retried is signed again rather than read back.
UPDATE outbox SET body_text = '', body_html = '', attachment = NULL
 WHERE kind IN ('approval', 'access_code') AND status IN ('sent', 'dead');
