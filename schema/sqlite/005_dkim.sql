-- 005_dkim.sql: the DKIM verdict of a mailed report (docs/dkim.md), stored with
-- its source. NULL when there is none: the report did not come by mail (HTTP,
-- a .json file) or was stored with dkim = off. Reports stored before this
-- migration were never verified, so NULL is also what they keep: there is
-- nothing to backfill.
ALTER TABLE reports ADD COLUMN dkim_result TEXT;     -- pass, fail, none, temperror
ALTER TABLE reports ADD COLUMN dkim_domain TEXT;     -- d= of the passing (or first) signature
ALTER TABLE reports ADD COLUMN dkim_aligned INTEGER; -- 1: d= is, or is a parent of, the
                                                     -- TLS-Report-Submitter and From domains
ALTER TABLE reports ADD COLUMN dkim_reason TEXT;     -- why it failed (fail, temperror)
