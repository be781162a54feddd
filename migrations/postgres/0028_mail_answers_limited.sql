-- The desk limits its answers to inbound e-mail, not the e-mail it takes (issue 21): a
-- forged From must not silence the address it names, and the desk must not become a
-- relay for mail to whoever a forger names. Which messages were answered, and when.
ALTER TABLE inbound_mails ADD COLUMN answered BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX inbound_mails_answered ON inbound_mails (answered, finished_at);
