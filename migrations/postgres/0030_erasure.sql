-- The audit log's entries of a ticket keep their words apart from the chain (issue 23):
-- the chain hashes a commitment to them, HMAC-SHA256 under a salt of the ticket's own,
-- so erasing a customer (their words and the ticket's salts) leaves every link intact
-- and the verifier says which entries were erased. Entries written before this
-- migration, and entries of no ticket, keep their words in audit_log.detail as before.
ALTER TABLE audit_log ADD COLUMN commitment TEXT;
-- The salt an entry's commitment was made under: a ticket gets a new one for entries
-- written after its customer was erased.
ALTER TABLE audit_log ADD COLUMN salt_id BIGINT;

CREATE TABLE audit_details (
    entry_id  BIGINT PRIMARY KEY REFERENCES audit_log (id),
    detail    TEXT NOT NULL
);

CREATE TABLE audit_salts (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL REFERENCES tickets (id),
    salt      TEXT NOT NULL
);
CREATE INDEX audit_salts_by_ticket ON audit_salts (ticket_id, id);

-- When a ticket's customer was erased on request (`resetdesk customer erase`).
ALTER TABLE tickets ADD COLUMN erased_at BIGINT;

-- The words and salts go only with an erased customer; the verifier also asks that an
-- erasure's own entry name every entry whose words are gone (docs/AUDIT.md).
CREATE FUNCTION audit_words_erased_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION '% is never changed', TG_TABLE_NAME;
    END IF;
    IF TG_TABLE_NAME = 'audit_details' THEN
        IF (SELECT t.erased_at FROM audit_log a JOIN tickets t ON t.id = a.ticket_id
             WHERE a.id = OLD.entry_id) IS NULL THEN
            RAISE EXCEPTION 'audit words go only with an erased customer';
        END IF;
    ELSIF (SELECT erased_at FROM tickets WHERE id = OLD.ticket_id) IS NULL THEN
        RAISE EXCEPTION 'audit salts go only with an erased customer';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER audit_details_erased_only BEFORE UPDATE OR DELETE ON audit_details
    FOR EACH ROW EXECUTE FUNCTION audit_words_erased_only();
CREATE TRIGGER audit_salts_erased_only BEFORE UPDATE OR DELETE ON audit_salts
    FOR EACH ROW EXECUTE FUNCTION audit_words_erased_only();
-- An erasure is for good: a ticket's erased_at is never taken back.
CREATE FUNCTION tickets_erased_for_good() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.erased_at IS NOT NULL AND NEW.erased_at IS DISTINCT FROM OLD.erased_at THEN
        RAISE EXCEPTION 'an erasure is for good';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER tickets_erased_for_good BEFORE UPDATE OF erased_at ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_erased_for_good();
