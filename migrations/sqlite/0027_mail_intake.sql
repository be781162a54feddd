-- Requests and replies by e-mail (issue 21).

-- Every inbound message the desk has taken, by Message-ID (or, without one, a hash of
-- its bytes): a replica claims a message here before it handles it, so several replicas
-- polling one mailbox, or a restart after a crash, handle each message once. The
-- mailbox copy is moved away only after `status` is 'done'.
CREATE TABLE inbound_mails (
    id            INTEGER PRIMARY KEY,
    message_id    TEXT    NOT NULL UNIQUE,
    -- The sender's mailbox (`EmailAddress::mailbox`), for the per-sender limit.
    sender        TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('claimed', 'done')),
    claimed_until INTEGER,
    -- What the desk did with it: new_ticket, reply, answered, ignored_..., limited, ...
    outcome       TEXT,
    ticket_id     INTEGER REFERENCES tickets (id),
    finished_at   INTEGER
);

CREATE INDEX inbound_mails_by_sender ON inbound_mails (sender, received_at);

-- A ticket's conversation with its customer: messages in (the e-mail that made the
-- ticket, replies by e-mail, messages from the status page) and out (agents' answers).
-- `author` says who wrote: the ticket's customer, an agent, or a stranger (a reply
-- naming the ticket from another address: kept and shown with a warning, acting on
-- nothing).
CREATE TABLE ticket_messages (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    direction   TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    author      TEXT    NOT NULL CHECK (author IN ('customer', 'stranger', 'agent')),
    sender      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    message_id  TEXT    UNIQUE
);

CREATE INDEX ticket_messages_by_ticket ON ticket_messages (ticket_id, id);

-- The files of a message the desk answered with what to fix (a photo without its export,
-- say), by that message's Message-ID: the customer's reply to the answer brings only
-- what was missing, and the request is made of both. The blob sweeper spares them.
CREATE TABLE inbound_kept (
    message_id  TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    blob        TEXT    NOT NULL,
    kept_at     INTEGER NOT NULL,
    PRIMARY KEY (message_id, field)
);

-- The customer's message a mail answers: the desk's mails for a ticket thread under the
-- customer's latest e-mail (In-Reply-To and References).
ALTER TABLE outbox ADD COLUMN in_reply_to TEXT;

-- Messages written on the status page before this migration join the conversation.
INSERT INTO ticket_messages (ticket_id, direction, author, sender, at, body)
SELECT e.ticket_id, 'in', 'customer', t.customer_email, e.at, e.detail
FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
WHERE e.kind = 'customer_reply'
ORDER BY e.id;
