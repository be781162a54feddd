-- The desk limits its answers to inbound e-mail, not the e-mail it takes (issue 21): a
-- forged From must not silence the address it names, and the desk must not become a
-- relay for mail to whoever a forger names. Which messages were answered, and when.
ALTER TABLE inbound_mails ADD COLUMN answered BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX inbound_mails_answered ON inbound_mails (answered, finished_at);

-- The size of each file kept for a reply: what the desk keeps for replies is bounded in
-- bytes, so senders it cannot tell from forgers cannot fill its storage.
ALTER TABLE inbound_kept ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
