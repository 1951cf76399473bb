/* store_findings.c: the rows behind the findings (findings.h): per domain and
 * day, per reporter and day, result types and MX hosts over time, the
 * reporters that found no policy, and the reports that show each finding.
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

struct ids_ctx {
    int64_t *ids;
    size_t n, max;
};

static int take_id(void *cls, struct sql_row *row)
{
    struct ids_ctx *c = cls;
    if (c->n < c->max)
        c->ids[c->n++] = sql_col_int(row, 0);
    return c->n == c->max;
}

tr_err store_evidence(struct store *st, const char *domain, const char *result_type,
                      const char *policy_type, const char *mx_host, int64_t since, int64_t until,
                      int64_t *ids, size_t max, size_t *n, char *err)
{
    /* from the domain's policies (index policies_domain) to their reports:
     * a finding's evidence costs what its domain holds, not the window */
    char sql[1024] = "SELECT r.id FROM reports r WHERE r.id IN (SELECT p.report FROM policies p";
    struct sql_arg args[6] = {sql_int(since), sql_int(until)};
    size_t nargs = 2, len = strlen(sql);
    if (result_type)
        len += (size_t)snprintf(sql + len, sizeof sql - len,
                                " JOIN failure_details f ON f.policy = p.id");
    if (domain && domain[0]) {
        args[nargs++] = sql_text(domain);
        len +=
            (size_t)snprintf(sql + len, sizeof sql - len, " WHERE p.policy_domain = ?%zu", nargs);
    } else {
        len += (size_t)snprintf(sql + len, sizeof sql - len,
                                " WHERE (p.policy_domain IS NULL OR p.policy_domain = '')");
    }
    if (result_type) {
        args[nargs++] = sql_text(result_type);
        len += (size_t)snprintf(sql + len, sizeof sql - len, " AND f.result_type = ?%zu", nargs);
    }
    if (mx_host && result_type) {
        args[nargs++] = sql_text(mx_host);
        len += (size_t)snprintf(sql + len, sizeof sql - len,
                                " AND COALESCE(f.receiving_mx_hostname, '') = ?%zu", nargs);
    }
    if (policy_type) {
        args[nargs++] = sql_text(policy_type);
        len += (size_t)snprintf(sql + len, sizeof sql - len, " AND p.policy_type = ?%zu", nargs);
    }
    snprintf(sql + len, sizeof sql - len,
             ") AND r.start_time >= ?1 AND r.start_time < ?2 ORDER BY r.start_time DESC, "
             "r.id DESC");
    struct ids_ctx c = {ids, 0, max};
    tr_err rc = store_exec(st, STMT_NONE, sql, args, nargs, take_id, &c, NULL, err);
    *n = c.n;
    return rc;
}
