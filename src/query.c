/* query.c: failure summaries from the database (DESIGN.md §6).
 *
 * Sessions are the senders' summary totals (policies), failures the failure
 * details summed per result type. Summaries by domain, and every total, read
 * the rollup tables (schema/002_rollups.sql) that each stored report adds
 * to, so they cost a few rows per domain and day however many reports are
 * stored. The other dimensions join reports, policies and failure details,
 * with the time window taken from the reports_start index. User values (the
 * window, the domains) are always bound parameters; only fixed fragments of
 * this file are put together into SQL. Only this file and store.c speak SQL. */
#define _GNU_SOURCE /* qsort_r */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/gz.h"
#include "tlsrptd/query.h"
#include "tlsrptd/report.h"

#define DAY 86400

/* ---- dimensions ----------------------------------------------------------------------------- */

struct dim {
    const char *name;     /* --by value */
    const char *field;    /* JSON key of a group */
    const char *key_sql;  /* group key over reports r, policies p, failure_details f */
    bool failure_only;    /* a property of failure details: no successful sessions */
    bool natural_by_name; /* unranked order: by key (else by failed sessions) */
};

static const struct dim dims[] = {
    [QUERY_BY_DOMAIN] = {"domain", "policy_domain", "COALESCE(p.policy_domain, '')", false, true},
    [QUERY_BY_DAY] = {"day", "day", "r.start_time - ((r.start_time % 86400) + 86400) % 86400",
                      false, true},
    [QUERY_BY_RESULT_TYPE] = {"result-type", "result_type", "f.result_type", true, false},
    [QUERY_BY_REPORTER] = {"reporter", "reporter", "r.organization_name", false, false},
    [QUERY_BY_SENDING_IP] = {"sending-ip", "sending_ip", "COALESCE(f.sending_mta_ip, '')", true,
                             false},
    [QUERY_BY_MX_HOST] = {"mx-host", "mx_host", "COALESCE(f.receiving_mx_hostname, '')", true,
                          false},
    [QUERY_BY_POLICY_TYPE] = {"policy-type", "policy_type", "p.policy_type", false, false},
};
#define NDIMS (sizeof dims / sizeof *dims)

void query_filter_init(struct query_filter *f)
{
    memset(f, 0, sizeof *f);
    f->since = INT64_MIN;
    f->until = INT64_MAX;
    f->by = QUERY_BY_DOMAIN;
}

bool query_parse_by(const char *s, enum query_by *by)
{
    for (size_t i = 0; i < NDIMS; i++) {
        if (strcmp(s, dims[i].name) == 0) {
            *by = (enum query_by)i;
            return true;
        }
    }
    return false;
}

const char *query_by_name(enum query_by by)
{
    return (size_t)by < NDIMS ? dims[by].name : "?";
}

bool query_parse_time(const char *s, int64_t now, int64_t *out)
{
    size_t n = strlen(s);
    if (n >= 2 && n <= 8 && strchr("mhdw", s[n - 1])) {
        int64_t v = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            if (!isdigit((unsigned char)s[i]))
                return false;
            v = v * 10 + (s[i] - '0');
        }
        int64_t unit = s[n - 1] == 'm'   ? 60
                       : s[n - 1] == 'h' ? 3600
                       : s[n - 1] == 'd' ? DAY
                                         : 7 * DAY;
        *out = now - v * unit;
        return true;
    }
    if (n == 10) { /* a date: midnight UTC */
        char dt[32];
        snprintf(dt, sizeof dt, "%sT00:00:00Z", s);
        bool zone;
        return report_parse_datetime(dt, out, &zone) == 0;
    }
    bool zone;
    return report_parse_datetime(s, out, &zone) == 0;
}

bool query_filter_add_domain(struct query_filter *f, const char *domain, char *store,
                             size_t storelen)
{
    if (f->ndomains == QUERY_MAX_DOMAINS || storelen == 0)
        return false;
    if (strcmp(domain, "(none)") == 0) {
        store[0] = 0;
    } else {
        size_t n = strlen(domain);
        while (n && domain[n - 1] == '.')
            n--;
        if (n == 0 || n >= storelen)
            return false;
        for (size_t i = 0; i < n; i++)
            store[i] = (char)tolower((unsigned char)domain[i]);
        store[n] = 0;
    }
    f->domains[f->ndomains++] = store;
    return true;
}

/* ---- SQL assembly --------------------------------------------------------------------------- */

struct sql {
    char text[2048];
    size_t len;
    bool overflow;
};

static void sql_add(struct sql *q, const char *s)
{
    size_t n = strlen(s);
    if (q->len + n >= sizeof q->text) {
        q->overflow = true;
        return;
    }
    memcpy(q->text + q->len, s, n + 1);
    q->len += n;
}

