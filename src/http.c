/* http.c: the https rua endpoint (libmicrohttpd + GnuTLS); docs/http.md.
 *
 * Routes: POST {path} and {path}/anything (reports), GET /healthz, GET
 * /api/v1/summary, /api/v1/reports and /metrics (the read side: api.c), GET
 * /api/v1/record... (api_record.c), GET / and /console/... (console.c). A report
 * request is checked on its first call (method, rate, length, media type),
 * its body collected up to max_body, and on the last call prepared: gunzipped
 * (when Content-Encoding says so), decoded and validated (endpoint.c), on this
 * thread when it is small, else on the prepare pool (prepool.c), then handed
 * to the writer;
 * the connection is suspended until the writer has committed the report,
 * then answered: 201 stored, 200 duplicate, 202 spooled while storage is
 * unavailable (writer.c), 400 not a report (JSON body naming the problem),
 * 503 storage unavailable with no room in the spool, or too much being
 * parsed at once. Errors are queued only on the first or the last call, as
 * libmicrohttpd requires. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include "tlsrptd/conntrack.h"
#include "tlsrptd/endpoint.h"
#include "tlsrptd/api_record.h"
#include "tlsrptd/console.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/http.h"
#include "tlsrptd/imap.h"
#include "tlsrptd/log.h"
#include "tlsrptd/maildir.h"
#include "tlsrptd/prom.h"
#include "tlsrptd/record.h"
#include "tlsrptd/trust.h"
#include "tlsrptd/prepool.h"

#define MAX_DAEMONS (2 * CONFIG_MAX_LIST)

struct daemon_slot {
    struct MHD_Daemon *d;
    struct http_listener *l;
    bool retired; /* replaced by a new daemon after a TLS reload */
    time_t retired_at;
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
    struct conntrack *ct; /* every open connection: limits, deadlines, who gives way */
    struct api *api;
    struct prepool *pool;    /* decodes and validates uploads */
    struct prepool *readers; /* answers API reads and /metrics (weight 1 each) */
    /* for /metrics: answers by status, and a histogram of request durations */
    atomic_ulong answers[600];
    atomic_ulong duration_buckets[NBUCKETS];
    atomic_ulong duration_count;
    atomic_ullong duration_sum_us;
};

enum route {
    ROUTE_REPORT,
    ROUTE_HEALTHZ,
    ROUTE_API,      /* GET /api/v1/... (api.c) */
    ROUTE_REINGEST, /* POST /api/v1/quarantine/ID/reingest */
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
    struct prepool_task task; /* preparing the body on the pool */
    /* an API read or /metrics, answered on the readers pool: */
    struct prepool_task read_task;
    struct api_access who;      /* held from the access check until read_run is done */
    struct api_args args;       /* the query, collected on the HTTP thread */
    bool accepts_gzip;          /* Accept-Encoding, read on the HTTP thread */
    bool deferred;              /* on the pool: respond() keeps the answer for later */
    struct MHD_Response *ready; /* that answer, queued on the HTTP thread */
    unsigned ready_status;
    size_t allowance;    /* inflated bytes the preparation may use */
    unsigned busy_retry; /* > 0: the pool refused it (answer 503 with this Retry-After) */
    atomic_bool committed;
    struct timespec start;
    unsigned status;
    char client[INET6_ADDRSTRLEN];
    char method[16];
    char path[256];
    char domain_hint[RECORD_DOMAIN_MAX]; /* from PATH/<domain>, or "" */
    char outcome[TR_ERRLEN + 64];
};

/* ---- sockets -------------------------------------------------------------------------------- */

