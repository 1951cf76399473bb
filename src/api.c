/* api.c: the read side of `tlsrptd serve` (see api.h): the JSON API, the
 * database-backed metrics, and the access rule. Parameters are checked here
 * (a bad one is a 400 that names it); the answers are the JSON of query.c. */
#define _DEFAULT_SOURCE /* strncasecmp */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "tlsrptd/api.h"
#include "tlsrptd/findings.h"
#include "tlsrptd/log.h"
#include "tlsrptd/metrics_day.h"
#include "tlsrptd/query.h"
#include "tlsrptd/store.h"

#define READERS 4 /* read-only connections */
/* Summary groups answered when no limit is asked for: a collector for
 * 130,000 domains must not build a 50 MiB answer for every dashboard. */
#define SUMMARY_DEFAULT_LIMIT 1000

struct reader {
    pthread_mutex_t mu;
    struct store *st; /* opened on first use, closed after an error */
};

struct api {
    const struct config *cfg;
    struct reader readers[READERS];
    unsigned next;
};

struct api *api_new(const struct config *cfg)
{
    struct api *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->cfg = cfg;
    for (int i = 0; i < READERS; i++)
        pthread_mutex_init(&a->readers[i].mu, NULL);
    return a;
}

void api_free(struct api *a)
{
    if (a == NULL)
        return;
    for (int i = 0; i < READERS; i++) {
        store_close(a->readers[i].st);
        pthread_mutex_destroy(&a->readers[i].mu);
    }
    free(a);
}

void api_answer_free(struct api_answer *ans)
{
    json_decref(ans->body);
    free(ans->bytes);
    memset(ans, 0, sizeof *ans);
}

/* A free reader (locked), opened; NULL with err set when the database cannot
 * be opened. */
