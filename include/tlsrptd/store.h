/* store.h: the storage port of tlsrptd (docs/storage.md). One interface for
 * every backend, chosen by the `db` value: a path or `sqlite:PATH` (SQLite, the
 * embedded default) or `postgresql://…` (PostgreSQL). Callers never see a
 * backend's types; only the backends (store_sqlite.c, store_pg.c) include
 * their client library, and only the store_*.c files hold SQL.
 *
 * The write side: transactions (a batch of reports is one transaction: group
 * commit), reports (a duplicate of a stored report is found by its key and not
 * counted twice), the quarantine of rejected inputs (bounded in rows and
 * bytes; an input read twice is kept once). Rollups that summaries read are
 * kept up to date in the same transaction.
 *
 * The read side: the rows behind summaries, report listings, one report, the
 * quarantine, the policies seen per domain and the /metrics counters.
 *
 * One struct store is one connection, used by one thread at a time. */
#ifndef TLSRPTD_STORE_H
#define TLSRPTD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/err.h"
#include "tlsrptd/report.h"

/* Where an input came from; every field may be NULL except kind. Borrowed. */
struct store_source {
    const char *kind;   /* "file", "stdin", "http", "maildir", "imap" */
    const char *name;   /* file path, Maildir file name, request path, message UID */
    const char *client; /* HTTP client address */
    const char *message_id;
    const char *report_domain; /* TLS-Report-Domain */
    const char *report_submitter;
    const char *subject;
    int64_t received_at; /* Unix seconds; 0: now */
    /* A mail's DKIM verdict (dkim.h); dkim_result NULL: none (not mail, or dkim = off).
     * Stored with reports, not with quarantine entries. */
    const char *dkim_result; /* "pass", "fail", "none", "temperror" */
    const char *dkim_domain; /* d= of the passing (or first) signature */
    const char *dkim_reason; /* why it failed */
    bool dkim_aligned;       /* dkim_domain covers the TLS-Report-Submitter and From domains */
};

struct store_options {
    int busy_timeout_ms;         /* wait this long for a lock before TR_EDB */
    size_t quarantine_max_bytes; /* raw bytes kept in quarantine in total */
    size_t quarantine_max_rows;  /* quarantine rows kept; oldest evicted (logged) */
    bool read_only;              /* queries only: no migrations, nothing created */
    const char *password_file;   /* PostgreSQL: a password file (libpq's passfile) */
    unsigned wal_pages;          /* SQLite: WAL pages that start a background checkpoint (0:
                                    8192, 32 MiB) */
    bool defer_sync;             /* SQLite: a commit is not on disk until store_sync() or a
                                    sync of store_sync_fd() (see there) */
};
#define STORE_DEFAULT_OPTIONS                                                                      \
    {                                                                                              \
        5000, (size_t)256 << 20, 100000, false, NULL, 0, false                                     \
    }

struct store;

/* Is db a PostgreSQL URI (postgresql://, postgres://)? Otherwise it names a
 * SQLite file, as a path or sqlite:PATH (*path is set to the path). */
bool store_is_postgresql(const char *db);
const char *store_sqlite_path(const char *db);

/* Open (creating and migrating it when not read-only) the database db. *out
 * is NULL on failure: TR_EDB with err naming the database and the reason. */
tr_err store_open(const char *db, const struct store_options *opt, struct store **out, char *err);
void store_close(struct store *st);
/* The database as messages name it: the SQLite path, or the URI without a
 * password. */
const char *store_name(const struct store *st);
/* "sqlite" or "postgresql". */
const char *store_backend_name(const struct store *st);
/* Close and open the connection again (after the database went away, or a
 * read-only file became writable). */
tr_err store_reconnect(struct store *st, char *err);
/* False when the connection no longer reaches the database it was opened on
 * (SQLite: the file was removed or replaced; PostgreSQL: the connection was
 * lost), so that only store_reconnect() helps. Cheap: a stat() or none. */
bool store_connected(struct store *st);

/* Whether the database takes writes now: TR_OK, or TR_EDB with why (for
 * /healthz: "database is read-only: /var/lib/tlsrptd/tlsrptd.db is owned by
 * root:root mode 0644; the service runs as tlsrptd"). Cheap enough to call
 * before every batch. */
