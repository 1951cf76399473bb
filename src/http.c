/* http.c: the https rua endpoint (libmicrohttpd + GnuTLS), DESIGN.md §4.
 *
 * Routes: POST {path} and {path}/anything (reports), GET /healthz, GET
 * /api/v1/summary, /api/v1/reports and /metrics (the read side: api.c), GET
 * /api/v1/record... (api_record.c), GET / and /console/... (console.c). A report
 * request is checked on its first call (method, rate, length, media type),
 * its body collected up to max_body, and on the last call gunzipped (when
 * Content-Encoding says so), prepared (decoded and validated, on this thread)
 * and handed to the writer; the connection is suspended until the writer has
 * committed the report, then answered: 201 stored, 200 duplicate, 400 not a
 * report (JSON body naming the problem), 503 storage unavailable. Errors are
 * queued only on the first or the last call, as libmicrohttpd requires. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "tlsrptd/api.h"
#include "tlsrptd/api_record.h"
#include "tlsrptd/console.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/http.h"
#include "tlsrptd/log.h"

#define MAX_DAEMONS (2 * CONFIG_MAX_LIST)

struct daemon_slot {
    struct MHD_Daemon *d;
    struct http_listener *l;
    bool retired; /* replaced by a new daemon after a TLS reload */
    time_t retired_at;
};

/* Every open connection, so the main loop can cut off clients that take
 * longer than connection_timeout to send a whole request. libmicrohttpd's own
 * timeout only counts idle time, and a client dribbling a byte a second is
 * never idle. Shutting the socket down makes libmicrohttpd close the
 * connection in its own thread. */
struct conn_watch {
    int fd;
    time_t deadline; /* 0: waiting for the writer, not the client */
    bool cut;
    char client[INET6_ADDRSTRLEN];
    struct conn_watch *prev, *next;
};

/* upper bounds (seconds) of tlsrptd_http_request_duration_seconds' buckets */
static const double duration_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,   0.25,   0.5,   1,    2.5,   10};
#define NBUCKETS (sizeof duration_bounds / sizeof *duration_bounds)

struct http_server {
    const struct config *cfg;
    struct writer *writer;
    struct ratelimit *rl;
    struct ingest_limits lim;
    struct http_listener *listeners;
    size_t nlisteners;
    struct daemon_slot daemons[MAX_DAEMONS];
    size_t ndaemons;
    pthread_mutex_t mu; /* daemons[] */
    atomic_size_t in_flight;
    atomic_bool quiescing;
    pthread_mutex_t watch_mu;
    struct conn_watch *watches;
    struct api *api;
    /* for /metrics: answers by status, and a histogram of request durations */
    atomic_ulong answers[600];
    atomic_ulong duration_buckets[NBUCKETS];
    atomic_ulong duration_count;
    atomic_ullong duration_sum_us;
};

enum route {
    ROUTE_REPORT,
    ROUTE_HEALTHZ,
    ROUTE_API_SUMMARY,
    ROUTE_API_REPORTS,
    ROUTE_API_OTHER,
    ROUTE_METRICS,
    ROUTE_CONSOLE,
    ROUTE_OTHER
};
enum phase { PHASE_UPLOAD, PHASE_WAITING, PHASE_ANSWERED };

/* One request on a connection (libmicrohttpd's *con_cls). */
struct request {
    struct http_server *hs;
    struct MHD_Connection *conn;
    enum route route;
    enum phase phase;
    bool counted; /* in hs->in_flight */
    struct buf body;
    bool too_large, gzip_encoded;
    size_t bytes_in;
    struct writer_request wreq;
    atomic_bool committed;
    struct timespec start;
    unsigned status;
    char client[INET6_ADDRSTRLEN];
    char method[16];
    char path[256];
    char outcome[TR_ERRLEN + 64];
};

/* ---- sockets -------------------------------------------------------------------------------- */

