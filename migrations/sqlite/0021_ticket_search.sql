-- Agents search by part of a ticket number, a serial, a customer's name or e-mail
-- (issue 19): "Ana", "RQ-8K8F", a serial's last eight characters. Each ticket keeps the
-- text a search is matched against (TicketSearchText: its number with and without
-- hyphens, name, e-mail and serials, lowercase, one per line), and an FTS5 table with
-- the trigram tokenizer indexes it, so a substring of three characters or more is found
-- through the index at any size. The FTS table holds no copy of the text (its content
-- is tickets.search_text) and no positions (detail = none): a search asks for the
-- trigrams that tile it and checks the text itself (sqlite.rs, QUEUE_SEARCH), which
-- read a third of a phrase query's lists and measured about twice as fast on serials
-- that share long model prefixes. The triggers keep it in step with every write.
-- (SQLite's lower() folds ASCII only: a ticket from before this migration whose name
-- holds a capital accented letter is found by that letter as written.)
ALTER TABLE tickets ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE tickets SET search_text = lower(
    number || char(10) || replace(number, '-', '') || char(10) || customer_name || char(10)
    || customer_email
    || COALESCE((SELECT char(10) || group_concat(serial, char(10))
                 FROM (SELECT serial FROM ticket_devices d
                       WHERE d.ticket_id = tickets.id ORDER BY d.position)), ''));
CREATE VIRTUAL TABLE ticket_search USING fts5(
    search_text, content = 'tickets', content_rowid = 'id', tokenize = 'trigram',
    detail = 'none'
);
INSERT INTO ticket_search (ticket_search) VALUES ('rebuild');
CREATE TRIGGER ticket_search_after_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO ticket_search (rowid, search_text) VALUES (new.id, new.search_text);
END;
CREATE TRIGGER ticket_search_after_delete AFTER DELETE ON tickets BEGIN
    INSERT INTO ticket_search (ticket_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
END;
CREATE TRIGGER ticket_search_after_update AFTER UPDATE OF search_text ON tickets BEGIN
    INSERT INTO ticket_search (ticket_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    INSERT INTO ticket_search (rowid, search_text) VALUES (new.id, new.search_text);
END;
