/* query.h: failure summaries from the database (DESIGN.md §6): grouped by a
 * dimension, filtered by policy domain and report start time, as JSON (the
 * shape of DESIGN §6, for the CLI and the API), as a table for people with a
 * hint per result type, and as CSV; the reports behind them; one stored
 * report. Only query.c and store.c speak SQL. */
#ifndef TLSRPTD_QUERY_H
#define TLSRPTD_QUERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "tlsrptd/store.h"

enum query_by {
    QUERY_BY_DOMAIN,
    QUERY_BY_DAY,
    QUERY_BY_RESULT_TYPE,
    QUERY_BY_REPORTER,
    QUERY_BY_SENDING_IP,
    QUERY_BY_MX_HOST,
    QUERY_BY_POLICY_TYPE,
};

#define QUERY_MAX_DOMAINS 64

struct query_filter {
    /* policy domains (lower case, no trailing dot; "" = policies without one);
     * none = every domain */
    const char *domains[QUERY_MAX_DOMAINS];
    size_t ndomains;
    int64_t since, until; /* a report counts when its start time is in [since, until) */
    enum query_by by;
    size_t top; /* ranked by failed sessions, the first top groups; 0 = all, in natural order */
};

/* Every report, grouped by domain. */
void query_filter_init(struct query_filter *f);
/* "domain", "day", "result-type", ... Returns false for an unknown name. */
bool query_parse_by(const char *s, enum query_by *by);
const char *query_by_name(enum query_by by);
/* A date (2026-11-03, midnight UTC), an RFC 3339 date-time, or a time before
 * now: 30d, 12h, 2w, 45m. Returns false when s is none of these. */
bool query_parse_time(const char *s, int64_t now, int64_t *out);
/* Add a domain to the filter, normalised (lower case, trailing dot dropped;
 * "(none)" means policies without a domain). False when the filter is full or
 * the name is empty. The filter keeps a pointer into store (>= 256 bytes). */
bool query_filter_add_domain(struct query_filter *f, const char *domain, char *store,
                             size_t storelen);

/* The summary: {"by", "filter", "groups": [...], "totals": {...}}, and for
 * --by domain also "domains" (the same groups, DESIGN §6). Each group and the
 * totals hold successful_sessions and failure_rate (null for the failure
 * dimensions, which only know failed sessions), failed_sessions, failures
 * {result type: failed sessions}, reports and reporters. NULL with err set. */
json_t *query_summary(struct store *st, const struct query_filter *f, char *err);

/* The stored reports behind a summary (same filter; by and top ignored), in
 * start time order: {"reports": [...], "total": N}; at most limit (0: all)
 * from offset. */
json_t *query_reports(struct store *st, const struct query_filter *f, size_t limit, size_t offset,
                      char *err);

/* One stored report by id, or by report-id when key is not a number:
 * {"id", "organization_name", "report_id", ..., "source": {...},
 * "diagnostics": [...], "report": <the JSON as received>}. *nfound is the
 * number of reports the key matched (0: NULL returned, no error; > 1 with a
 * report-id: NULL, err lists the ids). */
json_t *query_report(struct store *st, const char *key, size_t *nfound, char *err);

/* What a result type means and what to do about it, or NULL for unknown types. */
const char *query_hint(const char *result_type);

/* Renderers for query_summary() and query_reports() results. */
void query_print_table(const json_t *summary, FILE *out);
void query_print_csv(const json_t *summary, FILE *out);
void query_print_reports(const json_t *reports, FILE *out);

#endif