tr_err store_check_writable(struct store *st, char *why);

/* Background work for a long-lived writer (SQLite: WAL checkpoints on a
 * thread and connection of their own). Start before the writer's first
 * commit, stop after its last. */
tr_err store_start_maintenance(struct store *st, char *err);
void store_stop_maintenance(struct store *st);

/* Bytes the database takes (SQLite: file and WAL; PostgreSQL: the database). */
int64_t store_size_bytes(struct store *st);

tr_err store_begin(struct store *st, char *err);
/* Commit: the batch's rollup deltas are written first. On failure the
 * transaction is rolled back: TR_EDB, or TR_ERETRY when the whole batch may be
 * retried at once (a deadlock or serialization failure between collectors). */
tr_err store_commit(struct store *st, char *err);
void store_rollback(struct store *st);
bool store_in_transaction(const struct store *st);

/* Opened with defer_sync, a SQLite database commits without waiting for the
 * disk, and what was committed is durable only once its log is synced: so
 * that a group-commit writer can store the next batch while the disk writes
 * the last one (syncer.h), and tells senders "stored" only after that.
 * store_sync_fd() gives a new descriptor (the caller closes it) whose
 * fdatasync() makes every commit so far durable; -1 when every commit is
 * durable already (PostgreSQL, SQLite without defer_sync), or -1 with err set
 * (and TR_EDB in *rc) when the log cannot be opened. store_sync() is the same,
 * done at once. */
int store_sync_fd(struct store *st, tr_err *rc, char *err);
tr_err store_sync(struct store *st, char *err);

/* JSON reports up to this size are stored as received ("identity"); larger
 * ones are gzipped. Deflating a 1.5 KiB report costs about as much CPU as
 * parsing it, to save under 1 KiB. */
#define STORE_PLAIN_MAX 4096

/* A validated report serialized for storage: the raw bytes as they will be
 * stored (gzip and zlib bodies as received, JSON over STORE_PLAIN_MAX gzipped,
 * smaller JSON as is), the diagnostics and policy lists as JSON text. Made by
 * store_serialize() on any thread, so the one writer thread only writes rows. */
struct store_blob {
    const char *encoding; /* "gzip", "zlib" or "identity" */
    const void *data;     /* the raw bytes as stored: borrowed raw, or owned.data */
    size_t len;
    size_t json_size;                  /* bytes of the report JSON */
    struct buf owned;                  /* compressed JSON, when the input was not compressed */
    char *diagnostics;                 /* JSON array of warnings and notes, or NULL */
    char **policy_strings, **mx_hosts; /* per policy: JSON arrays or NULL */
    size_t npolicies;
};

/* raw/rawlen: the bytes received for this report (gzip, zlib or JSON); they
 * must outlive the blob. json_size: the size of the report JSON. */
tr_err store_serialize(const struct report *r, const struct diag_list *diags, const void *raw,
                       size_t rawlen, size_t json_size, struct store_blob *out, char *err);
void store_blob_free(struct store_blob *b);

/* Insert a validated report inside a transaction. *duplicate is set when the
 * (organization, report-id, start, end) key is already stored; *id is then the
 * stored report's id. TR_EDB (or TR_ERETRY) when storage fails: the
 * transaction must be rolled back. diags gives the warning and note counts. */
tr_err store_add_report(struct store *st, const struct report *r, const struct diag_list *diags,
                        const struct store_source *src, const struct store_blob *blob, int64_t *id,
                        bool *duplicate, char *err);

/* What became of a report queued with store_queue_report(). */
struct store_added {
    int64_t id;     /* reports.id of the report, or of the stored one it duplicates */
    bool duplicate; /* the (organization, report-id, start, end) key was stored already */
    bool done;      /* id and duplicate are known */
};

/* Like store_add_report(), but a backend that can send many statements at
 * once (PostgreSQL) only queues the report: *out is filled by store_flush()
 * (or store_commit(), which flushes first). r, diags, src, blob and out must
 * stay valid until then. Other backends store it at once (out->done). */
tr_err store_queue_report(struct store *st, const struct report *r, const struct diag_list *diags,
                          const struct store_source *src, const struct store_blob *blob,
                          struct store_added *out, char *err);
