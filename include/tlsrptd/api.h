/* api.h: the read side of `tlsrptd serve`: the JSON API under /api/v1/ (the
 * JSON of `tlsrptd summary`, `show` and `quarantine`, same parameters as
 * query strings), the database-backed part of GET /metrics, and who may ask.
 *
 * Access (docs/http.md): with api_token configured, a request needs
 * "Authorization: Bearer <token>" (compared in constant time; 401
 * otherwise); without one, only loopback clients are answered (403). The
 * daemon applies the same rule to /metrics. Queries run on a small pool of
 * read-only connections, so a slow one does not hold up the others. No SQL
 * here: everything goes through query.h and store.h. */
#ifndef TLSRPTD_API_H
#define TLSRPTD_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/config.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/prom.h"
#include "tlsrptd/store.h"
#include "tlsrptd/trust.h"

/* A request's query string, as (key, value) pairs; value may be NULL. */
#define API_MAX_ARGS 80
struct api_args {
    const char *key[API_MAX_ARGS];
    const char *value[API_MAX_ARGS];
    size_t n;
    bool overflow; /* more than API_MAX_ARGS */
};

/* What to answer: a JSON body, or bytes with their content type. */
struct api_answer {
    unsigned status;
    json_t *body;         /* a new reference, or NULL when bytes are the answer */
    unsigned char *bytes; /* malloc'd */
    size_t len;
    const char *content_type;
    char disposition[160]; /* Content-Disposition, or "" */
    unsigned retry_after;  /* seconds, for 503 */
};
void api_answer_free(struct api_answer *ans);

/* The largest page of summary groups, reports or quarantine entries. */
#define API_MAX_LIMIT 10000

struct api;

struct api *api_new(const struct config *cfg);
void api_free(struct api *a);

/* Who asks, as the access rule found (docs/trust.md). */
struct api_access {
    bool all;                 /* every domain: api_token, a "*" line of tokens_file, or a loopback
                                 client when no token is configured */
    struct store_scope scope; /* !all: the domains of the tenant's token */
    struct trust *held;       /* the snapshot scope's patterns belong to */
};

/* The access rule: 0 when the request may be answered (*who says as whom;
 * api_access_release() it), else 401 or 403 (why: for the body). With
 * api_token or tokens_file configured a request needs "Authorization: Bearer
 * <token>" naming one of them (compared in constant time); without either,
 * only loopback clients are answered. */
unsigned api_authorize(const struct config *cfg, const char *client, const char *authorization,
                       struct api_access *who, const char **why);
void api_access_release(struct api_access *who);
/* api_authorize without keeping who. */
unsigned api_check_access(const struct config *cfg, const char *client, const char *authorization,
                          const char **why);

/* GET path (below /api/v1: "/summary", "/reports", "/reports/ID", "/policies",
 * "/quarantine", "/quarantine/ID", "/quarantine/ID/raw") as who sees it: a
 * tenant's token gets its domains only, and 403 for the quarantine. 200 with
 * the answer, 400 naming a bad parameter, 403, 404, 503 when the database
 * cannot be read. */
void api_get(struct api *a, const struct api_access *who, const char *path,
             const struct api_args *args, struct api_answer *out);

/* POST /api/v1/quarantine/ID/reingest: true when path is that route. */
bool api_is_reingest(const char *path);
/* The job that re-ingests the entry (prepared with lim, marked to leave the
 * quarantine once stored), or false with *out filled (404, 503). */
bool api_reingest_job(struct api *a, const char *path, const struct ingest_limits *lim,
                      struct ingest_job **job, struct api_answer *out);

/* Append the database-backed metrics in the Prometheus text format: sessions
 * and failed sessions per domain (and result type) for the metrics_domains
 * busiest domains and one "(other)" series for the rest, the latest report
 * per domain and reporter, inputs by source and outcome, the database size.
 * A tenant's token gets the series of its domains only. */
tr_err api_metrics(struct api *a, const struct api_access *who, struct buf *out, char *err);

/* Kept for callers from before prom.h. */
#define api_printf prom_printf

#endif
