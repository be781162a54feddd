-- Which version of a ticket's evidence (label photo, export and its devices) an agent
-- decided on (issue 16): every change of the evidence adds one, and a decision is
-- written only by an UPDATE that still finds the version the agent was shown, so an
-- approval from a page opened before the customer's new photo signs nothing.
ALTER TABLE tickets ADD COLUMN evidence_version BIGINT NOT NULL DEFAULT 1;
