/* store_findings.c: the rows behind the findings (findings.h): per domain and
 * day, per reporter and day, result types and MX hosts over time, the
 * reporters that found no policy, and the policies and failure details of a
 * window, newest report first, in which the findings find their evidence.
 * Part of the storage port; the SQL is shared by both backends. */
#include <stdio.h>
#include <string.h>
#include "store_backend.h"
#include "tlsrptd/store.h"

#define DAY_OF(c) c " - ((" c " % 86400) + 86400) % 86400"

/* " AND col >= ?N AND col < ?N+1" and the domain filter, with args appended. */
static size_t window(char *sql, size_t n, const char *time_col, const char *domain_col,
                     const struct store_filter *f, struct sql_arg *args, size_t nargs)
{
    size_t len = strlen(sql);
    if (f->since != INT64_MIN) {
        args[nargs++] = sql_int(f->since);
        len += (size_t)snprintf(sql + len, n - len, " AND %s >= ?%zu", time_col, nargs);
    }
    if (f->until != INT64_MAX) {
        args[nargs++] = sql_int(f->until);
        len += (size_t)snprintf(sql + len, n - len, " AND %s < ?%zu", time_col, nargs);
    }
    if (f->ndomains) {
        len += (size_t)snprintf(sql + len, n - len, " AND %s IN (", domain_col);
        for (size_t i = 0; i < f->ndomains; i++) {
            args[nargs++] = sql_text(f->domains[i]);
            len += (size_t)snprintf(sql + len, n - len, "%s?%zu", i ? ", " : "", nargs);
        }
        snprintf(sql + len, n - len, ")");
    }
    return nargs;
}

struct rows_ctx {
    store_finding_fn fn;
    void *cls;
    const struct store_scope *scope; /* rows of domains it does not show are skipped */
};

static int finding_row(void *cls, struct sql_row *row)
{
    struct rows_ctx *c = cls;
    struct store_finding_row r = {
        sql_col_text(row, 0),
        sql_col_text(row, 1),
        sql_col_text(row, 2),
        sql_null(row, 3) ? 0 : sql_col_int(row, 3),
        sql_null(row, 4) ? 0 : sql_col_int(row, 4),
        sql_null(row, 5) ? 0 : sql_col_int(row, 5),
        sql_null(row, 6) ? 0 : sql_col_int(row, 6),
    };
    if (r.domain == NULL)
        r.domain = "";
    if (!store_scope_shows(c->scope, r.domain))
        return 0;
    return c->fn(c->cls, &r);
}