tr_err http_bind(const char *addr_port, bool tls, struct http_listener *out, char *err)
{
    char host[256];
    const char *colon = strrchr(addr_port, ':');
    if (colon == NULL || colon == addr_port || colon[1] == 0)
        return tr_fail(err, TR_EUSAGE, "listen address '%s' is not ADDR:PORT", addr_port);
    size_t hl = (size_t)(colon - addr_port);
    if (hl >= sizeof host)
        return tr_fail(err, TR_EUSAGE, "listen address '%s' is too long", addr_port);
    memcpy(host, addr_port, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai =
        getaddrinfo(strcmp(host, "*") == 0 || host[0] == 0 ? NULL : host, colon + 1, &hints, &ai);
    if (gai != 0)
        return tr_fail(err, TR_EUSAGE, "listen address '%s': %s", addr_port, gai_strerror(gai));
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        tr_err e = tr_fail(err, TR_EIO, "cannot listen on %s: %s", addr_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return e;
    }
    freeaddrinfo(ai);
    out->fd = fd;
    out->tls = tls;
    snprintf(out->name, sizeof out->name, "%s", addr_port);
    return TR_OK;
}

/* ---- responses ------------------------------------------------------------------------------ */

static enum MHD_Result send_json(struct request *rq, unsigned status, json_t *body,
                                 unsigned retry_after)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return MHD_NO;
    size_t len = strlen(text);
    text[len] = 0;
    /* large answers (the console's summaries) gzipped for clients that take it */
    struct buf gz;
    buf_init(&gz, 2 * len + 1024); /* deflate reserves its worst case (above len) first */
    bool zipped = len >= 1024 &&
                  console_accepts_gzip(MHD_lookup_connection_value(
                      rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING)) &&
                  gz_deflate(text, len, 6, &gz, NULL) == TR_OK && gz.len < len;
    if (zipped) {
        free(text);
        text = (char *)gz.data;
        len = gz.len;
    } else {
        buf_free(&gz);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE); /* frees text */
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (zipped)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"tlsrptd\"");
    if (retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                rq->route == ROUTE_REPORT ? "POST" : "GET, HEAD");
    rq->status = status;
    rq->phase = PHASE_ANSWERED;
    enum MHD_Result r = MHD_queue_response(rq->conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_error(struct request *rq, unsigned status, const char *error,
                                  const char *detail, unsigned retry_after)
{
    snprintf(rq->outcome, sizeof rq->outcome, "%s%s%s", error, detail ? ": " : "",
             detail ? detail : "");
    json_t *body = json_pack("{s:i, s:s}", "status", (int)status, "error", error);
    if (detail)
        json_object_set_new(body, "detail", json_string(detail));
    return send_json(rq, status, body, retry_after);
}

static void client_address(struct MHD_Connection *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, n, "-");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)n);
}

/* ---- connection deadlines ------------------------------------------------------------------ */

static struct conn_watch *watch_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* deadline: seconds from now, or 0 for none (waiting for the writer) */
static void watch_deadline(struct http_server *hs, struct MHD_Connection *c, bool none)
{
    struct conn_watch *w = watch_of(c);
    if (w == NULL)
        return;
    pthread_mutex_lock(&hs->watch_mu);
    w->deadline = none ? 0 : time(NULL) + (time_t)hs->cfg->connection_timeout;
    pthread_mutex_unlock(&hs->watch_mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *hs = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn_watch *w = calloc(1, sizeof *w);
        if (w == NULL)
            return;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        w->fd = ci ? ci->connect_fd : -1;
        w->deadline = time(NULL) + (time_t)hs->cfg->connection_timeout;
        client_address(c, w->client, sizeof w->client);
        pthread_mutex_lock(&hs->watch_mu);
        /* max_connections_per_ip over all worker threads and listeners:
         * libmicrohttpd's own count is not shared between its workers */
        size_t same = 0;
        for (struct conn_watch *o = hs->watches; o; o = o->next)
            same += !o->cut && strcmp(o->client, w->client) == 0;
        w->next = hs->watches;
        if (hs->watches)
            hs->watches->prev = w;
        hs->watches = w;
        if (same >= hs->cfg->max_connections_per_ip && w->fd >= 0) {
            w->cut = true;
            shutdown(w->fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&hs->watch_mu);
        *socket_context = w;
        if (w->cut)
            tr_info("%s: refused: more than %zu connections from one address", w->client,
                    hs->cfg->max_connections_per_ip);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        struct conn_watch *w = *socket_context;
        pthread_mutex_lock(&hs->watch_mu);
        if (w->prev)
            w->prev->next = w->next;
        else
            hs->watches = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&hs->watch_mu);
        free(w);
        *socket_context = NULL;
    }
}

