-- Protocol version 2 binds every entry of an export to the export (an id the exporting
-- device chooses) and to the exporting device. The desk keeps the binding with each
-- device, because re-verifying a stored entry's MAC needs it, and with each response,
-- because a version 2 answer signs it. NULL means a version 1 entry or answer.
ALTER TABLE ticket_devices ADD COLUMN export_id TEXT;
ALTER TABLE ticket_devices ADD COLUMN exported_by TEXT;
ALTER TABLE responses ADD COLUMN export_id TEXT;