tr_err store_findings_rows(struct store *st, enum store_finding_query which,
                           const struct store_filter *f, store_finding_fn fn, void *cls, char *err)
{
    /* each query's columns: domain, name, type, first, last, n1, n2 */
    static const struct {
        const char *head, *time_col, *domain_col, *tail;
    } q[] = {
        [STORE_FQ_DOMAIN_DAYS] =
            {"SELECT policy_domain, NULL, NULL, " DAY_OF(
                 "start_time") ", "
                               "MAX(start_time), SUM(successful), SUM(failed) FROM "
                               "rollup_sessions WHERE 1 = 1",
             "start_time", "policy_domain", " GROUP BY 1, 4"},
        [STORE_FQ_REPORTER_DAYS] =
            {"SELECT policy_domain, reporter, NULL, " DAY_OF(
                 "start_time") ", MAX(start_time), SUM(reports), "
                               "SUM(failed) FROM rollup_sessions WHERE 1 = 1",
             "start_time", "policy_domain", " GROUP BY 1, 2, 4"},
        [STORE_FQ_TYPE_SPANS] = {"SELECT policy_domain, NULL, result_type, MIN(start_time), "
                                 "MAX(start_time), SUM(failed), COUNT(*) FROM rollup_failures "
                                 "WHERE 1 = 1",
                                 "start_time", "policy_domain", " GROUP BY 1, 3"},
        [STORE_FQ_MX_FAILURES] = {"SELECT COALESCE(p.policy_domain, ''), "
                                  "COALESCE(f.receiving_mx_hostname, ''), f.result_type, "
                                  "MIN(r.start_time), MAX(r.start_time), "
                                  "SUM(f.failed_session_count), COUNT(DISTINCT r.id) FROM reports "
                                  "r JOIN policies p ON p.report = r.id JOIN failure_details f ON "
                                  "f.policy = p.id WHERE f.result_type IN "
                                  "('certificate-expired', 'certificate-host-mismatch', "
                                  "'certificate-not-trusted', 'starttls-not-supported')",
                                  "r.start_time", "COALESCE(p.policy_domain, '')",
                                  " GROUP BY 1, 2, 3"},
        [STORE_FQ_POLICY_REPORTERS] =
            {"SELECT COALESCE(p.policy_domain, ''), r.organization_name, NULL, "
             "MAX(CASE WHEN p.policy_type = 'no-policy-found' THEN r.start_time END), "
             "MAX(CASE WHEN p.policy_type <> 'no-policy-found' THEN r.start_time END), "
             "SUM(CASE WHEN p.policy_type = 'no-policy-found' THEN p.successful_sessions + "
             "p.failed_sessions ELSE 0 END), COUNT(*) FROM reports r JOIN policies p ON "
             "p.report = r.id WHERE 1 = 1",
             "r.start_time", "COALESCE(p.policy_domain, '')", " GROUP BY 1, 2"},
    };
    if ((unsigned)which > STORE_FQ_POLICY_REPORTERS)
        return tr_fail(err, TR_EUSAGE, "no such findings query");
    char sql[4096 + STORE_MAX_FILTER * 8];
    struct sql_arg args[STORE_MAX_FILTER + 2];
    snprintf(sql, sizeof sql, "%s", q[which].head);
    size_t nargs = window(sql, sizeof sql, q[which].time_col, q[which].domain_col, f, args, 0);
    size_t len = strlen(sql);
    snprintf(sql + len, sizeof sql - len, "%s", q[which].tail);
    struct rows_ctx c = {fn, cls, f->scope};
    return store_exec(st, STMT_NONE, sql, args, nargs, finding_row, &c, NULL, err);
}

struct evidence_ctx {
    store_evidence_fn fn;
    void *cls;
};

static int evidence_row(void *cls, struct sql_row *row)
{
    struct evidence_ctx *c = cls;
    struct store_evidence_row r = {sql_col_int(row, 0), sql_col_text(row, 1), sql_col_text(row, 2),
                                   sql_col_text(row, 3), sql_col_text(row, 4)};
    return c->fn(c->cls, &r);
}

tr_err store_evidence_scan(struct store *st, const struct store_filter *f, bool with_failures,
                           store_evidence_fn fn, void *cls, char *err)
{
    /* newest first along reports_start (start time, then id): no sort */
    char sql[1024 + STORE_MAX_FILTER * 8];
    snprintf(sql, sizeof sql, "%s",
             with_failures ? "SELECT r.id, COALESCE(p.policy_domain, ''), p.policy_type, "
                             "f.result_type, COALESCE(f.receiving_mx_hostname, '') FROM reports "
                             "r JOIN policies p ON p.report = r.id JOIN failure_details f ON "
                             "f.policy = p.id WHERE 1 = 1"
                           : "SELECT r.id, COALESCE(p.policy_domain, ''), p.policy_type, NULL, "
                             "NULL FROM reports r JOIN policies p ON p.report = r.id WHERE 1 = 1");
    struct sql_arg args[STORE_MAX_FILTER + 2];
    size_t nargs =
        window(sql, sizeof sql, "r.start_time", "COALESCE(p.policy_domain, '')", f, args, 0);
    size_t len = strlen(sql);
    snprintf(sql + len, sizeof sql - len, " ORDER BY r.start_time DESC, r.id DESC");
    struct evidence_ctx c = {fn, cls};
    return store_exec(st, STMT_NONE, sql, args, nargs, evidence_row, &c, NULL, err);
}
