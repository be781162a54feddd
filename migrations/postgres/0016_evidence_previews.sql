-- What the evidence worker makes of a label photo for the console (issue 18): a preview
-- (longest side 1,600 px, turned upright, metadata stripped) and a thumbnail for the
-- queue, stored as blobs beside the original. A job's previews count as referenced only
-- while its photo is the ticket's (store::sql::intake, blobs_referenced): a replaced
-- photo's previews are then swept as the photo itself was removed.
ALTER TABLE evidence_jobs ADD COLUMN preview_blob TEXT;
ALTER TABLE evidence_jobs ADD COLUMN thumbnail_blob TEXT;

CREATE INDEX evidence_jobs_by_preview ON evidence_jobs (preview_blob);
CREATE INDEX evidence_jobs_by_thumbnail ON evidence_jobs (thumbnail_blob);