tr_err http_bind(const char *addr_port, bool tls, struct http_listener *out, char *err)
{
    char host[256];
    const char *colon = strrchr(addr_port, ':');
    if (colon == NULL || colon == addr_port || colon[1] == 0)
        return tr_fail(err, TR_ECONFIG,
                       "not ADDR:PORT: write it like 127.0.0.1:8080, [::1]:8080 or *:443");
    size_t hl = (size_t)(colon - addr_port);
    if (hl >= sizeof host)
        return tr_fail(err, TR_ECONFIG, "the address is too long: write an IP address");
    memcpy(host, addr_port, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    char *pend;
    errno = 0;
    long port = strtol(colon + 1, &pend, 10);
    if (errno || *pend || port < 1 || port > 65535)
        return tr_fail(err, TR_ECONFIG, "port '%s' is not 1-65535: write a port number", colon + 1);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai =
        getaddrinfo(strcmp(host, "*") == 0 || host[0] == 0 ? NULL : host, colon + 1, &hints, &ai);
    if (gai != 0)
        return tr_fail(err, TR_ECONFIG, "%s: write an address of this host and a port 1-65535",
                       gai_strerror(gai));
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        int en = errno;
        /* a port taken by another process may come free: retry (75); the rest will not */
        tr_err e = tr_fail(
            err, en == EADDRINUSE ? TR_EIO : TR_ECONFIG, "cannot listen: %s%s", strerror(en),
            en == EACCES          ? ": ports below 1024 need root: start it as root or "
                                    "give it CAP_NET_BIND_SERVICE (the unit does)"
            : en == EADDRNOTAVAIL ? ": not an address of this host: write one of its addresses, "
                                    "or * for all"
            : en == EADDRINUSE    ? ": another program listens there: stop it or "
                                    "change the port"
                                  : "");
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

/* Large answers (the console's summaries) gzipped for clients that take it:
 * *data (malloc'd) is replaced by its gzip when that is smaller. */
static bool maybe_gzip(struct request *rq, char **data, size_t *len)
{
    if (*len < 1024 || !rq->accepts_gzip)
        return false;
    struct buf gz;
    buf_init(&gz, 2 * *len + 1024); /* deflate reserves its worst case (above len) first */
    if (gz_deflate(*data, *len, 6, &gz, NULL) != TR_OK || gz.len >= *len) {
        buf_free(&gz);
        return false;
    }
    free(*data);
    *data = (char *)gz.data;
    *len = gz.len;
    return true;
}

/* Queue resp (taken) as rq's answer. On a readers pool thread (rq->deferred)
 * it is kept instead and queued by the HTTP thread when the connection is
 * resumed: libmicrohttpd takes an answer only in its access handler. */
static enum MHD_Result respond(struct request *rq, unsigned status, struct MHD_Response *resp)
{
    rq->status = status;
    if (rq->deferred) {
        rq->ready = resp;
        rq->ready_status = status;
        return MHD_YES;
    }
    rq->phase = PHASE_ANSWERED;
    enum MHD_Result r = MHD_queue_response(rq->conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_json(struct request *rq, unsigned status, json_t *body,
                                 unsigned retry_after)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return MHD_NO;
    size_t len = strlen(text);
    text[len] = 0;
    bool zipped = maybe_gzip(rq, &text, &len);
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
    return respond(rq, status, resp);
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

/* ---- connections ---------------------------------------------------------------------------- */

static time_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* The phase of c's connection, for its deadline and for who gives way when full. */
static void conn_phase(struct http_server *hs, struct MHD_Connection *c, enum conntrack_phase ph)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context)
        conntrack_phase(hs->ct, ci->socket_context, ph, mono_now());
}

/* The answer written on a plain-HTTP connection refused because every slot is
 * taken: at once, rather than leaving it in the kernel's accept queue. */
#define BUSY_BODY                                                                                  \
    "{\"status\":503,\"error\":\"server busy\",\"detail\":\"all connections are taken\"}"
_Static_assert(sizeof BUSY_BODY - 1 == 73, "Content-Length of busy_answer");
static const char busy_answer[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    "Connection: close\r\nContent-Length: 73\r\n\r\n" BUSY_BODY;

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *hs = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fdi =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const union MHD_ConnectionInfo *di = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);
        int fd = fdi ? fdi->connect_fd : -1;
        /* the listening socket tells listeners apart; TLS ones get no plain-text answer */
        const union MHD_DaemonInfo *lfd =
            di ? MHD_get_daemon_info(di->daemon, MHD_DAEMON_INFO_LISTEN_FD) : NULL;
        const union MHD_DaemonInfo *flags =
            di ? MHD_get_daemon_info(di->daemon, MHD_DAEMON_INFO_FLAGS) : NULL;
        bool tls = flags && (flags->flags & MHD_USE_TLS);
        enum conntrack_verdict v;
        struct conntrack_conn *cc = conntrack_open(hs->ct, fd, ai ? ai->client_addr : NULL,
                                                   lfd ? (long)lfd->listen_fd : -1, mono_now(), &v);
        *socket_context = cc;
        if (v != CT_ACCEPTED && fd >= 0) {
            if (v == CT_REFUSED_FULL && !tls) {
                ssize_t w =
                    send(fd, busy_answer, sizeof busy_answer - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                (void)w;
            }
            shutdown(fd, SHUT_RDWR);
        }
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conntrack_close(hs->ct, *socket_context);
        *socket_context = NULL;
    }
}

/* ---- the report POST ------------------------------------------------------------------------ */

/* From another thread: rq's answer (or refusal) is ready; the HTTP thread,
 * called again, sends it. */
static void wake(struct request *rq)
{
    atomic_store(&rq->committed, true);
    MHD_resume_connection(rq->conn);
}

/* A pool would not take rq: answer 503 with this Retry-After. */
static void refuse(struct request *rq, unsigned retry_after)
{
    rq->busy_retry = retry_after ? retry_after : 1;
    wake(rq);
}

static void on_committed(struct writer_request *wreq)
{
    wake(wreq->cls);
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
    case INGEST_SPOOLED:
        snprintf(rq->outcome, sizeof rq->outcome, "spooled: %s", res->reason);
        return send_json(rq, MHD_HTTP_ACCEPTED,
                         json_pack("{s:s, s:s}", "result", "spooled", "detail",
                                   "storage is unavailable; the report is kept on disk and will "
                                   "be stored when it is back"),
                         0);
    case INGEST_REJECTED:
        return send_error(rq, MHD_HTTP_BAD_REQUEST, "not an acceptable report", res->reason, 0);
    default:
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "storage unavailable", res->reason, 60);
    }
}