/* " AND <column> IN (?3, ?4, ...)" for the domain filter; nothing without one. */
static void sql_domains(struct sql *q, const struct query_filter *f, const char *column)
{
    if (f->ndomains == 0)
        return;
    sql_add(q, " AND ");
    sql_add(q, column);
    sql_add(q, " IN (");
    for (size_t i = 0; i < f->ndomains; i++) {
        char p[16];
        snprintf(p, sizeof p, "%s?%zu", i ? ", " : "", i + 3);
        sql_add(q, p);
    }
    sql_add(q, ")");
}

/* Prepare q and bind ?1 since, ?2 until, ?3... the domains. */
static sqlite3_stmt *prepare(sqlite3 *db, const struct sql *q, const struct query_filter *f)
{
    sqlite3_stmt *s = NULL;
    if (q->overflow || sqlite3_prepare_v2(db, q->text, -1, &s, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(s, 1, f->since);
    sqlite3_bind_int64(s, 2, f->until);
    for (size_t i = 0; i < f->ndomains; i++)
        sqlite3_bind_text(s, (int)i + 3, f->domains[i], -1, SQLITE_STATIC);
    return s;
}

/* The FROM/WHERE of the base-table queries: reports in the window, their
 * policies (in the domains), and with failures their failure details. */
static void sql_base(struct sql *q, const struct query_filter *f, bool with_failures)
{
    sql_add(q, " FROM reports r JOIN policies p ON p.report = r.id");
    if (with_failures)
        sql_add(q, " JOIN failure_details f ON f.policy = p.id");
    sql_add(q, " WHERE r.start_time >= ?1 AND r.start_time < ?2");
    sql_domains(q, f, "COALESCE(p.policy_domain, '')");
}

static bool all_time(const struct query_filter *f)
{
    return f->since == INT64_MIN && f->until == INT64_MAX;
}

/* ---- building the summary ------------------------------------------------------------------- */

struct build {
    sqlite3 *db;
    const struct query_filter *f;
    const struct dim *dim;
    json_t *groups; /* array */
    json_t *index;  /* key -> group */
};

/* The group key of row s: the column as text, or for days "YYYY-MM-DD" in
 * day (which must hold 32 bytes). Valid until the next step. */
static const char *key_text(const struct build *b, sqlite3_stmt *s, char *day)
{
    if (b->dim == &dims[QUERY_BY_DAY]) {
        char t[32];
        report_format_time(sqlite3_column_int64(s, 0), t, sizeof t);
        snprintf(day, 32, "%.10s", t);
        return day;
    }
    const unsigned char *v = sqlite3_column_text(s, 0);
    return v ? (const char *)v : "";
}

static json_t *group_for(struct build *b, const char *key)
{
    json_t *g = json_object_get(b->index, key);
    if (g)
        return g;
    g = json_object();
    bool none =
        key[0] == 0 && (b->dim == &dims[QUERY_BY_DOMAIN] || b->dim == &dims[QUERY_BY_SENDING_IP] ||
                        b->dim == &dims[QUERY_BY_MX_HOST]);
    json_t *k = none ? json_null() : json_string(key);
    if (k == NULL) { /* not UTF-8: cannot be a JSON key */
        json_decref(g);
        return NULL;
    }
    json_object_set_new(g, b->dim->field, k);
    json_object_set_new(g, "successful_sessions",
                        b->dim->failure_only ? json_null() : json_integer(0));
    json_object_set_new(g, "failed_sessions", json_integer(0));
    json_object_set_new(g, "failures", json_object());
    json_object_set_new(g, "reports", json_integer(0));
    json_object_set_new(g, "reporters", json_integer(0));
    json_object_set(b->index, key, g);
    json_array_append_new(b->groups, g);
    return g;
}

static void set_int(json_t *obj, const char *key, sqlite3_stmt *s, int col)
{
    json_object_set_new(obj, key, json_integer((json_int_t)sqlite3_column_int64(s, col)));
}

static void add_int(json_t *obj, const char *key, json_int_t n)
{
    json_t *v = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer((v ? json_integer_value(v) : 0) + n));
}

/* Rows of (key, successful|NULL, failed, reports, reporters) into groups. */
static bool read_groups(struct build *b, const struct sql *q)
{
    sqlite3_stmt *s = prepare(b->db, q, b->f);
    if (s == NULL)
        return false;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char day[32];
        json_t *g = group_for(b, key_text(b, s, day));
        if (g == NULL)
            continue;
        if (!b->dim->failure_only)
            set_int(g, "successful_sessions", s, 1);
        set_int(g, "failed_sessions", s, 2);
        set_int(g, "reports", s, 3);
        set_int(g, "reporters", s, 4);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE;
}

/* Rows of (key, result type, failed) into each group's failures. */
static bool read_failures(struct build *b, const struct sql *q)
{
    sqlite3_stmt *s = prepare(b->db, q, b->f);
    if (s == NULL)
        return false;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char day[32];
        json_t *g = group_for(b, key_text(b, s, day));
        if (g == NULL)
            continue;
        add_int(json_object_get(g, "failures"), (const char *)sqlite3_column_text(s, 1),
                (json_int_t)sqlite3_column_int64(s, 2));
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE;
}

static bool build_groups(struct build *b)
{
    struct sql g = {0}, fl = {0};
    if (b->dim == &dims[QUERY_BY_DOMAIN] && all_time(b->f)) {
        /* the all-time tables: a few rows per domain */
        sql_add(&g, "SELECT t.policy_domain, t.successful, t.failed, t.reports, "
                    "(SELECT COUNT(*) FROM domain_reporters r WHERE r.policy_domain = "
                    "t.policy_domain) FROM domain_totals t WHERE ?1 <= ?2");
        sql_domains(&g, b->f, "t.policy_domain");
        sql_add(&fl, "SELECT policy_domain, result_type, failed FROM domain_failures "
                     "WHERE ?1 <= ?2");
        sql_domains(&fl, b->f, "policy_domain");
        return read_groups(b, &g) && read_failures(b, &fl);
    }
    if (b->dim == &dims[QUERY_BY_DOMAIN]) {
        /* from the rollups: reports there count once per report and domain */
        sql_add(&g, "SELECT policy_domain, SUM(successful), SUM(failed), SUM(reports), "
                    "COUNT(DISTINCT reporter) FROM rollup_sessions "
                    "WHERE start_time >= ?1 AND start_time < ?2");
        sql_domains(&g, b->f, "policy_domain");
        sql_add(&g, " GROUP BY policy_domain");
        sql_add(&fl, "SELECT policy_domain, result_type, SUM(failed) FROM rollup_failures "
                     "WHERE start_time >= ?1 AND start_time < ?2");
        sql_domains(&fl, b->f, "policy_domain");
        sql_add(&fl, " GROUP BY policy_domain, result_type");
        return read_groups(b, &g) && read_failures(b, &fl);
    }
    sql_add(&g, "SELECT ");
    sql_add(&g, b->dim->key_sql);
    if (b->dim->failure_only) {
        sql_add(&g, ", NULL, SUM(f.failed_session_count), COUNT(DISTINCT r.id), "
                    "COUNT(DISTINCT r.organization_name)");
    } else {
        sql_add(&g, ", SUM(p.successful_sessions), SUM(p.failed_sessions), COUNT(DISTINCT r.id), "
                    "COUNT(DISTINCT r.organization_name)");
    }
    sql_base(&g, b->f, b->dim->failure_only);
    sql_add(&g, " GROUP BY 1");
    sql_add(&fl, "SELECT ");
    sql_add(&fl, b->dim->key_sql);
    sql_add(&fl, ", f.result_type, SUM(f.failed_session_count)");
    sql_base(&fl, b->f, true);
    sql_add(&fl, " GROUP BY 1, 2");
    return read_groups(b, &g) && read_failures(b, &fl);
}

/* Totals over the whole filter, from the rollups or, without a time window,
 * the all-time tables (and reports for the count). */
static json_t *build_totals(sqlite3 *db, const struct query_filter *f)
{
    json_t *t = json_object(), *failures = json_object();
    json_object_set_new(t, "failures", failures);
    bool ever = all_time(f);
    struct sql q = {0};
    if (ever) {
        sql_add(&q, "SELECT COALESCE(SUM(successful), 0), COALESCE(SUM(failed), 0), "
                    "(SELECT COUNT(DISTINCT reporter) FROM domain_reporters WHERE ?1 <= ?2");
        sql_domains(&q, f, "policy_domain");
        sql_add(&q, "), COALESCE(SUM(reports), 0) FROM domain_totals WHERE ?1 <= ?2");
    } else {
        sql_add(&q, "SELECT COALESCE(SUM(successful), 0), COALESCE(SUM(failed), 0), "
                    "COUNT(DISTINCT reporter), COALESCE(SUM(reports), 0) FROM rollup_sessions "
                    "WHERE start_time >= ?1 AND start_time < ?2");
    }
    sql_domains(&q, f, "policy_domain");
    sqlite3_stmt *s = prepare(db, &q, f);
    if (s == NULL || sqlite3_step(s) != SQLITE_ROW)
        goto fail;
    set_int(t, "successful_sessions", s, 0);
    set_int(t, "failed_sessions", s, 1);
    set_int(t, "reporters", s, 2);
    json_int_t domain_reports = (json_int_t)sqlite3_column_int64(s, 3);
    sqlite3_finalize(s);

    struct sql fq = {0};
    if (ever)
        sql_add(&fq, "SELECT result_type, SUM(failed) FROM domain_failures WHERE ?1 <= ?2");
    else
        sql_add(&fq, "SELECT result_type, SUM(failed) FROM rollup_failures "
                     "WHERE start_time >= ?1 AND start_time < ?2");
    sql_domains(&fq, f, "policy_domain");
    sql_add(&fq, " GROUP BY result_type");
    if ((s = prepare(db, &fq, f)) == NULL)
        goto fail;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        add_int(failures, (const char *)sqlite3_column_text(s, 0),
                (json_int_t)sqlite3_column_int64(s, 1));
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        goto fail_nofin;

    if (f->ndomains == 1) {
        /* one domain: its rollup count is already once per report */
        json_object_set_new(t, "reports", json_integer(domain_reports));
        return t;
    }
    struct sql rq = {0};
    if (ever && f->ndomains == 0) /* every stored report, counted as it was stored */
        sql_add(&rq, "SELECT COALESCE(SUM(count), 0) FROM outcome_counts "
                     "WHERE outcome = 'stored' AND ?1 <= ?2");
    else
        sql_add(&rq,
                "SELECT COUNT(*) FROM reports r WHERE r.start_time >= ?1 AND r.start_time < ?2");
    if (f->ndomains) {
        sql_add(&rq, " AND EXISTS (SELECT 1 FROM policies p WHERE p.report = r.id");
        sql_domains(&rq, f, "COALESCE(p.policy_domain, '')");
        sql_add(&rq, ")");
    }
    if ((s = prepare(db, &rq, f)) == NULL || sqlite3_step(s) != SQLITE_ROW)
        goto fail;
    set_int(t, "reports", s, 0);
    sqlite3_finalize(s);
    return t;
fail:
    sqlite3_finalize(s);
fail_nofin:
    json_decref(t);
    return NULL;
}

static json_int_t int_of(const json_t *g, const char *key)
{
    return json_integer_value(json_object_get(g, key));
}

static void set_rate(json_t *g)
{
    json_t *ok = json_object_get(g, "successful_sessions");
    json_int_t bad = int_of(g, "failed_sessions");
    if (!json_is_integer(ok) || json_integer_value(ok) + bad == 0)
        json_object_set_new(g, "failure_rate", json_null());
    else
        json_object_set_new(g, "failure_rate",
                            json_real((double)bad / (double)(json_integer_value(ok) + bad)));
}

/* natural order: by key (domains without a name last); ranked: failed sessions first */
struct sort_order {
    const struct dim *dim;
    bool ranked;
};

static int cmp_groups(const void *pa, const void *pb, void *arg)
{
    const struct sort_order *o = arg;
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    if (o->ranked) {
        json_int_t fa = int_of(a, "failed_sessions"), fb = int_of(b, "failed_sessions");
        if (fa != fb)
            return fa > fb ? -1 : 1;
    }
    const char *ka = json_string_value(json_object_get(a, o->dim->field));
    const char *kb = json_string_value(json_object_get(b, o->dim->field));
    if (!ka || !kb)
        return ka ? -1 : kb ? 1 : 0;
    return strcmp(ka, kb);
}

static json_t *sorted_groups(json_t *groups, const struct query_filter *f, const struct dim *dim)
{
    size_t n = json_array_size(groups);
    json_t **v = calloc(n ? n : 1, sizeof *v);
    json_t *out = json_array();
    if (v == NULL)
        return out;
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(groups, i);
    struct sort_order o = {dim, f->top > 0 || !dim->natural_by_name};
    qsort_r(v, n, sizeof *v, cmp_groups, &o);
    size_t keep = f->top && f->top < n ? f->top : n;
    for (size_t i = 0; i < keep; i++) {
        set_rate(v[i]);
        json_array_append(out, v[i]);
    }
    free(v);
    return out;
}

static json_t *time_or_null(int64_t t, int64_t open)
{
    if (t == open)
        return json_null();
    char buf[32];
    report_format_time(t, buf, sizeof buf);
    return json_string(buf);
}

json_t *query_summary(struct store *st, const struct query_filter *f, char *err)
{
    struct build b = {store_db(st), f, &dims[f->by < NDIMS ? f->by : 0], json_array(),
                      json_object()};
    json_t *totals = NULL, *out = NULL;
    if (!build_groups(&b) || (totals = build_totals(b.db, f)) == NULL) {
        tr_fail(err, TR_EDB, "summary query failed: %s", sqlite3_errmsg(b.db));
        goto done;
    }
    set_rate(totals);
    json_t *domains = json_array();
    for (size_t i = 0; i < f->ndomains; i++)
        json_array_append_new(domains, f->domains[i][0] ? json_string(f->domains[i]) : json_null());
    json_t *filter = json_pack("{s:o, s:o, s:o, s:s}", "domains", domains, "since",
                               time_or_null(f->since, INT64_MIN), "until",
                               time_or_null(f->until, INT64_MAX), "by", b.dim->name);
    if (f->top)
        json_object_set_new(filter, "top", json_integer((json_int_t)f->top));
    json_t *groups = sorted_groups(b.groups, f, b.dim);
    out = json_pack("{s:s, s:o, s:o, s:O}", "by", b.dim->name, "filter", filter, "groups", groups,
                    "totals", totals);
    if (b.dim == &dims[QUERY_BY_DOMAIN])
        json_object_set(out, "domains", groups);
done:
    json_decref(totals);
    json_decref(b.groups);
    json_decref(b.index);
    return out;
}

/* ---- the reports behind a summary ----------------------------------------------------------- */

static void reports_where(struct sql *q, const struct query_filter *f)
{
    sql_add(q, " FROM reports r WHERE r.start_time >= ?1 AND r.start_time < ?2");
    if (f->ndomains) {
        sql_add(q, " AND EXISTS (SELECT 1 FROM policies p WHERE p.report = r.id");
        sql_domains(q, f, "COALESCE(p.policy_domain, '')");
        sql_add(q, ")");
    }
}

static json_t *text_or_null(sqlite3_stmt *s, int col)
{
    const unsigned char *v = sqlite3_column_text(s, col);
    return v ? json_string((const char *)v) : json_null();
}

static json_t *source_json(sqlite3_stmt *s, int col)
{
    static const char *const names[] = {"kind",   "name",      "client", "message_id",
                                        "domain", "submitter", "subject"};
    json_t *src = json_object();
    for (int i = 0; i < 7; i++)
        if (sqlite3_column_type(s, col + i) != SQLITE_NULL)
            json_object_set_new(src, names[i], text_or_null(s, col + i));
    return src;
}

json_t *query_reports(struct store *st, const struct query_filter *f, size_t limit, size_t offset,
                      char *err)
{
    sqlite3 *db = store_db(st);
    json_t *list = json_array();
    struct sql q = {0};
    sql_add(&q, "SELECT r.id, r.organization_name, r.report_id, r.start_datetime, "
                "r.end_datetime, r.received_at, r.warning_count, r.note_count, "
                "(SELECT SUM(successful_sessions) FROM policies WHERE report = r.id), "
                "(SELECT SUM(failed_sessions) FROM policies WHERE report = r.id), "
                "(SELECT json_group_array(policy_domain) FROM policies WHERE report = r.id), "
                "r.source_kind, r.source_name, r.source_client, r.source_message_id, "
                "r.source_report_domain, r.source_submitter, r.source_subject");
    reports_where(&q, f);
    sql_add(&q, " ORDER BY r.start_time, r.id LIMIT ?99 OFFSET ?98");
    sqlite3_stmt *s = prepare(db, &q, f);
    if (s == NULL)
        goto fail;
    sqlite3_bind_int64(s, 99, limit ? (sqlite3_int64)limit : -1);
    sqlite3_bind_int64(s, 98, (sqlite3_int64)offset);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char received[32];
        report_format_time(sqlite3_column_int64(s, 5), received, sizeof received);
        const char *doms = (const char *)sqlite3_column_text(s, 10);
        json_t *domains = doms ? json_loads(doms, 0, NULL) : NULL;
        json_t *r = json_pack("{s:I, s:o, s:o, s:o, s:o, s:s, s:I, s:I, s:I, s:I, s:o, s:o}", "id",
                              (json_int_t)sqlite3_column_int64(s, 0), "organization_name",
                              text_or_null(s, 1), "report_id", text_or_null(s, 2), "start_datetime",
                              text_or_null(s, 3), "end_datetime", text_or_null(s, 4), "received_at",
                              received, "warnings", (json_int_t)sqlite3_column_int64(s, 6), "notes",
                              (json_int_t)sqlite3_column_int64(s, 7), "successful_sessions",
                              (json_int_t)sqlite3_column_int64(s, 8), "failed_sessions",
                              (json_int_t)sqlite3_column_int64(s, 9), "policy_domains",
                              domains ? domains : json_array(), "source", source_json(s, 11));
        json_array_append_new(list, r);
    }
    sqlite3_finalize(s);
    s = NULL;
    if (rc != SQLITE_DONE)
        goto fail;
    struct sql cq = {0};
    sql_add(&cq, "SELECT COUNT(*)");
    reports_where(&cq, f);
    if ((s = prepare(db, &cq, f)) == NULL || sqlite3_step(s) != SQLITE_ROW)
        goto fail;
    json_t *out =
        json_pack("{s:o, s:I}", "reports", list, "total", (json_int_t)sqlite3_column_int64(s, 0));
    sqlite3_finalize(s);
    return out;
fail:
    tr_fail(err, TR_EDB, "reports query failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    json_decref(list);
    return NULL;
}

/* ---- one report ----------------------------------------------------------------------------- */

static json_t *raw_json(sqlite3_stmt *s, int enc_col, int raw_col)
{
    const char *enc = (const char *)sqlite3_column_text(s, enc_col);
    const void *raw = sqlite3_column_blob(s, raw_col);
    size_t len = (size_t)sqlite3_column_bytes(s, raw_col);
    struct buf out;
    buf_init(&out, (size_t)32 << 20);
    const void *json = raw;
    size_t jlen = len;
    char err[TR_ERRLEN];
    if (enc && strcmp(enc, "identity") != 0) {
        if (gz_inflate(raw, len, &out, err) != TR_OK) {
            buf_free(&out);
            return json_pack("{s:s}", "error", err);
        }
        json = out.data;
        jlen = out.len;
    }
    json_error_t je;
    json_t *j = json_loadb(json, jlen, JSON_DECODE_ANY, &je);
    if (j == NULL)
        j = json_stringn(json, jlen);
    buf_free(&out);
    return j ? j : json_null();
}

static json_t *query_report_by(struct store *st, const char *key, bool numeric, size_t *nfound,
                               char *err);

json_t *query_report(struct store *st, const char *key, size_t *nfound, char *err)
{
    /* an id first; a number that is no id may still be a report-id */
    bool numeric = key[0] != 0 && strspn(key, "0123456789") == strlen(key) && strlen(key) < 19;
    err[0] = 0;
    json_t *r = query_report_by(st, key, numeric, nfound, err);
    if (r == NULL && numeric && *nfound == 0 && err[0] == 0)
        r = query_report_by(st, key, false, nfound, err);
    return r;
}

static json_t *query_report_by(struct store *st, const char *key, bool numeric, size_t *nfound,
                               char *err)
{
    sqlite3 *db = store_db(st);
    *nfound = 0;
    static const char cols[] =
        "SELECT id, organization_name, report_id, start_datetime, end_datetime, contact_info, "
        "received_at, warning_count, note_count, diagnostics, raw_encoding, raw, raw_size, "
        "source_kind, source_name, source_client, source_message_id, source_report_domain, "
        "source_submitter, source_subject FROM reports WHERE ";
    char sqltext[sizeof cols + 32];
    snprintf(sqltext, sizeof sqltext, "%s%s", cols, numeric ? "id = ?1" : "report_id = ?1");
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sqltext, -1, &s, NULL) != SQLITE_OK) {
        tr_fail(err, TR_EDB, "report query failed: %s", sqlite3_errmsg(db));
        return NULL;
    }
    if (numeric)
        sqlite3_bind_int64(s, 1, strtoll(key, NULL, 10));
    else
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    json_t *out = NULL;
    char ids[TR_ERRLEN] = "";
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        (*nfound)++;
        size_t used = strlen(ids);
        snprintf(ids + used, sizeof ids - used, "%s%lld", used ? ", " : "",
                 (long long)sqlite3_column_int64(s, 0));
        if (out)
            continue;
        char received[32];
        report_format_time(sqlite3_column_int64(s, 6), received, sizeof received);
        const char *diag = (const char *)sqlite3_column_text(s, 9);
        json_t *diags = diag ? json_loads(diag, 0, NULL) : NULL;
        out = json_pack(
            "{s:I, s:o, s:o, s:o, s:o, s:o, s:s, s:I, s:I, s:o, s:o, s:o}", "id",
            (json_int_t)sqlite3_column_int64(s, 0), "organization_name", text_or_null(s, 1),
            "report_id", text_or_null(s, 2), "start_datetime", text_or_null(s, 3), "end_datetime",
            text_or_null(s, 4), "contact_info", text_or_null(s, 5), "received_at", received,
            "warnings", (json_int_t)sqlite3_column_int64(s, 7), "notes",
            (json_int_t)sqlite3_column_int64(s, 8), "diagnostics", diags ? diags : json_array(),
            "source", source_json(s, 13), "report", raw_json(s, 10, 11));
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        json_decref(out);
        tr_fail(err, TR_EDB, "report query failed: %s", sqlite3_errmsg(db));
        return NULL;
    }
    if (*nfound > 1) {
        json_decref(out);
        tr_fail(err, TR_EUSAGE, "report-id %s matches %zu stored reports (ids %s); give the id",
                key, *nfound, ids);
        return NULL;
    }
    return out;
}