/* Called every second: shut down connections past their deadline. */
static void cut_slow_clients(struct http_server *hs)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&hs->watch_mu);
    for (struct conn_watch *w = hs->watches; w; w = w->next) {
        if (w->cut || w->deadline == 0 || w->deadline > now || w->fd < 0)
            continue;
        w->cut = true;
        shutdown(w->fd, SHUT_RDWR);
        tr_info("%s: cut off: no complete request within %zu s", w->client,
                hs->cfg->connection_timeout);
    }
    pthread_mutex_unlock(&hs->watch_mu);
}

/* ---- the report POST ------------------------------------------------------------------------ */

static bool media_type_ok(const char *ct)
{
    static const char *const ok[] = {"application/tlsrpt+gzip",  "application/tlsrpt+json",
                                     "application/tlsrpt",       "application/json",
                                     "application/gzip",         "application/x-gzip",
                                     "application/octet-stream", NULL};
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    for (const char *const *t = ok; *t; t++)
        if (strlen(*t) == n && strncasecmp(ct, *t, n) == 0)
            return true;
    return false;
}

static void on_committed(struct writer_request *wreq)
{
    struct request *rq = wreq->cls;
    atomic_store(&rq->committed, true);
    MHD_resume_connection(rq->conn);
}

static enum MHD_Result answer_report(struct request *rq)
{
    const struct ingest_result *res = &rq->wreq.res;
    const struct ingest_report *first = res->nreports ? &res->reports[0] : NULL;
    json_t *reports;
    switch (res->outcome) {
    case INGEST_STORED:
    case INGEST_DUPLICATE:
        reports = json_array();
        for (size_t i = 0; i < res->nreports; i++) {
            const struct ingest_report *r = &res->reports[i];
            json_array_append_new(reports,
                                  json_pack("{s:s, s:I, s:s?, s:s?}", "result",
                                            ingest_outcome_name(r->outcome), "id",
                                            (json_int_t)r->id, "organization-name",
                                            r->organization_name, "report-id", r->report_id));
        }
        snprintf(rq->outcome, sizeof rq->outcome, "%s id=%lld", ingest_outcome_name(res->outcome),
                 first ? (long long)first->id : 0LL);
        return send_json(rq, res->outcome == INGEST_STORED ? MHD_HTTP_CREATED : MHD_HTTP_OK,
                         json_pack("{s:s, s:o}", "result", ingest_outcome_name(res->outcome),
                                   "reports", reports),
                         0);
    case INGEST_REJECTED:
        return send_error(rq, MHD_HTTP_BAD_REQUEST, "not an acceptable report", res->reason, 0);
    default:
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "storage unavailable", res->reason, 60);
    }
}

static enum MHD_Result submit(struct request *rq);

/* The last call of an upload: decode and hand over to the writer. */
static enum MHD_Result finish_upload(struct request *rq)
{
    struct http_server *hs = rq->hs;
    if (rq->too_large) {
        char detail[96];
        snprintf(detail, sizeof detail, "the body is larger than %zu bytes", hs->cfg->max_body);
        return send_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", detail, 0);
    }
    struct buf data = rq->body; /* in flight at a SIGTERM: still stored and answered */
    buf_init(&rq->body, 0);     /* ownership moves on */
    if (rq->gzip_encoded) {
        struct buf plain;
        char err[TR_ERRLEN];
        buf_init(&plain, hs->cfg->max_inflated);
        tr_err e = gz_inflate(data.data, data.len, &plain, err);
        if (e != TR_OK) {
            /* rejected, but kept: the writer quarantines it and then we answer 400 */
            buf_free(&plain);
            char reason[TR_ERRLEN];
            snprintf(reason, sizeof reason, "Content-Encoding: gzip body: %.200s", err);
            struct store_source qsrc = {"http", rq->path, rq->client, NULL, NULL, NULL, NULL};
            rq->wreq.job = ingest_prepare_rejected(data.data, data.len, true, &qsrc, reason);
            if (rq->wreq.job == NULL)
                return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL, 10);
            return submit(rq);
        }
        buf_free(&data);
        data = plain;
    }
    struct store_source src = {"http", rq->path, rq->client, NULL, NULL, NULL, NULL};
    if (data.data == NULL && buf_reserve(&data, 0) != TR_OK)
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL, 10);
    rq->wreq.job = ingest_prepare(data.data, data.len, true, &src, &hs->lim);
    if (rq->wreq.job == NULL)
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL, 10);
    return submit(rq);
}

