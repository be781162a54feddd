-- A ticket keeps the label photos a new one replaced, so the agent can compare them, and
-- knows which version of each ticket's evidence (and which label photo) every agent last
-- looked at, so its page can say "a new photo since you last looked" (issue 19). An earlier photo's blob stays
-- named here, so the blob sweeper keeps it for as long as its ticket.
CREATE TABLE earlier_photos (
    ticket_id    BIGINT NOT NULL REFERENCES tickets (id),
    blob         TEXT    NOT NULL,
    media_type   TEXT    NOT NULL,
    -- When the customer's next photo replaced it.
    replaced_at  BIGINT  NOT NULL,
    PRIMARY KEY (ticket_id, blob)
);
CREATE INDEX earlier_photos_by_blob ON earlier_photos (blob);

CREATE TABLE ticket_views (
    ticket_id         BIGINT NOT NULL REFERENCES tickets (id),
    user_id           BIGINT NOT NULL REFERENCES users (id),
    label_blob        TEXT    NOT NULL,
    evidence_version  BIGINT  NOT NULL,
    at                BIGINT  NOT NULL,
    PRIMARY KEY (ticket_id, user_id)
);
