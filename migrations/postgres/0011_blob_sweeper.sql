-- Background jobs that must run on one replica at a time (issue 16: the blob sweeper)
-- take a lease row here: whoever holds an unexpired lease runs the job, the others skip.
-- A row rather than a PostgreSQL advisory lock, so SQLite (several processes on one
-- file) behaves the same; a replica killed mid-job lets its lease run out.
CREATE TABLE job_leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    until       BIGINT NOT NULL
);

-- The sweeper asks, for each stored blob, whether a ticket names it.
CREATE INDEX tickets_by_export_blob ON tickets (export_blob);
CREATE INDEX tickets_by_label_blob ON tickets (label_blob);