/* ---- hints ---------------------------------------------------------------------------------- */

static const struct {
    const char *type, *hint;
} hints[] = {
    {"starttls-not-supported", "the MX did not offer STARTTLS: enable STARTTLS on it"},
    {"certificate-host-mismatch",
     "the MX certificate does not name the MX host: add the name to the certificate"},
    {"certificate-expired", "the MX presented an expired certificate: renew it"},
    {"certificate-not-trusted",
     "the MX certificate chain does not lead to a trusted root: serve the full chain of a "
     "public CA"},
    {"validation-failure",
     "the certificate or policy could not be validated: check the chain and MX names"},
    {"tlsa-invalid", "the DANE TLSA record does not match the certificate: fix the TLSA record"},
    {"dnssec-invalid", "DNSSEC validation failed for the TLSA lookup: fix the zone's signatures"},
    {"dane-required", "the sender requires DANE and found no usable TLSA record: publish one"},
    {"sts-policy-fetch-error",
     "the MTA-STS policy could not be fetched: check https://mta-sts.<domain>/.well-known/"
     "mta-sts.txt"},
    {"sts-policy-invalid", "the MTA-STS policy file is malformed: fix its syntax"},
    {"sts-webpki-invalid",
     "the mta-sts.<domain> web server's certificate is not valid: renew or fix it"},
};