/* Hand the prepared job to the writer; the connection sleeps until it committed. */
static enum MHD_Result submit(struct request *rq)
{
    struct http_server *hs = rq->hs;
    rq->wreq.done = on_committed;
    rq->wreq.cls = rq;
    rq->phase = PHASE_WAITING;
    watch_deadline(hs, rq->conn, true); /* the writer is slow, not the client */
    MHD_suspend_connection(rq->conn);
    writer_submit(hs->writer, &rq->wreq);
    return MHD_YES;
}

/* The first call: everything that can be refused before the body arrives. */
static enum MHD_Result start_report(struct request *rq)
{
    struct http_server *hs = rq->hs;
    struct MHD_Connection *c = rq->conn;
    if (strcmp(rq->method, MHD_HTTP_METHOD_POST) != 0)
        return send_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
                          "reports are POSTed", 0);
    if (atomic_load(&hs->quiescing))
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL, 60);
    unsigned retry = 0;
    if (!ratelimit_allow(hs->rl, rq->client, &retry))
        return send_error(rq, MHD_HTTP_TOO_MANY_REQUESTS, "too many requests", NULL, retry);

    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl == NULL && te == NULL)
        return send_error(rq, MHD_HTTP_LENGTH_REQUIRED, "length required",
                          "send Content-Length or a chunked body", 0);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > hs->cfg->max_body) {
            char detail[96];
            snprintf(detail, sizeof detail, "Content-Length %llu is over the limit of %zu bytes", n,
                     hs->cfg->max_body);
            return send_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", detail, 0);
        }
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || !media_type_ok(ct))
        return send_error(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported media type",
                          "send application/tlsrpt+gzip or application/tlsrpt+json", 0);
    const char *ce =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (ce && (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0))
        rq->gzip_encoded = true;
    else if (ce && strcasecmp(ce, "identity") != 0)
        return send_error(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported content encoding",
                          "only gzip is accepted", 0);
    buf_init(&rq->body, hs->cfg->max_body);
    return MHD_YES;
}

/* ---- the read side: /api/v1/..., /metrics --------------------------------------------------- */

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    struct api_args *args = cls;
    if (args->n == API_MAX_ARGS) {
        args->overflow = true;
        return MHD_NO;
    }
    args->key[args->n] = key;
    args->value[args->n++] = value;
    return MHD_YES;
}

static void metrics_http(struct http_server *hs, struct buf *out)
{
    (void)api_printf(out, "# HELP tlsrptd_http_requests_total HTTP requests answered since the "
                          "daemon started, by status code.\n"
                          "# TYPE tlsrptd_http_requests_total counter\n");
    for (unsigned code = 100; code < 600; code++) {
        unsigned long n = atomic_load(&hs->answers[code]);
        if (n)
            (void)api_printf(out, "tlsrptd_http_requests_total{code=\"%u\"} %lu\n", code, n);
    }
    (void)api_printf(out, "# HELP tlsrptd_http_request_duration_seconds Time from a request's "
                          "first byte to its answer.\n"
                          "# TYPE tlsrptd_http_request_duration_seconds histogram\n");
    unsigned long cumulative = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cumulative += atomic_load(&hs->duration_buckets[i]);
        (void)api_printf(out, "tlsrptd_http_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
                         duration_bounds[i], cumulative);
    }
    unsigned long count = atomic_load(&hs->duration_count);
    (void)api_printf(out,
                     "tlsrptd_http_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n"
                     "tlsrptd_http_request_duration_seconds_sum %.6f\n"
                     "tlsrptd_http_request_duration_seconds_count %lu\n",
                     count, (double)atomic_load(&hs->duration_sum_us) / 1e6, count);
}

