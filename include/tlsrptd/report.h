/* report.h: parse (jsondoc.h) and validate one RFC 8460 JSON report into
 * struct report, by the acceptance rules of docs/acceptance.md.
 *
 * Rejected only when a report cannot be counted reliably; quirks of real
 * senders are accepted and recorded as diagnostics. Every diagnostic names the
 * JSON path it is about ("policies[0].summary.total-failure-session-count").
 * Knows nothing of MIME, gzip or SQLite. */
#ifndef TLSRPTD_REPORT_H
#define TLSRPTD_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/err.h"

#define REPORT_DEFAULT_MAX_DEPTH 32
#define REPORT_MAX_COUNT         (((int64_t)1) << 53) /* largest accepted session count */
#define REPORT_MAX_TOTAL         (((int64_t)1) << 62) /* largest sum of a report's counts */

enum diag_level {
    DIAG_NOTE,    /* a tolerated quirk that RFC 8460 allows or that changes nothing counted */
    DIAG_WARNING, /* an RFC deviation that strict parsers reject; handled as documented */
    DIAG_ERROR    /* the report cannot be counted: rejected */
};

struct diag {
    enum diag_level level;
    char *path;    /* JSON path, "" for the document */
    char *message; /* what is wrong and what tlsrptd did about it */
};

/* The findings kept per report: past either bound a finding is counted but not
 * kept (the first error always is), and report_parse() ends the list with one
 * note saying how many were not kept. Real reports have a handful. */
#define REPORT_MAX_DIAGNOSTICS      100
#define REPORT_MAX_DIAGNOSTIC_BYTES 32768 /* of paths and messages */

struct diag_list {
    struct diag *items;
    size_t n, cap;
    size_t errors, warnings, notes;
    size_t bytes;      /* of the paths and messages kept */
    size_t dropped[3]; /* findings not kept, by enum diag_level */
};

void diag_list_free(struct diag_list *d);
void diag_add(struct diag_list *d, enum diag_level level, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *diag_level_name(enum diag_level level);
/* "path: message" of the first error, or "" when there is none. Borrowed. */
void diag_first_error(const struct diag_list *d, char *out, size_t outlen);
/* A NEW JSON array [{"level":..,"path":..,"message":..}, ...] of warnings and notes. */
json_t *diag_list_json(const struct diag_list *d);

/* Strings below are borrowed from the parsed document (or the report's own
 * allocations) and live until report_free(). */
struct report_failure {
    const char *result_type;
    const char *sending_mta_ip;
    const char *receiving_mx_hostname;
    const char *receiving_mx_helo;
    const char *receiving_ip;
    const char *additional_information;
    const char *failure_reason_code;
    int64_t failed_session_count;
};

struct report_policy {
    const char *policy_type;
    char *policy_domain;     /* lower-cased, no trailing dot; NULL when unknown. Owned. */
    bool domain_from_header; /* policy_domain came from the TLS-Report-Domain header */
    json_t *policy_strings;  /* array of strings or NULL; NEW reference, owned */
    json_t *mx_hosts;        /* array of strings or NULL; NEW reference, owned */
    int64_t successful_sessions;
    int64_t failed_sessions;
    struct report_failure *failures;
    size_t nfailures;
    /* failure-details was there but not an array: the breakdown by result type
     * is unknown (failed_sessions, the summary total, still counts) */
    bool failures_unknown;
};

struct jsondoc;
struct report {
    struct jsondoc *doc; /* the parsed document; owns the borrowed strings (NULL after
                          * report_detach) */
    char *strings;       /* after report_detach: every string of the report, in one block */
    const char *organization_name;
    const char *report_id;
    const char *contact_info;          /* NULL when missing or null */
    const char *start_text, *end_text; /* as sent */
    int64_t start_time, end_time;      /* Unix seconds, UTC */
    struct report_policy *policies;
    size_t npolicies;
};

struct jsonscan_limits;
struct report_options {
    size_t max_depth; /* JSON nesting depth; 0 = REPORT_DEFAULT_MAX_DEPTH */
    /* The mail's TLS-Report-Domain header, or NULL: it fills a policy without
     * policy-domain, and when no policy-domain of the report is this domain,
     * a note says so (the report body wins, RFC 8460 §5.6). */
    const char *fallback_domain;
    const struct jsonscan_limits *scan; /* counts and lengths checked before parsing; NULL:
                                         * the defaults (jsonscan.h); max_depth above wins */
};

/* Parse and validate buf[0..len). Every error, warning and note found is added to
 * diags (which the caller owns and frees). Returns TR_OK with *out filled (caller
 * calls report_free) when the report is acceptable, TR_EINVAL/TR_EPARSE/TR_ETOOBIG
 * otherwise (out is then empty). */
tr_err report_parse(const void *buf, size_t len, const struct report_options *opt,
                    struct report *out, struct diag_list *diags);
/* report_parse for a text the caller has already checked whole with jsonscan
 * against opt's limits (scan, with max_depth), as ingest does while it
 * inflates: the same checks, without scanning the text a second time. */
tr_err report_parse_scanned(const void *buf, size_t len, const struct report_options *opt,
                            struct report *out, struct diag_list *diags);
void report_free(struct report *r);
/* Copy every string the report borrows from its parsed document into one block
 * of its own and let the document go: a report waiting to be stored then takes
 * a few KiB instead of its document's tree (about 25 KiB for 1.5 KiB of JSON).
 * policy_strings and mx_hosts keep their own references. False when out of
 * memory (the report is unchanged). */
bool report_detach(struct report *r);

/* Parse an RFC 3339 date-time. Returns 0 and sets *t (Unix seconds, UTC) and
 * *had_zone; -1 when unparseable. */
int report_parse_datetime(const char *s, int64_t *t, bool *had_zone);
/* Format Unix seconds as "YYYY-MM-DDTHH:MM:SSZ" (out >= 21 bytes). */
void report_format_time(int64_t t, char *out, size_t outlen);
/* True for the result types of RFC 8460 §4.3 (and its policy types below). */
bool report_known_result_type(const char *s);
bool report_known_policy_type(const char *s);

#endif
