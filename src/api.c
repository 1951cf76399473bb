/* api.c: the read side of `tlsrptd serve` (see api.h): the JSON API, the
 * database-backed metrics, and the access rule. */
#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include "tlsrptd/api.h"
#include "tlsrptd/log.h"
#include "tlsrptd/query.h"
#include "tlsrptd/store.h"

struct api {
    const struct config *cfg;
    pthread_mutex_t mu; /* st and every query on it */
    struct store *st;   /* read-only, opened on first use */
};

struct api *api_new(const struct config *cfg)
{
    struct api *a = calloc(1, sizeof *a);
    if (a) {
        a->cfg = cfg;
        pthread_mutex_init(&a->mu, NULL);
    }
    return a;
}

void api_free(struct api *a)
{
    if (a == NULL)
        return;
    store_close(a->st);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* ---- access --------------------------------------------------------------------------------- */

static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++) /* time depends on the token's length only */
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0 && lb > 0;
}

static bool is_loopback(const char *client)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, client, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, client, &v6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&v6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
    }
    return false;
}

unsigned api_check_access(const struct config *cfg, const char *client, const char *authorization,
                          const char **why)
{
    if (cfg->api_token && cfg->api_token[0]) {
        const char *prefix = "Bearer ";
        /* the scheme name is case-insensitive (RFC 7235 §2.1) */
        if (authorization == NULL || strncasecmp(authorization, prefix, strlen(prefix)) != 0) {
            *why = "an Authorization: Bearer token is required";
            return 401;
        }
        if (!same_secret(authorization + strlen(prefix), cfg->api_token)) {
            *why = "wrong token";
            return 401;
        }
        return 0;
    }
    if (!is_loopback(client)) {
        *why = "the API answers loopback clients only unless api_token is configured";
        return 403;
    }
    return 0;
}

/* ---- the JSON API --------------------------------------------------------------------------- */

static struct store *read_store(struct api *a, char *err)
{
    if (a->st == NULL) {
        struct store_options sopt = STORE_DEFAULT_OPTIONS;
        sopt.read_only = true;
        if (store_open(a->cfg->db, &sopt, &a->st, err) != TR_OK)
            a->st = NULL;
    }
    return a->st;
}

static json_t *error_body(unsigned status, const char *error, const char *detail)
{
    json_t *b = json_pack("{s:i, s:s}", "status", (int)status, "error", error);
    if (detail)
        json_object_set_new(b, "detail", json_string(detail));
    return b;
}

/* The filter of a query string; false with *body set (400) on a bad parameter. */
static bool parse_args(const struct api_args *args, struct query_filter *f, char names[][256],
                       size_t *limit, size_t *offset, bool reports, json_t **body)
{
    char detail[512];
    int64_t now = (int64_t)time(NULL);
    query_filter_init(f);
    if (args->overflow) {
        *body = error_body(400, "bad request", "too many query parameters");
        return false;
    }
    for (size_t i = 0; i < args->n; i++) {
        const char *k = args->key[i], *v = args->value[i] ? args->value[i] : "";
        bool ok = true;
        long n = 0;
        char *end = NULL;
        if (strcmp(k, "domain") == 0) {
            ok = query_filter_add_domain(f, v, names[f->ndomains], 256);
        } else if (strcmp(k, "since") == 0 || strcmp(k, "until") == 0) {
            ok = query_parse_time(v, now, k[0] == 's' ? &f->since : &f->until);
        } else if (strcmp(k, "by") == 0 && !reports) {
            ok = query_parse_by(v, &f->by);
        } else if ((strcmp(k, "top") == 0 && !reports) ||
                   ((strcmp(k, "limit") == 0 || strcmp(k, "offset") == 0) && reports)) {
            n = strtol(v, &end, 10);
            ok = v[0] >= '0' && v[0] <= '9' && *end == 0 && n <= 100000000 &&
                 (k[0] == 'o' ? n >= 0 : n >= 1); /* top and limit: at least 1 */
            if (ok && k[0] == 't')
                f->top = (size_t)n;
            else if (ok && k[0] == 'l')
                *limit = (size_t)n;
            else if (ok)
                *offset = (size_t)n;
        } else {
            snprintf(detail, sizeof detail, "unknown parameter '%.100s'", k);
            *body = error_body(400, "bad request", detail);
            return false;
        }
        if (!ok) {
            snprintf(detail, sizeof detail, "%s: '%.200s' is not valid", k, v);
            *body = error_body(400, "bad request", detail);
            return false;
        }
    }
    if (f->since >= f->until) {
        *body = error_body(400, "bad request", "since is not before until");
        return false;
    }
    return true;
}