const char *query_hint(const char *result_type)
{
    for (size_t i = 0; i < sizeof hints / sizeof *hints; i++)
        if (strcmp(hints[i].type, result_type) == 0)
            return hints[i].hint;
    return NULL;
}

/* ---- renderers ------------------------------------------------------------------------------ */

static const char *group_label(const json_t *g, const char *field, const char *none)
{
    const char *v = json_string_value(json_object_get(g, field));
    return v ? (v[0] ? v : none) : none;
}

static void format_rate(const json_t *g, char *out, size_t n)
{
    json_t *r = json_object_get(g, "failure_rate");
    if (json_is_number(r))
        snprintf(out, n, "%.2f%%", 100.0 * json_number_value(r));
    else
        snprintf(out, n, "-");
}

static void format_count(const json_t *v, char *out, size_t n)
{
    if (json_is_integer(v))
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
    else
        snprintf(out, n, "-");
}

static void print_row(FILE *out, const char *label, const json_t *g, int width, bool by_type)
{
    char rate[32], ok[32];
    format_rate(g, rate, sizeof rate);
    format_count(json_object_get(g, "successful_sessions"), ok, sizeof ok);
    fprintf(out, "%-*s %12s %12lld %9s %8lld %9lld\n", width, label, ok,
            (long long)int_of(g, "failed_sessions"), rate, (long long)int_of(g, "reports"),
            (long long)int_of(g, "reporters"));
    if (by_type) { /* the group is the result type: its hint, no breakdown */
        const char *hint = query_hint(label);
        fprintf(out, "%-*s   %s\n", width, "", hint ? hint : "(not an RFC 8460 result type)");
        return;
    }
    const char *type;
    json_t *n;
    json_object_foreach((json_t *)json_object_get(g, "failures"), type, n)
    {
        const char *hint = query_hint(type);
        fprintf(out, "%-*s   %-26s %10lld  %s\n", width, "", type, (long long)json_integer_value(n),
                hint ? hint : "(not an RFC 8460 result type)");
    }
}

