-- When the ticket's status link was last mailed again to the ticket's own address,
-- because the same export came in from another address (issue 15): at most once an
-- hour per ticket, and the time lives here so the limit holds across replicas and
-- restarts. NULL until the first re-send.
ALTER TABLE tickets ADD COLUMN link_resent_at INTEGER;
