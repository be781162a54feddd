-- The ticket page lists the ticket's mail (`outbox WHERE ticket_id = ?`). Sent mail is
-- kept, so without this index every ticket page scanned the whole outbox: about two
-- rows per ticket ever received, 4 ms at 10,000 tickets and hundreds at a million
-- (issue #7, benches/desk/queue_at_scale.rs). It also serves the foreign key from
-- outbox to tickets.
CREATE INDEX outbox_by_ticket ON outbox (ticket_id, id);