static struct reader *take_reader(struct api *a, char *err)
{
    struct reader *r = NULL;
    for (int i = 0; i < READERS && r == NULL; i++)
        if (pthread_mutex_trylock(&a->readers[i].mu) == 0)
            r = &a->readers[i];
    if (r == NULL) { /* all busy: queue on one of them */
        r = &a->readers[__atomic_fetch_add(&a->next, 1, __ATOMIC_RELAXED) % READERS];
        pthread_mutex_lock(&r->mu);
    }
    if (r->st != NULL && !store_connected(r->st)) { /* the database file was replaced */
        store_close(r->st);
        r->st = NULL;
    }
    if (r->st == NULL) {
        struct store_options sopt = STORE_DEFAULT_OPTIONS;
        sopt.read_only = true;
        sopt.password_file = a->cfg->db_password_file;
        if (store_open(a->cfg->db, &sopt, &r->st, err) != TR_OK) {
            r->st = NULL;
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
    }
    return r;
}

/* Give a reader back; after a failure its connection is closed. */
static void give_reader(struct reader *r, bool failed)
{
    if (failed) {
        store_close(r->st);
        r->st = NULL;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- access --------------------------------------------------------------------------------- */

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

unsigned api_authorize(const struct config *cfg, const char *client, const char *authorization,
                       struct api_access *who, const char **why)
{
    memset(who, 0, sizeof *who);
    struct trust *t = trust_get();
    const struct tokens *tokens = trust_tokens(t);
    bool api_token = cfg->api_token && cfg->api_token[0];
    if (!api_token && tokens == NULL) {
        trust_put(t);
        if (!is_loopback(client)) {
            *why = "the API answers loopback clients only unless api_token or tokens_file is "
                   "configured";
            return 403;
        }
        who->all = true;
        return 0;
    }
    const char *prefix = "Bearer ";
    /* the scheme name is case-insensitive (RFC 7235 §2.1) */
    if (authorization == NULL || strncasecmp(authorization, prefix, strlen(prefix)) != 0) {
        trust_put(t);
        *why = "an Authorization: Bearer token is required";
        return 401;
    }
    const char *presented = authorization + strlen(prefix);
    /* both looked at, whichever matches, so the time says nothing of which */
    bool is_api_token = api_token && tokens_same_secret(presented, cfg->api_token);
    const struct domain_set *set = tokens ? tokens_find(tokens, presented) : NULL;
    if (!is_api_token && set == NULL) {
        trust_put(t);
        *why = "wrong token";
        return 401;
    }
    if (is_api_token || domain_set_all(set)) {
        trust_put(t);
        who->all = true;
        return 0;
    }
    who->scope.patterns = domain_set_patterns(set, &who->scope.n);
    who->held = t;
    return 0;
}

void api_access_release(struct api_access *who)
{
    trust_put(who->held);
    memset(who, 0, sizeof *who);
}

unsigned api_check_access(const struct config *cfg, const char *client, const char *authorization,
                          const char **why)
{
    struct api_access who;
    unsigned denied = api_authorize(cfg, client, authorization, &who, why);
    if (!denied)
        api_access_release(&who);
    return denied;
}

static const struct store_scope *scope_of(const struct api_access *who)
{
    return who->all ? NULL : &who->scope;
}

/* ---- parameters ----------------------------------------------------------------------------- */

static void error_answer(struct api_answer *out, unsigned status, const char *error,
                         const char *detail)
{
    out->status = status;
    out->body = json_pack("{s:i, s:s}", "status", (int)status, "error", error);
    if (detail)
        json_object_set_new(out->body, "detail", json_string(detail));
    if (status == 503)
        out->retry_after = 5;
}

enum param {
    P_DOMAIN = 1 << 0,
    P_REPORTER = 1 << 1,
    P_WINDOW = 1 << 2,
    P_BY = 1 << 3,
    P_TOP = 1 << 4,
    P_PAGE = 1 << 5,
    P_FILL = 1 << 6,
    P_NOW = 1 << 7,
    P_DNS = 1 << 8,
    P_FAILURES = 1 << 9,
};

struct params {
    struct query_filter f;
    size_t limit, offset;
    bool limit_given;
    int64_t now; /* findings: as of this time (0: now) */
    bool dns;    /* findings: look up the published records */
};

static bool parse_count(const char *v, long min, long max, size_t *out)
{
    char *end = NULL;
    if (!(v[0] >= '0' && v[0] <= '9'))
        return false;
    long n = strtol(v, &end, 10);
    if (*end || n < min || n > max)
        return false;
    *out = (size_t)n;
    return true;
}

/* The query string into p; false with *out a 400 naming the bad parameter. */
static bool parse_params(const struct api_args *args, unsigned allowed, struct params *p,
                         struct api_answer *out)
{
    char detail[512];
    int64_t now = (int64_t)time(NULL);
    query_filter_init(&p->f);
    p->limit = 100;
    p->offset = 0;
    p->limit_given = false;
    p->now = 0;
    p->dns = false;
    if (args->overflow) {
        error_answer(out, 400, "bad request", "too many query parameters");
        return false;
    }
    for (size_t i = 0; i < args->n; i++) {
        const char *k = args->key[i], *v = args->value[i] ? args->value[i] : "";
        bool ok = true;
        unsigned which = strcmp(k, "domain") == 0                              ? P_DOMAIN
                         : strcmp(k, "reporter") == 0                          ? P_REPORTER
                         : strcmp(k, "since") == 0 || strcmp(k, "until") == 0  ? P_WINDOW
                         : strcmp(k, "by") == 0                                ? P_BY
                         : strcmp(k, "top") == 0                               ? P_TOP
                         : strcmp(k, "limit") == 0 || strcmp(k, "offset") == 0 ? P_PAGE
                         : strcmp(k, "fill") == 0                              ? P_FILL
                         : strcmp(k, "now") == 0                               ? P_NOW
                         : strcmp(k, "dns") == 0                               ? P_DNS
                         : strcmp(k, "failures") == 0                          ? P_FAILURES
                                                                               : 0;
        if ((which & allowed) == 0) {
            snprintf(detail, sizeof detail, "unknown parameter '%.100s'", k);
            error_answer(out, 400, "bad request", detail);
            return false;
        }
        switch (which) {
        case P_DOMAIN:
            ok = query_filter_add_domain(&p->f, v);
            break;
        case P_REPORTER:
            ok = query_filter_add_reporter(&p->f, v);
            break;
        case P_WINDOW:
            ok = query_parse_time(v, now, k[0] == 's' ? &p->f.sf.since : &p->f.sf.until);
            break;
        case P_BY:
            ok = query_parse_by(v, &p->f.by);
            break;
        case P_TOP:
            ok = parse_count(v, 1, 100000000, &p->f.top);
            break;
        case P_FILL:
        case P_DNS:
        case P_FAILURES:
            ok = strcmp(v, "1") == 0 || strcmp(v, "0") == 0 || strcmp(v, "true") == 0 ||
                 strcmp(v, "false") == 0;
            if (which == P_FILL)
                p->f.fill = ok && (v[0] == '1' || v[0] == 't');
            else if (which == P_DNS)
                p->dns = ok && (v[0] == '1' || v[0] == 't');
            else
                p->f.sessions_only = ok && (v[0] == '0' || v[0] == 'f');
            break;
        case P_NOW:
            ok = query_parse_time(v, now, &p->now);
            break;
        default: /* P_PAGE */
            if (k[0] == 'l') {
                ok = parse_count(v, 1, 100000000, &p->limit);
                p->limit_given = true;
            } else {
                ok = parse_count(v, 0, 100000000, &p->offset);
            }
        }
        if (!ok) {
            snprintf(detail, sizeof detail, "%s: '%.200s' is not valid", k, v);
            error_answer(out, 400, "bad request", detail);
            return false;
        }
    }
    if (p->f.sf.since >= p->f.sf.until) {
        error_answer(out, 400, "bad request", "since is not before until");
        return false;
    }
    if (p->limit > API_MAX_LIMIT)
        p->limit = API_MAX_LIMIT;
    return true;
}

/* ---- routes --------------------------------------------------------------------------------- */

enum route {
    R_SUMMARY,
    R_REPORTS,
    R_REPORT,
    R_POLICIES,
    R_QUARANTINE,
    R_ENTRY,
    R_RAW,
    R_FINDINGS,
    R_NONE
};

/* "/quarantine/12/raw" -> R_RAW, *id = 12 */
static enum route route_of(const char *path, int64_t *id)
{
    static const struct {
        const char *prefix;
        enum route plain, with_id;
    } table[] = {
        {"/summary", R_SUMMARY, R_NONE},        {"/reports", R_REPORTS, R_REPORT},
        {"/policies", R_POLICIES, R_NONE},      {"/findings", R_FINDINGS, R_NONE},
        {"/quarantine", R_QUARANTINE, R_ENTRY},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        size_t n = strlen(table[i].prefix);
        if (strncmp(path, table[i].prefix, n) != 0)
            continue;
        const char *rest = path + n;
        if (*rest == 0)
            return table[i].plain;
        if (*rest != '/' || table[i].with_id == R_NONE)
            return R_NONE;
        char *end = NULL;
        long long v = strtoll(rest + 1, &end, 10);
        if (end == rest + 1 || v <= 0)
            return R_NONE;
        *id = (int64_t)v;
        if (*end == 0)
            return table[i].with_id;
        if (table[i].with_id == R_ENTRY && strcmp(end, "/raw") == 0)
            return R_RAW;
        return R_NONE;
    }
    return R_NONE;
}

struct raw_ctx {
    struct api_answer *out;
    bool kept;
};

static int copy_raw(void *cls, const struct store_quarantine_row *q)
{
    struct raw_ctx *c = cls;
    if (q->raw == NULL)
        return 1;
    c->kept = true;
    free(c->out->bytes); /* from an attempt on a connection that was lost since */
    c->out->bytes = malloc(q->rawlen ? q->rawlen : 1);
    if (c->out->bytes) {
        memcpy(c->out->bytes, q->raw, q->rawlen);
        c->out->len = q->rawlen;
    }
    return 1;
}

/* The bytes of quarantine entry id, as an attachment. */
static bool raw_answer(struct store *st, int64_t id, struct api_answer *out, bool *found, char *err)
{
    struct raw_ctx c = {out, false};
    if (store_get_quarantine(st, id, copy_raw, &c, found, err) != TR_OK)
        return false;
    if (*found && !c.kept)
        error_answer(out, 409, "conflict",
                     "the bytes of this entry were not kept (over the quarantine budget)");
    else if (*found && out->bytes == NULL)
        error_answer(out, 503, "out of memory", NULL);
    else if (*found) {
        out->status = 200;
        out->content_type = "application/octet-stream";
        snprintf(out->disposition, sizeof out->disposition,
                 "attachment; filename=\"tlsrptd-quarantine-%lld.bin\"", (long long)id);
    }
    return true;
}

/* The answer of route r on st: a body, or NULL with *found false (404) or err
 * set; for R_RAW, *raw_done when out holds the whole answer. */
static json_t *read_route(struct api *a, const struct api_access *who, struct store *st,
                          enum route r, int64_t id, struct params *p, struct api_answer *out,
                          bool *found, bool *raw_done, char *err)
{
    json_t *body = NULL;
    switch (r) {
    case R_SUMMARY: {
        /* without limit: one page of SUMMARY_DEFAULT_LIMIT, said so only when
         * there are more groups (--fill by day is bounded by itself) */
        bool implicit = !p->limit_given && !p->offset && !(p->f.fill && p->f.by == QUERY_BY_DAY);
        if (p->limit_given || p->offset || implicit) {
            p->f.limit = implicit ? SUMMARY_DEFAULT_LIMIT : p->limit;
            p->f.offset = p->offset;
        }
        body = query_summary(st, &p->f, err);
        json_t *total = body ? json_object_get(body, "total_groups") : NULL;
        if (implicit && json_is_integer(total) &&
            json_integer_value(total) <= SUMMARY_DEFAULT_LIMIT) {
            json_object_del(body, "total_groups");
            json_object_del(body, "limit");
            json_object_del(body, "offset");
        }
        break;
    }
    case R_REPORTS:
        body = query_reports(st, &p->f, p->limit, p->offset, err);
        if (body) {
            json_object_set_new(body, "limit", json_integer((json_int_t)p->limit));
            json_object_set_new(body, "offset", json_integer((json_int_t)p->offset));
        }
        break;
    case R_REPORT: {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)id);
        size_t nfound = 0;
        body = query_report_scoped(st, scope_of(who), key, &nfound, err);
        *found = nfound > 0;
        break;
    }
    case R_POLICIES:
        body = query_policies(st, &p->f, err);
        break;
    case R_FINDINGS: {
        struct findings_options fo = FINDINGS_DEFAULT_OPTIONS;
        fo.now = p->now;
        /* a window: until is the time they are about, since how far back they look */
        if (fo.now == 0 && p->f.sf.until != INT64_MAX)
            fo.now = p->f.sf.until;
        if (p->f.sf.since != INT64_MIN) {
            int64_t at = fo.now ? fo.now : (int64_t)time(NULL);
            int64_t days = (at - p->f.sf.since + 86399) / 86400;
            fo.history_days = (unsigned)(days < 1 ? 1 : days > 3650 ? 3650 : days);
        }
        fo.dns = p->dns;
        fo.dns_server = a->cfg->dns;
        body = findings_compute(st, &p->f, &fo, err);
        break;
    }
    case R_QUARANTINE:
        body = query_quarantine(st, p->f.sf.since, p->f.sf.until, p->limit, p->offset, err);
        if (body) {
            json_object_set_new(body, "limit", json_integer((json_int_t)p->limit));
            json_object_set_new(body, "offset", json_integer((json_int_t)p->offset));
        }
        break;
    case R_RAW:
        *raw_done = raw_answer(st, id, out, found, err) && *found;
        break;
    default: /* R_ENTRY */
        body = query_quarantine_entry(st, id, false, found, err);
    }
    return body;
}

void api_get(struct api *a, const struct api_access *who, const char *path,
             const struct api_args *args, struct api_answer *out)
{
    memset(out, 0, sizeof *out);
    int64_t id = 0;
    enum route r = route_of(path, &id);
    static const unsigned allowed[] = {
        [R_SUMMARY] =
            P_DOMAIN | P_REPORTER | P_WINDOW | P_BY | P_TOP | P_PAGE | P_FILL | P_FAILURES,
        [R_REPORTS] = P_DOMAIN | P_REPORTER | P_WINDOW | P_PAGE,
        [R_REPORT] = 0,
        [R_POLICIES] = P_DOMAIN | P_REPORTER | P_WINDOW,
        [R_QUARANTINE] = P_WINDOW | P_PAGE,
        [R_ENTRY] = 0,
        [R_RAW] = 0,
        [R_FINDINGS] = P_DOMAIN | P_WINDOW | P_NOW | P_DNS,
    };
    if (r == R_NONE) {
        error_answer(out, 404, "not found",
                     "the API has /api/v1/summary, /reports, /reports/ID, /policies, /findings, "
                     "/quarantine, /quarantine/ID and /quarantine/ID/raw");
        return;
    }
    if (!who->all && (r == R_QUARANTINE || r == R_ENTRY || r == R_RAW)) {
        error_answer(out, 403, "forbidden",
                     "the quarantine is for tokens that see every domain (\"*\")");
        return;
    }
    struct params *p = malloc(sizeof *p);
    if (p == NULL) {
        error_answer(out, 503, "out of memory", NULL);
        return;
    }
    if (!parse_params(args, allowed[r], p, out)) {
        free(p);
        return;
    }
    p->f.sf.scope = scope_of(who);
    char err[TR_ERRLEN] = "";
    json_t *body = NULL;
    bool found = true, raw_done = false;
    /* a connection lost meanwhile (PostgreSQL restarted, the SQLite file replaced)
     * is noticed when used: the question is asked once more on a new one */
    for (int attempt = 0; attempt < 2; attempt++) {
        err[0] = 0;
        struct reader *rd = take_reader(a, err);
        if (rd == NULL)
            break;
        found = true;
        body = read_route(a, who, rd->st, r, id, p, out, &found, &raw_done, err);
        bool failed = body == NULL && !raw_done && found && err[0];
        bool lost = failed && !store_connected(rd->st);
        give_reader(rd, failed);
        if (!lost)
            break;
    }
    if (raw_done) {
        free(p);
        return;
    }
    free(p);
    if (body == NULL && !found) {
        error_answer(out, 404, "not found",
                     r == R_REPORT ? "no stored report has this id"
                                   : "no quarantine entry has this id");
        return;
    }
    if (body == NULL) {
        tr_warn("api: %s", err);
        error_answer(out, 503, "storage unavailable", err);
        return;
    }
    out->status = 200;
    out->body = body;
}

bool api_is_reingest(const char *path)
{
    int64_t id;
    size_t n = strlen(path);
    static const char tail[] = "/reingest";
    if (n <= sizeof tail - 1 || strcmp(path + n - (sizeof tail - 1), tail) != 0)
        return false;
    char head[64];
    if (n - (sizeof tail - 1) >= sizeof head)
        return false;
    memcpy(head, path, n - (sizeof tail - 1));
    head[n - (sizeof tail - 1)] = 0;
    return route_of(head, &id) == R_ENTRY;
}

struct reingest_ctx {
    const struct ingest_limits *lim;
    struct ingest_job *job;
    bool kept;
};

static int on_entry(void *cls, const struct store_quarantine_row *q)
{
    struct reingest_ctx *c = cls;
    if (q->raw == NULL)
        return 1;
    c->kept = true;
    c->job = ingest_prepare((void *)(uintptr_t)q->raw, q->rawlen, false, &q->src, c->lim);
    if (c->job)
        ingest_job_set_requeue(c->job, q->id);
    return 1;
}

bool api_reingest_job(struct api *a, const char *path, const struct ingest_limits *lim,
                      struct ingest_job **job, struct api_answer *out)
{
    memset(out, 0, sizeof *out);
    *job = NULL;
    int64_t id = strtoll(path + strlen("/quarantine/"), NULL, 10);
    char err[TR_ERRLEN] = "";
    struct reader *rd = take_reader(a, err);
    if (rd == NULL) {
        error_answer(out, 503, "storage unavailable", err);
        return false;
    }
    struct reingest_ctx c = {lim, NULL, false};
    bool found = false;
    tr_err rc = store_get_quarantine(rd->st, id, on_entry, &c, &found, err);
    give_reader(rd, rc != TR_OK);
    if (rc != TR_OK) {
        error_answer(out, 503, "storage unavailable", err);
        return false;
    }
    if (!found) {
        error_answer(out, 404, "not found", "no quarantine entry has this id");
        return false;
    }
    if (!c.kept) {
        error_answer(out, 409, "conflict",
                     "the bytes of this entry were not kept (over the quarantine budget)");
        return false;
    }
    if (c.job == NULL) {
        error_answer(out, 503, "out of memory", NULL);
        return false;
    }
    *job = c.job;
    return true;
}

/* ---- metrics -------------------------------------------------------------------------------- */

struct domain_volume {
    char *name;
    int64_t successful, failed, reports;
};

struct metrics_ctx {
    struct buf *out;
    struct domain_volume *v;
    size_t n, cap, top;
    json_t *shown; /* domains with series of their own */
    json_t *other; /* result type -> failed sessions of the rest */
    int64_t other_ok, other_bad;
    size_t reporter_series;
    tr_err rc;
    const struct store_scope *scope; /* a tenant's token: its domains only */
};

static int take_domain(void *cls, const struct store_count_row *r)
{
    struct metrics_ctx *c = cls;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        struct domain_volume *nv = realloc(c->v, cap * sizeof *nv);
        if (nv == NULL) {
            c->rc = TR_ENOMEM;
            return 1;
        }
        c->v = nv;
        c->cap = cap;
    }
    struct domain_volume *d = &c->v[c->n];
    if ((d->name = strdup(r->a ? r->a : "")) == NULL) {
        c->rc = TR_ENOMEM;
        return 1;
    }
    d->successful = r->n1;
    d->failed = r->n2;
    d->reports = r->n3;
    c->n++;
    return 0;
}