static enum MHD_Result send_metrics(struct request *rq)
{
    struct buf out;
    buf_init(&out, (size_t)64 << 20);
    char err[TR_ERRLEN];
    if (api_metrics(rq->hs->api, &out, err) != TR_OK) {
        buf_free(&out);
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "storage unavailable", err, 5);
    }
    metrics_http(rq->hs, &out);
    size_t len = out.len;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, out.data, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        buf_free(&out);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    snprintf(rq->outcome, sizeof rq->outcome, "metrics %zu bytes", len);
    rq->status = MHD_HTTP_OK;
    rq->phase = PHASE_ANSWERED;
    enum MHD_Result r = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result answer_read(struct request *rq, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL, 0);
    const char *why = NULL;
    unsigned denied = api_check_access(
        rq->hs->cfg, rq->client,
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        &why);
    if (denied)
        return send_error(rq, denied, denied == 401 ? "unauthorized" : "forbidden", why, 0);
    watch_deadline(rq->hs, rq->conn, true); /* complete: a slow query is not a slow client */
    if (rq->route == ROUTE_METRICS)
        return send_metrics(rq);
    struct api_args args = {0};
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &args);
    json_t *body = NULL;
    unsigned status = rq->route == ROUTE_API_SUMMARY ? api_summary(rq->hs->api, &args, &body)
                      : rq->route == ROUTE_API_REPORTS
                          ? api_reports(rq->hs->api, &args, &body)
                          : api_record(rq->hs->cfg, rq->path, &args, &body);
    if (status == 0)
        return send_error(rq, MHD_HTTP_NOT_FOUND, "not found",
                          "the API has /api/v1/summary and /api/v1/reports", 0);
    if (status != MHD_HTTP_OK) {
        snprintf(rq->outcome, sizeof rq->outcome, "%s",
                 json_string_value(json_object_get(body, "detail"))
                     ? json_string_value(json_object_get(body, "detail"))
                     : "error");
        return send_json(rq, status, body, status == MHD_HTTP_SERVICE_UNAVAILABLE ? 5 : 0);
    }
    snprintf(rq->outcome, sizeof rq->outcome, "ok");
    return send_json(rq, status, body, 0);
}