static struct request *request_of(struct prepool_task *t)
{
    return (struct request *)(void *)((char *)t - offsetof(struct request, task));
}

/* An upload that weighs at most this (JSON of up to about 24 KiB: nearly every
 * sender's daily report) is prepared on the HTTP thread that received it.
 * Parsing it takes tens of microseconds, less than handing it to a pool thread
 * costs; a larger body goes to the pool, so that it never holds up the other
 * connections of that thread. */
#define PREPARE_HERE_MAX ((size_t)3 << 19)

/* On a pool thread, instead of preparing: too much is being parsed, or the pool stops. */
static void upload_refused(struct prepool_task *t, unsigned retry_after)
{
    refuse(request_of(t), retry_after);
}

/* On a pool thread: decode and validate the body, then hand it to the writer;
 * the connection sleeps until it committed. */
static size_t prepare_upload(struct prepool_task *t)
{
    struct request *rq = request_of(t);
    struct http_server *hs = rq->hs;
    /* PATH/<domain> is a hint like a mail's TLS-Report-Domain header: the
     * domain of policies that name none (ingest.c) */
    struct store_source src = {.kind = "http",
                               .name = rq->path,
                               .client = rq->client,
                               .report_domain = rq->domain_hint[0] ? rq->domain_hint : NULL};
    bool again;
    struct ingest_job *job = endpoint_prepare(rq->body.data, rq->body.len, true, rq->gzip_encoded,
                                              &src, &hs->lim, rq->allowance, &again);
    if (again) { /* inflates past what the gzip trailer said: once more, with all of it */
        rq->allowance = hs->lim.max_inflated;
        return endpoint_weight(rq->body.len, rq->allowance, &hs->lim);
    }
    buf_init(&rq->body, 0); /* the job's now, or freed */
    if (job == NULL) {
        upload_refused(t, 10); /* out of memory */
        return 0;
    }
    prepool_settle(hs->pool, t, endpoint_job_weight(job, &hs->lim));
    rq->wreq.job = job;
    rq->wreq.done = on_committed;
    rq->wreq.cls = rq;
    rq->wreq.spoolable = true; /* a report POST: kept in the spool while storage is down */
    writer_submit(hs->writer, &rq->wreq);
    return 0;
}

/* The last call of an upload: prepare the body here when it is small, else
 * hand it to the prepare pool. */
