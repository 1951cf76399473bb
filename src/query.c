/* query.c: failure summaries from the database (DESIGN.md §6), as JSON and as
 * a table for people. Counts come from the policies table (summary totals as
 * the senders reported them); failures per result type from failure_details.
 * Only this file and store.c speak SQL. */
#include <stdio.h>
#include <string.h>
#include "tlsrptd/query.h"

static const char SQL_BY_DOMAIN[] =
    "SELECT policy_domain, SUM(successful_sessions), SUM(failed_sessions), "
    "COUNT(DISTINCT report) FROM policies GROUP BY policy_domain "
    "ORDER BY policy_domain IS NULL, policy_domain";
static const char SQL_FAILURES_BY_DOMAIN[] =
    "SELECT p.policy_domain, f.result_type, SUM(f.failed_session_count) "
    "FROM failure_details f JOIN policies p ON p.id = f.policy "
    "GROUP BY p.policy_domain, f.result_type ORDER BY f.result_type";
static const char SQL_TOTALS[] =
    "SELECT COALESCE(SUM(successful_sessions), 0), COALESCE(SUM(failed_sessions), 0), "
    "(SELECT COUNT(*) FROM reports) FROM policies";

static json_t *domain_key(sqlite3_stmt *s, int col)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return json_null();
    return json_string((const char *)sqlite3_column_text(s, col));
}

static json_t *find_domain(json_t *domains, const json_t *key)
{
    size_t i;
    json_t *d;
    json_array_foreach(domains, i, d)
    {
        if (json_equal(json_object_get(d, "policy_domain"), (json_t *)key))
            return d;
    }
    return NULL;
}

static void add_count(json_t *obj, const char *key, json_int_t n)
{
    json_t *v = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer((v ? json_integer_value(v) : 0) + n));
}

json_t *query_summary(struct store *st, char *err)
{
    sqlite3 *db = store_db(st);
    sqlite3_stmt *s = NULL;
    json_t *domains = json_array(), *totals = json_object(), *out = NULL;
    json_t *total_failures = json_object();
    int rc;

    if (sqlite3_prepare_v2(db, SQL_BY_DOMAIN, -1, &s, NULL) != SQLITE_OK)
        goto fail;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *d = json_pack("{s:o, s:I, s:I, s:o, s:I}", "policy_domain", domain_key(s, 0),
                              "successful_sessions", (json_int_t)sqlite3_column_int64(s, 1),
                              "failed_sessions", (json_int_t)sqlite3_column_int64(s, 2), "failures",
                              json_object(), "reports", (json_int_t)sqlite3_column_int64(s, 3));
        json_array_append_new(domains, d);
    }
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(s);
    s = NULL;

    if (sqlite3_prepare_v2(db, SQL_FAILURES_BY_DOMAIN, -1, &s, NULL) != SQLITE_OK)
        goto fail;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *key = domain_key(s, 0);
        json_t *d = find_domain(domains, key);
        json_decref(key);
        const char *type = (const char *)sqlite3_column_text(s, 1);
        json_int_t n = (json_int_t)sqlite3_column_int64(s, 2);
        if (d)
            add_count(json_object_get(d, "failures"), type, n);
        add_count(total_failures, type, n);
    }
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(s);
    s = NULL;

    if (sqlite3_prepare_v2(db, SQL_TOTALS, -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW)
        goto fail;
    json_object_set_new(totals, "successful_sessions", json_integer(sqlite3_column_int64(s, 0)));
    json_object_set_new(totals, "failed_sessions", json_integer(sqlite3_column_int64(s, 1)));
    json_object_set_new(totals, "reports", json_integer(sqlite3_column_int64(s, 2)));
    json_object_set_new(totals, "failures", total_failures);
    total_failures = NULL;
    sqlite3_finalize(s);
    out = json_pack("{s:o, s:o}", "domains", domains, "totals", totals);
    return out;
fail:
    tr_fail(err, TR_EDB, "summary query failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    json_decref(domains);
    json_decref(totals);
    json_decref(total_failures);
    return NULL;
}

static void format_rate(json_int_t ok, json_int_t failed, char *out, size_t n)
{
    if (ok + failed == 0)
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.2f%%", 100.0 * (double)failed / (double)(ok + failed));
}

static void print_row(FILE *out, const char *domain, const json_t *row, int width)
{
    json_int_t ok = json_integer_value(json_object_get(row, "successful_sessions"));
    json_int_t failed = json_integer_value(json_object_get(row, "failed_sessions"));
    char rate[32];
    format_rate(ok, failed, rate, sizeof rate);
    fprintf(out, "%-*s %12lld %12lld %9s %8lld\n", width, domain, (long long)ok, (long long)failed,
            rate, (long long)json_integer_value(json_object_get(row, "reports")));
    const char *type;
    json_t *n;
    json_object_foreach((json_t *)json_object_get(row, "failures"), type, n)
    {
        fprintf(out, "%-*s   %-30s %lld\n", width, "", type, (long long)json_integer_value(n));
    }
}

void query_print_table(const json_t *summary, FILE *out)
{
    const json_t *domains = json_object_get(summary, "domains");
    int width = 13;
    size_t i;
    json_t *d;
    json_array_foreach((json_t *)domains, i, d)
    {
        const char *name = json_string_value(json_object_get(d, "policy_domain"));
        int len = name ? (int)strlen(name) : 6;
        if (len > width)
            width = len > 60 ? 60 : len;
    }
    fprintf(out, "%-*s %12s %12s %9s %8s\n", width, "POLICY DOMAIN", "SUCCESSFUL", "FAILED",
            "FAIL RATE", "REPORTS");
    json_array_foreach((json_t *)domains, i, d)
    {
        const char *name = json_string_value(json_object_get(d, "policy_domain"));
        print_row(out, name ? name : "(none)", d, width);
    }
    fprintf(out, "%.*s\n", width + 45,
            "----------------------------------------------------------------------------------"
            "----------------------------------------");
    print_row(out, "TOTAL", json_object_get(summary, "totals"), width);
}
