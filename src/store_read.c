/* store_read.c: the read side of the storage port (store.h): the rows behind
 * summaries, report listings, one report, the quarantine, the policies seen
 * per domain and the /metrics counters. Shared by every backend: the SQL is
 * put together here from fixed fragments and bound arguments (user values
 * are never part of the text), with ?N placeholders the backend prepares.
 *
 * Which tables answer a summary: the all-time tables (domain_totals, …) when
 * there is no time window and no reporter filter; the rollups (per report
 * start time) for summaries by domain, day and reporter; the reports,
 * policies and failure details themselves for the other dimensions, and for
 * exact report counts where the rollups cannot give them (several domains in
 * the filter). The report counts of the rollups are per domain (a report
 * with two domains counts once for each) except rollup_reports, which counts
 * each report once per start time and reporter. On SQLite the rollup rows of
 * a summary are grouped in memory (store_agg.h), not by GROUP BY, and
 * store_summary reads each rollup once for the groups, failures and totals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_agg.h"
#include "store_backend.h"
#include "store_redact.h"
#include "tlsrptd/buf.h"
#include "tlsrptd/domains.h"
#include "tlsrptd/store.h"

#define DAY_SQL(c) c " - ((" c " % 86400) + 86400) % 86400"

/* ---- building statements -------------------------------------------------------------------- */

struct qb {
    struct buf text;
    struct sql_arg *args;
    size_t nargs, cap;
    bool oom;
    enum store_dialect dialect;
};

static void qb_init(struct qb *q, const struct store *st)
{
    memset(q, 0, sizeof *q);
    buf_init(&q->text, (size_t)1 << 20);
    q->dialect = store_dialect(st);
}

static void qb_free(struct qb *q)
{
    buf_free(&q->text);
    free(q->args);
}

static void qb_sql(struct qb *q, const char *s)
{
    if (buf_append(&q->text, s, strlen(s)) != TR_OK)
        q->oom = true;
}

/* Append "?N" bound to a. */
static void qb_arg(struct qb *q, struct sql_arg a)
{
    if (q->nargs == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 16;
        struct sql_arg *v = realloc(q->args, cap * sizeof *v);
        if (v == NULL) {
            q->oom = true;
            return;
        }
        q->args = v;
        q->cap = cap;
    }
    q->args[q->nargs++] = a;
    char p[24];
    snprintf(p, sizeof p, "?%zu", q->nargs);
    qb_sql(q, p);
}

/* " AND col IN (?, ?, ...)"; nothing for n == 0. */
static void qb_in(struct qb *q, const char *col, const char *const *values, size_t n)
{
    if (n == 0)
        return;
    qb_sql(q, " AND ");
    qb_sql(q, col);
    qb_sql(q, " IN (");
    for (size_t i = 0; i < n; i++) {
        if (i)
            qb_sql(q, ", ");
        qb_arg(q, sql_text(values[i]));
    }
    qb_sql(q, ")");
}

/* " AND col >= since AND col < until" (only the bounds that are set). */
static void qb_window(struct qb *q, const char *col, int64_t since, int64_t until)
{
    if (since != INT64_MIN) {
        qb_sql(q, " AND ");
        qb_sql(q, col);
        qb_sql(q, " >= ");
        qb_arg(q, sql_int(since));
    }
    if (until != INT64_MAX) {
        qb_sql(q, " AND ");
        qb_sql(q, col);
        qb_sql(q, " < ");
        qb_arg(q, sql_int(until));
    }
}

/* ---- scopes (struct store_scope) ----------------------------------------------------------- */

static const struct store_scope scope_nothing = {NULL, 0};

static bool scope_all(const struct store_scope *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        if (strcmp(sc->patterns[i], "*") == 0)
            return true;
    return false;
}

/* NULL when sc lets every domain be seen. */
static const struct store_scope *scope_or_null(const struct store_scope *sc)
{
    return sc && !scope_all(sc) ? sc : NULL;
}

static bool scope_match(const struct store_scope *sc, const char *domain)
{
    for (size_t i = 0; i < sc->n; i++)
        if (domain_pattern_match(sc->patterns[i], domain))
            return true;
    return false;
}

bool store_scope_shows(const struct store_scope *scope, const char *domain)
{
    return scope_or_null(scope) == NULL || scope_match(scope, domain);
}

static bool scope_keep(void *cls, const char *domain)
{
    return scope_match(cls, domain);
}

/* " AND (col is a domain sc lets be seen)"; col is a domain, '' for none.
 * Nothing when sc is NULL or holds "*". A "*.NAME" pattern is a suffix test
 * on ".NAME" written in functions both dialects have. */
static void qb_visible(struct qb *q, const char *col, const struct store_scope *sc)
{
    if (scope_or_null(sc) == NULL)
        return;
    qb_sql(q, " AND (1 = 0");
    size_t names = 0;
    for (size_t i = 0; i < sc->n; i++) {
        if (strncmp(sc->patterns[i], "*.", 2) == 0)
            continue;
        qb_sql(q, names++ ? ", " : " OR ");
        if (names == 1) {
            qb_sql(q, col);
            qb_sql(q, " IN (");
        }
        qb_arg(q, sql_text(sc->patterns[i]));
    }
    if (names)
        qb_sql(q, ")");
    for (size_t i = 0; i < sc->n; i++) {
        if (strncmp(sc->patterns[i], "*.", 2) != 0)
            continue;
        struct sql_arg dot_name = sql_text(sc->patterns[i] + 1); /* ".example.org" */
        qb_sql(q, " OR (length(");
        qb_sql(q, col);
        qb_sql(q, ") > length(");
        qb_arg(q, dot_name);
        qb_sql(q, ") AND substr(");
        qb_sql(q, col);
        qb_sql(q, ", length(");
        qb_sql(q, col);
        qb_sql(q, ") - length(");
        qb_arg(q, dot_name);
        qb_sql(q, ") + 1) = ");
        qb_arg(q, dot_name);
        qb_sql(q, ")");
    }
    qb_sql(q, ")");
}

/* " AND col IN (the filter's domains)" and the scope's rule, for col. */
static void qb_domains(struct qb *q, const char *col, const struct store_filter *f)
{
    qb_in(q, col, f->domains, f->ndomains);
    qb_visible(q, col, f->scope);
}

/* How many domains the filter names, for choosing tables: a scope with
 * patterns (after effective()) counts as several. */
static size_t ndoms(const struct store_filter *f)
{
    return f->scope ? 2 : f->ndomains;
}

/* The filter as the queries run it (tmp holds it when it differs from in):
 * domains asked for under a scope are kept when the scope shows them, the
 * scope then adds nothing; a scope of names only (as most tokens have)
 * becomes the domain list, so the per-domain rollups answer it; a scope
 * with "*.NAME" patterns stays, as a rule on every domain column. */
static const struct store_filter *effective(const struct store_filter *in, struct store_filter *tmp)
{
    if (in->scope == NULL)
        return in;
    *tmp = *in;
    tmp->scope = scope_or_null(in->scope);
    if (tmp->scope == NULL)
        return tmp;
    if (in->ndomains) {
        tmp->ndomains = 0;
        for (size_t i = 0; i < in->ndomains; i++)
            if (scope_match(in->scope, in->domains[i]))
                tmp->domains[tmp->ndomains++] = in->domains[i];
        tmp->scope = tmp->ndomains ? NULL : &scope_nothing;
        return tmp;
    }
    bool names_only = in->scope->n > 0 && in->scope->n <= STORE_MAX_FILTER;
    for (size_t i = 0; i < in->scope->n && names_only; i++)
        names_only = strncmp(in->scope->patterns[i], "*.", 2) != 0;
    if (names_only) {
        for (size_t i = 0; i < in->scope->n; i++)
            tmp->domains[i] = in->scope->patterns[i];
        tmp->ndomains = in->scope->n;
        tmp->scope = NULL;
    }
    return tmp;
}

/* A sum that cannot overflow: SQLite's SUM fails on overflow, so the SQLite
 * backend defines tsum (saturating); PostgreSQL's SUM of bigint is numeric,
 * which the backend reads back saturated. */
static const char *qb_sum(const struct qb *q)
{
    return q->dialect == STORE_DIALECT_SQLITE ? "tsum(" : "SUM(";
}