static enum MHD_Result finish_upload(struct request *rq)
{
    struct http_server *hs = rq->hs;
    if (rq->too_large) {
        char detail[96];
        snprintf(detail, sizeof detail, "the body is larger than %zu bytes", hs->cfg->max_body);
        return send_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", detail, 0);
    }
    /* in flight at a SIGTERM: still stored and answered */
    if (rq->body.data == NULL && buf_reserve(&rq->body, 0) != TR_OK)
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL, 10);
    rq->allowance = endpoint_allowance(rq->body.data, rq->body.len, rq->gzip_encoded, &hs->lim);
    rq->task.weight = endpoint_weight(rq->body.len, rq->allowance, &hs->lim);
    rq->task.run = prepare_upload;
    rq->task.refused = upload_refused;
    rq->phase = PHASE_WAITING;
    conn_phase(hs, rq->conn, CT_WAIT); /* the pool and the writer are slow, not the client */
    MHD_suspend_connection(rq->conn);
    if (prepool_run_here(hs->pool, &rq->task, PREPARE_HERE_MAX))
        return MHD_YES;
    unsigned retry_after;
    if (!prepool_submit(hs->pool, &rq->task, &retry_after))
        upload_refused(&rq->task, retry_after);
    return MHD_YES;
}

/* The answer after the pool refused the upload. */
static enum MHD_Result answer_busy(struct request *rq)
{
    if (atomic_load(&rq->hs->quiescing))
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL, rq->busy_retry);
    bool read = rq->route == ROUTE_API || rq->route == ROUTE_METRICS;
    return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "server busy",
                      read ? "more API reads are waiting than are answered at once; retry later"
                           : "more uploads are being parsed than parse_memory allows; retry later",
                      rq->busy_retry);
}

/* Hand rq's job to the writer; the connection sleeps until it is committed. */
static enum MHD_Result submit(struct request *rq)
{
    struct http_server *hs = rq->hs;
    rq->wreq.done = on_committed;
    rq->wreq.cls = rq;
    rq->wreq.spoolable = rq->route == ROUTE_REPORT;
    rq->phase = PHASE_WAITING;
    conn_phase(hs, rq->conn, CT_WAIT); /* the writer is slow, not the client */
    MHD_suspend_connection(rq->conn);
    writer_submit(hs->writer, &rq->wreq);
    return MHD_YES;
}

/* POST PATH/DOMAIN with own domains set (docs/trust.md): true when DOMAIN
 * is not one of them; *shown gets it for the answer. */
static bool foreign_path_domain(const struct http_server *hs, const char *url, char *shown,
                                size_t n)
{
    const char *rest = url + strlen(hs->cfg->path);
    if (*rest != '/' || rest[1] == 0)
        return false;
    rest++;
    size_t len = strcspn(rest, "/");
    snprintf(shown, n, "%.*s", (int)(len < n ? len : n - 1), rest);
    struct trust *t = trust_get();
    const struct domain_set *own = trust_own_domains(t);
    bool foreign = own && (len >= n || !domain_set_match(own, shown)); /* too long: not ours */
    trust_put(t);
    return foreign;
}

/* The first call: everything that can be refused before the body arrives. */
static enum MHD_Result start_report(struct request *rq)
{
    struct http_server *hs = rq->hs;
    struct MHD_Connection *c = rq->conn;
    struct endpoint_head head = {
        rq->method,
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING),
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING),
    };
    struct endpoint_answer a;
    if (!endpoint_check_method(&head, &a))
        return send_error(rq, a.status, a.error, a.detail, 0);
    char domain[DOMAIN_MAX_LEN + 1], why[160];
    if (foreign_path_domain(hs, rq->path, domain, sizeof domain)) {
        snprintf(why, sizeof why, "not a domain of this collector: %.100s", domain);
        return send_error(rq, MHD_HTTP_BAD_REQUEST, "not an acceptable report", why, 0);
    }
    if (atomic_load(&hs->quiescing))
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL, 60);
    unsigned retry = 0;
    if (!ratelimit_allow(hs->rl, rq->client, &retry))
        return send_error(rq, MHD_HTTP_TOO_MANY_REQUESTS, "too many requests", NULL, retry);
    if (!endpoint_check_head(&head, hs->cfg->max_body, &rq->gzip_encoded, &a))
        return send_error(rq, a.status, a.error, a.detail[0] ? a.detail : NULL, 0);
    const char *seg = rq->path + strlen(hs->cfg->path);
    if (seg[0] == '/' && seg[1] != 0 && seg[1] != '/') {
        char name[256], detail[TR_ERRLEN];
        size_t n = strcspn(seg + 1, "/");
        snprintf(name, sizeof name, "%.*s", (int)(n < 255 ? n : 255), seg + 1);
        if (n > 253 || record_domain(name, rq->domain_hint, detail) != TR_OK) {
            char bad[TR_ERRLEN];
            snprintf(bad, sizeof bad, "'%.64s' after %.32s/ is not a domain name: %.120s", name,
                     hs->cfg->path, n > 253 ? "longer than 253 octets" : detail);
            rq->domain_hint[0] = 0;
            return send_error(rq, MHD_HTTP_BAD_REQUEST, "bad domain in the path", bad, 0);
        }
    }
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

