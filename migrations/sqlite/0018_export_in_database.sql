-- The export a customer sent (a few kilobytes of XML or a reset string) is kept in the
-- ticket's row, committed with it, instead of in a blob file of its own (issue 18): one
-- file fewer to create, sync, rename and sync the directory of for every upload. A
-- ticket made since keeps its export here and names no file (`export_blob` is empty);
-- older tickets keep their files, which the sweeper still counts as theirs.
ALTER TABLE tickets ADD COLUMN export_bytes BLOB;