/* The web console's pages and assets: what console.c says, sent as it says. */
static enum MHD_Result send_console(struct request *rq, const char *url)
{
    struct console_reply cr;
    console_answer(
        rq->method, url,
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH),
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING),
        &cr);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        cr.len, (void *)(uintptr_t)cr.body, MHD_RESPMEM_PERSISTENT); /* static assets */
    if (resp == NULL)
        return MHD_NO;
    for (size_t i = 0; i < cr.nheaders; i++)
        MHD_add_response_header(resp, cr.header[i][0], cr.header[i][1]);
    snprintf(rq->outcome, sizeof rq->outcome, "console %zu bytes%s", cr.len,
             cr.gzip ? " gzip" : "");
    rq->status = cr.status;
    rq->phase = PHASE_ANSWERED;
    enum MHD_Result r = MHD_queue_response(rq->conn, cr.status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static enum route route_of(const struct http_server *hs, const char *url)
{
    size_t pl = strlen(hs->cfg->path);
    if (strncmp(url, hs->cfg->path, pl) == 0 && (url[pl] == 0 || url[pl] == '/'))
        return ROUTE_REPORT;
    if (strcmp(url, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strcmp(url, "/api/v1/summary") == 0)
        return ROUTE_API_SUMMARY;
    if (strcmp(url, "/api/v1/reports") == 0)
        return ROUTE_API_REPORTS;
    if (strncmp(url, "/api/", 5) == 0)
        return ROUTE_API_OTHER;
    if (console_path(url))
        return ROUTE_CONSOLE;
    return ROUTE_OTHER;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_server *hs = cls;
    struct request *rq = *con_cls;

    if (rq == NULL) {
        rq = calloc(1, sizeof *rq);
        if (rq == NULL)
            return MHD_NO;
        *con_cls = rq;
        rq->hs = hs;
        rq->conn = conn;
        clock_gettime(CLOCK_MONOTONIC, &rq->start);
        client_address(conn, rq->client, sizeof rq->client);
        snprintf(rq->method, sizeof rq->method, "%s", method);
        snprintf(rq->path, sizeof rq->path, "%s", url);
        rq->route = route_of(hs, url);
        rq->counted = true;
        atomic_fetch_add(&hs->in_flight, 1);
        switch (rq->route) {
        case ROUTE_REPORT:
            return start_report(rq);
        case ROUTE_HEALTHZ:
            if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
                return send_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL, 0);
            snprintf(rq->outcome, sizeof rq->outcome, "ok");
            return send_json(rq, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"), 0);
        case ROUTE_API_SUMMARY:
        case ROUTE_API_REPORTS:
        case ROUTE_API_OTHER:
        case ROUTE_METRICS:
            return answer_read(rq, method);
        case ROUTE_CONSOLE:
            return send_console(rq, url);
        default:
            return send_error(rq, MHD_HTTP_NOT_FOUND, "not found", NULL, 0);
        }
    }

    if (rq->phase == PHASE_ANSWERED) {
        /* an answer was queued early: swallow the rest of the body */
        rq->bytes_in += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->phase == PHASE_WAITING) {
        if (!atomic_load(&rq->committed))
            return MHD_YES; /* spurious call; still suspended */
        return answer_report(rq);
    }
    if (*upload_data_size > 0) {
        rq->bytes_in += *upload_data_size;
        if (!rq->too_large && buf_append(&rq->body, upload_data, *upload_data_size) != TR_OK) {
            rq->too_large = true; /* keep reading, answer 413 at the end */
            buf_free(&rq->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return finish_upload(rq);
}

static void log_request(const struct request *rq)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - rq->start.tv_sec) * 1e3 +
                (double)(now.tv_nsec - rq->start.tv_nsec) / 1e6;
    if (strcmp(rq->hs->cfg->log_format, "json") == 0) {
        tr_log_fields(LOG_INFO,
                      json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:s, s:f}", "msg", "request",
                                "client", rq->client, "method", rq->method, "path", rq->path,
                                "status", (int)rq->status, "bytes", (json_int_t)rq->bytes_in,
                                "outcome", rq->outcome, "latency_ms", ms));
    } else {
        tr_log(LOG_INFO, "%s \"%s %s\" %u %zu %s %.1fms", rq->client, rq->method, rq->path,
               rq->status, rq->bytes_in, rq->outcome[0] ? rq->outcome : "-", ms);
    }
}

static void count_answer(struct http_server *hs, const struct request *rq)
{
    if (rq->status >= 100 && rq->status < 600)
        atomic_fetch_add(&hs->answers[rq->status], 1);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double s =
        (double)(now.tv_sec - rq->start.tv_sec) + (double)(now.tv_nsec - rq->start.tv_nsec) / 1e9;
    for (size_t i = 0; i < NBUCKETS; i++) {
        if (s <= duration_bounds[i]) {
            atomic_fetch_add(&hs->duration_buckets[i], 1);
            break;
        }
    }
    atomic_fetch_add(&hs->duration_count, 1);
    atomic_fetch_add(&hs->duration_sum_us, (unsigned long long)(s * 1e6));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *hs = cls;
    struct request *rq = *con_cls;
    if (rq == NULL)
        return;
    if (rq->phase != PHASE_ANSWERED) {
        rq->status = 0;
        snprintf(rq->outcome, sizeof rq->outcome, "connection closed (%s)",
                 toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout" : "client or error");
    }
    log_request(rq);
    count_answer(hs, rq);
    watch_deadline(hs, conn, false); /* the next request on this connection */
    if (rq->counted)
        atomic_fetch_sub(&hs->in_flight, 1);
    buf_free(&rq->body);
    ingest_job_free(rq->wreq.job);
    ingest_result_free(&rq->wreq.res);
    free(rq);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    tr_debug("libmicrohttpd: %s", msg);
}

/* ---- daemons -------------------------------------------------------------------------------- */

static struct MHD_Daemon *start_daemon(struct http_server *hs, struct http_listener *l,
                                       const char *cert, const char *key)
{
    const struct config *cfg = hs->cfg;
    /* poll, not epoll: quiescing (SIGTERM, certificate reloads) an epoll daemon
     * with worker threads races the workers' removal of the listening socket
     * from their epoll sets, and libmicrohttpd 0.9.75 aborts on the loser */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (l->tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)(uintptr_t)cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)(uintptr_t)key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)cfg->tls_priorities},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, hs, MHD_OPTION_LISTEN_SOCKET, l->fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout, MHD_OPTION_NOTIFY_COMPLETED, on_completed, hs,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, hs, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, hs,
        MHD_OPTION_ARRAY, l->tls ? tls_opts : none, MHD_OPTION_END);
}