static enum MHD_Result send_metrics(struct request *rq, const struct api_access *who)
{
    struct buf out;
    buf_init(&out, (size_t)64 << 20);
    char err[TR_ERRLEN];
    if (api_metrics(rq->hs->api, who, &out, err) != TR_OK) {
        buf_free(&out);
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "storage unavailable", err, 5);
    }
    char why[TR_ERRLEN];
    if (who->all) { /* the collector's own series: not a tenant's business */
        metrics_http(rq->hs, &out);
        maildir_backlog_metrics(rq->hs->cfg->maildir.items, rq->hs->cfg->maildir.n, &out);
        (void)prom_printf(&out,
                          "# HELP tlsrptd_storage_up Whether the database takes writes (1) or "
                          "not (0).\n# TYPE tlsrptd_storage_up gauge\ntlsrptd_storage_up %d\n"
                          "# HELP tlsrptd_spool_entries Reports waiting in the spool for the "
                          "database.\n# TYPE tlsrptd_spool_entries gauge\ntlsrptd_spool_entries "
                          "%zu\n",
                          writer_healthy(rq->hs->writer, why, sizeof why) ? 1 : 0,
                          writer_spooled(rq->hs->writer));
        (void)imap_metrics(&out);
    }
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
    return respond(rq, MHD_HTTP_OK, resp);
}

/* The API's access rule: 0 with *who (released by the caller), or the
 * 401/403 already queued in *r. */
static unsigned deny(struct request *rq, enum MHD_Result *r, struct api_access *who)
{
    const char *why = NULL;
    unsigned denied = api_authorize(
        rq->hs->cfg, rq->client,
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION), who,
        &why);
    if (denied)
        *r = send_error(rq, denied, denied == 401 ? "unauthorized" : "forbidden", why, 0);
    return denied;
}

static enum MHD_Result answer_api(struct request *rq, const struct api_access *who);

/* API reads and /metrics are answered on the readers pool, not on the HTTP
 * thread that took the connection: a summary over a year of a large database
 * takes seconds, and the uploads and /healthz checks that share the thread
 * must not wait for it. At most READS_AT_ONCE are answered (or their answers
 * sent) at a time; more wait up to READ_WAIT seconds, then get 503. */
#define READS_AT_ONCE 64
#define READ_WAIT     30

static struct request *read_request_of(struct prepool_task *t)
{
    return (struct request *)(void *)((char *)t - offsetof(struct request, read_task));
}

/* On a readers pool thread: the answer, kept for the HTTP thread, then woken. */
static size_t read_run(struct prepool_task *t)
{
    struct request *rq = read_request_of(t);
    rq->deferred = true;
    (void)(rq->route == ROUTE_METRICS ? send_metrics(rq, &rq->who) : answer_api(rq, &rq->who));
    rq->deferred = false;
    api_access_release(&rq->who);
    wake(rq);
    return 0;
}

/* Instead of read_run: too many reads wait, or the pool stops. */
static void read_refused(struct prepool_task *t, unsigned retry_after)
{
    struct request *rq = read_request_of(t);
    api_access_release(&rq->who);
    refuse(rq, retry_after);
}

/* GET of the API or /metrics, at its first call: checked here, answered on
 * the readers pool while the connection sleeps (see answer_ready). */
static enum MHD_Result answer_read(struct request *rq, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL, 0);
    enum MHD_Result denied;
    if (deny(rq, &denied, &rq->who))
        return denied;
    /* what the pool needs of the connection, read while it is ours */
    if (rq->route == ROUTE_API)
        MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &rq->args);
    conn_phase(rq->hs, rq->conn, CT_WAIT); /* complete: a slow query is not a slow client */
    rq->read_task.weight = 1;
    rq->read_task.run = read_run;
    rq->read_task.refused = read_refused;
    rq->phase = PHASE_WAITING;
    MHD_suspend_connection(rq->conn);
    unsigned retry_after;
    if (!prepool_submit(rq->hs->readers, &rq->read_task, &retry_after))
        read_refused(&rq->read_task, retry_after);
    return MHD_YES;
}