static void qb_sum_of(struct qb *q, const char *col)
{
    qb_sql(q, qb_sum(q));
    qb_sql(q, col);
    qb_sql(q, ")");
}

/* Byte order for text, as strcmp: PostgreSQL sorts by the database's
 * collation unless told. */
static void qb_order_text(struct qb *q, const char *col)
{
    qb_sql(q, col);
    if (q->dialect == STORE_DIALECT_POSTGRESQL)
        qb_sql(q, " COLLATE \"C\"");
}

static tr_err qb_run(struct store *st, struct qb *q, sql_row_fn fn, void *cls, char *err)
{
    if (q->oom)
        return tr_fail(err, TR_ENOMEM, "out of memory building a query");
    return store_exec(st, STMT_NONE, (const char *)q->text.data, q->args, q->nargs, fn, cls, NULL,
                      err);
}

void store_filter_init(struct store_filter *f)
{
    memset(f, 0, sizeof *f);
    f->since = INT64_MIN;
    f->until = INT64_MAX;
}

static bool all_time(const struct store_filter *f)
{
    return f->since == INT64_MIN && f->until == INT64_MAX;
}

/* ---- summaries ------------------------------------------------------------------------------ */

static const char *const base_key[STORE_NDIMS] = {
    [STORE_BY_DOMAIN] = "COALESCE(p.policy_domain, '')",
    [STORE_BY_DAY] = DAY_SQL("r.start_time"),
    [STORE_BY_RESULT_TYPE] = "f.result_type",
    [STORE_BY_REPORTER] = "r.organization_name",
    [STORE_BY_SENDING_IP] = "COALESCE(f.sending_mta_ip, '')",
    [STORE_BY_MX_HOST] = "COALESCE(f.receiving_mx_hostname, '')",
    [STORE_BY_POLICY_TYPE] = "p.policy_type",
    [STORE_BY_DKIM] = "COALESCE(r.dkim_result, '')",
};

bool store_dim_failure_only(enum store_dim dim)
{
    return dim == STORE_BY_RESULT_TYPE || dim == STORE_BY_SENDING_IP || dim == STORE_BY_MX_HOST;
}

/* The FROM and WHERE over reports r, policies p (and failure details f). */
static void qb_base(struct qb *q, const struct store_filter *f, bool with_failures)
{
    qb_sql(q, " FROM reports r JOIN policies p ON p.report = r.id");
    if (with_failures)
        qb_sql(q, " JOIN failure_details f ON f.policy = p.id");
    qb_sql(q, " WHERE 1 = 1");
    qb_window(q, "r.start_time", f->since, f->until);
    qb_domains(q, "COALESCE(p.policy_domain, '')", f);
    qb_in(q, "r.organization_name", f->reporters, f->nreporters);
}

/* rollup_sessions in the filter */
static void qb_rollup_where(struct qb *q, const struct store_filter *f)
{
    qb_sql(q, " WHERE 1 = 1");
    qb_window(q, "start_time", f->since, f->until);
    qb_domains(q, "policy_domain", f);
    qb_in(q, "reporter", f->reporters, f->nreporters);
}

/* Whether the all-time tables (domain_totals, ...) answer groups by dim. */
static bool groups_from_totals(const struct store_filter *f, enum store_dim dim)
{
    return dim == STORE_BY_DOMAIN && all_time(f) && f->nreporters == 0;
}

/* Whether rollup_sessions answers groups by dim (when the all-time tables do not). */
static bool groups_from_rollups(const struct store_filter *f, enum store_dim dim)
{
    bool rollup_dim = dim == STORE_BY_DOMAIN || dim == STORE_BY_DAY || dim == STORE_BY_REPORTER;
    return rollup_dim && (dim == STORE_BY_DOMAIN || ndoms(f) <= 1);
}

/* Whether rollup_failures answers failures by dim (when domain_failures does not). */
static bool failures_from_rollups(const struct store_filter *f, enum store_dim dim)
{
    return (dim == STORE_BY_DOMAIN || (dim == STORE_BY_DAY && ndoms(f) <= 1)) && f->nreporters == 0;
}

/* The inner query of the groups: columns k, ok, bad, nrep, nreporters, last. */
static void qb_groups(struct qb *q, const struct store_filter *f, enum store_dim dim)
{
    if (groups_from_totals(f, dim)) {
        /* the all-time tables: a few rows per domain */
        qb_sql(q, "SELECT t.policy_domain AS k, t.successful AS ok, t.failed AS bad, t.reports "
                  "AS nrep, (SELECT COUNT(*) FROM domain_reporters x WHERE x.policy_domain = "
                  "t.policy_domain) AS nreporters, (SELECT MAX(last_start) FROM domain_reporters "
                  "x WHERE x.policy_domain = t.policy_domain) AS last FROM domain_totals t "
                  "WHERE 1 = 1");
        qb_domains(q, "t.policy_domain", f);
        return;
    }
    if (groups_from_rollups(f, dim)) {
        /* the rollups; their report counts are per domain, exact for one domain */
        const char *key = dim == STORE_BY_DOMAIN ? "policy_domain"
                          : dim == STORE_BY_DAY  ? DAY_SQL("start_time")
                                                 : "reporter";
        bool per_domain = dim == STORE_BY_DOMAIN || ndoms(f) == 1;
        qb_sql(q, "SELECT s.k, s.ok, s.bad, ");
        qb_sql(q, per_domain ? "s.nrep" : "COALESCE(c.n, 0)");
        qb_sql(q, " AS nrep, s.nreporters, s.last FROM (SELECT ");
        qb_sql(q, key);
        qb_sql(q, " AS k, ");
        qb_sum_of(q, "successful");
        qb_sql(q, " AS ok, ");
        qb_sum_of(q, "failed");
        qb_sql(q, " AS bad, ");
        qb_sum_of(q, "reports");
        qb_sql(q, " AS nrep, COUNT(DISTINCT reporter) AS nreporters, MAX(start_time) AS last "
                  "FROM rollup_sessions");
        qb_rollup_where(q, f);
        qb_sql(q, " GROUP BY 1) s");
        if (!per_domain) { /* every domain: reports once each, from rollup_reports */
            qb_sql(q, " LEFT JOIN (SELECT ");
            qb_sql(q, dim == STORE_BY_DAY ? DAY_SQL("start_time") : "reporter");
            qb_sql(q, " AS k, ");
            qb_sum_of(q, "reports");
            qb_sql(q, " AS n FROM rollup_reports WHERE 1 = 1");
            qb_window(q, "start_time", f->since, f->until);
            qb_in(q, "reporter", f->reporters, f->nreporters);
            qb_sql(q, " GROUP BY 1) c ON c.k = s.k");
        }
        return;
    }
    bool failure_only = store_dim_failure_only(dim);
    qb_sql(q, "SELECT ");
    qb_sql(q, base_key[dim]);
    qb_sql(q, " AS k, ");
    if (failure_only) {
        qb_sql(q, "NULL AS ok, ");
        qb_sum_of(q, "f.failed_session_count");
    } else {
        qb_sum_of(q, "p.successful_sessions");
        qb_sql(q, " AS ok, ");
        qb_sum_of(q, "p.failed_sessions");
    }
    qb_sql(q, " AS bad, COUNT(DISTINCT r.id) AS nrep, COUNT(DISTINCT r.organization_name) AS "
              "nreporters, MAX(r.start_time) AS last");
    qb_base(q, f, failure_only);
    qb_sql(q, " GROUP BY 1");
}

/* The number of reports in the filter, each counted once. */
static void qb_report_count(struct qb *q, const struct store_filter *f)
{
    if (ndoms(f) == 0) { /* rollup_reports: once per report */
        qb_sql(q, "(SELECT ");
        qb_sum_of(q, "reports");
        qb_sql(q, " FROM rollup_reports WHERE 1 = 1");
        qb_window(q, "start_time", f->since, f->until);
        qb_in(q, "reporter", f->reporters, f->nreporters);
        qb_sql(q, ")");
    } else { /* several domains: the reports that hold one of them */
        qb_sql(q, "(SELECT COUNT(*) FROM reports r WHERE 1 = 1");
        qb_window(q, "r.start_time", f->since, f->until);
        qb_in(q, "r.organization_name", f->reporters, f->nreporters);
        qb_sql(q, " AND EXISTS (SELECT 1 FROM policies p WHERE p.report = r.id");
        qb_domains(q, "COALESCE(p.policy_domain, '')", f);
        qb_sql(q, "))");
    }
}

