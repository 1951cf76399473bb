/* api_record.c: GET /api/v1/record, /api/v1/record/check and /api/v1/config
 * (see api_record.h). Turns query strings into record_gen requests and its
 * outcomes into JSON; the rules and messages are record_gen's. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/api_record.h"
#include "tlsrptd/log.h"
#include "tlsrptd/record_gen.h"

/* One live check at a time: each may wait for DNS for seconds on an HTTP thread. */
static pthread_mutex_t check_mu = PTHREAD_MUTEX_INITIALIZER;

static json_t *error_body(unsigned status, const char *error, const char *detail)
{
    return json_pack("{s:i, s:s, s:s}", "status", (int)status, "error", error, "detail", detail);
}

static unsigned bad_request(json_t **body, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static unsigned bad_request(json_t **body, const char *fmt, ...)
{
    char detail[TR_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    *body = error_body(400, "bad request", detail);
    json_object_set_new(*body, "exit", json_integer(RECORD_GEN_USAGE)); /* as the command's */
    return 400;
}

/* A yes/no parameter: 1, true, yes, on / 0, false, no, off, or empty. */
static bool parse_flag(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"", "0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (strcmp(v, yes[i]) == 0)
            return *out = true;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strcmp(v, no[i]) == 0)
            return !(*out = false);
    return false;
}

/* The request of record_gen from a query string; check: only what --check
 * takes. Returns 0, or 400 with *body set. */
static unsigned parse_request(const struct config *cfg, const struct api_args *args, bool check,
                              struct record_gen_request *rq, bool *explain, json_t **body)
{
    memset(rq, 0, sizeof *rq);
    rq->public_url = cfg->public_url;
    rq->report_mailbox = cfg->report_mailbox;
    *explain = false;
    if (args->overflow)
        return bad_request(body, "too many query parameters");
    for (size_t i = 0; i < args->n; i++) {
        const char *k = args->key[i], *v = args->value[i] ? args->value[i] : "";
        bool multi = strcmp(k, "rua") == 0 || (!check && strcmp(k, "mx") == 0);
        if (multi) {
            bool rua = k[0] == 'r';
            size_t *n = rua ? &rq->nrua : &rq->nmx;
            if (*n == RECORD_GEN_MAX_ARGS)
                return bad_request(body, "at most %d --%s values", RECORD_GEN_MAX_ARGS, k);
            (rua ? rq->rua : rq->mx)[(*n)++] = v;
            continue;
        }
        const char **slot = strcmp(k, "domain") == 0    ? &rq->domain
                            : check                     ? NULL
                            : strcmp(k, "ttl") == 0     ? &rq->ttl
                            : strcmp(k, "mode") == 0    ? &rq->mode
                            : strcmp(k, "max_age") == 0 ? &rq->max_age
                                                        : NULL;
        if (slot) {
            if (*slot)
                return bad_request(body, "--%s given twice",
                                   strcmp(k, "max_age") == 0 ? "max-age" : k);
            *slot = v;
        } else if (!check && (strcmp(k, "mta_sts") == 0 || strcmp(k, "explain") == 0)) {
            bool on;
            if (!parse_flag(v, &on))
                return bad_request(body, "%s: '%.100s' is not 1 or 0", k, v);
            *(k[0] == 'm' ? &rq->mta_sts : explain) = on;
        } else {
            return bad_request(body, "unknown parameter '%.100s'", k);
        }
    }
    return 0;
}

/* 400 (or 503) with record_gen's message, the field and the exit code. */
static unsigned refused(const struct record_gen *g, json_t **body)
{
    unsigned status = g->status == RECORD_GEN_TEMPFAIL ? 503 : 400;
    *body = error_body(status, status == 503 ? "unavailable" : "bad request", g->err);
    json_object_set_new(*body, "field", g->field ? json_string(g->field) : json_null());
    json_object_set_new(*body, "exit", json_integer(g->status));
    return status;
}

static json_t *notes_of(const struct record_gen *g)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < g->nnotes; i++)
        json_array_append_new(a, json_string(g->notes[i]));
    return a;
}

static unsigned generate(const struct config *cfg, const struct api_args *args, json_t **body)
{
    struct record_gen_request rq;
    struct record_gen g;
    bool explain;
    unsigned status = parse_request(cfg, args, false, &rq, &explain, body);
    if (status)
        return status;
    if (record_gen_build(&rq, &g) != 0) {
        status = refused(&g, body);
        record_gen_free(&g);
        return status;
    }
    json_t *o = record_gen_json(&g);
    if (o && explain) {
        char *zone = record_gen_zone_line(&g, false);
        json_object_set_new(o, "zone", zone ? json_string(zone) : json_null());
        free(zone);
        json_t *sts = json_object_get(o, "mta_sts");
        if (sts) {
            zone = record_gen_zone_line(&g, true);
            json_object_set_new(sts, "zone", zone ? json_string(zone) : json_null());
            free(zone);
        }
        json_object_set_new(o, "notes", notes_of(&g));
    }
    record_gen_free(&g);
    if (o == NULL) {
        *body = error_body(503, "unavailable", "out of memory");
        return 503;
    }
    *body = o;
    return 200;
}

static unsigned check(const struct config *cfg, const struct api_args *args, json_t **body)
{
    struct record_gen_request rq;
    struct record_gen g;
    bool explain;
    char err[TR_ERRLEN];
    unsigned status = parse_request(cfg, args, true, &rq, &explain, body);
    if (status)
        return status;
    struct dns_server srv;
    if (dns_server_parse(cfg->dns, &srv, err) != TR_OK) { /* config_finish checked it */
        *body = error_body(500, "internal error", err);
        return 500;
    }
    if (record_gen_target(&rq, &g) != 0) {
        status = refused(&g, body);
        record_gen_free(&g);
        return status;
    }
    if (pthread_mutex_trylock(&check_mu) != 0) {
        record_gen_free(&g);
        *body = error_body(503, "busy", "a record check is already running; try again shortly");
        return 503;
    }
    json_t *v = NULL;
    int rc = record_gen_check(&g, &srv, RECORD_GEN_DNS_TIMEOUT, NULL, &v);
    pthread_mutex_unlock(&check_mu);
    if (v) {
        json_object_set_new(v, "notes", notes_of(&g));
        tr_debug("record check %s: exit %d", g.name, rc);
    }
    record_gen_free(&g);
    if (v == NULL) {
        *body = error_body(503, "unavailable", "out of memory");
        return 503;
    }
    *body = v;
    return 200;
}

static unsigned config_info(const struct config *cfg, const struct api_args *args, json_t **body)
{
    if (args->n || args->overflow)
        return bad_request(body, "unknown parameter '%.100s'", args->n ? args->key[0] : "");
    *body = json_pack("{s:s, s:s?, s:s?}", "version", TLSRPTD_VERSION, "public_url",
                      cfg->public_url, "report_mailbox", cfg->report_mailbox);
    return 200;
}

unsigned api_record(const struct config *cfg, const char *path, const struct api_args *args,
                    json_t **body)
{
    if (strcmp(path, "/api/v1/record") == 0)
        return generate(cfg, args, body);
    if (strcmp(path, "/api/v1/record/check") == 0)
        return check(cfg, args, body);
    if (strcmp(path, "/api/v1/config") == 0)
        return config_info(cfg, args, body);
    return 0;
}