/* Store what is queued; every queued store_added is done afterwards. */
tr_err store_flush(struct store *st, char *err);

/* Keep a rejected input with its reason. Raw bytes beyond the quarantine's byte
 * budget are not kept (the row says so, and a warning is logged); rows beyond
 * the row budget evict the oldest (logged). An input already quarantined with
 * the same source and bytes is not kept twice: *id is the earlier row's. */
tr_err store_add_quarantine(struct store *st, const struct store_source *src, const char *reason,
                            const void *raw, size_t rawlen, int64_t *id, char *err);

/* Add n to a counter that must survive restarts (meta table); *now (may be
 * NULL) gets its new value. Inside or outside a transaction. */
tr_err store_counter_add(struct store *st, const char *key, int64_t n, int64_t *now, char *err);
/* Set the count of inputs from source with outcome (stored, duplicate,
 * rejected), for `migrate`, which copies them. */
tr_err store_outcome_set(struct store *st, const char *source, const char *outcome, int64_t n,
                         char *err);
/* Set meta key to value with the current transaction's commit (written with
 * its rollups: on PostgreSQL no round trip of its own). The last value set in
 * a transaction wins. A collector records there which of its commits was its
 * last (writer.c), for a commit whose answer was lost. */
tr_err store_meta_set_at_commit(struct store *st, const char *key, int64_t value, char *err);
/* Read a counter; 0 when it was never set. */
tr_err store_counter_get(struct store *st, const char *key, int64_t *value, char *err);
/* Forget a counter (a marker that did its job). Inside or outside a
 * transaction. */
tr_err store_counter_delete(struct store *st, const char *key, char *err);

/* ---- the read side -------------------------------------------------------------------------- */

#define STORE_MAX_FILTER 64

/* What one API token may see (docs/trust.md): the policy domains its
 * patterns match (domains.h: "example.com", "*.example.org", "*" for every
 * one; "" — no domain — matches "*" only). Everything a read returns under a
 * scope comes from those policies alone: groups, totals, reporters, sending
 * IPs, MX hosts, report listings and report ids. A report that also holds
 * policies outside the scope is shown with the visible ones only: its sums
 * over them, its source reduced to its kind, its raw JSON without the other
 * policies and its diagnostics only about the visible ones. */
struct store_scope {
    const char *const *patterns; /* borrowed */
    size_t n;                    /* 0: nothing is visible */
};

/* What a query covers. Domains are lower case without a trailing dot; "" is
 * the policies without a domain. */
struct store_filter {
    const char *domains[STORE_MAX_FILTER]; /* none: every domain */
    size_t ndomains;
    const char *reporters[STORE_MAX_FILTER]; /* organization names; none: every reporter */
    size_t nreporters;
    int64_t since, until;            /* a report counts when its start time is in [since, until) */
    const struct store_scope *scope; /* NULL: every domain may be seen; else only these */
};
void store_filter_init(struct store_filter *f);

/* Whether scope (NULL: everything) lets the policy domain be seen. */
bool store_scope_shows(const struct store_scope *scope, const char *domain);

/* What a summary groups by. */
enum store_dim {
    STORE_BY_DOMAIN,
    STORE_BY_DAY,
    STORE_BY_RESULT_TYPE,
    STORE_BY_REPORTER,
    STORE_BY_SENDING_IP,
    STORE_BY_MX_HOST,
    STORE_BY_POLICY_TYPE,
    STORE_BY_DKIM, /* the DKIM verdict of mailed reports ("" for the rest) */
    STORE_NDIMS
};
/* A property of failure details (result type, sending IP, MX host): groups
 * know failed sessions only. */
bool store_dim_failure_only(enum store_dim dim);

/* One group of a summary. key: the group's value as text ("" for none; for
 * days the day's midnight is in day). */
struct store_group {
    const char *key;
    int64_t day;
    bool has_successful; /* false for the failure dimensions */
    int64_t successful, failed, reports, reporters;
    int64_t last_start; /* start time of the latest report (domain, reporter); 0: unknown */
};
/* Failed sessions of one result type within one group (key as above). */
struct store_failure {
    const char *key;
    int64_t day;
    const char *result_type;
    int64_t failed;
};
struct store_totals {
    int64_t successful, failed, reports, reporters;
};
/* Row callbacks return 0 to go on, anything else to stop (no error). */
typedef int (*store_group_fn)(void *cls, const struct store_group *g);
typedef int (*store_failure_fn)(void *cls, const struct store_failure *f);