/* ---- summaries from the rollups, summed in memory (SQLite) ---------------------------------- */

/* SQLite sorts every row a GROUP BY reads (store_agg.h); for the rollups of a
 * window the rows are read in their stored order and summed in hash tables,
 * the groups, their failures and the totals of a summary in one pass over
 * each rollup. PostgreSQL aggregates by hash itself and keeps the SQL. */
static bool sum_in_memory(const struct store *st)
{
    return store_dialect(st) == STORE_DIALECT_SQLITE;
}

static int64_t day_of(int64_t t)
{
    return t - ((t % 86400) + 86400) % 86400;
}

/* What one summary sums: each table is NULL when not asked for. */
struct summed {
    enum store_dim dim;
    bool per_domain;            /* group report counts from rollup_sessions (else rollup_reports) */
    struct agg *groups;         /* by dim: sessions, reports, reporters, last report */
    struct agg *failures;       /* by dim and result type */
    struct agg *total;          /* one group: the totals' sessions and reporters */
    struct agg *total_failures; /* by result type */
    struct agg_group *all;      /* total's one group */
};

static void summed_free(struct summed *s)
{
    agg_free(s->groups);
    agg_free(s->failures);
    agg_free(s->total);
    agg_free(s->total_failures);
}

static bool summed_failed(const struct summed *s)
{
    const struct agg *v[] = {s->groups, s->failures, s->total, s->total_failures};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        if (v[i] != NULL && agg_failed(v[i]))
            return true;
    return false;
}

static tr_err sum_failed(char *err)
{
    return tr_fail(err, TR_ENOMEM, "out of memory summing a summary");
}

/* A row's group by s->dim: by domain, by reporter or by day. */
static struct agg_group *row_group(struct summed *s, struct agg *a, const char *domain,
                                   const char *reporter, int64_t start, const char *sub,
                                   bool create)
{
    const char *key = s->dim == STORE_BY_DOMAIN     ? domain
                      : s->dim == STORE_BY_REPORTER ? reporter
                                                    : "";
    return agg_group(a, key, s->dim == STORE_BY_DAY ? day_of(start) : 0, sub, create);
}

static void add_sessions(struct agg *a, struct agg_group *g, struct sql_row *row,
                         const char *reporter, int64_t start)
{
    agg_add(g, AGG_SUCCESSFUL, sql_col_int(row, 3));
    agg_add(g, AGG_FAILED, sql_col_int(row, 4));
    agg_add(g, AGG_REPORTS, sql_col_int(row, 5));
    agg_max(g, start);
    agg_distinct(a, g, reporter);
}

/* policy_domain, start_time, reporter, successful, failed, reports */
static int session_row(void *cls, struct sql_row *row)
{
    struct summed *s = cls;
    const char *reporter = sql_col_text(row, 2);
    int64_t start = sql_col_int(row, 1);
    if (s->groups != NULL) {
        struct agg_group *g =
            row_group(s, s->groups, sql_col_text(row, 0), reporter, start, NULL, true);
        if (g == NULL)
            return 1;
        add_sessions(s->groups, g, row, reporter, start);
    }
    if (s->total != NULL)
        add_sessions(s->total, s->all, row, reporter, start);
    return summed_failed(s);
}

/* start_time, reporter, reports (rollup_reports: each report once) */
static int reports_once_row(void *cls, struct sql_row *row)
{
    struct summed *s = cls;
    struct agg_group *g =
        row_group(s, s->groups, "", sql_col_text(row, 1), sql_col_int(row, 0), NULL, false);
    if (g != NULL)
        agg_add(g, AGG_REPORTS_ONCE, sql_col_int(row, 2));
    return 0;
}

/* policy_domain, start_time, result_type, failed */
static int failure_sum_row(void *cls, struct sql_row *row)
{
    struct summed *s = cls;
    const char *type = sql_col_text(row, 2);
    int64_t failed = sql_col_int(row, 3);
    if (type == NULL)
        return 0;
    if (s->failures != NULL) {
        struct agg_group *g =
            row_group(s, s->failures, sql_col_text(row, 0), "", sql_col_int(row, 1), type, true);
        if (g == NULL)
            return 1;
        agg_add(g, AGG_FAILED, failed);
    }
    if (s->total_failures != NULL) {
        struct agg_group *g = agg_group(s->total_failures, "", 0, type, true);
        if (g == NULL)
            return 1;
        agg_add(g, AGG_FAILED, failed);
    }
    return 0;
}

enum { SUM_GROUPS = 1, SUM_FAILURES = 2, SUM_TOTALS = 4, SUM_TOTAL_FAILURES = 8 };

/* Sums the rollups of the filter into the tables of s that want (SUM_*)
 * names; they are made here. The caller frees s with summed_free. */
static tr_err sum_rollups(struct store *st, const struct store_filter *f, enum store_dim dim,
                          unsigned want, struct summed *s, char *err)
{
    bool want_groups = want & SUM_GROUPS, want_failures = want & SUM_FAILURES;
    bool want_totals = want & (SUM_TOTALS | SUM_TOTAL_FAILURES);
    memset(s, 0, sizeof *s);
    s->dim = dim;
    s->per_domain = dim == STORE_BY_DOMAIN || ndoms(f) == 1;
    bool oom = (want_groups && (s->groups = agg_new()) == NULL) ||
               (want_failures && (s->failures = agg_new()) == NULL) ||
               ((want & SUM_TOTAL_FAILURES) && (s->total_failures = agg_new()) == NULL) ||
               (want_totals && ((s->total = agg_new()) == NULL ||
                                (s->all = agg_group(s->total, "", 0, NULL, true)) == NULL));
    if (oom)
        return sum_failed(err);
    tr_err rc = TR_OK;
    struct qb q;
    if (want_groups || want_totals) {
        qb_init(&q, st);
        qb_sql(&q, "SELECT policy_domain, start_time, reporter, successful, failed, reports "
                   "FROM rollup_sessions");
        qb_rollup_where(&q, f);
        rc = qb_run(st, &q, session_row, s, err);
        qb_free(&q);
    }
    if (rc == TR_OK && want_groups && !s->per_domain) {
        qb_init(&q, st);
        qb_sql(&q, "SELECT start_time, reporter, reports FROM rollup_reports WHERE 1 = 1");
        qb_window(&q, "start_time", f->since, f->until);
        qb_in(&q, "reporter", f->reporters, f->nreporters);
        rc = qb_run(st, &q, reports_once_row, s, err);
        qb_free(&q);
    }
    if (rc == TR_OK && want_totals) {
        s->all->sum[AGG_REPORTS_ONCE] = s->all->sum[AGG_REPORTS];
        if (ndoms(f) != 1) { /* reports once each, not once per domain */
            qb_init(&q, st);
            qb_sql(&q, "SELECT ");
            qb_report_count(&q, f);
            rc = qb_run(st, &q, sql_take_int, &s->all->sum[AGG_REPORTS_ONCE], err);
            qb_free(&q);
        }
    }
    if (rc == TR_OK && (want_failures || (want & SUM_TOTAL_FAILURES))) {
        qb_init(&q, st);
        qb_sql(&q, "SELECT policy_domain, start_time, result_type, failed FROM rollup_failures "
                   "WHERE 1 = 1");
        qb_window(&q, "start_time", f->since, f->until);
        qb_domains(&q, "policy_domain", f);
        rc = qb_run(st, &q, failure_sum_row, s, err);
        qb_free(&q);
    }
    return rc == TR_OK && summed_failed(s) ? sum_failed(err) : rc;
}