/* The connection woke with the answer read_run made (NULL: out of memory). */
static enum MHD_Result answer_ready(struct request *rq)
{
    struct MHD_Response *resp = rq->ready;
    rq->ready = NULL;
    return resp ? respond(rq, rq->ready_status, resp) : MHD_NO;
}

static enum MHD_Result answer_api(struct request *rq, const struct api_access *who)
{
    if (strncmp(rq->path, "/api/v1/", 8) != 0)
        return send_error(rq, MHD_HTTP_NOT_FOUND, "not found", "the API is under /api/v1/", 0);
    /* the record generator's calls need no database (api_record.c) */
    json_t *record = NULL;
    unsigned rstatus = api_record(rq->hs->cfg, rq->path, &rq->args, &record);
    if (rstatus != 0) {
        const char *detail = json_string_value(json_object_get(record, "detail"));
        snprintf(rq->outcome, sizeof rq->outcome, "%s",
                 rstatus == MHD_HTTP_OK ? "ok"
                 : detail               ? detail
                                        : "error");
        return send_json(rq, rstatus, record, 0);
    }
    struct api_answer ans;
    api_get(rq->hs->api, who, rq->path + 7, &rq->args, &ans);
    if (ans.body) {
        const char *detail = json_string_value(json_object_get(ans.body, "detail"));
        snprintf(rq->outcome, sizeof rq->outcome, "%s",
                 ans.status == MHD_HTTP_OK ? "ok"
                 : detail                  ? detail
                                           : "error");
        enum MHD_Result r = send_json(rq, ans.status, json_incref(ans.body), ans.retry_after);
        api_answer_free(&ans);
        return r;
    }
    char *bytes = (char *)ans.bytes;
    size_t len = ans.len;
    ans.bytes = NULL; /* ours now, then the response's */
    bool zipped = maybe_gzip(rq, &bytes, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, bytes, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(bytes);
        api_answer_free(&ans);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ans.content_type);
    if (zipped)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (ans.disposition[0])
        MHD_add_response_header(resp, "Content-Disposition", ans.disposition);
    snprintf(rq->outcome, sizeof rq->outcome, "%zu bytes", ans.len);
    unsigned status = ans.status;
    api_answer_free(&ans);
    return respond(rq, status, resp);
}

/* GET /healthz: 200 while the database takes writes, else 503 with the reason. */
static enum MHD_Result answer_health(struct request *rq)
{
    char why[TR_ERRLEN];
    if (writer_healthy(rq->hs->writer, why, sizeof why)) {
        snprintf(rq->outcome, sizeof rq->outcome, "ok");
        return send_json(rq, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"), 0);
    }
    snprintf(rq->outcome, sizeof rq->outcome, "unavailable: %s", why);
    json_t *body = json_pack("{s:s, s:s}", "status", "unavailable", "reason", why);
    size_t spooled = writer_spooled(rq->hs->writer);
    if (spooled)
        json_object_set_new(body, "spooled", json_integer((json_int_t)spooled));
    return send_json(rq, MHD_HTTP_SERVICE_UNAVAILABLE, body, 5);
}

/* POST /api/v1/quarantine/ID/reingest, first call: only who may ask. */
static enum MHD_Result start_reingest(struct request *rq)
{
    enum MHD_Result r;
    struct api_access who;
    if (deny(rq, &r, &who))
        return r;
    bool all = who.all;
    api_access_release(&who);
    if (!all)
        return send_error(rq, MHD_HTTP_FORBIDDEN, "forbidden",
                          "the quarantine is for tokens that see every domain (\"*\")", 0);
    if (atomic_load(&rq->hs->quiescing))
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL, 60);
    buf_init(&rq->body, 0); /* a body is not expected, and not kept */
    rq->too_large = true;
    return MHD_YES;
}

