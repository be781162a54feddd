-- Data retention (issue 23): a decided ticket's evidence (label photo, its previews,
-- earlier photos, the export and its QR picture) is deleted photo_retention_days after
-- the decision, its customer's name, phone and company customer_retention_days after.
-- When each happened, so pages say "deleted after 30 days" instead of showing nothing,
-- and the retention job finds what is left to do without reading every ticket.
ALTER TABLE tickets ADD COLUMN evidence_removed_at BIGINT;
ALTER TABLE tickets ADD COLUMN customer_removed_at BIGINT;

CREATE INDEX tickets_evidence_kept ON tickets (decided_at, updated_at)
    WHERE evidence_removed_at IS NULL AND status IN ('approved', 'rejected', 'superseded');
CREATE INDEX tickets_customer_kept ON tickets (decided_at, updated_at)
    WHERE customer_removed_at IS NULL AND status IN ('approved', 'rejected', 'superseded');