/* Hands fn the page of s's groups; only (may be NULL) gets their keys. */
static tr_err summed_groups(struct summed *s, const struct store_page *page, store_group_fn fn,
                            void *cls, size_t *ngroups, struct agg *only, char *err)
{
    size_t n = 0;
    struct agg_group **v = agg_sorted(s->groups, page && page->ranked, &n);
    if (agg_failed(s->groups))
        return sum_failed(err);
    if (ngroups)
        *ngroups = n;
    size_t from = 0, to = n;
    if (page && page->limit) {
        from = page->offset < n ? page->offset : n;
        to = n - from > page->limit ? from + page->limit : n;
    }
    for (size_t i = from; i < to; i++) {
        const struct agg_group *a = v[i];
        struct store_group g = {
            .key = a->key,
            .day = a->day,
            .has_successful = true,
            .successful = a->sum[AGG_SUCCESSFUL],
            .failed = a->sum[AGG_FAILED],
            .reports = a->sum[s->per_domain ? AGG_REPORTS : AGG_REPORTS_ONCE],
            .reporters = a->distinct,
            .last_start = a->last,
        };
        if (only && agg_group(only, a->key, a->day, NULL, true) == NULL)
            return sum_failed(err);
        if (fn(cls, &g) != 0)
            break;
    }
    return TR_OK;
}

/* Hands fn the failures of a (by group and result type, in order), only
 * those of the groups in only when it is not NULL. */
static tr_err summed_failures(struct agg *a, struct agg *only, store_failure_fn fn, void *cls,
                              char *err)
{
    size_t n = 0;
    struct agg_group **v = agg_sorted(a, false, &n);
    if (agg_failed(a))
        return sum_failed(err);
    for (size_t i = 0; i < n; i++) {
        if (only && agg_group(only, v[i]->key, v[i]->day, NULL, false) == NULL)
            continue;
        struct store_failure fl = {v[i]->key, v[i]->day, v[i]->sub, v[i]->sum[AGG_FAILED]};
        if (fn(cls, &fl) != 0)
            break;
    }
    return TR_OK;
}

static void summed_totals(const struct summed *s, struct store_totals *t)
{
    t->successful = s->all->sum[AGG_SUCCESSFUL];
    t->failed = s->all->sum[AGG_FAILED];
    t->reporters = s->all->distinct;
    t->reports = s->all->sum[AGG_REPORTS_ONCE];
}

struct groups_ctx {
    enum store_dim dim;
    store_group_fn fn;
    void *cls;
};

static int group_row(void *cls, struct sql_row *row)
{
    struct groups_ctx *c = cls;
    struct store_group g = {0};
    if (c->dim == STORE_BY_DAY) {
        g.day = sql_col_int(row, 0);
        g.key = "";
    } else {
        g.key = sql_col_text(row, 0);
        if (g.key == NULL)
            g.key = "";
    }
    g.has_successful = !store_dim_failure_only(c->dim);
    g.successful = g.has_successful && !sql_null(row, 1) ? sql_col_int(row, 1) : 0;
    g.failed = sql_null(row, 2) ? 0 : sql_col_int(row, 2);
    g.reports = sql_col_int(row, 3);
    g.reporters = sql_col_int(row, 4);
    g.last_start = sql_null(row, 5) ? 0 : sql_col_int(row, 5);
    return c->fn(c->cls, &g);
}

tr_err store_summary_groups(struct store *st, const struct store_filter *in, enum store_dim dim,
                            const struct store_page *page, store_group_fn fn, void *cls,
                            size_t *ngroups, char *err)
{
    struct store_filter tmp;
    const struct store_filter *f = effective(in, &tmp);
    if ((unsigned)dim >= STORE_NDIMS)
        return tr_fail(err, TR_EUSAGE, "no such summary dimension");
    if (sum_in_memory(st) && !groups_from_totals(f, dim) && groups_from_rollups(f, dim)) {
        struct summed s;
        tr_err rc = sum_rollups(st, f, dim, SUM_GROUPS, &s, err);
        if (rc == TR_OK)
            rc = summed_groups(&s, page, fn, cls, ngroups, NULL, err);
        summed_free(&s);
        return rc;
    }
    struct qb q;
    qb_init(&q, st);
    tr_err rc = TR_OK;
    if (ngroups) {
        *ngroups = 0;
        qb_sql(&q, "SELECT COUNT(*) FROM (");
        qb_groups(&q, f, dim);
        qb_sql(&q, ") g");
        int64_t n = 0;
        rc = qb_run(st, &q, sql_take_int, &n, err);
        *ngroups = (size_t)n;
        qb_free(&q);
        qb_init(&q, st);
    }
    if (rc == TR_OK) {
        qb_sql(&q, "SELECT k, ok, bad, nrep, nreporters, last FROM (");
        qb_groups(&q, f, dim);
        qb_sql(&q, ") g ORDER BY ");
        if (page && page->ranked)
            qb_sql(&q, "bad DESC, ");
        if (dim == STORE_BY_DAY) {
            qb_sql(&q, "k");
        } else {
            qb_sql(&q, "CASE WHEN k = '' THEN 1 ELSE 0 END, "); /* no name: last */
            qb_order_text(&q, "k");
        }
        if (page && page->limit) {
            qb_sql(&q, " LIMIT ");
            qb_arg(&q, sql_int((int64_t)page->limit));
            qb_sql(&q, " OFFSET ");
            qb_arg(&q, sql_int((int64_t)page->offset));
        }
        struct groups_ctx c = {dim, fn, cls};
        rc = qb_run(st, &q, group_row, &c, err);
    }
    qb_free(&q);
    return rc;
}

struct failures_ctx {
    enum store_dim dim;
    store_failure_fn fn;
    void *cls;
};

static int failure_row(void *cls, struct sql_row *row)
{
    struct failures_ctx *c = cls;
    struct store_failure fl = {0};
    if (c->dim == STORE_BY_DAY) {
        fl.day = sql_col_int(row, 0);
        fl.key = "";
    } else {
        fl.key = sql_col_text(row, 0);
        if (fl.key == NULL)
            fl.key = "";
    }
    fl.result_type = sql_col_text(row, 1);
    fl.failed = sql_col_int(row, 2);
    if (fl.result_type == NULL)
        return 0;
    return c->fn(c->cls, &fl);
}

tr_err store_summary_failures(struct store *st, const struct store_filter *in, enum store_dim dim,
                              const char *const *keys, size_t nkeys, store_failure_fn fn, void *cls,
                              char *err)
{
    struct store_filter tmp;
    const struct store_filter *f = effective(in, &tmp);
    if ((unsigned)dim >= STORE_NDIMS)
        return tr_fail(err, TR_EUSAGE, "no such summary dimension");
    if (sum_in_memory(st) && !groups_from_totals(f, dim) && failures_from_rollups(f, dim)) {
        struct summed s;
        struct agg *only = NULL;
        tr_err rc = sum_rollups(st, f, dim, SUM_FAILURES, &s, err);
        if (rc == TR_OK && keys != NULL && dim != STORE_BY_DAY) {
            only = agg_new();
            for (size_t i = 0; only != NULL && i < nkeys; i++)
                agg_group(only, keys[i], 0, NULL, true);
            if (only == NULL || agg_failed(only))
                rc = sum_failed(err);
        }
        if (rc == TR_OK)
            rc = summed_failures(s.failures, only, fn, cls, err);
        agg_free(only);
        summed_free(&s);
        return rc;
    }
    struct qb q;
    qb_init(&q, st);
    bool use_keys = keys != NULL && dim != STORE_BY_DAY;
    if (groups_from_totals(f, dim)) {
        qb_sql(&q, "SELECT policy_domain, result_type, failed FROM domain_failures WHERE 1 = 1");
        qb_domains(&q, "policy_domain", f);
        if (use_keys)
            qb_in(&q, "policy_domain", keys, nkeys);
    } else if (failures_from_rollups(f, dim)) {
        qb_sql(&q, "SELECT ");
        qb_sql(&q, dim == STORE_BY_DAY ? DAY_SQL("start_time") : "policy_domain");
        qb_sql(&q, ", result_type, ");
        qb_sum_of(&q, "failed");
        qb_sql(&q, " FROM rollup_failures WHERE 1 = 1");
        qb_window(&q, "start_time", f->since, f->until);
        qb_domains(&q, "policy_domain", f);
        if (use_keys)
            qb_in(&q, "policy_domain", keys, nkeys);
        qb_sql(&q, " GROUP BY 1, 2");
    } else {
        qb_sql(&q, "SELECT ");
        qb_sql(&q, base_key[dim]);
        qb_sql(&q, ", f.result_type, ");
        qb_sum_of(&q, "f.failed_session_count");
        qb_base(&q, f, true);
        if (use_keys)
            qb_in(&q, base_key[dim], keys, nkeys);
        qb_sql(&q, " GROUP BY 1, 2");
    }
    struct failures_ctx c = {dim, fn, cls};
    tr_err rc = qb_run(st, &q, failure_row, &c, err);
    qb_free(&q);
    return rc;
}