static unsigned run_query(struct api *a, const struct api_args *args, bool reports, json_t **body)
{
    struct query_filter f;
    static __thread char names[QUERY_MAX_DOMAINS][256];
    size_t limit = 100, offset = 0;
    if (!parse_args(args, &f, names, &limit, &offset, reports, body))
        return 400;
    if (limit > 10000)
        limit = 10000;
    char err[TR_ERRLEN];
    pthread_mutex_lock(&a->mu);
    struct store *st = read_store(a, err);
    json_t *out = NULL;
    if (st)
        out = reports ? query_reports(st, &f, limit, offset, err) : query_summary(st, &f, err);
    if (out == NULL && a->st) { /* reopen next time */
        store_close(a->st);
        a->st = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    if (out == NULL) {
        tr_warn("api: %s", err);
        *body = error_body(503, "storage unavailable", err);
        return 503;
    }
    if (reports) {
        json_object_set_new(out, "limit", json_integer((json_int_t)limit));
        json_object_set_new(out, "offset", json_integer((json_int_t)offset));
    }
    *body = out;
    return 200;
}

unsigned api_summary(struct api *a, const struct api_args *args, json_t **body)
{
    return run_query(a, args, false, body);
}

unsigned api_reports(struct api *a, const struct api_args *args, json_t **body)
{
    return run_query(a, args, true, body);
}

/* ---- metrics -------------------------------------------------------------------------------- */

tr_err api_printf(struct buf *out, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return TR_EINVAL;
    if ((size_t)n < sizeof small)
        return buf_append(out, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (big == NULL)
        return TR_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tr_err e = buf_append(out, big, (size_t)n);
    free(big);
    return e;
}

/* A label value in the text format: backslash, quote and newline escaped. */
static void label_value(const char *v, char *out, size_t n)
{
    size_t k = 0;
    for (; *v && k + 3 < n; v++) {
        if (*v == '\\' || *v == '"') {
            out[k++] = '\\';
            out[k++] = *v;
        } else if (*v == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *v;
        }
    }
    out[k] = 0;
}

static const char *domain_label(const unsigned char *v)
{
    return v && v[0] ? (const char *)v : "(none)";
}

static size_t count_new(const char *maildir)
{
    size_t len = strlen(maildir);
    char *p = malloc(len + 5);
    if (p == NULL)
        return 0;
    memcpy(p, maildir, len);
    memcpy(p + len, "/new", 5);
    DIR *d = opendir(p);
    free(p);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

static long long file_size(const char *path, const char *suffix)
{
    char p[4096];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    struct stat sb;
    return stat(p, &sb) == 0 ? (long long)sb.st_size : 0;
}

tr_err api_metrics(struct api *a, struct buf *out, char *err)
{
    static const char *const sql[3] = {
        "SELECT policy_domain, successful, failed FROM domain_totals",
        "SELECT policy_domain, result_type, failed FROM domain_failures",
        "SELECT source, outcome, count FROM outcome_counts ORDER BY source, outcome",
    };
    static const char *const head[3] = {
        "# HELP tlsrptd_sessions_total TLS sessions reported by senders, per policy domain.\n"
        "# TYPE tlsrptd_sessions_total counter\n",
        "# HELP tlsrptd_failed_sessions_total Failed TLS sessions per policy domain and result "
        "type (failure details).\n"
        "# TYPE tlsrptd_failed_sessions_total counter\n",
        "# HELP tlsrptd_reports_total Inputs handled, by source and outcome.\n"
        "# TYPE tlsrptd_reports_total counter\n",
    };
    tr_err rc = TR_OK;
    err[0] = 0;
    pthread_mutex_lock(&a->mu);
    struct store *st = read_store(a, err);
    if (st == NULL) {
        pthread_mutex_unlock(&a->mu);
        return TR_EDB;
    }
    sqlite3 *db = store_db(st);
    for (int q = 0; q < 3 && rc == TR_OK; q++) {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(db, sql[q], -1, &s, NULL) != SQLITE_OK) {
            rc = tr_fail(err, TR_EDB, "metrics: %s", sqlite3_errmsg(db));
            break;
        }
        rc = buf_append(out, head[q], strlen(head[q]));
        int step = SQLITE_DONE;
        while (rc == TR_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
            char l1[600], l2[600];
            if (q == 0) {
                label_value(domain_label(sqlite3_column_text(s, 0)), l1, sizeof l1);
                rc = api_printf(out,
                                "tlsrptd_sessions_total{policy_domain=\"%s\",result=\"successful\"}"
                                " %lld\n"
                                "tlsrptd_sessions_total{policy_domain=\"%s\",result=\"failed\"}"
                                " %lld\n",
                                l1, (long long)sqlite3_column_int64(s, 1), l1,
                                (long long)sqlite3_column_int64(s, 2));
            } else if (q == 1) {
                label_value(domain_label(sqlite3_column_text(s, 0)), l1, sizeof l1);
                label_value((const char *)sqlite3_column_text(s, 1), l2, sizeof l2);
                rc = api_printf(out,
                                "tlsrptd_failed_sessions_total{policy_domain=\"%s\","
                                "result_type=\"%s\"} %lld\n",
                                l1, l2, (long long)sqlite3_column_int64(s, 2));
            } else {
                label_value((const char *)sqlite3_column_text(s, 0), l1, sizeof l1);
                label_value((const char *)sqlite3_column_text(s, 1), l2, sizeof l2);
                rc = api_printf(out, "tlsrptd_reports_total{source=\"%s\",outcome=\"%s\"} %lld\n",
                                l1, l2, (long long)sqlite3_column_int64(s, 2));
            }
        }
        if (rc == TR_OK && step != SQLITE_DONE)
            rc = tr_fail(err, TR_EDB, "metrics: %s", sqlite3_errmsg(db));
        sqlite3_finalize(s);
    }
    if (rc != TR_OK) {
        store_close(a->st);
        a->st = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    if (rc != TR_OK)
        return rc;

    if (a->cfg->maildir.n)
        rc = api_printf(out, "# HELP tlsrptd_maildir_backlog Messages waiting in a Maildir's "
                             "new/.\n# TYPE tlsrptd_maildir_backlog gauge\n");
    for (size_t i = 0; rc == TR_OK && i < a->cfg->maildir.n; i++) {
        char l[600];
        label_value(a->cfg->maildir.items[i], l, sizeof l);
        rc = api_printf(out, "tlsrptd_maildir_backlog{maildir=\"%s\"} %zu\n", l,
                        count_new(a->cfg->maildir.items[i]));
    }
    if (rc == TR_OK)
        rc = api_printf(out,
                        "# HELP tlsrptd_database_bytes Size of the database file and its WAL.\n"
                        "# TYPE tlsrptd_database_bytes gauge\n"
                        "tlsrptd_database_bytes %lld\n",
                        file_size(a->cfg->db, "") + file_size(a->cfg->db, "-wal"));
    if (rc != TR_OK && err[0] == 0)
        tr_fail(err, rc, "metrics: %s", tr_strerror(rc));
    return rc;
}
