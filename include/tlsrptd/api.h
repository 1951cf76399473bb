/* api.h: the read side of `tlsrptd serve`: GET /api/v1/summary and
 * /api/v1/reports (the JSON of `tlsrptd summary`, same parameters as query
 * strings), the database-backed part of GET /metrics, and who may ask.
 *
 * Access (DESIGN §4): with api_token configured, a request needs
 * "Authorization: Bearer <token>" (compared in constant time; 401
 * otherwise); without one, only loopback clients are answered (403). The
 * daemon applies the same rule to /metrics. Queries run on one read-only
 * connection, one at a time. */
#ifndef TLSRPTD_API_H
#define TLSRPTD_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/config.h"

/* A request's query string, as (key, value) pairs; value may be NULL. */
#define API_MAX_ARGS 80
struct api_args {
    const char *key[API_MAX_ARGS];
    const char *value[API_MAX_ARGS];
    size_t n;
    bool overflow; /* more than API_MAX_ARGS */
};

struct api;

struct api *api_new(const struct config *cfg);
void api_free(struct api *a);

/* 0 when the request may be answered, else 401 or 403 (why: for the body). */
unsigned api_check_access(const struct config *cfg, const char *client, const char *authorization,
                          const char **why);

/* GET /api/v1/summary and /api/v1/reports: the HTTP status and a JSON body
 * (a new reference): 200 with the result, 400 naming a bad parameter, 503
 * when the database cannot be read. */
unsigned api_summary(struct api *a, const struct api_args *args, json_t **body);
unsigned api_reports(struct api *a, const struct api_args *args, json_t **body);

/* Append the database-backed metrics in the Prometheus text format:
 * sessions and failed sessions per domain (and result type), reports by
 * source and outcome, the Maildir backlog and the database size. */
tr_err api_metrics(struct api *a, struct buf *out, char *err);

/* Append to out, failing only when out is full. */
tr_err api_printf(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