static int totals_row(void *cls, struct sql_row *row)
{
    struct store_totals *t = cls;
    t->successful = sql_null(row, 0) ? 0 : sql_col_int(row, 0);
    t->failed = sql_null(row, 1) ? 0 : sql_col_int(row, 1);
    t->reporters = sql_col_int(row, 2);
    t->reports = sql_null(row, 3) ? 0 : sql_col_int(row, 3);
    return 1;
}

struct total_failures_ctx {
    store_failure_fn fn;
    void *cls;
};

static int total_failure_row(void *cls, struct sql_row *row)
{
    struct total_failures_ctx *c = cls;
    struct store_failure fl = {"", 0, sql_col_text(row, 0), sql_col_int(row, 1)};
    return fl.result_type ? c->fn(c->cls, &fl) : 0;
}

/* The totals' sessions, reports and reporters by SQL; ever: all time, all reporters. */
static tr_err totals_sql(struct store *st, const struct store_filter *f, bool ever,
                         struct store_totals *t, char *err)
{
    struct qb q;
    qb_init(&q, st);
    qb_sql(&q, "SELECT ");
    qb_sum_of(&q, "successful");
    qb_sql(&q, ", ");
    qb_sum_of(&q, "failed");
    if (ever) {
        qb_sql(&q, ", (SELECT COUNT(DISTINCT reporter) FROM domain_reporters WHERE 1 = 1");
        qb_domains(&q, "policy_domain", f);
        qb_sql(&q, "), ");
    } else {
        qb_sql(&q, ", COUNT(DISTINCT reporter), ");
    }
    if (ndoms(f) == 1)
        qb_sum_of(&q, "reports");
    else
        qb_report_count(&q, f);
    if (ever) {
        qb_sql(&q, " FROM domain_totals WHERE 1 = 1");
        qb_domains(&q, "policy_domain", f);
    } else {
        qb_sql(&q, " FROM rollup_sessions");
        qb_rollup_where(&q, f);
    }
    tr_err rc = qb_run(st, &q, totals_row, t, err);
    qb_free(&q);
    return rc;
}

/* The totals' failed sessions per result type by SQL, to fn. */
static tr_err total_failures_sql(struct store *st, const struct store_filter *f, bool ever,
                                 store_failure_fn fn, void *cls, char *err)
{
    struct qb q;
    qb_init(&q, st);
    if (ever) {
        qb_sql(&q, "SELECT result_type, ");
        qb_sum_of(&q, "failed");
        qb_sql(&q, " FROM domain_failures WHERE 1 = 1");
        qb_domains(&q, "policy_domain", f);
    } else if (f->nreporters == 0) {
        qb_sql(&q, "SELECT result_type, ");
        qb_sum_of(&q, "failed");
        qb_sql(&q, " FROM rollup_failures WHERE 1 = 1");
        qb_window(&q, "start_time", f->since, f->until);
        qb_domains(&q, "policy_domain", f);
    } else {
        qb_sql(&q, "SELECT f.result_type, ");
        qb_sum_of(&q, "f.failed_session_count");
        qb_base(&q, f, true);
    }
    qb_sql(&q, " GROUP BY result_type");
    struct total_failures_ctx c = {fn, cls};
    tr_err rc = qb_run(st, &q, total_failure_row, &c, err);
    qb_free(&q);
    return rc;
}

/* The totals of f (fn: their failures, may be NULL); s the rollups when they
 * were summed in memory (NULL: by SQL). */
static tr_err totals_of(struct store *st, const struct store_filter *f, const struct summed *s,
                        struct store_totals *t, store_failure_fn fn, void *cls, char *err)
{
    bool ever = all_time(f) && f->nreporters == 0;
    tr_err rc = TR_OK;
    if (s != NULL)
        summed_totals(s, t);
    else
        rc = totals_sql(st, f, ever, t, err);
    if (rc != TR_OK || fn == NULL)
        return rc;
    if (s != NULL && s->total_failures != NULL)
        return summed_failures(s->total_failures, NULL, fn, cls, err);
    return total_failures_sql(st, f, ever, fn, cls, err);
}

/* What sum_rollups must sum for the totals of f (fn: their failures wanted);
 * 0 when SQL answers them better (all time: the all-time tables). */
static unsigned totals_in_memory(const struct store *st, const struct store_filter *f,
                                 bool failures)
{
    if (!sum_in_memory(st) || (all_time(f) && f->nreporters == 0))
        return 0;
    return SUM_TOTALS | (failures && f->nreporters == 0 ? SUM_TOTAL_FAILURES : 0);
}

tr_err store_summary_totals(struct store *st, const struct store_filter *in, struct store_totals *t,
                            store_failure_fn fn, void *cls, char *err)
{
    struct store_filter tmp;
    const struct store_filter *f = effective(in, &tmp);
    memset(t, 0, sizeof *t);
    unsigned want = totals_in_memory(st, f, fn != NULL);
    if (want == 0)
        return totals_of(st, f, NULL, t, fn, cls, err);
    struct summed s;
    tr_err rc = sum_rollups(st, f, STORE_BY_DOMAIN, want, &s, err);
    if (rc == TR_OK)
        rc = totals_of(st, f, &s, t, fn, cls, err);
    summed_free(&s);
    return rc;
}

struct page_keys { /* the keys of a page of groups, for its failures */
    store_group_fn fn;
    void *cls;
    char **keys;
    size_t n, cap;
    bool oom;
};

static int keep_page_key(void *cls, const struct store_group *g)
{
    struct page_keys *k = cls;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        char **v = realloc(k->keys, cap * sizeof *v);
        if (v == NULL) {
            k->oom = true;
            return 1;
        }
        k->keys = v;
        k->cap = cap;
    }
    if ((k->keys[k->n] = strdup(g->key)) == NULL) {
        k->oom = true;
        return 1;
    }
    k->n++;
    return k->fn(k->cls, g);
}

tr_err store_summary(struct store *st, const struct store_filter *in, enum store_dim dim,
                     const struct store_page *page, const struct store_summary_fns *fns,
                     size_t *ngroups, struct store_totals *t, char *err)
{
    struct store_filter tmp;
    const struct store_filter *f = effective(in, &tmp);
    memset(t, 0, sizeof *t);
    if ((unsigned)dim >= STORE_NDIMS)
        return tr_fail(err, TR_EUSAGE, "no such summary dimension");
    bool paged = page && page->limit;
    tr_err rc;
    if (sum_in_memory(st) && !groups_from_totals(f, dim) && groups_from_rollups(f, dim) &&
        failures_from_rollups(f, dim)) {
        unsigned want = SUM_GROUPS | (fns->failure ? SUM_FAILURES : 0) |
                        totals_in_memory(st, f, fns->total_failure != NULL);
        struct summed s;
        struct agg *only = NULL;
        rc = sum_rollups(st, f, dim, want, &s, err);
        if (rc == TR_OK && paged && (only = agg_new()) == NULL)
            rc = sum_failed(err);
        if (rc == TR_OK)
            rc = summed_groups(&s, page, fns->group, fns->cls, ngroups, only, err);
        if (rc == TR_OK && fns->failure)
            rc = summed_failures(s.failures, only, fns->failure, fns->cls, err);
        if (rc == TR_OK)
            rc = totals_of(st, f, want & SUM_TOTALS ? &s : NULL, t, fns->total_failure,
                           fns->total_cls, err);
        agg_free(only);
        summed_free(&s);
        return rc;
    }
    struct page_keys k = {fns->group, fns->cls, NULL, 0, 0, false};
    rc = store_summary_groups(st, in, dim, page, keep_page_key, &k, ngroups, err);
    if (rc == TR_OK && k.oom)
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    if (rc == TR_OK && fns->failure)
        rc = store_summary_failures(st, in, dim, paged ? (const char *const *)k.keys : NULL, k.n,
                                    fns->failure, fns->cls, err);
    if (rc == TR_OK)
        rc = store_summary_totals(st, in, t, fns->total_failure, fns->total_cls, err);
    for (size_t i = 0; i < k.n; i++)
        free(k.keys[i]);
    free(k.keys);
    return rc;
}

