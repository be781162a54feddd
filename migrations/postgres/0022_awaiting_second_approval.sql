-- Supervisors work the tickets that wait for a second approval as a queue of their own
-- (issue 19), and get a daily e-mail listing them. A ticket waits for its second approval
-- while it is open and holds an approval (an unflagged ticket is decided by its first):
-- the time of its first approval is kept in its row, set and cleared by the trigger
-- below whenever an approval is given or withdrawn (a new photo, an address change), and
-- a partial index holds just those tickets in the order their exports die. The ticket's
-- row is locked by every decision already (TICKET_STATUS_FOR_DECISION), so the trigger's
-- update adds no waiting.
ALTER TABLE tickets ADD COLUMN first_approved_at BIGINT;
UPDATE tickets SET first_approved_at =
    (SELECT MIN(a.at) FROM approvals a WHERE a.ticket_id = tickets.id);
CREATE INDEX tickets_awaiting_second_approval ON tickets (export_expires_at, id)
    WHERE status = 'open' AND first_approved_at IS NOT NULL;
CREATE FUNCTION tickets_first_approval() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ticket BIGINT := CASE WHEN TG_OP = 'DELETE' THEN OLD.ticket_id ELSE NEW.ticket_id END;
BEGIN
    UPDATE tickets SET first_approved_at =
        (SELECT MIN(a.at) FROM approvals a WHERE a.ticket_id = ticket)
     WHERE id = ticket;
    RETURN NULL;
END
$$;
CREATE TRIGGER approvals_first_approval AFTER INSERT OR DELETE ON approvals
    FOR EACH ROW EXECUTE FUNCTION tickets_first_approval();
