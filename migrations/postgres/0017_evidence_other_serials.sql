-- The serials a label photo names that its export does not (issue 18): the ticket page
-- says beside each device which serial the label shows ("⚠ label shows SERIAL"), and the
-- API lists them. At most five per job, as the ticket's risk flag names them.
CREATE TABLE evidence_other_serials (
    job_id BIGINT  NOT NULL REFERENCES evidence_jobs (id),
    position BIGINT  NOT NULL,
    serial TEXT NOT NULL,
    PRIMARY KEY (job_id, position)
);