/* The last call: the entry's job to the writer. */
static enum MHD_Result finish_reingest(struct request *rq)
{
    struct api_answer ans;
    struct ingest_job *job = NULL;
    if (!api_reingest_job(rq->hs->api, rq->path + 7, &rq->hs->lim, &job, &ans)) {
        const char *detail = json_string_value(json_object_get(ans.body, "detail"));
        snprintf(rq->outcome, sizeof rq->outcome, "%s", detail ? detail : "error");
        enum MHD_Result r = send_json(rq, ans.status, json_incref(ans.body), ans.retry_after);
        api_answer_free(&ans);
        return r;
    }
    rq->wreq.job = job;
    return submit(rq);
}

static enum MHD_Result answer_reingest(struct request *rq)
{
    const struct ingest_result *res = &rq->wreq.res;
    snprintf(rq->outcome, sizeof rq->outcome, "reingest: %s", ingest_outcome_name(res->outcome));
    if (res->outcome == INGEST_TEMPFAIL)
        return send_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "storage unavailable", res->reason, 5);
    json_t *reports = json_array();
    for (size_t i = 0; i < res->nreports; i++)
        json_array_append_new(reports, json_pack("{s:s, s:I}", "result",
                                                 ingest_outcome_name(res->reports[i].outcome), "id",
                                                 (json_int_t)res->reports[i].id));
    json_t *body =
        json_pack("{s:s, s:o}", "result", ingest_outcome_name(res->outcome), "reports", reports);
    if (res->outcome == INGEST_REJECTED)
        json_object_set_new(body, "reason", json_string(res->reason));
    return send_json(rq, MHD_HTTP_OK, body, 0);
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
    return respond(rq, cr.status, resp);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static enum route route_of(const struct http_server *hs, const char *url, const char *method)
{
    if (endpoint_is_report_path(hs->cfg->path, url))
        return ROUTE_REPORT;
    if (strcmp(url, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strncmp(url, "/api/v1/", 8) == 0 && strcmp(method, MHD_HTTP_METHOD_POST) == 0 &&
        api_is_reingest(url + 7))
        return ROUTE_REINGEST;
    if (strncmp(url, "/api/", 5) == 0)
        return ROUTE_API;
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
        rq->route = route_of(hs, url, method);
        rq->accepts_gzip = console_accepts_gzip(
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
        conn_phase(hs, conn, CT_BODY); /* the head is complete */
        rq->counted = true;
        atomic_fetch_add(&hs->in_flight, 1);
        switch (rq->route) {
        case ROUTE_REPORT:
            return start_report(rq);
        case ROUTE_HEALTHZ:
            if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
                return send_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL, 0);
            return answer_health(rq);
        case ROUTE_REINGEST:
            return start_reingest(rq);
        case ROUTE_API:
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
        if (rq->busy_retry)
            return answer_busy(rq);
        if (rq->route == ROUTE_API || rq->route == ROUTE_METRICS)
            return answer_ready(rq);
        return rq->route == ROUTE_REINGEST ? answer_reingest(rq) : answer_report(rq);
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
    return rq->route == ROUTE_REINGEST ? finish_reingest(rq) : finish_upload(rq);
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
    conn_phase(hs, conn, CT_IDLE); /* keep-alive: the next request on this connection */
    if (rq->counted)
        atomic_fetch_sub(&hs->in_flight, 1);
    buf_free(&rq->body);
    ingest_job_free(rq->wreq.job);
    ingest_result_free(&rq->wreq.res);
    if (rq->ready) /* answered on the pool, but the connection went first */
        MHD_destroy_response(rq->ready);
    prepool_release(hs->pool, &rq->task); /* after the frees: what it held is given back */
    prepool_release(hs->readers, &rq->read_task);
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

/* libmicrohttpd stops accepting at its connection limit and leaves the rest
 * in the kernel's queue; its limit is set this far above max_connections so
 * that conntrack, which counts over all threads, refuses them instead (and
 * per address and network: libmicrohttpd's own per-IP count is per thread). */
static size_t conn_reserve(const struct config *cfg)
{
    return cfg->max_connections / 2 > 256 ? cfg->max_connections / 2 : 256;
}

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
    /* Each daemon gets a duplicate of the listening socket, never the socket
     * itself: libmicrohttpd closes the socket it was given when it fails to
     * start (a bad certificate, say), and a quiesced daemon still holds that
     * number, so handing over the original made a failed reload close the
     * listener under the old daemon and the next one abort in close(). */
    int fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, hs, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(cfg->max_connections + conn_reserve(cfg)), MHD_OPTION_CONNECTION_TIMEOUT,
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
    ingest_limits_from_config(cfg, true, &hs->lim);
    struct conntrack_limits cl = {cfg->max_connections,
                                  cfg->max_connections_per_ip,
                                  cfg->max_connections_per_prefix,
                                  (unsigned)cfg->header_timeout,
                                  (unsigned)cfg->connection_timeout,
                                  (unsigned)cfg->idle_timeout};
    if ((hs->ct = conntrack_new(&cl)) == NULL) {
        api_free(hs->api);
        free(hs);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    if ((hs->pool = prepool_start(cfg->prepare_threads, cfg->parse_memory,
                                  (unsigned)cfg->parse_wait, err)) == NULL ||
        (hs->readers = prepool_start(cfg->threads, READS_AT_ONCE, READ_WAIT, err)) == NULL) {
        prepool_free(hs->pool);
        conntrack_free(hs->ct);
        api_free(hs->api);
        free(hs);
        return NULL;
    }
    pthread_mutex_init(&hs->mu, NULL);
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
    size_t n = hs->ndaemons, started = 0;
    /* All or nothing: a new daemon starts accepting on each TLS listener
     * beside the old one; only when every one started do the old ones stop
     * accepting (and finish their connections). When one cannot start, the
     * new ones are stopped again and the old ones go on serving untouched. */
    for (size_t i = 0; i < n; i++) {
        struct daemon_slot *s = &hs->daemons[i];
        if (s->retired || !s->l->tls)
            continue;
        if (hs->ndaemons == MAX_DAEMONS) {
            rc = tr_fail(err, TR_EUSAGE, "too many reloads in flight; try again shortly");
            break;
        }
        struct MHD_Daemon *d = start_daemon(hs, s->l, cert, key);
        if (d == NULL) {
            rc = tr_fail(err, TR_EIO, "cannot start HTTPS on %s with the new certificate",
                         s->l->name);
            break;
        }
        hs->daemons[hs->ndaemons++] = (struct daemon_slot){d, s->l, false, 0};
        started++;
    }
    if (rc != TR_OK) {
        while (started-- > 0)
            MHD_stop_daemon(hs->daemons[--hs->ndaemons].d);
    } else {
        for (size_t i = 0; i < n; i++) {
            struct daemon_slot *s = &hs->daemons[i];
            if (s->retired || !s->l->tls)
                continue;
            MHD_socket old = MHD_quiesce_daemon(s->d);
            if (old != MHD_INVALID_SOCKET)
                close(old); /* the old daemon's duplicate; the listener stays open */
            s->retired = true;
            s->retired_at = time(NULL);
        }
    }
    pthread_mutex_unlock(&hs->mu);
    return rc;
}

void http_tick(struct http_server *hs)
{
    conntrack_tick(hs->ct, mono_now());
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
    }
    for (size_t i = 0; i < hs->nlisteners; i++) {
        if (hs->listeners[i].fd >= 0)
            close(hs->listeners[i].fd); /* new connections are refused from now on */
        hs->listeners[i].fd = -1;
    }
    pthread_mutex_unlock(&hs->mu);
}

size_t http_in_flight(struct http_server *hs)
{
    return atomic_load(&hs->in_flight);
}

void http_stop_preparing(struct http_server *hs)
{
    if (hs) {
        prepool_stop(hs->pool);
        prepool_stop(hs->readers);
    }
}

void http_stop(struct http_server *hs)
{
    if (hs == NULL)
        return;
    prepool_stop(hs->pool);    /* nothing is submitted to the writer after this */
    prepool_stop(hs->readers); /* every read answered or refused: no connection sleeps */
    for (size_t i = 0; i < hs->ndaemons; i++)
        MHD_stop_daemon(hs->daemons[i].d);
    for (size_t i = 0; i < hs->nlisteners; i++) {
        if (hs->listeners[i].fd >= 0)
            close(hs->listeners[i].fd);
        hs->listeners[i].fd = -1;
    }
    prepool_free(hs->pool); /* after the daemons: their last requests release into it */
    prepool_free(hs->readers);
    pthread_mutex_destroy(&hs->mu);
    conntrack_free(hs->ct);
    api_free(hs->api);
    free(hs);
}