/* ---- reports -------------------------------------------------------------------------------- */

/* the source columns, in the order of struct store_source, then the DKIM verdict */
#define SOURCE_COLS                                                                                \
    "r.source_kind, r.source_name, r.source_client, r.source_message_id, "                         \
    "r.source_report_domain, r.source_submitter, r.source_subject, r.dkim_result, "                \
    "r.dkim_domain, r.dkim_reason, r.dkim_aligned"

static void read_source(struct sql_row *row, int col, struct store_source *src)
{
    src->kind = sql_col_text(row, col);
    src->name = sql_col_text(row, col + 1);
    src->client = sql_col_text(row, col + 2);
    src->message_id = sql_col_text(row, col + 3);
    src->report_domain = sql_col_text(row, col + 4);
    src->report_submitter = sql_col_text(row, col + 5);
    src->subject = sql_col_text(row, col + 6);
    src->dkim_result = sql_col_text(row, col + 7);
    src->dkim_domain = sql_col_text(row, col + 8);
    src->dkim_reason = sql_col_text(row, col + 9);
    src->dkim_aligned = !sql_null(row, col + 10) && sql_col_int(row, col + 10) != 0;
}

static int64_t int_or_zero(struct sql_row *row, int col)
{
    return sql_null(row, col) ? 0 : sql_col_int(row, col);
}

/* the columns every report row starts with (0..10), then the source (11..21) */
#define REPORT_COLS                                                                                \
    "r.id, r.organization_name, r.report_id, r.start_datetime, r.end_datetime, "                   \
    "r.contact_info, r.start_time, r.end_time, r.received_at, r.warning_count, "                   \
    "r.note_count, " SOURCE_COLS

static void read_report(struct sql_row *row, struct store_report_row *r)
{
    memset(r, 0, sizeof *r);
    r->id = sql_col_int(row, 0);
    r->organization_name = sql_col_text(row, 1);
    r->report_id = sql_col_text(row, 2);
    r->start_datetime = sql_col_text(row, 3);
    r->end_datetime = sql_col_text(row, 4);
    r->contact_info = sql_col_text(row, 5);
    r->start_time = sql_col_int(row, 6);
    r->end_time = sql_col_int(row, 7);
    r->received_at = sql_col_int(row, 8);
    r->warnings = sql_col_int(row, 9);
    r->notes = sql_col_int(row, 10);
    read_source(row, 11, &r->src);
    r->src.received_at = r->received_at;
}

struct reports_ctx {
    store_report_fn fn;
    void *cls;
    bool full; /* raw, diagnostics (22..27) or listing sums (22..24) and hidden policies (25) */
    const struct store_scope *scope; /* a tenant's view (NULL: everything) */
};

/* A report some of whose policies the scope hides: the source may name
 * other domains (Subject, TLS-Report-Domain, the request path), so only its
 * kind and time are shown. */
static void redact_source(struct store_source *src)
{
    const char *kind = src->kind;
    int64_t at = src->received_at;
    memset(src, 0, sizeof *src);
    src->kind = kind;
    src->received_at = at;
}

static int report_row(void *cls, struct sql_row *row)
{
    struct reports_ctx *c = cls;
    struct store_report_row r;
    read_report(row, &r);
    if (!c->full) {
        r.successful = int_or_zero(row, 22);
        r.failed = int_or_zero(row, 23);
        r.policy_domains = sql_col_text(row, 24);
        if (c->scope && int_or_zero(row, 25) > 0)
            redact_source(&r.src);
        return c->fn(c->cls, &r);
    }
    r.diagnostics = sql_col_text(row, 22);
    r.raw_encoding = sql_col_text(row, 23);
    r.raw = sql_col_blob(row, 24, &r.rawlen);
    r.raw_size = sql_col_int(row, 25);
    r.successful = int_or_zero(row, 26);
    r.failed = int_or_zero(row, 27);
    if (c->scope == NULL)
        return c->fn(c->cls, &r);
    /* a tenant's view: the raw JSON and the diagnostics without the hidden policies */
    struct store_redacted red;
    char err[TR_ERRLEN];
    char *diags = NULL;
    tr_err rc = store_redact_report(r.raw_encoding, r.raw, r.rawlen, r.src.report_domain,
                                    scope_keep, (void *)c->scope, &red, err);
    if (rc != TR_OK || red.ndropped) {
        diags = store_redact_diagnostics(r.diagnostics, &red, true, NULL, NULL);
        r.diagnostics = diags ? diags : "[]";
        redact_source(&r.src);
        r.raw_encoding = "identity";
        r.raw = rc == TR_OK ? red.json.data : NULL; /* not readable: not shown */
        r.rawlen = rc == TR_OK ? red.json.len : 0;
        r.raw_size = (int64_t)r.rawlen;
    }
    int stop = c->fn(c->cls, &r);
    free(diags);
    store_redacted_free(&red);
    return stop;
}

/* The sums of the report's policies (those scope shows) and, for listings,
 * their domains as a JSON array and the number of policies it hides. */
static void qb_report_sums(struct qb *q, const struct store_scope *scope, bool listing)
{
    static const char *const sums[] = {"successful_sessions", "failed_sessions"};
    for (size_t i = 0; i < 2; i++) {
        qb_sql(q, ", (SELECT ");
        qb_sum_of(q, sums[i]);
        qb_sql(q, " FROM policies WHERE report = r.id");
        qb_visible(q, "COALESCE(policy_domain, '')", scope);
        qb_sql(q, ")");
    }
    if (!listing)
        return;
    if (q->dialect == STORE_DIALECT_SQLITE) {
        qb_sql(q, ", (SELECT json_group_array(policy_domain) FROM (SELECT policy_domain FROM "
                  "policies WHERE report = r.id");
        qb_visible(q, "COALESCE(policy_domain, '')", scope);
        qb_sql(q, " ORDER BY idx))");
    } else {
        qb_sql(q, ", (SELECT COALESCE(json_agg(policy_domain ORDER BY idx), '[]')::text FROM "
                  "policies WHERE report = r.id");
        qb_visible(q, "COALESCE(policy_domain, '')", scope);
        qb_sql(q, ")");
    }
    if (scope == NULL) {
        qb_sql(q, ", 0");
        return;
    }
    qb_sql(q, ", (SELECT COUNT(*) FROM policies WHERE report = r.id AND NOT (1 = 1");
    qb_visible(q, "COALESCE(policy_domain, '')", scope);
    qb_sql(q, "))");
}

static void qb_reports_where(struct qb *q, const struct store_filter *f)
{
    qb_sql(q, " FROM reports r WHERE 1 = 1");
    qb_window(q, "r.start_time", f->since, f->until);
    qb_in(q, "r.organization_name", f->reporters, f->nreporters);
    if (ndoms(f)) {
        qb_sql(q, " AND EXISTS (SELECT 1 FROM policies p WHERE p.report = r.id");
        qb_domains(q, "COALESCE(p.policy_domain, '')", f);
        qb_sql(q, ")");
    }
}

tr_err store_list_reports(struct store *st, const struct store_filter *in, size_t limit,
                          size_t offset, store_report_fn fn, void *cls, int64_t *total, char *err)
{
    struct store_filter tmp;
    const struct store_filter *f = effective(in, &tmp);
    const struct store_scope *scope = in->scope ? scope_or_null(in->scope) : NULL;
    struct qb q;
    qb_init(&q, st);
    qb_sql(&q, "SELECT " REPORT_COLS);
    qb_report_sums(&q, scope, true);
    qb_reports_where(&q, f);
    qb_sql(&q, " ORDER BY r.start_time, r.id");
    if (limit) {
        qb_sql(&q, " LIMIT ");
        qb_arg(&q, sql_int((int64_t)limit));
        qb_sql(&q, " OFFSET ");
        qb_arg(&q, sql_int((int64_t)offset));
    }
    struct reports_ctx c = {fn, cls, false, scope};
    tr_err rc = qb_run(st, &q, report_row, &c, err);
    qb_free(&q);
    if (rc != TR_OK || total == NULL)
        return rc;
    qb_init(&q, st);
    qb_sql(&q, "SELECT COUNT(*)");
    qb_reports_where(&q, f);
    rc = qb_run(st, &q, sql_take_int, total, err);
    qb_free(&q);
    return rc;
}

