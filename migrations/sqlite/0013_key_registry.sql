-- The ids of the keys every replica must hold (issue 16): the factory master secret, the
-- desk secret, the signing keys and the seal keys, by id only, never the key material.
-- A replica whose keys directory holds other keys refuses to start (or reports itself not
-- ready), and a retired signing key is refused at signing time by every replica at once,
-- because its status lives here rather than in each replica's copy of the keyring.
CREATE TABLE key_registry (
    key_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'current',
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
-- One master secret and one desk secret per desk: two replicas creating theirs at once on
-- a fresh database cannot both register.
CREATE UNIQUE INDEX key_registry_one_per_desk ON key_registry (kind)
    WHERE kind IN ('master', 'desk-secret');