/* The groups of a summary, in the order given: by key, or ranked (failed
 * sessions first, then key). limit 0: all. *ngroups (may be NULL) gets the
 * number of groups before the limit. */
struct store_page {
    bool ranked;
    size_t limit, offset;
};
tr_err store_summary_groups(struct store *st, const struct store_filter *f, enum store_dim dim,
                            const struct store_page *page, store_group_fn fn, void *cls,
                            size_t *ngroups, char *err);
/* Failed sessions per group and result type; keys: only these groups
 * (NULL: all). */
tr_err store_summary_failures(struct store *st, const struct store_filter *f, enum store_dim dim,
                              const char *const *keys, size_t nkeys, store_failure_fn fn, void *cls,
                              char *err);
/* Totals over the filter, and failed sessions per result type (fn may be NULL). */
tr_err store_summary_totals(struct store *st, const struct store_filter *f, struct store_totals *t,
                            store_failure_fn fn, void *cls, char *err);
/* A whole summary at once: the page of groups by dim (group, as
 * store_summary_groups), the failures of those groups (failure, as
 * store_summary_failures; NULL: not asked for) and the totals (*t; their
 * failures to total_failure, which may be NULL). Cheaper than the three calls where the
 * backend sums the rollups in memory: each is read once. */
struct store_summary_fns {
    store_group_fn group;
    store_failure_fn failure;
    void *cls;
    store_failure_fn total_failure;
    void *total_cls;
};
tr_err store_summary(struct store *st, const struct store_filter *f, enum store_dim dim,
                     const struct store_page *page, const struct store_summary_fns *fns,
                     size_t *ngroups, struct store_totals *t, char *err);

/* A stored report as a listing or `show` sees it. Strings may be NULL;
 * borrowed for the duration of the callback. */
struct store_report_row {
    int64_t id;
    const char *organization_name, *report_id, *start_datetime, *end_datetime, *contact_info;
    int64_t start_time, end_time, received_at;
    int64_t warnings, notes, successful, failed;
    const char *policy_domains; /* listings: JSON array of the policies' domains (null for none) */
    const char *diagnostics;    /* one report: JSON array of warnings and notes */
    const char *raw_encoding;   /* one report: "gzip", "zlib" or "identity" */
    const void *raw;            /* one report: the stored bytes */
    size_t rawlen;
    int64_t raw_size; /* bytes of the report JSON */
    struct store_source src;
};
typedef int (*store_report_fn)(void *cls, const struct store_report_row *r);

/* Reports in the filter, in start time order (then id), limit 0: all; *total
 * (may be NULL) gets how many the filter holds. */
tr_err store_list_reports(struct store *st, const struct store_filter *f, size_t limit,
                          size_t offset, store_report_fn fn, void *cls, int64_t *total, char *err);
/* Reports by id (report_id NULL) or by report-id, with their raw bytes;
 * *nfound gets how many matched (the callback sees each). */
tr_err store_get_reports(struct store *st, int64_t id, const char *report_id, store_report_fn fn,
                         void *cls, size_t *nfound, char *err);
/* The same, seen through scope (NULL: everything): only reports with a
 * visible policy, redacted as struct store_scope says. */
tr_err store_get_reports_scoped(struct store *st, const struct store_scope *scope, int64_t id,
                                const char *report_id, store_report_fn fn, void *cls,
                                size_t *nfound, char *err);
/* Reports with ids above after, in id order, at most limit, with raw bytes
 * (for migrate). */
tr_err store_scan_reports(struct store *st, int64_t after, size_t limit, store_report_fn fn,
                          void *cls, char *err);

