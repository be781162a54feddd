-- Agents search by part of a ticket number, a serial, a customer's name or e-mail
-- (issue 19): "Ana", "RQ-8K8F", a serial's last eight characters. Each ticket keeps the
-- text a search is matched against (TicketSearchText: its number with and without
-- hyphens, name, e-mail and serials, lowercase, one per line) under a pg_trgm GIN index,
-- so `search_text LIKE '%...%'` with three characters or more is an index lookup at any
-- size. pg_trgm ships with PostgreSQL and is a trusted extension (13+): the database's
-- owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER TABLE tickets ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE tickets SET search_text = lower(
    number || E'\n' || replace(number, '-', '') || E'\n' || customer_name || E'\n'
    || customer_email
    || COALESCE((SELECT E'\n' || string_agg(d.serial, E'\n' ORDER BY d.position)
                 FROM ticket_devices d WHERE d.ticket_id = tickets.id), ''));
CREATE INDEX tickets_by_search_text ON tickets USING gin (search_text gin_trgm_ops);