struct count_ctx {
    struct reports_ctx inner;
    size_t n;
};

static int counted_report_row(void *cls, struct sql_row *row)
{
    struct count_ctx *c = cls;
    c->n++;
    return report_row(&c->inner, row);
}

#define FULL_REPORT_COLS "SELECT " REPORT_COLS ", r.diagnostics, r.raw_encoding, r.raw, r.raw_size"

tr_err store_get_reports(struct store *st, int64_t id, const char *report_id, store_report_fn fn,
                         void *cls, size_t *nfound, char *err)
{
    return store_get_reports_scoped(st, NULL, id, report_id, fn, cls, nfound, err);
}

tr_err store_get_reports_scoped(struct store *st, const struct store_scope *scope, int64_t id,
                                const char *report_id, store_report_fn fn, void *cls,
                                size_t *nfound, char *err)
{
    scope = scope_or_null(scope);
    struct qb q;
    qb_init(&q, st);
    qb_sql(&q, FULL_REPORT_COLS);
    qb_report_sums(&q, scope, false);
    qb_sql(&q, " FROM reports r WHERE ");
    if (report_id) {
        qb_sql(&q, "r.report_id = ");
        qb_arg(&q, sql_text(report_id));
    } else {
        qb_sql(&q, "r.id = ");
        qb_arg(&q, sql_int(id));
    }
    if (scope) {
        qb_sql(&q, " AND EXISTS (SELECT 1 FROM policies p WHERE p.report = r.id");
        qb_visible(&q, "COALESCE(p.policy_domain, '')", scope);
        qb_sql(&q, ")");
    }
    qb_sql(&q, " ORDER BY r.id");
    struct count_ctx c = {{fn, cls, true, scope}, 0};
    tr_err rc = qb_run(st, &q, counted_report_row, &c, err);
    qb_free(&q);
    *nfound = c.n;
    return rc;
}

tr_err store_scan_reports(struct store *st, int64_t after, size_t limit, store_report_fn fn,
                          void *cls, char *err)
{
    static const char sql[] = FULL_REPORT_COLS ", NULL, NULL FROM reports r WHERE r.id > ?1 "
                                               "ORDER BY r.id LIMIT ?2";
    struct sql_arg a[] = {sql_int(after), sql_int((int64_t)limit)};
    struct reports_ctx c = {fn, cls, true, NULL};
    return store_exec(st, STMT_SCAN_REPORTS, sql, a, 2, report_row, &c, NULL, err);
}

struct details_ctx {
    store_policy_fn pfn;
    store_failure_row_fn ffn;
    void *cls;
};

static int policy_row(void *cls, struct sql_row *row)
{
    struct details_ctx *c = cls;
    struct store_policy_row p = {
        sql_col_int(row, 0),  (size_t)sql_col_int(row, 1), sql_col_text(row, 2),
        sql_col_text(row, 3), sql_col_text(row, 4),        sql_col_text(row, 5),
        sql_col_int(row, 6),  sql_col_int(row, 7),
    };
    return c->pfn ? c->pfn(c->cls, &p) : 0;
}

static int detail_row(void *cls, struct sql_row *row)
{
    struct details_ctx *c = cls;
    struct store_failure_row f = {
        (size_t)sql_col_int(row, 0), sql_col_text(row, 1), sql_col_text(row, 2),
        sql_col_text(row, 3),        sql_col_text(row, 4), sql_col_text(row, 5),
        sql_col_text(row, 6),        sql_col_text(row, 7), sql_col_int(row, 8),
    };
    return c->ffn ? c->ffn(c->cls, &f) : 0;
}

tr_err store_report_details(struct store *st, int64_t report, store_policy_fn pfn,
                            store_failure_row_fn ffn, void *cls, char *err)
{
    return store_report_details_scoped(st, NULL, report, pfn, ffn, cls, err);
}

tr_err store_report_details_scoped(struct store *st, const struct store_scope *scope,
                                   int64_t report, store_policy_fn pfn, store_failure_row_fn ffn,
                                   void *cls, char *err)
{
    static const char sql_p[] =
        "SELECT report, idx, policy_type, policy_domain, policy_strings, mx_hosts, "
        "successful_sessions, failed_sessions FROM policies WHERE report = ?1 ORDER BY idx";
    static const char sql_f[] =
        "SELECT p.idx, f.result_type, f.sending_mta_ip, f.receiving_mx_hostname, "
        "f.receiving_mx_helo, f.receiving_ip, f.additional_information, f.failure_reason_code, "
        "f.failed_session_count FROM failure_details f JOIN policies p ON p.id = f.policy "
        "WHERE p.report = ?1 ORDER BY p.idx, f.id";
    struct sql_arg a[] = {sql_int(report)};
    struct details_ctx c = {pfn, ffn, cls};
    if ((scope = scope_or_null(scope)) == NULL) {
        tr_err rc = store_exec(st, STMT_REPORT_POLICIES, sql_p, a, 1, policy_row, &c, NULL, err);
        if (rc == TR_OK && ffn)
            rc = store_exec(st, STMT_REPORT_FAILURES, sql_f, a, 1, detail_row, &c, NULL, err);
        return rc;
    }
    struct qb q;
    qb_init(&q, st);
    qb_sql(&q, "SELECT report, idx, policy_type, policy_domain, policy_strings, mx_hosts, "
               "successful_sessions, failed_sessions FROM policies WHERE report = ");
    qb_arg(&q, sql_int(report));
    qb_visible(&q, "COALESCE(policy_domain, '')", scope);
    qb_sql(&q, " ORDER BY idx");
    tr_err rc = qb_run(st, &q, policy_row, &c, err);
    qb_free(&q);
    if (rc != TR_OK || ffn == NULL)
        return rc;
    qb_init(&q, st);
    qb_sql(&q, "SELECT p.idx, f.result_type, f.sending_mta_ip, f.receiving_mx_hostname, "
               "f.receiving_mx_helo, f.receiving_ip, f.additional_information, "
               "f.failure_reason_code, f.failed_session_count FROM failure_details f JOIN "
               "policies p ON p.id = f.policy WHERE p.report = ");
    qb_arg(&q, sql_int(report));
    qb_visible(&q, "COALESCE(p.policy_domain, '')", scope);
    qb_sql(&q, " ORDER BY p.idx, f.id");
    rc = qb_run(st, &q, detail_row, &c, err);
    qb_free(&q);
    return rc;
}

struct seen_ctx {
    store_seen_policy_fn fn;
    void *cls;
};

static int seen_row(void *cls, struct sql_row *row)
{
    struct seen_ctx *c = cls;
    struct store_seen_policy p = {sql_col_text(row, 0), sql_col_text(row, 1), sql_col_text(row, 2),
                                  sql_col_text(row, 3), sql_col_int(row, 4),  sql_col_int(row, 5),
                                  sql_col_int(row, 6)};
    return c->fn(c->cls, &p);
}

tr_err store_seen_policies(struct store *st, const struct store_filter *in, store_seen_policy_fn fn,
                           void *cls, char *err)
{
    struct store_filter tmp;
    const struct store_filter *f = effective(in, &tmp);
    struct qb q;
    qb_init(&q, st);
    qb_sql(&q, "SELECT COALESCE(p.policy_domain, ''), p.policy_type, p.policy_strings, "
               "p.mx_hosts, COUNT(*), MIN(r.start_time), MAX(r.start_time)");
    qb_base(&q, f, false);
    qb_sql(&q, " GROUP BY 1, 2, 3, 4 ORDER BY ");
    /* the expression, not "1": PostgreSQL takes "1 COLLATE ..." for a constant */
    qb_order_text(&q, "COALESCE(p.policy_domain, '')");
    qb_sql(&q, ", 7 DESC");
    struct seen_ctx c = {fn, cls};
    tr_err rc = qb_run(st, &q, seen_row, &c, err);
    qb_free(&q);
    return rc;
}

/* ---- the quarantine ------------------------------------------------------------------------- */

#define QUARANTINE_COLS                                                                            \
    "q.id, q.received_at, q.reason, q.source_kind, q.source_name, q.source_client, "               \
    "q.source_message_id, q.source_report_domain, q.source_submitter, q.source_subject, "          \
    "q.raw_size, q.raw_kept"

