/* ingest.h: bytes in -> extract (MIME) -> decode (gzip) -> validate -> store.
 * The one path every source uses (files, stdin, HTTP, Maildir, IMAP, the spool).
 *
 * Inputs are added inside a batch (one transaction); nothing is final until
 * ingest_commit() succeeds. When a batch fails, every result in it becomes
 * INGEST_TEMPFAIL: the caller must not acknowledge any of them. */
#ifndef TLSRPTD_INGEST_H
#define TLSRPTD_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/jsonscan.h"
#include "tlsrptd/dkim.h"
#include "tlsrptd/mime.h"
#include "tlsrptd/report.h"
#include "tlsrptd/store.h"

/* Ordered from best to worst: an input's outcome is the worst of its reports'
 * (except that a message with one good report and one bad part is stored). */
enum ingest_outcome {
    INGEST_STORED,
    INGEST_DUPLICATE,
    INGEST_SPOOLED,    /* `serve` only: durably spooled while storage is down, stored later */
    INGEST_REJECTED,   /* not an acceptable report: quarantined */
    INGEST_UNREADABLE, /* the input could not be read */
    INGEST_TEMPFAIL    /* storage unavailable: retry later */
};

struct ingest_limits {
    size_t max_input;    /* bytes of one input (message or report) */
    size_t max_inflated; /* bytes after gunzip, all report parts of one input together */
    size_t max_depth;    /* JSON nesting */
    struct mime_limits mime;
    struct jsonscan_limits json; /* counts and lengths of the JSON; zeros: the defaults */
    struct dkim_config dkim;     /* verifying mailed reports (not a limit: it travels with them) */
};
#define INGEST_DEFAULT_LIMITS                                                                      \
    {                                                                                              \
        (size_t)64 << 20, (size_t)32 << 20, REPORT_DEFAULT_MAX_DEPTH, MIME_DEFAULT_LIMITS,         \
            JSONSCAN_DEFAULT_LIMITS,                                                               \
        {                                                                                          \
            DKIM_POLICY_OFF, 0                                                                     \
        }                                                                                          \
    }

struct config;
/* The limits a configuration sets, the one mapping every source uses:
 * max_message for an input read from a file, stdin or a Maildir, or (http)
 * for a request body, which may already be gunzipped (Content-Encoding), so
 * max(max_body, max_inflated); max_inflated; max_json_depth; max_parts. */
void ingest_limits_from_config(const struct config *cfg, bool http, struct ingest_limits *lim);

/* One report found in an input. */
struct ingest_report {
    enum ingest_outcome outcome;
    int64_t id;                          /* reports.id when stored or duplicate */
    struct store_added added;            /* the store's answer (complete after commit) */
    char *organization_name, *report_id; /* owned copies, NULL when rejected early */
    char *first_domain;                  /* policy domain of the first policy, or NULL */
    size_t npolicies;
    int64_t successful_sessions, failed_sessions;
    size_t warnings, notes;
    char reason[TR_ERRLEN]; /* why rejected */
};

struct ingest_result {
    enum ingest_outcome outcome;
    struct ingest_report *reports;
    size_t nreports;
    int64_t quarantine_id;  /* > 0 when (part of) the input was quarantined */
    char reason[TR_ERRLEN]; /* input-level reason (no report part, too large, ...) */
    bool input_tempfail;    /* INGEST_TEMPFAIL of this input alone, storage is fine: a DKIM
                               key lookup failed under dkim = require */
};

/* A decoded input, for callers that do not store (validate) and for ingest itself. */
struct ingest_payload {
    const unsigned char *raw; /* as received (gzip or JSON); borrowed from input or mime */
    size_t rawlen;
    const unsigned char *json; /* the report JSON: raw itself, or inflated.data */
    size_t jsonlen;
    struct buf inflated; /* owned; empty when raw was not compressed */
    tr_err decode_err;   /* TR_OK, or why this payload could not be decoded */
    char decode_reason[TR_ERRLEN];
    /* json[0..jsonlen) was checked whole against the limits' counts and
     * lengths while it was inflated: report_parse need not scan it again */
    bool scanned;
};
struct ingest_decoded {
    bool is_message;
    struct mime_message msg;
    struct ingest_payload *payloads;
    size_t npayloads;
};

/* Sniff data (JSON, gzip, zlib or a mail message) and decode its report payloads.
 * Returns TR_OK when at least one payload was found (each payload carries its own
 * decode error), or an error with err set. dec must be freed with ingest_decoded_free. */
tr_err ingest_decode(const void *data, size_t len, const struct ingest_limits *lim,
                     struct ingest_decoded *dec, char *err);
void ingest_decoded_free(struct ingest_decoded *dec);
/* Inflate gzip or zlib in[0..len) into out (out->max the cap), scanning JSON
 * text against lim's bounds as it comes: TR_EINVAL as soon as it is over one
 * (err: "path: what is over which bound"), TR_ETOOBIG past out->max, TR_EPARSE
 * when it is not gzip, TR_ENOMEM. */