void query_print_table(const json_t *summary, FILE *out)
{
    const char *by = json_string_value(json_object_get(summary, "by"));
    enum query_by which = QUERY_BY_DOMAIN;
    if (by)
        (void)query_parse_by(by, &which);
    const struct dim *dim = &dims[which];
    const json_t *groups = json_object_get(summary, "groups");
    const char *none = which == QUERY_BY_DOMAIN ? "(none)" : "(unknown)";
    char head[64];
    size_t k = 0;
    for (const char *p = dim->field; *p && k < sizeof head - 1; p++)
        head[k++] = *p == '_' ? ' ' : (char)toupper((unsigned char)*p);
    head[k] = 0;
    int width = (int)strlen(head) > 13 ? (int)strlen(head) : 13;
    size_t i;
    json_t *g;
    json_array_foreach((json_t *)groups, i, g)
    {
        int len = (int)strlen(group_label(g, dim->field, none));
        if (len > width)
            width = len > 60 ? 60 : len;
    }
    fprintf(out, "%-*s %12s %12s %9s %8s %9s\n", width, head, "SUCCESSFUL", "FAILED", "FAIL RATE",
            "REPORTS", "REPORTERS");
    json_array_foreach((json_t *)groups, i, g)
    {
        print_row(out, group_label(g, dim->field, none), g, width, which == QUERY_BY_RESULT_TYPE);
    }
    fprintf(out, "%.*s\n", width + 55,
            "----------------------------------------------------------------------------------"
            "----------------------------------------------------------------------------------");
    print_row(out, "TOTAL", json_object_get(summary, "totals"), width, false);
}

