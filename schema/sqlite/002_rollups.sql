-- 002_rollups.sql: totals kept up to date by every stored report, so that
-- summaries and /metrics read a few rows per domain and day instead of every
-- policy and failure detail (the summary JSON of the README, docs/storage.md). store.c adds to them in the
-- transaction that stores the report; the rows below backfill a database
-- made before this migration. policy_domain is '' for policies without one.

-- Per report start time, policy domain and reporter: sessions as the
-- senders' summaries give them, and reports counted once per report and
-- domain (a report with two policies for one domain is one report). Keyed
-- by time first: new reports are mostly recent, so a commit touches few
-- pages, and a time window is one range.
CREATE TABLE rollup_sessions (
    policy_domain TEXT    NOT NULL,
    start_time    INTEGER NOT NULL,   -- reports.start_time (Unix seconds, UTC)
    reporter      TEXT    NOT NULL,   -- reports.organization_name
    successful    INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    reports       INTEGER NOT NULL,
    PRIMARY KEY (start_time, policy_domain, reporter)
) WITHOUT ROWID;

-- Per report start time, policy domain and result type: failed sessions
-- summed over the failure details.
CREATE TABLE rollup_failures (
    policy_domain TEXT    NOT NULL,
    start_time    INTEGER NOT NULL,
    result_type   TEXT    NOT NULL,
    failed        INTEGER NOT NULL,
    PRIMARY KEY (start_time, policy_domain, result_type)
) WITHOUT ROWID;

-- All-time totals per policy domain (and result type, and reporter), for
-- summaries without a time window and for /metrics: a few rows per domain
-- however many reports are stored.
CREATE TABLE domain_totals (
    policy_domain TEXT    NOT NULL PRIMARY KEY,
    successful    INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    reports       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE domain_failures (
    policy_domain TEXT    NOT NULL,
    result_type   TEXT    NOT NULL,
    failed        INTEGER NOT NULL,
    PRIMARY KEY (policy_domain, result_type)
) WITHOUT ROWID;
CREATE TABLE domain_reporters (
    policy_domain TEXT    NOT NULL,
    reporter      TEXT    NOT NULL,
    PRIMARY KEY (policy_domain, reporter)
) WITHOUT ROWID;

INSERT INTO rollup_sessions (policy_domain, start_time, reporter, successful, failed, reports)
SELECT COALESCE(p.policy_domain, ''), r.start_time, r.organization_name,
       SUM(p.successful_sessions), SUM(p.failed_sessions), COUNT(DISTINCT r.id)
FROM policies p JOIN reports r ON r.id = p.report
GROUP BY COALESCE(p.policy_domain, ''), r.start_time, r.organization_name;

INSERT INTO rollup_failures (policy_domain, start_time, result_type, failed)
SELECT COALESCE(p.policy_domain, ''), r.start_time, f.result_type, SUM(f.failed_session_count)
FROM failure_details f JOIN policies p ON p.id = f.policy JOIN reports r ON r.id = p.report
GROUP BY COALESCE(p.policy_domain, ''), r.start_time, f.result_type;

INSERT INTO domain_totals (policy_domain, successful, failed, reports)
SELECT policy_domain, SUM(successful), SUM(failed), SUM(reports) FROM rollup_sessions
GROUP BY policy_domain;
INSERT INTO domain_failures (policy_domain, result_type, failed)
SELECT policy_domain, result_type, SUM(failed) FROM rollup_failures
GROUP BY policy_domain, result_type;
INSERT INTO domain_reporters (policy_domain, reporter)
SELECT DISTINCT policy_domain, reporter FROM rollup_sessions;

-- Outcomes by source (file, stdin, http, maildir), for tlsrptd_reports_total:
-- 'stored', 'duplicate' and 'rejected' per source kind, counted as inputs are
-- handled (duplicates leave no other trace). Backfilled from what is stored.
CREATE TABLE outcome_counts (
    source  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (source, outcome)
) WITHOUT ROWID;

INSERT INTO outcome_counts (source, outcome, count)
SELECT source_kind, 'stored', COUNT(*) FROM reports GROUP BY source_kind;
INSERT INTO outcome_counts (source, outcome, count)
SELECT source_kind, 'rejected', COUNT(*) FROM quarantine GROUP BY source_kind;