/* A stored policy of a report, with its failure details, as stored. */
struct store_policy_row {
    int64_t report;
    size_t idx;
    const char *policy_type, *policy_domain, *policy_strings, *mx_hosts; /* JSON arrays */
    int64_t successful, failed;
};
struct store_failure_row {
    size_t policy_idx;
    const char *result_type, *sending_mta_ip, *receiving_mx_hostname, *receiving_mx_helo,
        *receiving_ip, *additional_information, *failure_reason_code;
    int64_t failed_session_count;
};
typedef int (*store_policy_fn)(void *cls, const struct store_policy_row *p);
typedef int (*store_failure_row_fn)(void *cls, const struct store_failure_row *f);
/* One report's policies (in idx order) and failure details (in policy order). */
tr_err store_report_details(struct store *st, int64_t report, store_policy_fn pfn,
                            store_failure_row_fn ffn, void *cls, char *err);
/* The same, only the policies scope shows (NULL: all). */
tr_err store_report_details_scoped(struct store *st, const struct store_scope *scope,
                                   int64_t report, store_policy_fn pfn, store_failure_row_fn ffn,
                                   void *cls, char *err);

/* The distinct policies seen for the filter's domains: type, policy strings
 * and MX hosts as stored (JSON text), reports, first and last start time. */
struct store_seen_policy {
    const char *policy_domain, *policy_type, *policy_strings, *mx_hosts;
    int64_t reports, first_start, last_start;
};
typedef int (*store_seen_policy_fn)(void *cls, const struct store_seen_policy *p);
tr_err store_seen_policies(struct store *st, const struct store_filter *f, store_seen_policy_fn fn,
                           void *cls, char *err);

/* A quarantine entry (raw only from store_get_quarantine). */
struct store_quarantine_row {
    int64_t id, received_at;
    const char *reason;
    struct store_source src;
    int64_t raw_size;
    bool raw_kept;
    const void *raw;
    size_t rawlen;
};
typedef int (*store_quarantine_fn)(void *cls, const struct store_quarantine_row *q);
/* Entries received in [since, until), newest first. */
tr_err store_list_quarantine(struct store *st, int64_t since, int64_t until, size_t limit,
                             size_t offset, store_quarantine_fn fn, void *cls, int64_t *total,
                             char *err);
/* Entries with ids above after, oldest first, with raw bytes. */
tr_err store_scan_quarantine(struct store *st, int64_t after, size_t limit, store_quarantine_fn fn,
                             void *cls, char *err);
/* One entry with its raw bytes; *found is false when there is none. */
tr_err store_get_quarantine(struct store *st, int64_t id, store_quarantine_fn fn, void *cls,
                            bool *found, char *err);
/* Remove an entry (re-ingested and stored), inside a transaction. */
tr_err store_delete_quarantine(struct store *st, int64_t id, char *err);

/* The all-time counters behind /metrics: per domain, per domain and result
 * type, per domain and reporter (with the latest report's start time), and
 * the outcome of every input by source. Domains "" are policies without one. */
struct store_count_row {
    const char *a, *b; /* domain; result type, reporter, or source and outcome */
    int64_t n1, n2, n3;
};
typedef int (*store_count_fn)(void *cls, const struct store_count_row *r);
enum store_counts {
    STORE_COUNT_DOMAINS,          /* a = domain; n1 successful, n2 failed, n3 reports */
    STORE_COUNT_DOMAIN_FAILURES,  /* a = domain, b = result type; n1 failed */
    STORE_COUNT_DOMAIN_REPORTERS, /* a = domain, b = reporter; n1 latest start time */
    STORE_COUNT_OUTCOMES,         /* a = source, b = outcome; n1 inputs */
};
tr_err store_counts(struct store *st, enum store_counts which, store_count_fn fn, void *cls,
                    char *err);
/* The same, the domains scope shows (NULL: all); under a scope the outcome
 * counts, which are the whole collector's, give no rows. */
tr_err store_counts_scoped(struct store *st, const struct store_scope *scope,
                           enum store_counts which, store_count_fn fn, void *cls, char *err);

/* ---- retention and forgetting (store_retention.c, store_forget.c) --------------------------- */