static int by_volume(const void *pa, const void *pb)
{
    const struct domain_volume *a = pa, *b = pb;
    double va = (double)a->successful + (double)a->failed,
           vb = (double)b->successful + (double)b->failed;
    if (va != vb)
        return va > vb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static const char *domain_label(const char *v)
{
    return v && v[0] ? v : "(none)";
}

static int put_failure(void *cls, const struct store_count_row *r)
{
    struct metrics_ctx *c = cls;
    if (json_object_get(c->shown, r->a ? r->a : "") == NULL) {
        json_t *n = json_object_get(c->other, r->b);
        json_int_t old = n ? json_integer_value(n) : 0;
        json_object_set_new(c->other, r->b,
                            json_integer(old > INT64_MAX - r->n1 ? INT64_MAX : old + r->n1));
        return 0;
    }
    char l1[600], l2[600];
    prom_label(domain_label(r->a), l1, sizeof l1);
    prom_label(r->b ? r->b : "", l2, sizeof l2);
    c->rc = prom_printf(c->out,
                        "tlsrptd_failed_sessions_total{policy_domain=\"%s\",result_type=\"%s\"} "
                        "%lld\n",
                        l1, l2, (long long)r->n1);
    return c->rc != TR_OK;
}

static int put_reporter(void *cls, const struct store_count_row *r)
{
    struct metrics_ctx *c = cls;
    if (json_object_get(c->shown, r->a ? r->a : "") == NULL || c->reporter_series >= c->top)
        return 0;
    char l1[600], l2[600];
    prom_label(domain_label(r->a), l1, sizeof l1);
    prom_label(r->b ? r->b : "", l2, sizeof l2);
    c->reporter_series++;
    c->rc = prom_printf(c->out,
                        "tlsrptd_last_report_timestamp_seconds{policy_domain=\"%s\",reporter="
                        "\"%s\"} %lld\n",
                        l1, l2, (long long)r->n1);
    return c->rc != TR_OK;
}

static int put_outcome(void *cls, const struct store_count_row *r)
{
    struct metrics_ctx *c = cls;
    char l1[600], l2[600];
    prom_label(r->a ? r->a : "", l1, sizeof l1);
    prom_label(r->b ? r->b : "", l2, sizeof l2);
    c->rc = prom_printf(c->out, "tlsrptd_reports_total{source=\"%s\",outcome=\"%s\"} %lld\n", l1,
                        l2, (long long)r->n1);
    return c->rc != TR_OK;
}

static tr_err write_metrics(struct store *st, struct metrics_ctx *c, char *err)
{
    tr_err rc = store_counts_scoped(st, c->scope, STORE_COUNT_DOMAINS, take_domain, c, err);
    if (rc != TR_OK || c->rc != TR_OK)
        return rc != TR_OK ? rc : tr_fail(err, c->rc, "metrics: out of memory");
    if (c->n > 1) /* c->v is NULL without domains: qsort must not see it */
        qsort(c->v, c->n, sizeof *c->v, by_volume);
    rc = prom_printf(c->out,
                     "# HELP tlsrptd_sessions_total TLS sessions reported by senders, per policy "
                     "domain (the busiest metrics_domains; the rest as \"(other)\").\n"
                     "# TYPE tlsrptd_sessions_total counter\n");
    for (size_t i = 0; i < c->n && rc == TR_OK; i++) {
        struct domain_volume *d = &c->v[i];
        if (i >= c->top) {
            c->other_ok =
                d->successful > INT64_MAX - c->other_ok ? INT64_MAX : c->other_ok + d->successful;
            c->other_bad =
                d->failed > INT64_MAX - c->other_bad ? INT64_MAX : c->other_bad + d->failed;
            continue;
        }
        json_object_set_new(c->shown, d->name, json_true());
        char l[600];
        prom_label(domain_label(d->name), l, sizeof l);
        rc = prom_printf(c->out,
                         "tlsrptd_sessions_total{policy_domain=\"%s\",result=\"successful\"} %lld\n"
                         "tlsrptd_sessions_total{policy_domain=\"%s\",result=\"failed\"} %lld\n",
                         l, (long long)d->successful, l, (long long)d->failed);
    }
    if (rc == TR_OK && c->n > c->top)
        rc = prom_printf(c->out,
                         "tlsrptd_sessions_total{policy_domain=\"(other)\",result=\"successful\"} "
                         "%lld\ntlsrptd_sessions_total{policy_domain=\"(other)\",result=\"failed\"}"
                         " %lld\n",
                         (long long)c->other_ok, (long long)c->other_bad);
    if (rc == TR_OK)
        rc = prom_printf(c->out, "# HELP tlsrptd_failed_sessions_total Failed TLS sessions per "
                                 "policy domain and result type (failure details).\n"
                                 "# TYPE tlsrptd_failed_sessions_total counter\n");
    if (rc == TR_OK &&
        (rc = store_counts_scoped(st, c->scope, STORE_COUNT_DOMAIN_FAILURES, put_failure, c,
                                  err)) == TR_OK &&
        (rc = c->rc) == TR_OK) {
        const char *type;
        json_t *n;
        json_object_foreach(c->other, type, n)
        {
            char l[600];
            prom_label(type, l, sizeof l);
            if ((rc = prom_printf(c->out,
                                  "tlsrptd_failed_sessions_total{policy_domain=\"(other)\","
                                  "result_type=\"%s\"} %lld\n",
                                  l, (long long)json_integer_value(n))) != TR_OK)
                break;
        }
    }
    if (rc == TR_OK)
        rc = prom_printf(c->out, "# HELP tlsrptd_last_report_timestamp_seconds Start of the "
                                 "latest report per policy domain and reporter.\n"
                                 "# TYPE tlsrptd_last_report_timestamp_seconds gauge\n");
    if (rc == TR_OK)
        rc = store_counts_scoped(st, c->scope, STORE_COUNT_DOMAIN_REPORTERS, put_reporter, c, err);
    if (rc == TR_OK)
        rc = c->rc;
    if (rc == TR_OK && c->scope) /* the rest is the whole collector's */
        return TR_OK;
    if (rc == TR_OK)
        rc = prom_printf(c->out, "# HELP tlsrptd_reports_total Inputs handled, by source and "
                                 "outcome.\n# TYPE tlsrptd_reports_total counter\n");
    if (rc == TR_OK)
        rc = store_counts(st, STORE_COUNT_OUTCOMES, put_outcome, c, err);
    if (rc == TR_OK)
        rc = c->rc;
    if (rc == TR_OK)
        rc = metrics_day_write(st, c->out, c->top, (int64_t)time(NULL), err);
    if (rc == TR_OK)
        rc = prom_printf(c->out,
                         "# HELP tlsrptd_database_bytes Size of the database (SQLite: the file "
                         "and its WAL).\n# TYPE tlsrptd_database_bytes gauge\n"
                         "tlsrptd_database_bytes %lld\n",
                         (long long)store_size_bytes(st));
    if (rc != TR_OK && err[0] == 0)
        tr_fail(err, rc, "metrics: %s", tr_strerror(rc));
    return rc;
}

tr_err api_metrics(struct api *a, const struct api_access *who, struct buf *out, char *err)
{
    size_t start = out->len;
    tr_err rc = TR_EDB;
    for (int attempt = 0; attempt < 2; attempt++) { /* as in api_get */
        err[0] = 0;
        out->len = start;
        struct reader *rd = take_reader(a, err);
        if (rd == NULL)
            return TR_EDB;
        struct metrics_ctx c = {out,           NULL,          0, 0, a->cfg->metrics_domains,
                                json_object(), json_object(), 0, 0, 0,
                                TR_OK,         scope_of(who)};
        rc = write_metrics(rd->st, &c, err);
        bool lost = rc == TR_EDB && !store_connected(rd->st);
        give_reader(rd, rc == TR_EDB);
        for (size_t i = 0; i < c.n; i++)
            free(c.v[i].name);
        free(c.v);
        json_decref(c.shown);
        json_decref(c.other);
        if (!lost)
            break;
    }
    if (out->data)
        out->data[out->len] = 0;
    return rc;
}