tr_err ingest_inflate(const void *in, size_t len, struct buf *out, const struct ingest_limits *lim,
                      char *err);

/* A prepared input: sniffed, decoded and validated, not yet stored. Preparing
 * touches no database, so many threads may prepare while one thread stores
 * (the CLI pipeline, the HTTP endpoint's group commit). */
struct ingest_job;

/* Prepare data[0..len). With take, the job owns data (malloc'd) and frees it;
 * otherwise data is copied. src is copied. NULL only when out of memory.
 * A mail that holds an acceptable report and did not come over HTTP is DKIM
 * verified as lim->dkim says (this may wait for DNS, up to its timeout); the
 * verdict joins the job's source (dkim_result...), and under dkim = require a
 * mail without a passing signature can only be quarantined, one whose key
 * lookup failed is a temporary failure (input_tempfail). */
struct ingest_job *ingest_prepare(void *data, size_t len, bool take, const struct store_source *src,
                                  const struct ingest_limits *lim);
/* A job for an input that could not be read: e is TR_ETOOBIG (rejected and
 * quarantined without its bytes, size recorded), TR_EIO (unreadable) or
 * TR_ENOMEM (temporary failure). */
struct ingest_job *ingest_prepare_failed(const struct store_source *src, tr_err e,
                                         const char *reason, size_t size);
/* A job for an input already known to be unacceptable (a body whose
 * Content-Encoding does not decode, say): stored in the quarantine with reason. */
struct ingest_job *ingest_prepare_rejected(void *data, size_t len, bool take,
                                           const struct store_source *src, const char *reason);
void ingest_job_free(struct ingest_job *job);
/* The input a job holds (NULL when it could not be read) and its source,
 * borrowed from the job. */
const void *ingest_job_input(const struct ingest_job *job, size_t *len,
                             const struct store_source **src);
/* True when storing the job can only quarantine it (no acceptable report in
 * it); *reason says why. False for temporary failures and good reports. */
bool ingest_job_rejected(const struct ingest_job *job, const char **reason);
/* The job re-ingests quarantine entry id: when it is stored (or found to be a
 * duplicate) the entry is removed in the same transaction. */
void ingest_job_set_requeue(struct ingest_job *job, int64_t quarantine_id);
/* What storing job would give, without a database: INGEST_STORED when one of
 * its reports is acceptable (stored, or a duplicate of a stored one),
 * INGEST_REJECTED when none is, INGEST_UNREADABLE or INGEST_TEMPFAIL for a job
 * that holds no input; reason (n bytes, may be NULL) says why when not stored. */
enum ingest_outcome ingest_job_verdict(const struct ingest_job *job, char *reason, size_t n);
/* True when a report part of job stopped at the max_inflated it was prepared with. */
bool ingest_job_inflate_capped(const struct ingest_job *job);
/* Bytes job holds besides the parsed trees: the input, the inflated text, the
 * rows serialized for storage. *json (may be NULL): the bytes of report JSON
 * parsed into trees. */
size_t ingest_job_bytes(const struct ingest_job *job, size_t *json);

struct ingest;
struct ingest *ingest_new(struct store *st, const struct ingest_limits *lim);
void ingest_free(struct ingest *ig);

tr_err ingest_begin(struct ingest *ig, char *err);
/* Store a prepared job inside the open batch; res is filled (free with
 * ingest_result_free). With a backend that sends a batch's reports together
 * (PostgreSQL), whether a report was a duplicate, and its id, are known only
 * after ingest_commit(): res and job must stay valid until then. */
void ingest_store(struct ingest *ig, const struct ingest_job *job, struct ingest_result *res);
/* Whether the store has taken every report of res already (SQLite: at once;
 * PostgreSQL: at the commit), so the job may be freed before ingest_commit(). */
bool ingest_result_settled(const struct ingest_result *res);
/* prepare + store + free, for callers with one input at hand: the report is
 * sent to the store before the job is freed; whether it was a duplicate is
 * known after ingest_commit() (res must stay valid until then). */
void ingest_input(struct ingest *ig, const void *data, size_t len, const struct store_source *src,
                  struct ingest_result *res);
/* Commit the batch. On failure the batch is rolled back and TR_EDB returned
 * (TR_ERETRY: it lost a race with another writer and may simply run again):
 * callers mark their results with ingest_result_tempfail(). */
tr_err ingest_commit(struct ingest *ig, char *err);
void ingest_rollback(struct ingest *ig);
bool ingest_failed(const struct ingest *ig); /* a store error poisoned the batch */

void ingest_result_tempfail(struct ingest_result *res, const char *why);
void ingest_result_free(struct ingest_result *res);
const char *ingest_outcome_name(enum ingest_outcome o);
/* sysexits code for an outcome: 0, 65, 74, 75. */
int ingest_exit_code(enum ingest_outcome o);

#endif
