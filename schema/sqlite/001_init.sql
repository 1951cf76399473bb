-- 001_init.sql: the first tlsrptd schema (docs/storage.md).
-- Applied by store.c inside one transaction; PRAGMA user_version records it.

-- One row per accepted report. (organization_name, report_id, start_time,
-- end_time) identifies a report: a second copy is a duplicate (docs/acceptance.md).
CREATE TABLE reports (
    id                   INTEGER PRIMARY KEY,
    organization_name    TEXT    NOT NULL,
    report_id            TEXT    NOT NULL,
    start_time           INTEGER NOT NULL,   -- Unix seconds, UTC
    end_time             INTEGER NOT NULL,
    start_datetime       TEXT    NOT NULL,   -- as sent
    end_datetime         TEXT    NOT NULL,
    contact_info         TEXT,
    received_at          INTEGER NOT NULL,   -- Unix seconds
    source_kind          TEXT    NOT NULL,   -- file, stdin, http, maildir
    source_name          TEXT,               -- path, Maildir file name, request path
    source_client        TEXT,               -- HTTP client address
    source_message_id    TEXT,
    source_report_domain TEXT,               -- TLS-Report-Domain header
    source_submitter     TEXT,               -- TLS-Report-Submitter header
    source_subject       TEXT,
    warning_count        INTEGER NOT NULL DEFAULT 0,
    note_count           INTEGER NOT NULL DEFAULT 0,
    diagnostics          TEXT,               -- JSON array of warnings and notes
    raw_encoding         TEXT    NOT NULL,   -- 'gzip'/'zlib' stream of the JSON, or 'identity'
    raw                  BLOB    NOT NULL,
    raw_size             INTEGER NOT NULL,   -- bytes of the uncompressed JSON
    UNIQUE (organization_name, report_id, start_time, end_time)
);
CREATE INDEX reports_start ON reports (start_time);

-- One row per policy of a report, in report order (idx).
CREATE TABLE policies (
    id                  INTEGER PRIMARY KEY,
    report              INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    idx                 INTEGER NOT NULL,
    policy_type         TEXT    NOT NULL,
    policy_domain       TEXT,               -- lower-case; NULL when unknown
    policy_strings      TEXT,               -- JSON array
    mx_hosts            TEXT,               -- JSON array
    successful_sessions INTEGER NOT NULL,
    failed_sessions     INTEGER NOT NULL
);
CREATE INDEX policies_report ON policies (report);

-- One row per failure-details entry.
CREATE TABLE failure_details (
    id                     INTEGER PRIMARY KEY,
    policy                 INTEGER NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    result_type            TEXT    NOT NULL,
    sending_mta_ip         TEXT,
    receiving_mx_hostname  TEXT,
    receiving_mx_helo      TEXT,
    receiving_ip           TEXT,
    failed_session_count   INTEGER NOT NULL,
    additional_information TEXT,
    failure_reason_code    TEXT
);
CREATE INDEX failure_details_policy ON failure_details (policy);
-- Queries filter by domain, time and result type by joining from reports and
-- policies; further indexes come with the queries that need them (each one
-- costs every insert).

-- Rejected inputs, kept for inspection and re-ingestion (bounded: see store.c).
CREATE TABLE quarantine (
    id                   INTEGER PRIMARY KEY,
    received_at          INTEGER NOT NULL,
    source_kind          TEXT    NOT NULL,
    source_name          TEXT,
    source_client        TEXT,
    source_message_id    TEXT,
    source_report_domain TEXT,
    source_submitter     TEXT,
    source_subject       TEXT,
    reason               TEXT    NOT NULL,
    raw                  BLOB,               -- the input as received; NULL when not kept
    raw_size             INTEGER NOT NULL,   -- bytes of the input as received
    raw_kept             INTEGER NOT NULL    -- 0 when over the quarantine byte budget
);
CREATE INDEX quarantine_received ON quarantine (received_at);

-- Counters that must survive restarts (quarantine evictions, ...).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