/* What prune removes: each bound is a Unix time, INT64_MIN for "keep all". */
struct store_retention {
    int64_t reports_before;    /* reports (policies, failure details, raw bytes) started before */
    int64_t rollups_before;    /* daily totals (rollup rows) of days started before */
    int64_t quarantine_before; /* quarantine entries received before */
};
struct store_prune_stats {
    int64_t reports, policies, failure_details, raw_bytes; /* the reports that go */
    int64_t rollup_rows;
    int64_t quarantine, quarantine_bytes;
    int64_t size_before, size_after; /* store_size_bytes() around it */
    bool rebuilt; /* SQLite: the file was rebuilt once so that space can be given back */
};
/* Remove what r says, in transactions of a few hundred reports (a serving
 * writer waits for one of them at most), then give the space back to the
 * file system: SQLite runs an incremental vacuum (a database made before
 * that was possible is rebuilt once, with VACUUM) and truncates its WAL;
 * PostgreSQL's autovacuum does it its way. The all-time totals per domain
 * stay. dry_run: only count. Outside a transaction. */
tr_err store_prune(struct store *st, const struct store_retention *r, bool dry_run,
                   struct store_prune_stats *out, char *err);

struct store_forget_stats {
    int64_t reports_deleted; /* reports that held no other domain */
    int64_t reports_edited;  /* reports shared with other domains, or naming it: its policies,
                                and every mention of it, taken out */
    int64_t policies, failure_details, rollup_rows, quarantine;
    bool rebuilt;                /* SQLite: the file was rebuilt, no copy of it left inside */
    char not_rebuilt[TR_ERRLEN]; /* SQLite: why it could not be (forgotten all the same) */
};
/* Remove everything stored about domain (normalized): its policies and
 * their failure details, the reports it was the only domain of, its
 * policies in the raw bytes of shared reports (rewritten) and every mention
 * in their diagnostics and source, its rollups and all-time totals (the
 * report counts of the days it shared corrected), and the quarantine
 * entries quarantine_ids names (the caller decides which entries name the
 * domain: it can read mail). One transaction; dry_run rolls it back. On
 * SQLite the deleted bytes are overwritten and the file is rebuilt after the
 * commit (VACUUM: it takes a while on a large database, and writers wait). */
tr_err store_forget_domain(struct store *st, const char *domain, const int64_t *quarantine_ids,
                           size_t nquarantine, bool dry_run, struct store_forget_stats *out,
                           char *err);

/* ---- the rows behind the findings (store_findings.c) --------------------------------------- */

/* One row of a findings query; which columns mean what depends on the query. */
struct store_finding_row {
    const char *domain;  /* "" for policies without one */
    const char *name;    /* reporter, or MX host */
    const char *type;    /* result type */
    int64_t first, last; /* start times (or the day and the latest start) */
    int64_t n1, n2;
};
typedef int (*store_finding_fn)(void *cls, const struct store_finding_row *r);
enum store_finding_query {
    STORE_FQ_DOMAIN_DAYS,      /* domain, first = day, last, n1 successful, n2 failed */
    STORE_FQ_REPORTER_DAYS,    /* domain, name = reporter, first = day, last, n1 reports */
    STORE_FQ_TYPE_SPANS,       /* domain, type, first, last, n1 failed */
    STORE_FQ_MX_FAILURES,      /* domain, name = MX host, type (certificate and STARTTLS
                                  failures), first, last, n1 failed, n2 reports */
    STORE_FQ_POLICY_REPORTERS, /* domain, name = reporter, first = latest report with
                                  no-policy-found, last = latest with a policy, n1 sessions
                                  under no-policy-found */
};
/* The rows of one query over the filter's window and domains. */
tr_err store_findings_rows(struct store *st, enum store_finding_query which,
                           const struct store_filter *f, store_finding_fn fn, void *cls, char *err);
/* One policy (or one failure detail of it) of a stored report, for the
 * evidence of findings: strings borrowed for the callback; domain and mx ""
 * for none; result_type and mx NULL in a scan without failure details. */
struct store_evidence_row {
    int64_t report;
    const char *domain, *policy_type, *result_type, *mx;
};
typedef int (*store_evidence_fn)(void *cls, const struct store_evidence_row *r);
/* Every policy (with_failures: every failure detail) of the reports that
 * started in the filter's window, of its domains when it names some, newest
 * report first (start time, then id, descending; a report's rows together):
 * the evidence of all findings in one pass instead of a query each. fn
 * returns nonzero to stop. */
tr_err store_evidence_scan(struct store *st, const struct store_filter *f, bool with_failures,
                           store_evidence_fn fn, void *cls, char *err);

#endif
