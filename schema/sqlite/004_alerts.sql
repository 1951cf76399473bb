-- 004_alerts.sql: alerts. Rules write an alert and one
-- delivery row per channel in the same transaction, before anything is sent;
-- the sender marks each delivery sent, or schedules the next attempt, so a
-- restart resends nothing already sent and a channel that was down gets its
-- alerts later. store_alerts.c holds the SQL.

-- One row per alert that fired. (rule, policy_domain, subject) is what the
-- cooldown counts; episode (the Unix time of the day, hour or last report the
-- alert is about) keeps one situation from alerting twice whatever the
-- cooldown. subject: the result type (new-failure), the reporter
-- (silent-reporter) or ''. details: the alert as JSON (result types with
-- counts, meaning and fix, MX hosts, sending IPs, reporters, report ids).
CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY,
    created_at    INTEGER NOT NULL,   -- Unix seconds
    rule          TEXT    NOT NULL,
    policy_domain TEXT    NOT NULL,   -- '' for none (quarantine-spike)
    subject       TEXT    NOT NULL,
    episode       INTEGER NOT NULL,
    title         TEXT    NOT NULL,
    details       TEXT    NOT NULL,
    suppressed    INTEGER NOT NULL DEFAULT 0, -- repeats held back (cooldown, same episode)
    UNIQUE (rule, policy_domain, subject, episode)
);
CREATE INDEX alerts_created ON alerts (created_at);

-- The cooldown of each (rule, domain, subject): no new alert before until.
CREATE TABLE alert_cooldowns (
    rule          TEXT    NOT NULL,
    policy_domain TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    alert         INTEGER NOT NULL,   -- the alert that started it
    until         INTEGER NOT NULL,
    PRIMARY KEY (rule, policy_domain, subject)
) WITHOUT ROWID;

-- One row per alert and channel (a stable name: "webhook HOST #HASH",
-- "email ADDRESS"). state: pending, sent, failed (gave up), dropped (the
-- channel is no longer configured). next_attempt also leases a pending row to
-- the sender that took it.
CREATE TABLE alert_deliveries (
    alert        INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel      TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT,
    sent_at      INTEGER,
    digest       INTEGER,            -- sent in a digest of this many alerts
    PRIMARY KEY (alert, channel)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt);

-- Report ids above the evaluated mark that were missing when the rules ran
-- (a transaction of another collector not yet committed): looked at again
-- for a few minutes.
CREATE TABLE alert_gaps (
    report     INTEGER PRIMARY KEY,
    noticed_at INTEGER NOT NULL
);

-- The rules read a domain's days (baseline, clean days, days reported) from
-- the rollups: by domain first, not by time first.
CREATE INDEX rollup_sessions_domain ON rollup_sessions (policy_domain, start_time);
CREATE INDEX rollup_failures_domain ON rollup_failures (policy_domain, start_time);

-- Reports stored before alerts existed are history: the rules start after them.
INSERT INTO meta (key, value) SELECT 'alerts_evaluated', COALESCE(MAX(id), 0) FROM reports;