struct http_server *http_start(const struct config *cfg, struct writer *w, struct ratelimit *rl,
                               struct http_listener *listeners, size_t n, const char *cert,
                               const char *key, char *err)
{
    struct http_server *hs = calloc(1, sizeof *hs);
    if (hs == NULL) {
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    hs->cfg = cfg;
    hs->writer = w;
    hs->rl = rl;
    hs->listeners = listeners;
    hs->nlisteners = n;
    if ((hs->api = api_new(cfg)) == NULL) {
        free(hs);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    hs->lim = (struct ingest_limits)INGEST_DEFAULT_LIMITS;
    hs->lim.max_input = cfg->max_inflated > cfg->max_body ? cfg->max_inflated : cfg->max_body;
    hs->lim.max_inflated = cfg->max_inflated;
    hs->lim.max_depth = cfg->max_json_depth;
    hs->lim.mime.max_message = hs->lim.max_input;
    hs->lim.mime.max_parts = cfg->max_parts;
    pthread_mutex_init(&hs->mu, NULL);
    pthread_mutex_init(&hs->watch_mu, NULL);
    for (size_t i = 0; i < n; i++) {
        struct MHD_Daemon *d = start_daemon(hs, &listeners[i], cert, key);
        if (d == NULL) {
            tr_fail(err, TR_EIO, "cannot start the HTTP%s server on %s",
                    listeners[i].tls ? "S" : "", listeners[i].name);
            http_stop(hs);
            return NULL;
        }
        hs->daemons[hs->ndaemons++] = (struct daemon_slot){d, &listeners[i], false, 0};
        tr_info("listening on %s (%s)", listeners[i].name, listeners[i].tls ? "https" : "http");
    }
    return hs;
}

tr_err http_reload_tls(struct http_server *hs, const char *cert, const char *key, char *err)
{
    pthread_mutex_lock(&hs->mu);
    tr_err rc = TR_OK;
    size_t n = hs->ndaemons;
    for (size_t i = 0; i < n && rc == TR_OK; i++) {
        struct daemon_slot *s = &hs->daemons[i];
        if (s->retired || !s->l->tls)
            continue;
        if (hs->ndaemons == MAX_DAEMONS) {
            rc = tr_fail(err, TR_EUSAGE, "too many reloads in flight; try again shortly");
            break;
        }
        /* the new daemon takes the listening socket; the old one finishes its connections */
        MHD_socket fd = MHD_quiesce_daemon(s->d);
        if (fd == MHD_INVALID_SOCKET) {
            rc = tr_fail(err, TR_EIO, "cannot hand over %s", s->l->name);
            break;
        }
        struct MHD_Daemon *d = start_daemon(hs, s->l, cert, key);
        if (d == NULL) {
            /* bad certificate: keep serving with the old daemon's setup on a new one is not
             * possible once quiesced, so restart with the old material is the caller's job;
             * report it loudly */
            rc = tr_fail(err, TR_EIO, "cannot restart HTTPS on %s with the new certificate",
                         s->l->name);
            break;
        }
        s->retired = true;
        s->retired_at = time(NULL);
        hs->daemons[hs->ndaemons++] = (struct daemon_slot){d, s->l, false, 0};
    }
    pthread_mutex_unlock(&hs->mu);
    return rc;
}

void http_tick(struct http_server *hs)
{
    cut_slow_clients(hs);
    pthread_mutex_lock(&hs->mu);
    for (size_t i = 0; i < hs->ndaemons;) {
        struct daemon_slot *s = &hs->daemons[i];
        const union MHD_DaemonInfo *info =
            s->retired ? MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;
        /* A worker may still finish an accept() it was inside when the daemon was
         * quiesced, so a retired daemon is stopped only after a grace period. */
        time_t age = time(NULL) - s->retired_at;
        bool idle = info && info->num_connections == 0 && age >= 3;
        bool overdue = s->retired && age > (time_t)hs->cfg->connection_timeout * 2;
        if (s->retired && (idle || overdue)) {
            MHD_stop_daemon(s->d);
            hs->daemons[i] = hs->daemons[--hs->ndaemons];
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&hs->mu);
}

void http_quiesce(struct http_server *hs)
{
    atomic_store(&hs->quiescing, true);
    pthread_mutex_lock(&hs->mu);
    for (size_t i = 0; i < hs->ndaemons; i++) {
        if (hs->daemons[i].retired)
            continue;
        MHD_socket fd = MHD_quiesce_daemon(hs->daemons[i].d);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        hs->daemons[i].l->fd = -1;
    }
    pthread_mutex_unlock(&hs->mu);
}

size_t http_in_flight(struct http_server *hs)
{
    return atomic_load(&hs->in_flight);
}

void http_stop(struct http_server *hs)
{
    if (hs == NULL)
        return;
    for (size_t i = 0; i < hs->ndaemons; i++)
        MHD_stop_daemon(hs->daemons[i].d);
    pthread_mutex_destroy(&hs->mu);
    pthread_mutex_destroy(&hs->watch_mu);
    api_free(hs->api);
    free(hs);
}
