-- Supervisors work the tickets that wait for a second approval as a queue of their own
-- (issue 19), and get a daily e-mail listing them. A ticket waits for its second approval
-- while it is open and holds an approval (an unflagged ticket is decided by its first):
-- the time of its first approval is kept in its row, set and cleared by the triggers
-- below whenever an approval is given or withdrawn (a new photo, an address change), and
-- a partial index holds just those tickets in the order their exports die.
ALTER TABLE tickets ADD COLUMN first_approved_at INTEGER;
UPDATE tickets SET first_approved_at =
    (SELECT MIN(a.at) FROM approvals a WHERE a.ticket_id = tickets.id);
CREATE INDEX tickets_awaiting_second_approval ON tickets (export_expires_at, id)
    WHERE status = 'open' AND first_approved_at IS NOT NULL;
CREATE TRIGGER approvals_first_after_insert AFTER INSERT ON approvals BEGIN
    UPDATE tickets SET first_approved_at =
        (SELECT MIN(a.at) FROM approvals a WHERE a.ticket_id = new.ticket_id)
     WHERE id = new.ticket_id;
END;
CREATE TRIGGER approvals_first_after_delete AFTER DELETE ON approvals BEGIN
    UPDATE tickets SET first_approved_at =
        (SELECT MIN(a.at) FROM approvals a WHERE a.ticket_id = old.ticket_id)
     WHERE id = old.ticket_id;
END;
