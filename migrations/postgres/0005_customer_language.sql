-- The language the customer wrote the request in (i18n::Lang code): the desk's e-mails
-- about the ticket are written in it. Tickets from before it existed were in English.
ALTER TABLE tickets ADD COLUMN customer_language TEXT NOT NULL DEFAULT 'en';
