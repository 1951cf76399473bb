/* query.h: the summary model of tlsrptd (the summary JSON of the README): filters, dimensions,
 * totals, and the JSON that `tlsrptd summary`, `show`, `quarantine` and the
 * API give, built from the rows the store returns (store.h). Renderers for
 * people are in render.h; what result types mean is in result_type.h. No SQL
 * here: it works the same on every storage backend. */
#ifndef TLSRPTD_QUERY_H
#define TLSRPTD_QUERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "tlsrptd/store.h"

/* The dimensions, in the order of enum store_dim. */
enum query_by {
    QUERY_BY_DOMAIN = STORE_BY_DOMAIN,
    QUERY_BY_DAY = STORE_BY_DAY,
    QUERY_BY_RESULT_TYPE = STORE_BY_RESULT_TYPE,
    QUERY_BY_REPORTER = STORE_BY_REPORTER,
    QUERY_BY_SENDING_IP = STORE_BY_SENDING_IP,
    QUERY_BY_MX_HOST = STORE_BY_MX_HOST,
    QUERY_BY_POLICY_TYPE = STORE_BY_POLICY_TYPE,
    QUERY_BY_DKIM = STORE_BY_DKIM,
};

#define QUERY_MAX_DOMAINS STORE_MAX_FILTER
#define QUERY_NAME_MAX    256  /* bytes of a domain or reporter name in a filter */
#define QUERY_FILL_DAYS   3700 /* most days a filled day series holds (ten years) */

struct query_filter {
    struct store_filter sf; /* domains, reporters, [since, until) */
    enum query_by by;
    size_t top;   /* ranked by failed sessions, the first top groups; 0 = all */
    size_t limit; /* at most this many groups from offset (0 = all), in the order shown */
    size_t offset;
    bool fill;          /* by day: every day of the window, zeros where nothing was reported */
    bool sessions_only; /* no failed sessions per result type (groups and totals): cheaper */
    /* the names the filter points to */
    char names[2 * QUERY_MAX_DOMAINS][QUERY_NAME_MAX];
    size_t nnames;
};

/* Every report, grouped by domain. */
void query_filter_init(struct query_filter *f);
/* "domain", "day", "result-type", ... Returns false for an unknown name. */
bool query_parse_by(const char *s, enum query_by *by);
const char *query_by_name(enum query_by by);
/* The JSON key of a group of this dimension ("policy_domain", "day", ...). */
const char *query_by_field(enum query_by by);
/* A date (2026-11-03, midnight UTC), a date and time (2026-11-03 12:00,
 * 2026-11-03T12:00:00Z, RFC 3339 with an offset; UTC when no zone is given),
 * or a time before now: 30d, 12h, 2w, 45m. False when s is none of these. */
bool query_parse_time(const char *s, int64_t now, int64_t *out);
/* Add a domain (lower-cased, trailing dot dropped; "(none)": policies without
 * one) or a reporter (as given) to the filter. False when the filter is full,
 * or the name is empty or too long. */
bool query_filter_add_domain(struct query_filter *f, const char *domain);
bool query_filter_add_reporter(struct query_filter *f, const char *reporter);

/* The summary: {"by", "filter", "groups": [...], "totals": {...},
 * "result_types": {type: {"meaning", "fix"}}} and for --by domain also
 * "domains" (the same groups, the summary JSON of the README). Each group and the totals hold
 * successful_sessions and failure_rate (null for the failure dimensions, which
 * only know failed sessions), failed_sessions, failures {result type: failed
 * sessions}, reports and reporters; groups by domain and reporter also
 * last_report. With a limit: "total_groups". NULL with err set. */
json_t *query_summary(struct store *st, const struct query_filter *f, char *err);

/* The stored reports behind a summary (same filter; by and top ignored), in
 * start time order: {"reports": [...], "total": N}; at most limit (0: all)
 * from offset. */
json_t *query_reports(struct store *st, const struct query_filter *f, size_t limit, size_t offset,
                      char *err);

/* One stored report by id, or by report-id when key is not a number:
 * {"id", "organization_name", "report_id", ..., "source": {...},
 * "diagnostics": [...], "policies": [...], "report": <the JSON as received>}.
 * *nfound is the number of reports the key matched (0: NULL returned, no
 * error; > 1 with a report-id: NULL, err lists the ids). */
json_t *query_report(struct store *st, const char *key, size_t *nfound, char *err);
/* The same, as a tenant with scope sees it (NULL: everything; store.h). */
json_t *query_report_scoped(struct store *st, const struct store_scope *scope, const char *key,
                            size_t *nfound, char *err);

/* The policies seen for the filter's domains: {"policies": [{"policy_domain",
 * "policy_type", "mode" (MTA-STS testing/enforce/none, else null),
 * "policy_strings": [...], "mx_hosts": [...], "reports", "first_seen",
 * "last_seen"}]}. */
json_t *query_policies(struct store *st, const struct query_filter *f, char *err);

/* The quarantine, newest first: {"entries": [{"id", "received_at", "reason",
 * "source": {...}, "raw_size", "raw_kept"}], "total"}, received in [since,
 * until). */
json_t *query_quarantine(struct store *st, int64_t since, int64_t until, size_t limit,
                         size_t offset, char *err);
/* One quarantine entry as above; with raw, also "raw_text" (when the bytes are
 * UTF-8 text) or "raw_base64". NULL and *found false when there is none. */
json_t *query_quarantine_entry(struct store *st, int64_t id, bool raw, bool *found, char *err);

/* A time as RFC 3339 UTC ("2026-11-03T00:00:00Z") into out (32 bytes). */
void query_format_time(int64_t t, char *out);

#endif
