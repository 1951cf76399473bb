-- 003_dedupe_and_reporters.sql: a rejected input that is read again (a Maildir file
-- whose move was cut short by a crash, a sender retrying the same bad body,
-- the spool drained twice) is kept once. dedupe_key is made by store.c from
-- the source (kind, name, client) and a hash of the bytes; rows quarantined
-- before this migration have none.
ALTER TABLE quarantine ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX quarantine_dedupe ON quarantine (dedupe_key);

-- The start time of the latest report per policy domain and reporter: when a
-- reporter last reported (summaries, /metrics, silent-reporter findings)
-- without reading rollup_sessions.
ALTER TABLE domain_reporters ADD COLUMN last_start INTEGER NOT NULL DEFAULT 0;
UPDATE domain_reporters SET last_start = COALESCE((SELECT MAX(s.start_time) FROM rollup_sessions s
    WHERE s.policy_domain = domain_reporters.policy_domain
      AND s.reporter = domain_reporters.reporter), 0);

-- Reports per start time and reporter, whatever their domains: the report
-- counts of summaries by day and by reporter, and of the totals, without
-- reading the reports table (a report with two domains is one report).
CREATE TABLE rollup_reports (
    start_time INTEGER NOT NULL,
    reporter   TEXT    NOT NULL,
    reports    INTEGER NOT NULL,
    PRIMARY KEY (start_time, reporter)
) WITHOUT ROWID;
INSERT INTO rollup_reports (start_time, reporter, reports)
SELECT start_time, organization_name, COUNT(*) FROM reports GROUP BY start_time, organization_name;