struct quarantine_ctx {
    store_quarantine_fn fn;
    void *cls;
    bool with_raw;
    bool found;
};

static int quarantine_row(void *cls, struct sql_row *row)
{
    struct quarantine_ctx *c = cls;
    struct store_quarantine_row q = {0};
    q.id = sql_col_int(row, 0);
    q.received_at = sql_col_int(row, 1);
    q.reason = sql_col_text(row, 2);
    q.src.kind = sql_col_text(row, 3);
    q.src.name = sql_col_text(row, 4);
    q.src.client = sql_col_text(row, 5);
    q.src.message_id = sql_col_text(row, 6);
    q.src.report_domain = sql_col_text(row, 7);
    q.src.report_submitter = sql_col_text(row, 8);
    q.src.subject = sql_col_text(row, 9);
    q.src.received_at = q.received_at;
    q.raw_size = sql_col_int(row, 10);
    q.raw_kept = sql_col_int(row, 11) != 0;
    if (c->with_raw)
        q.raw = sql_col_blob(row, 12, &q.rawlen);
    c->found = true;
    return c->fn(c->cls, &q);
}

static void qb_quarantine_where(struct qb *q, int64_t since, int64_t until)
{
    qb_sql(q, " FROM quarantine q WHERE 1 = 1");
    qb_window(q, "q.received_at", since, until);
}

tr_err store_list_quarantine(struct store *st, int64_t since, int64_t until, size_t limit,
                             size_t offset, store_quarantine_fn fn, void *cls, int64_t *total,
                             char *err)
{
    struct qb q;
    qb_init(&q, st);
    qb_sql(&q, "SELECT " QUARANTINE_COLS);
    qb_quarantine_where(&q, since, until);
    qb_sql(&q, " ORDER BY q.id DESC");
    if (limit) {
        qb_sql(&q, " LIMIT ");
        qb_arg(&q, sql_int((int64_t)limit));
        qb_sql(&q, " OFFSET ");
        qb_arg(&q, sql_int((int64_t)offset));
    }
    struct quarantine_ctx c = {fn, cls, false, false};
    tr_err rc = qb_run(st, &q, quarantine_row, &c, err);
    qb_free(&q);
    if (rc != TR_OK || total == NULL)
        return rc;
    qb_init(&q, st);
    qb_sql(&q, "SELECT COUNT(*)");
    qb_quarantine_where(&q, since, until);
    rc = qb_run(st, &q, sql_take_int, total, err);
    qb_free(&q);
    return rc;
}

tr_err store_scan_quarantine(struct store *st, int64_t after, size_t limit, store_quarantine_fn fn,
                             void *cls, char *err)
{
    static const char sql[] = "SELECT " QUARANTINE_COLS ", q.raw FROM quarantine q WHERE q.id > ?1 "
                              "ORDER BY q.id LIMIT ?2";
    struct sql_arg a[] = {sql_int(after), sql_int((int64_t)limit)};
    struct quarantine_ctx c = {fn, cls, true, false};
    return store_exec(st, STMT_SCAN_QUARANTINE, sql, a, 2, quarantine_row, &c, NULL, err);
}

tr_err store_get_quarantine(struct store *st, int64_t id, store_quarantine_fn fn, void *cls,
                            bool *found, char *err)
{
    static const char sql[] = "SELECT " QUARANTINE_COLS ", q.raw FROM quarantine q WHERE q.id = ?1";
    struct sql_arg a[] = {sql_int(id)};
    struct quarantine_ctx c = {fn, cls, true, false};
    tr_err rc = store_exec(st, STMT_GET_QUARANTINE, sql, a, 1, quarantine_row, &c, NULL, err);
    *found = c.found;
    return rc;
}

tr_err store_delete_quarantine(struct store *st, int64_t id, char *err)
{
    struct sql_arg a[] = {sql_int(id)};
    struct sql_pair c = {0, 0}; /* id, bytes */
    tr_err rc = store_exec(st, STMT_NONE,
                           "DELETE FROM quarantine WHERE id = ?1 RETURNING id, "
                           "COALESCE(raw_size * raw_kept, 0)",
                           a, 1, sql_take_pair, &c, NULL, err);
    if (rc != TR_OK || c.a == 0)
        return rc;
    if ((rc = store_counter_add(st, "quarantine_rows", -1, NULL, err)) != TR_OK)
        return rc;
    return store_counter_add(st, "quarantine_bytes", -c.b, NULL, err);
}

/* ---- counters for /metrics ------------------------------------------------------------------ */

struct counts_ctx {
    store_count_fn fn;
    void *cls;
    int ntext;
};

static int count_row(void *cls, struct sql_row *row)
{
    struct counts_ctx *c = cls;
    struct store_count_row r = {0};
    r.a = sql_col_text(row, 0);
    int col = 1;
    if (c->ntext > 1)
        r.b = sql_col_text(row, col++);
    r.n1 = sql_col_int(row, col);
    if (c->ntext == 1) {
        r.n2 = sql_col_int(row, 2);
        r.n3 = sql_col_int(row, 3);
    }
    return c->fn(c->cls, &r);
}

tr_err store_counts(struct store *st, enum store_counts which, store_count_fn fn, void *cls,
                    char *err)
{
    static const struct {
        unsigned key;
        int ntext;
        const char *sql;
    } q[] = {
        [STORE_COUNT_DOMAINS] = {STMT_COUNT_DOMAINS, 1,
                                 "SELECT policy_domain, successful, failed, reports FROM "
                                 "domain_totals ORDER BY policy_domain"},
        [STORE_COUNT_DOMAIN_FAILURES] = {STMT_COUNT_DOMAIN_FAILURES, 2,
                                         "SELECT policy_domain, result_type, failed FROM "
                                         "domain_failures ORDER BY policy_domain, result_type"},
        [STORE_COUNT_DOMAIN_REPORTERS] = {STMT_COUNT_DOMAIN_REPORTERS, 2,
                                          "SELECT policy_domain, reporter, last_start FROM "
                                          "domain_reporters ORDER BY policy_domain, reporter"},
        [STORE_COUNT_OUTCOMES] = {STMT_COUNT_OUTCOMES, 2,
                                  "SELECT source, outcome, count FROM outcome_counts ORDER BY "
                                  "source, outcome"},
    };
    if ((unsigned)which > STORE_COUNT_OUTCOMES)
        return tr_fail(err, TR_EUSAGE, "no such counters");
    struct counts_ctx c = {fn, cls, q[which].ntext};
    return store_exec(st, q[which].key, q[which].sql, NULL, 0, count_row, &c, NULL, err);
}

tr_err store_counts_scoped(struct store *st, const struct store_scope *scope,
                           enum store_counts which, store_count_fn fn, void *cls, char *err)
{
    if ((scope = scope_or_null(scope)) == NULL)
        return store_counts(st, which, fn, cls, err);
    static const struct {
        int ntext;
        const char *select, *order;
    } q[] = {
        [STORE_COUNT_DOMAINS] = {1,
                                 "SELECT policy_domain, successful, failed, reports FROM "
                                 "domain_totals WHERE 1 = 1",
                                 " ORDER BY policy_domain"},
        [STORE_COUNT_DOMAIN_FAILURES] = {2,
                                         "SELECT policy_domain, result_type, failed FROM "
                                         "domain_failures WHERE 1 = 1",
                                         " ORDER BY policy_domain, result_type"},
        [STORE_COUNT_DOMAIN_REPORTERS] = {2,
                                          "SELECT policy_domain, reporter, last_start FROM "
                                          "domain_reporters WHERE 1 = 1",
                                          " ORDER BY policy_domain, reporter"},
    };
    if ((unsigned)which > STORE_COUNT_OUTCOMES)
        return tr_fail(err, TR_EUSAGE, "no such counters");
    if (which == STORE_COUNT_OUTCOMES)
        return TR_OK; /* the whole collector's, not a domain's */
    struct qb b;
    qb_init(&b, st);
    qb_sql(&b, q[which].select);
    qb_visible(&b, "policy_domain", scope);
    qb_sql(&b, q[which].order);
    struct counts_ctx c = {fn, cls, q[which].ntext};
    tr_err rc = qb_run(st, &b, count_row, &c, err);
    qb_free(&b);
    return rc;
}
