/* metrics_day.c: the /metrics gauges by report date (see metrics_day.h),
 * through the summaries of store.h: one query for the day's domains, one for
 * their failures by result type. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/metrics_day.h"
#include "tlsrptd/prom.h"

#define DAY 86400

struct day_domain {
    char *name;
    int64_t successful, failed;
};

struct day_ctx {
    struct day_domain *v;
    size_t n, cap, top;
    struct buf *out;
    json_t *shown; /* the domains with series of their own */
    tr_err rc;
};

static int take_group(void *cls, const struct store_group *g)
{
    struct day_ctx *c = cls;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        struct day_domain *v = realloc(c->v, cap * sizeof *v);
        if (v == NULL) {
            c->rc = TR_ENOMEM;
            return 1;
        }
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n] = (struct day_domain){strdup(g->key), g->successful, g->failed};
    if (c->v[c->n].name == NULL) {
        c->rc = TR_ENOMEM;
        return 1;
    }
    c->n++;
    return 0;
}

static int by_sessions(const void *pa, const void *pb)
{
    const struct day_domain *a = pa, *b = pb;
    double va = (double)a->successful + (double)a->failed,
           vb = (double)b->successful + (double)b->failed;
    if (va != vb)
        return va > vb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static const char *label_of(const char *domain)
{
    return domain[0] ? domain : "(none)";
}

struct failure_ctx {
    struct day_ctx *c;
    json_t *other; /* result type -> failed, for the domains summed as (other) */
};

static int put_failure(void *cls, const struct store_failure *f)
{
    struct failure_ctx *fc = cls;
    struct day_ctx *c = fc->c;
    char l1[600], l2[600];
    prom_label(f->result_type, l2, sizeof l2);
    if (json_object_get(c->shown, f->key) == NULL) {
        json_t *n = json_object_get(fc->other, l2);
        json_int_t old = n ? json_integer_value(n) : 0;
        json_object_set_new(
            fc->other, l2, json_integer(old > INT64_MAX - f->failed ? INT64_MAX : old + f->failed));
        return 0;
    }
    prom_label(label_of(f->key), l1, sizeof l1);
    c->rc =
        prom_printf(c->out,
                    "tlsrptd_report_day_failed_sessions{policy_domain=\"%s\",result_type=\"%s\"}"
                    " %lld\n",
                    l1, l2, (long long)f->failed);
    return c->rc != TR_OK;
}

tr_err metrics_day_write(struct store *st, struct buf *out, size_t top, int64_t now, char *err)
{
    int64_t today = now - (((now % DAY) + DAY) % DAY);
    struct store_filter f;
    store_filter_init(&f);
    f.since = today - DAY;
    f.until = today;
    struct day_ctx c = {NULL, 0, 0, top, out, json_object(), TR_OK};
    tr_err rc = store_summary_groups(st, &f, STORE_BY_DOMAIN, NULL, take_group, &c, NULL, err);
    if (rc == TR_OK && c.rc != TR_OK)
        rc = tr_fail(err, c.rc, "metrics: out of memory");
    if (rc == TR_OK) {
        if (c.n)
            qsort(c.v, c.n, sizeof *c.v, by_sessions);
        rc = prom_printf(out,
                         "# HELP tlsrptd_report_day_timestamp_seconds Start of the UTC day that "
                         "the tlsrptd_report_day_* gauges count (the last complete day).\n"
                         "# TYPE tlsrptd_report_day_timestamp_seconds gauge\n"
                         "tlsrptd_report_day_timestamp_seconds %lld\n"
                         "# HELP tlsrptd_report_day_sessions TLS sessions in the reports whose "
                         "window started on that day, per policy domain; grows while its "
                         "reports arrive.\n# TYPE tlsrptd_report_day_sessions gauge\n",
                         (long long)(today - DAY));
    }
    int64_t other_ok = 0, other_bad = 0;
    for (size_t i = 0; rc == TR_OK && i < c.n; i++) {
        if (i >= top) {
            other_ok =
                c.v[i].successful > INT64_MAX - other_ok ? INT64_MAX : other_ok + c.v[i].successful;
            other_bad =
                c.v[i].failed > INT64_MAX - other_bad ? INT64_MAX : other_bad + c.v[i].failed;
            continue;
        }
        json_object_set_new(c.shown, c.v[i].name, json_true());
        char l[600];
        prom_label(label_of(c.v[i].name), l, sizeof l);
        rc = prom_printf(out,
                         "tlsrptd_report_day_sessions{policy_domain=\"%s\",result=\"successful\"} "
                         "%lld\ntlsrptd_report_day_sessions{policy_domain=\"%s\",result=\"failed\"}"
                         " %lld\n",
                         l, (long long)c.v[i].successful, l, (long long)c.v[i].failed);
    }
    if (rc == TR_OK && c.n > top)
        rc = prom_printf(out,
                         "tlsrptd_report_day_sessions{policy_domain=\"(other)\",result="
                         "\"successful\"} %lld\ntlsrptd_report_day_sessions{policy_domain="
                         "\"(other)\",result=\"failed\"} %lld\n",
                         (long long)other_ok, (long long)other_bad);
    if (rc == TR_OK)
        rc = prom_printf(out, "# HELP tlsrptd_report_day_failed_sessions Failed sessions in the "
                              "reports of that day, per policy domain and result type.\n"
                              "# TYPE tlsrptd_report_day_failed_sessions gauge\n");
    struct failure_ctx fc = {&c, json_object()};
    if (rc == TR_OK &&
        (rc = store_summary_failures(st, &f, STORE_BY_DOMAIN, NULL, 0, put_failure, &fc, err)) ==
            TR_OK &&
        (rc = c.rc) == TR_OK) {
        const char *type;
        json_t *n;
        json_object_foreach(fc.other, type, n)
        {
            if ((rc = prom_printf(out,
                                  "tlsrptd_report_day_failed_sessions{policy_domain=\"(other)\","
                                  "result_type=\"%s\"} %lld\n",
                                  type, (long long)json_integer_value(n))) != TR_OK)
                break;
        }
    }
    json_decref(fc.other);
    json_decref(c.shown);
    for (size_t i = 0; i < c.n; i++)
        free(c.v[i].name);
    free(c.v);
    if (rc != TR_OK && err[0] == 0)
        tr_fail(err, rc, "metrics: %s", tr_strerror(rc));
    return rc;
}
