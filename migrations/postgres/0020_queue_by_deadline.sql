-- Agents work pending tickets in the order their exports die (issue 19): a device's
-- challenges die 48 hours (CHALLENGE_LIFETIME_SECS) after it made them, and a customer
-- whose export died must export again and start over. The earliest death of a ticket's
-- challenges is kept in its row, beside an index, so a page of the queue in that order
-- walks (status, export_expires_at, id) and never sorts, at any size.
ALTER TABLE tickets ADD COLUMN export_expires_at BIGINT NOT NULL DEFAULT 0;
UPDATE tickets SET export_expires_at =
    (SELECT MIN(d.issued_at) FROM ticket_devices d WHERE d.ticket_id = tickets.id) + 172800;
CREATE INDEX tickets_by_status_deadline ON tickets (status, export_expires_at, id);