/* RFC 4180: quote a field holding a comma, quote or line break */
static void csv_field(FILE *out, const char *v)
{
    if (strpbrk(v, ",\"\r\n") == NULL) {
        fputs(v, out);
        return;
    }
    fputc('"', out);
    for (; *v; v++) {
        if (*v == '"')
            fputc('"', out);
        fputc(*v, out);
    }
    fputc('"', out);
}

void query_print_csv(const json_t *summary, FILE *out)
{
    const char *by = json_string_value(json_object_get(summary, "by"));
    enum query_by which = QUERY_BY_DOMAIN;
    if (by)
        (void)query_parse_by(by, &which);
    const struct dim *dim = &dims[which];
    fprintf(out,
            "%s,successful_sessions,failed_sessions,failure_rate,reports,reporters,failures\r\n",
            dim->field);
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(summary, "groups"), i, g)
    {
        const char *key = json_string_value(json_object_get(g, dim->field));
        csv_field(out, key ? key : "");
        char ok[32], rate[32] = "";
        format_count(json_object_get(g, "successful_sessions"), ok, sizeof ok);
        json_t *r = json_object_get(g, "failure_rate");
        if (json_is_number(r))
            snprintf(rate, sizeof rate, "%.6f", json_number_value(r));
        fprintf(out, ",%s,%lld,%s,%lld,%lld,", strcmp(ok, "-") == 0 ? "" : ok,
                (long long)int_of(g, "failed_sessions"), rate, (long long)int_of(g, "reports"),
                (long long)int_of(g, "reporters"));
        struct buf failures;
        buf_init(&failures, (size_t)16 << 20);
        const char *type;
        json_t *n;
        json_object_foreach(json_object_get(g, "failures"), type, n)
        {
            char count[32];
            snprintf(count, sizeof count, "=%lld", (long long)json_integer_value(n));
            if (failures.len)
                buf_append(&failures, ";", 1);
            buf_append(&failures, type, strlen(type));
            buf_append(&failures, count, strlen(count));
        }
        csv_field(out, failures.len ? (const char *)failures.data : "");
        buf_free(&failures);
        fputs("\r\n", out);
    }
}

