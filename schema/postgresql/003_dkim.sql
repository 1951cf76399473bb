-- 003_dkim.sql: the DKIM verdict of a mailed report, as schema/sqlite/005_dkim.sql
-- (see the comments there). NULL: no verdict (not mail, or dkim = off).
ALTER TABLE reports ADD COLUMN dkim_result TEXT;
ALTER TABLE reports ADD COLUMN dkim_domain TEXT;
ALTER TABLE reports ADD COLUMN dkim_aligned INTEGER;
ALTER TABLE reports ADD COLUMN dkim_reason TEXT;
