-- An export sent as an XML file (at most 256 KiB) or a reset string is kept in the
-- ticket's row, committed with it, instead of in a blob file of its own (issue 18): one
-- file fewer to create, sync, rename and sync the directory of for such an upload. Its
-- `export_blob` is then empty. A picture of a QR code (a phone photo of megabytes) stays
-- a blob, as does every export of a ticket made before, which the sweeper still counts.
ALTER TABLE tickets ADD COLUMN export_bytes BLOB;