void query_print_reports(const json_t *reports, FILE *out)
{
    fprintf(out, "%8s  %-20s  %-16s  %-40s  %10s %8s  %-8s  %s\n", "ID", "START", "REPORTER",
            "REPORT-ID", "SUCCESSFUL", "FAILED", "SOURCE", "DOMAINS / WARNINGS");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(reports, "reports"), i, r)
    {
        char domains[256] = "";
        size_t used = 0, k;
        json_t *d;
        json_array_foreach(json_object_get(r, "policy_domains"), k, d)
        {
            const char *name = json_string_value(d);
            int w = snprintf(domains + used, sizeof domains - used, "%s%s", used ? "," : "",
                             name ? name : "(none)");
            if (w < 0 || (size_t)w >= sizeof domains - used)
                break;
            used += (size_t)w;
        }
        const json_t *src = json_object_get(r, "source");
        fprintf(out, "%8lld  %-20s  %-16.16s  %-40.40s  %10lld %8lld  %-8s  %s",
                (long long)int_of(r, "id"), json_string_value(json_object_get(r, "start_datetime")),
                json_string_value(json_object_get(r, "organization_name")),
                json_string_value(json_object_get(r, "report_id")),
                (long long)int_of(r, "successful_sessions"),
                (long long)int_of(r, "failed_sessions"),
                json_string_value(json_object_get(src, "kind")), domains);
        if (int_of(r, "warnings"))
            fprintf(out, " (%lld warnings)", (long long)int_of(r, "warnings"));
        fputc('\n', out);
    }
    fprintf(out, "%lld reports\n", (long long)int_of(reports, "total"));
}
