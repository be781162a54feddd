-- The desk tells customers how long answering takes as it measures it (issue 19): the
-- median time from request to decision over the last seven days. The decisions of a
-- week are found through this index, newest first, not by reading every ticket.
CREATE INDEX tickets_by_decided_at ON tickets (decided_at) WHERE decided_at IS NOT NULL;
