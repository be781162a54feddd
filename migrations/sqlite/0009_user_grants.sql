-- What an admin gave a console user, and when: the account itself, roles, a new
-- password. For 24 hours after such a grant the giver and the receiver (and any two
-- receivers of the same giver) are not two independent people: they cannot be the two
-- approvers of one flagged ticket (review::cooldown), so one admin alone cannot get
-- around four eyes with an account they just made or armed. `granted_by` is the admin;
-- NULL when the command line did it (`actor` says who, as in the audit log): whoever
-- runs it holds the keys and the database already, outside four eyes.
CREATE TABLE user_grants (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    kind       TEXT   NOT NULL CHECK (kind IN ('created', 'roles', 'password')),
    -- The roles given (stored form, as users.roles): all of them for 'created', those
    -- added for 'roles'; NULL for 'password'.
    roles      TEXT,
    granted_by INTEGER REFERENCES users (id),
    actor      TEXT   NOT NULL,
    at         INTEGER NOT NULL
);

CREATE INDEX user_grants_by_time ON user_grants (at);

-- Disabling a user now revokes the user's API tokens, so that enabling the user again
-- does not bring them back. Users disabled before this lose theirs here, as of the
-- moment they were disabled.
UPDATE api_tokens
SET revoked_at = (SELECT disabled_at FROM users WHERE users.id = api_tokens.user_id)
WHERE revoked_at IS NULL
  AND user_id IN (SELECT id FROM users WHERE disabled_at IS NOT NULL);
