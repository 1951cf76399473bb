/* test_store.c: the storage port on every backend: reports and duplicates,
 * raw bytes, transactions, the bounded quarantine without repeats, rollups
 * and the read side, a commit that fails at its end. Then what is SQLite's own: migrations and
 * backfills, locked and foreign files, a database deleted or made read-only under a running writer,
 * file modes, the background checkpointer, and a commit whose WAL write fails.
 *
 * Without arguments beyond the sample directories it runs on SQLite in a
 * temporary directory; with TLSRPTD_PG_STATE set (the directory of the
 * cluster tests/pg_cluster.py started) it also runs the portable tests on
 * PostgreSQL, in the database unit_store. */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "check_db.h"
#include "store_schema.h"
#include "store_sqlite.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/store.h"

#define tlsrptd_schema       tlsrptd_schema_sqlite
#define tlsrptd_schema_count tlsrptd_schema_sqlite_count

static char dir[] = "/tmp/tlsrptd-test-store-XXXXXX";
static char dbpath[512]; /* the database the portable tests use: a path or a URI */
static bool pg;          /* ... and whether it is PostgreSQL */

static const char REPORT[] =
    "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":\"2026-01-01T00:00:00Z\","
    "\"end-datetime\":\"2026-01-01T23:59:59Z\"},\"contact-info\":null,\"report-id\":\"r1\","
    "\"policies\":[{\"policy\":{\"policy-type\":\"sts\",\"policy-domain\":\"a.example\","
    "\"policy-string\":[\"version: STSv1\"],\"mx-host\":[\"mx.a.example\"]},"
    "\"summary\":{\"total-successful-session-count\":5,\"total-failure-session-count\":2},"
    "\"failure-details\":[{\"result-type\":\"certificate-expired\",\"failed-session-count\":2,"
    "\"receiving-mx-hostname\":\"mx.a.example\"}]},"
    "{\"policy\":{\"policy-type\":\"no-policy-found\"},\"summary\":{"
    "\"total-successful-session-count\":1,\"total-failure-session-count\":0}}]}";

static struct store *open_db(const struct store_options *opt)
{
    struct store *st = NULL;
    char err[TR_ERRLEN];
    tr_err e = store_open(dbpath, opt, &st, err);
    if (e != TR_OK)
        fprintf(stderr, "store_open: %s\n", err);
    CHECK_INT(e, TR_OK);
    return st;
}

static void add(struct store *st, const char *json, const void *raw, size_t rawlen, int64_t *id,
                bool *dup)
{
    struct report r;
    struct diag_list d = {0};
    char err[TR_ERRLEN];
    CHECK_INT(report_parse(json, strlen(json), NULL, &r, &d), TR_OK);
    struct store_source src = {
        .kind = "file", .name = "test.json", .message_id = "<m@x>", .report_domain = "a.example"};
    struct store_blob blob;
    CHECK_INT(store_serialize(&r, &d, raw, rawlen, strlen(json), &blob, err), TR_OK);
    CHECK_INT(store_add_report(st, &r, &d, &src, &blob, id, dup, err), TR_OK);
    store_blob_free(&blob);
    report_free(&r);
    diag_list_free(&d);
}

struct raw_ctx {
    char encoding[16];
    struct buf raw;
};

static int take_raw(void *cls, const struct store_report_row *r)
{
    struct raw_ctx *c = cls;
    snprintf(c->encoding, sizeof c->encoding, "%s", r->raw_encoding ? r->raw_encoding : "");
    buf_reset(&c->raw);
    buf_append(&c->raw, r->raw, r->rawlen);
    return 0;
}

/* The stored bytes and encoding of report id. */
static void raw_of(struct store *st, int64_t id, struct raw_ctx *c)
{
    char err[TR_ERRLEN];
    size_t n = 0;
    buf_free(&c->raw); /* the previous call's bytes */
    buf_init(&c->raw, 1 << 20);
    CHECK_INT(store_get_reports(st, id, NULL, take_raw, c, &n, err), TR_OK);
    CHECK_INT(n, 1);
}

static void test_schema_and_reports(void)
{
    struct store *st = open_db(NULL);
    if (!pg) {
        CHECK_INT(count(st, "PRAGMA user_version"), (int64_t)tlsrptd_schema_count);
        CHECK_STR(text(st, "PRAGMA journal_mode"), "wal");
    }
    char err[TR_ERRLEN];
    int64_t id1, id2;
    bool dup;

    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK(store_in_transaction(st));
    add(st, REPORT, REPORT, strlen(REPORT), &id1, &dup);
    CHECK(!dup);
    CHECK(id1 > 0);
    add(st, REPORT, REPORT, strlen(REPORT), &id2, &dup); /* same batch: duplicate */
    CHECK(dup);
    CHECK_INT(id2, id1);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK(!store_in_transaction(st));

    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 1);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM policies"), 2);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM failure_details"), 1);
    CHECK_INT(count(st, "SELECT SUM(successful_sessions) FROM policies"), 6);
    CHECK_INT(count(st, "SELECT warning_count FROM reports"), 2); /* contact-info, policy-domain */
    CHECK_STR(text(st, "SELECT source_message_id FROM reports"), "<m@x>");
    CHECK_STR(text(st, "SELECT policy_strings FROM policies WHERE idx = 0"),
              "[\"version: STSv1\"]");
    CHECK_STR(text(st, "SELECT mx_hosts FROM policies WHERE idx = 0"), "[\"mx.a.example\"]");
    CHECK_INT(count(st, "SELECT COUNT(*) FROM policies WHERE idx = 1 AND policy_domain IS NULL"),
              1);
    CHECK(strstr(text(st, "SELECT diagnostics FROM reports"), "contact-info") != NULL);

    /* small raw JSON is stored as received */
    struct raw_ctx rc = {0};
    raw_of(st, id1, &rc);
    CHECK_STR(rc.encoding, "identity");
    CHECK_INT(rc.raw.len, strlen(REPORT));
    CHECK(memcmp(rc.raw.data, REPORT, strlen(REPORT)) == 0);
    buf_free(&rc.raw);

    /* JSON over STORE_PLAIN_MAX is stored gzipped and inflates back to the bytes received */
    size_t biglen = strlen(REPORT) + STORE_PLAIN_MAX;
    char *big = malloc(biglen + 1);
    big[0] = '{';
    memset(big + 1, ' ', STORE_PLAIN_MAX);
    memcpy(big + 1 + STORE_PLAIN_MAX, REPORT + 1, strlen(REPORT)); /* with its NUL */
    memcpy(strstr(big, "23:59:59Z"), "23:59:56Z", 9);
    CHECK_INT(store_begin(st, err), TR_OK);
    add(st, big, big, biglen, &id2, &dup);
    CHECK(!dup);
    CHECK_INT(store_commit(st, err), TR_OK);
    raw_of(st, id2, &rc);
    CHECK_STR(rc.encoding, "gzip");
    CHECK(rc.raw.len < biglen / 2);
    struct buf out;
    buf_init(&out, 1 << 20);
    CHECK_INT(gz_inflate(rc.raw.data, rc.raw.len, &out, err), TR_OK);
    CHECK_STR((char *)out.data, big);
    buf_free(&out);
    buf_free(&rc.raw);
    free(big);

    /* another end-datetime is another report; a gzip body is kept verbatim */
    char other[sizeof REPORT + 8];
    snprintf(other, sizeof other, "%s", REPORT);
    memcpy(strstr(other, "23:59:59Z"), "23:59:58Z", 9);
    struct buf gz;
    buf_init(&gz, 1 << 20);
    gz_deflate(other, strlen(other), 9, &gz, err);
    CHECK_INT(store_begin(st, err), TR_OK);
    add(st, other, gz.data, gz.len, &id2, &dup);
    CHECK(!dup);
    CHECK(id2 != id1);
    CHECK_INT(store_commit(st, err), TR_OK);
    raw_of(st, id2, &rc);
    CHECK_INT(rc.raw.len, gz.len);
    CHECK(memcmp(rc.raw.data, gz.data, gz.len) == 0);
    buf_free(&gz);
    buf_free(&rc.raw);

    /* a rolled-back batch leaves nothing */
    memcpy(strstr(other, "23:59:58Z"), "23:59:57Z", 9);
    CHECK_INT(store_begin(st, err), TR_OK);
    add(st, other, other, strlen(other), &id2, &dup);
    store_rollback(st);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 3);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM policies"), 6);
    CHECK_INT(count(st, "SELECT SUM(reports) FROM rollup_reports"), 3);
    store_close(st);

    /* reopening applies no migration twice */
    st = open_db(NULL);
    if (!pg)
        CHECK_INT(count(st, "PRAGMA user_version"), (int64_t)tlsrptd_schema_count);
    else
        CHECK_INT(count(st, "SELECT COUNT(*) FROM tlsrptd_schema_version"),
                  (int64_t)tlsrptd_schema_postgresql_count);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 3);
    store_close(st);
}

static void test_quarantine(void)
{
    struct store_options opt = STORE_DEFAULT_OPTIONS;
    opt.quarantine_max_rows = 3;
    opt.quarantine_max_bytes = 100;
    struct store *st = open_db(&opt);
    char err[TR_ERRLEN];
    struct store_source src = {.kind = "http", .name = "/tlsrpt", .client = "192.0.2.9"};
    int64_t id, ids[5];
    char raw[200];
    memset(raw, 'x', sizeof raw);

    CHECK_INT(store_begin(st, err), TR_OK);
    for (int i = 0; i < 5; i++) {
        raw[0] = (char)('a' + i); /* five different inputs */
        CHECK_INT(store_add_quarantine(st, &src, "not JSON", raw, 10, &ids[i], err), TR_OK);
    }
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine"), 3);
    CHECK_INT(count(st, "SELECT MIN(id) FROM quarantine"), ids[2]); /* the oldest went */
    int64_t v;
    CHECK_INT(store_counter_get(st, "quarantine_evicted", &v, err), TR_OK);
    CHECK_INT(v, 2);
    CHECK_INT(store_counter_get(st, "quarantine_rows", &v, err), TR_OK);
    CHECK_INT(v, 3);
    CHECK_INT(store_counter_get(st, "quarantine_bytes", &v, err), TR_OK);
    CHECK_INT(v, 30);
    CHECK_STR(text(st, "SELECT reason FROM quarantine ORDER BY id LIMIT 1"), "not JSON");
    CHECK_STR(text(st, "SELECT source_client FROM quarantine ORDER BY id LIMIT 1"), "192.0.2.9");

    /* the same input read again (same source, same bytes) is kept once */
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK_INT(store_add_quarantine(st, &src, "not JSON, read again", raw, 10, &id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(id, ids[4]);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine"), 3);
    CHECK_INT(count(st, "SELECT count FROM outcome_counts WHERE outcome = 'rejected'"), 5);

    /* the byte budget evicts old entries too */
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK_INT(store_add_quarantine(st, &src, "big", raw, 90, &id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(count(st, "SELECT SUM(raw_size) FROM quarantine WHERE raw_kept = 1"), 100);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine"), 2);

    /* an input larger than the whole budget keeps its reason, not its bytes */
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK_INT(store_add_quarantine(st, &src, "huge", raw, 200, &id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine WHERE raw IS NULL AND raw_kept = 0 AND "
                        "raw_size = 200 AND reason = 'huge'"),
              1);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine WHERE reason = 'big'"), 1);

    /* removing an entry (re-ingested) gives its budget back */
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK_INT(store_delete_quarantine(st, id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(store_counter_get(st, "quarantine_rows", &v, err), TR_OK);
    CHECK_INT(v, count(st, "SELECT COUNT(*) FROM quarantine"));
    store_close(st);
}

/* Every stored report adds to the rollups (one reports count per report and
 * domain), duplicates and rejects are counted, and the summary rows agree. */
static void test_rollups(void)
{
    char err[TR_ERRLEN];
    struct store *st = open_db(NULL);
    int64_t id;
    bool dup;
    CHECK_INT(store_begin(st, err), TR_OK);
    add(st, REPORT, REPORT, strlen(REPORT), &id, &dup);
    add(st, REPORT, REPORT, strlen(REPORT), &id, &dup); /* duplicate: counted, not added */
    /* the same domain twice in one report: one report, sessions summed */
    static const char two[] =
        "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":"
        "\"2026-01-01T00:00:00Z\",\"end-datetime\":\"2026-01-01T23:59:59Z\"},"
        "\"contact-info\":\"x@org\",\"report-id\":\"r2\",\"policies\":["
        "{\"policy\":{\"policy-type\":\"sts\",\"policy-domain\":\"a.example\"},"
        "\"summary\":{\"total-successful-session-count\":5,\"total-failure-session-count\":2},"
        "\"failure-details\":[{\"result-type\":\"certificate-expired\","
        "\"failed-session-count\":2}]},"
        "{\"policy\":{\"policy-type\":\"no-policy-found\",\"policy-domain\":\"A.example\"},"
        "\"summary\":{\"total-successful-session-count\":1,\"total-failure-session-count\":0}}]}";
    add(st, two, two, strlen(two), &id, &dup);
    struct store_source src = {.kind = "http", .name = "/tlsrpt", .client = "127.0.0.1"};
    CHECK_INT(store_add_quarantine(st, &src, "not a report", "x", 1, &id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_STR(text(st,
                   "SELECT policy_domain || '/' || reporter || '/' || successful || '/' || "
                   "failed || '/' || reports FROM rollup_sessions ORDER BY length(policy_domain)"),
              "/Org/1/0/1 a.example/Org/11/4/2");
    CHECK_STR(text(st, "SELECT policy_domain || '/' || result_type || '/' || failed FROM "
                       "rollup_failures"),
              "a.example/certificate-expired/4");
    CHECK_STR(text(st, "SELECT source || '/' || outcome || '/' || count FROM outcome_counts "
                       "ORDER BY source, outcome"),
              "file/duplicate/1 file/stored/2 http/rejected/1");
    CHECK_STR(text(st, "SELECT reporter || '/' || reports FROM rollup_reports"), "Org/2");
    /* the all-time tables agree */
    CHECK_STR(text(st, "SELECT policy_domain || '/' || successful || '/' || failed || '/' || "
                       "reports FROM domain_totals ORDER BY length(policy_domain)"),
              "/1/0/1 a.example/11/4/2");
    CHECK_STR(text(st, "SELECT policy_domain || '/' || result_type || '/' || failed FROM "
                       "domain_failures"),
              "a.example/certificate-expired/4");
    CHECK_STR(text(st, "SELECT policy_domain || '/' || reporter || '/' || last_start FROM "
                       "domain_reporters ORDER BY length(policy_domain)"),
              "/Org/1767225600 a.example/Org/1767225600");

    /* the read side: totals and groups from the rollups and from the base tables */
    struct store_filter f;
    store_filter_init(&f);
    struct store_totals t;
    CHECK_INT(store_summary_totals(st, &f, &t, NULL, NULL, err), TR_OK);
    CHECK_INT(t.successful, 12);
    CHECK_INT(t.failed, 4);
    CHECK_INT(t.reports, 2);
    CHECK_INT(t.reporters, 1);
    f.since = 1767225600;
    f.until = 1767225600 + 86400;
    const char *d[] = {"a.example"};
    f.domains[0] = d[0];
    f.ndomains = 1;
    CHECK_INT(store_summary_totals(st, &f, &t, NULL, NULL, err), TR_OK);
    CHECK_INT(t.successful, 11);
    CHECK_INT(t.reports, 2);
    store_close(st);
}

/* A commit that fails at its last step (the rollups, which PostgreSQL sends with
 * the COMMIT) stores nothing and leaves the store usable; an empty transaction
 * commits. Runs on the database test_rollups filled (two reports). */
static void test_failed_commit(void)
{
    char err[TR_ERRLEN];
    struct store *st = open_db(NULL);
    int64_t id;
    bool dup;
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK(store_in_transaction(st));
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK(!store_in_transaction(st));
    CHECK_INT(store_begin(st, err), TR_OK);
    store_rollback(st);
    CHECK(!store_in_transaction(st));

    /* every rollup_reports write fails from now on */
    const char *refuse = pg ? "ALTER TABLE rollup_reports ADD CONSTRAINT test_refuse "
                              "CHECK (reports < 0) NOT VALID"
                            : "CREATE TRIGGER test_refuse BEFORE UPDATE ON rollup_reports "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END";
    CHECK_INT(store_exec(st, STMT_NONE, refuse, NULL, 0, NULL, NULL, NULL, err), TR_OK);
    static const char third[] =
        "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":"
        "\"2026-01-01T00:00:00Z\",\"end-datetime\":\"2026-01-01T23:59:59Z\"},"
        "\"contact-info\":\"x@org\",\"report-id\":\"r3\",\"policies\":["
        "{\"policy\":{\"policy-type\":\"sts\",\"policy-domain\":\"a.example\"},"
        "\"summary\":{\"total-successful-session-count\":3,\"total-failure-session-count\":0}}]}";
    CHECK_INT(store_begin(st, err), TR_OK);
    add(st, third, third, strlen(third), &id, &dup);
    CHECK(!dup);
    CHECK(store_commit(st, err) != TR_OK);
    CHECK(!store_in_transaction(st));
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 2);
    CHECK_INT(count(st, "SELECT SUM(reports) FROM rollup_reports"), 2);

    /* the same connection takes the report once the rollup can be written */
    const char *allow =
        pg ? "ALTER TABLE rollup_reports DROP CONSTRAINT test_refuse" : "DROP TRIGGER test_refuse";
    CHECK_INT(store_exec(st, STMT_NONE, allow, NULL, 0, NULL, NULL, NULL, err), TR_OK);
    CHECK_INT(store_begin(st, err), TR_OK);
    add(st, third, third, strlen(third), &id, &dup);
    CHECK(!dup);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 3);
    CHECK_INT(count(st, "SELECT SUM(reports) FROM rollup_reports"), 3);
    store_close(st);
}

/* A meta value set with the commit: the last value set in the transaction,
 * nothing after a rollback, refused outside a transaction; with reports in the
 * same commit and alone. */
static void test_meta_at_commit(void)
{
    char err[TR_ERRLEN];
    struct store *st = open_db(NULL);
    int64_t v = -1, id;
    bool dup;
    CHECK_INT(store_meta_set_at_commit(st, "commit:test", 5, err), TR_EINVAL);
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK_INT(store_meta_set_at_commit(st, "commit:test", 5, err), TR_OK);
    store_rollback(st);
    CHECK_INT(store_counter_get(st, "commit:test", &v, err), TR_OK);
    CHECK_INT(v, 0);
    static const char fourth[] =
        "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":"
        "\"2026-01-02T00:00:00Z\",\"end-datetime\":\"2026-01-02T23:59:59Z\"},"
        "\"contact-info\":\"x@org\",\"report-id\":\"r4\",\"policies\":["
        "{\"policy\":{\"policy-type\":\"sts\",\"policy-domain\":\"a.example\"},"
        "\"summary\":{\"total-successful-session-count\":1,\"total-failure-session-count\":0}}]}";
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK_INT(store_meta_set_at_commit(st, "commit:test", 7, err), TR_OK);
    add(st, fourth, fourth, strlen(fourth), &id, &dup);
    CHECK_INT(store_meta_set_at_commit(st, "commit:test", INT64_MAX, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(store_counter_get(st, "commit:test", &v, err), TR_OK);
    CHECK_INT(v, INT64_MAX);
    CHECK_INT(store_begin(st, err), TR_OK); /* alone, and set, not added */
    CHECK_INT(store_meta_set_at_commit(st, "commit:test", 3, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(store_counter_get(st, "commit:test", &v, err), TR_OK);
    CHECK_INT(v, 3);
    store_close(st);
}

/* Array arguments (the rollups' columns on PostgreSQL): bigint[] and text[]
 * with a NULL and invalid UTF-8 (each bad byte a "?", as in a text argument); SQLite
 * refuses them with an error, never a silent NULL. */
static void test_array_args(void)
{
    char err[TR_ERRLEN];
    struct store *st = open_db(NULL);
    static const int64_t nums[] = {7, -1, INT64_MAX};
    static const char *const words[] = {"a", NULL, "b\xff"};
    struct sql_arg args[] = {sql_ints(nums, 3), sql_texts(words, 3)};
    if (!pg) {
        CHECK_INT(store_exec(st, STMT_NONE, "SELECT ?1", args, 1, NULL, NULL, NULL, err),
                  TR_EINVAL);
        CHECK_HAS(err, "array");
        CHECK_INT(count(st, "SELECT 1"), 1); /* the connection goes on */
        store_close(st);
        return;
    }
    char out[4096] = "";
    CHECK_INT(store_exec(st, STMT_NONE,
                         "SELECT array_to_string(?1, ',') || '/' || "
                         "array_to_string(?2, ',', 'null')",
                         args, 2, check_db_text, out, NULL, err),
              TR_OK);
    CHECK_STR(out, "7,-1,9223372036854775807/a,null,b?");
    store_close(st);
}

/* ---- SQLite's own --------------------------------------------------------------------------- */

static void test_locked_and_foreign(void)
{
    char err[TR_ERRLEN];
    struct store_options opt = STORE_DEFAULT_OPTIONS;
    opt.busy_timeout_ms = 100;
    struct store *a = open_db(&opt), *b = open_db(&opt);
    CHECK_INT(store_begin(a, err), TR_OK);
    CHECK_INT(store_begin(b, err), TR_EDB);
    CHECK_HAS(err, "locked");
    store_rollback(a);
    CHECK_INT(store_begin(b, err), TR_OK);
    store_rollback(b);
    store_close(a);
    store_close(b);

    struct store *st = NULL;
    CHECK_INT(store_open("/nonexistent-dir/x.db", NULL, &st, err), TR_EDB);
    CHECK(st == NULL);
    CHECK_HAS(err, "/nonexistent-dir/x.db");

    /* read-only: a missing file, or a database that is not ours */
    struct store_options ro = STORE_DEFAULT_OPTIONS;
    ro.read_only = true;
    char path[300];
    snprintf(path, sizeof path, "%s/missing.db", dir);
    CHECK_INT(store_open(path, &ro, &st, err), TR_EDB);
    snprintf(path, sizeof path, "%s/foreign.db", dir);
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE t (x); PRAGMA user_version = 0", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK_INT(store_open(path, &ro, &st, err), TR_EDB);
    CHECK_HAS(err, "not a tlsrptd database");

    /* a database from a newer tlsrptd is refused, not downgraded */
    snprintf(path, sizeof path, "%s/newer.db", dir);
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK_INT(store_open(path, NULL, &st, err), TR_EDB);
    CHECK_HAS(err, "newer");

    /* sqlite:PATH names the same file */
    char uri[sizeof dbpath + 8];
    snprintf(uri, sizeof uri, "sqlite:%s", dbpath);
    CHECK_INT(store_open(uri, NULL, &st, err), TR_OK);
    CHECK_STR(store_name(st), dbpath);
    CHECK_STR(store_backend_name(st), "sqlite");
    store_close(st);
}

/* A database file created by tlsrptd holds quarantined mail: 0640. A file
 * deleted or replaced while a writer runs is noticed before the next batch,
 * and so is a file that cannot be written; reconnecting recovers. */
static void test_file_safety(void)
{
    char path[300], err[TR_ERRLEN];
    snprintf(path, sizeof path, "%s/safety.db", dir);
    mode_t old = umask(0);
    struct store *st = NULL;
    CHECK_INT(store_open(path, NULL, &st, err), TR_OK);
    umask(old);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640);
    CHECK_INT(store_check_writable(st, err), TR_OK);

    unlink(path);
    CHECK_INT(store_check_writable(st, err), TR_EDB);
    CHECK_HAS(err, "removed");
    CHECK_INT(store_begin(st, err), TR_EDB); /* nothing is acknowledged into the unlinked file */
    CHECK_HAS(err, "removed");
    CHECK_INT(store_reconnect(st, err), TR_OK);
    CHECK_INT(store_check_writable(st, err), TR_OK);
    CHECK_INT(store_begin(st, err), TR_OK);
    store_rollback(st);

    /* replaced by another file */
    char other[320];
    snprintf(other, sizeof other, "%s.new", path);
    struct store *st2 = NULL;
    CHECK_INT(store_open(other, NULL, &st2, err), TR_OK);
    store_close(st2);
    CHECK(rename(other, path) == 0);
    CHECK_INT(store_begin(st, err), TR_EDB);
    CHECK_HAS(err, "replaced");
    CHECK_INT(store_reconnect(st, err), TR_OK);
    CHECK_INT(store_begin(st, err), TR_OK);
    store_rollback(st);

    /* not writable (root writes anyway: only when not root) */
    if (geteuid() != 0) {
        chmod(path, 0440);
        CHECK(store_check_writable(st, err) != TR_OK);
        CHECK_HAS(err, "read-only");
        CHECK_HAS(err, "mode 0440");
        chmod(path, 0640);
    }
    store_close(st);
}

/* a version-1 database with a report in it: the migrations backfill */
static void test_backfill(void)
{
    char err[TR_ERRLEN];
    struct store *st = NULL;
    char old[300];
    snprintf(old, sizeof old, "%s/v1.db", dir);
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(old, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, tlsrptd_schema[0].sql, NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sqlite3_exec(db,
                       "PRAGMA user_version = 1;"
                       "INSERT INTO reports (id, organization_name, report_id, start_time, "
                       "end_time, start_datetime, end_datetime, received_at, source_kind, "
                       "raw_encoding, raw, raw_size) VALUES (7, 'Old', 'o1', 86400, 172799, 'a', "
                       "'b', 0, 'maildir', 'identity', x'7b7d', 2);"
                       "INSERT INTO policies (id, report, idx, policy_type, policy_domain, "
                       "successful_sessions, failed_sessions) VALUES (1, 7, 0, 'sts', 'b.example', "
                       "40, 3), (2, 7, 1, 'tlsa', 'b.example', 2, 0);"
                       "INSERT INTO failure_details (policy, result_type, failed_session_count) "
                       "VALUES (1, 'validation-failure', 3);",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    /* a reader cannot upgrade it, and says how to */
    struct store_options ro = STORE_DEFAULT_OPTIONS;
    ro.read_only = true;
    CHECK_INT(store_open(old, &ro, &st, err), TR_EDB);
    CHECK_HAS(err, "older than this tlsrptd");
    CHECK_INT(store_open(old, NULL, &st, err), TR_OK);
    CHECK_INT(count(st, "PRAGMA user_version"), (int64_t)tlsrptd_schema_count);
    CHECK_STR(text(st, "SELECT policy_domain || '/' || start_time || '/' || reporter || '/' || "
                       "successful || '/' || failed || '/' || reports FROM rollup_sessions"),
              "b.example/86400/Old/42/3/1");
    CHECK_STR(text(st, "SELECT result_type || '/' || failed FROM rollup_failures"),
              "validation-failure/3");
    CHECK_STR(text(st, "SELECT source || '/' || outcome || '/' || count FROM outcome_counts"),
              "maildir/stored/1");
    CHECK_STR(text(st, "SELECT policy_domain || '/' || successful || '/' || failed || '/' || "
                       "reports FROM domain_totals"),
              "b.example/42/3/1");
    CHECK_STR(text(st, "SELECT policy_domain || '/' || reporter || '/' || last_start FROM "
                       "domain_reporters"),
              "b.example/Old/86400");
    CHECK_STR(text(st, "SELECT start_time || '/' || reporter || '/' || reports FROM "
                       "rollup_reports"),
              "86400/Old/1");
    store_close(st);
}

/* 400 commits of one report each: the checkpointer keeps the WAL small (each
 * commit adds about 6 pages, 10 MB in all without checkpoints), and every
 * report is there afterwards. */
static void test_checkpointer(void)
{
    char path[300], wal[310], err[TR_ERRLEN];
    snprintf(path, sizeof path, "%s/ckpt.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct store *st = NULL;
    struct store_options opt = STORE_DEFAULT_OPTIONS;
    opt.wal_pages = 32;
    CHECK_INT(store_open(path, &opt, &st, err), TR_OK);
    CHECK_INT(store_start_maintenance(st, err), TR_OK);
    const char *cut = strstr(REPORT, "\"r1\"");
    off_t wal_max = 0;
    for (int i = 0; i < 400; i++) {
        char json[sizeof REPORT + 16];
        snprintf(json, sizeof json, "%.*s\"r%d\"%s", (int)(cut - REPORT), REPORT, i, cut + 4);
        int64_t id;
        bool dup;
        CHECK_INT(store_begin(st, err), TR_OK);
        add(st, json, json, strlen(json), &id, &dup);
        CHECK(!dup);
        CHECK_INT(store_commit(st, err), TR_OK);
        struct stat sb;
        if (stat(wal, &sb) == 0 && sb.st_size > wal_max)
            wal_max = sb.st_size;
    }
    fprintf(stderr, "checkpointer: WAL at most %lld bytes\n", (long long)wal_max);
    CHECK(wal_max < 1024 * 1024); /* 2 x 32 pages and a few commits */
    store_stop_maintenance(st);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 400);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM failure_details"), 400);
    store_close(st);
}

/* Reports whose text differs in the report-id only (r<i>), one transaction. */
static void add_many(struct store *st, int from, int n)
{
    char err[TR_ERRLEN];
    const char *cut = strstr(REPORT, "\"r1\"");
    CHECK_INT(store_begin(st, err), TR_OK);
    for (int i = from; i < from + n; i++) {
        char json[sizeof REPORT + 16];
        snprintf(json, sizeof json, "%.*s\"r%d\"%s", (int)(cut - REPORT), REPORT, i, cut + 4);
        int64_t id;
        bool dup;
        add(st, json, json, strlen(json), &id, &dup);
        CHECK(!dup);
    }
}

/* The WAL's frames are written at the commit (store_sqlite_walbuf.c): a
 * commit whose write fails (a file-size limit standing in for a full disk)
 * reports the failure and leaves nothing behind; with room again the same
 * connection commits, and a transaction of several MiB of frames (more than
 * the VFS buffers, in many writes) reads back whole after a reopen. */
static void test_wal_write_failure(void)
{
    char path[300], wal[310], err[TR_ERRLEN];
    snprintf(path, sizeof path, "%s/walfail.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct store *st = NULL;
    CHECK_INT(store_open(path, NULL, &st, err), TR_OK);
    add_many(st, 0, 1);
    CHECK_INT(store_commit(st, err), TR_OK);
    struct stat sb;
    CHECK_INT(stat(wal, &sb), 0);

    struct rlimit saved, lim;
    CHECK_INT(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = (rlim_t)sb.st_size; /* the WAL cannot grow */
    signal(SIGXFSZ, SIG_IGN);
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    add_many(st, 1, 50);
    tr_err rc = store_commit(st, err);
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, SIG_DFL);
    fprintf(stderr, "walbuf: commit past the size limit: %s\n", err);
    CHECK(rc != TR_OK);
    CHECK(!store_in_transaction(st));
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 1);

    add_many(st, 1, 50);
    CHECK_INT(store_commit(st, err), TR_OK);
    add_many(st, 51, 4000);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(stat(wal, &sb), 0);
    CHECK(sb.st_size > 4 * 1024 * 1024);
    store_close(st);

    st = NULL;
    CHECK_INT(store_open(path, NULL, &st, err), TR_OK);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 4051);
    CHECK_INT(count(st, "SELECT SUM(reports) FROM rollup_reports"), 4051);
    store_close(st);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    CHECK_INT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_step(s), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(dbpath, sizeof dbpath, "%s/t.db", dir);
    test_schema_and_reports();
    test_quarantine();
    test_locked_and_foreign();
    test_file_safety();
    test_checkpointer();
    test_wal_write_failure();
    snprintf(dbpath, sizeof dbpath, "%s/rollups.db", dir);
    test_rollups();
    test_failed_commit();
    test_meta_at_commit();
    test_array_args();
    test_backfill();
    if (check_db_pg_target(dbpath, sizeof dbpath, "unit_store")) {
        fprintf(stderr, "store: the portable tests on %s\n", dbpath);
        pg = true;
        test_schema_and_reports();
        test_quarantine();
        check_db_pg_target(dbpath, sizeof dbpath, "unit_store_rollups");
        test_rollups();
        test_failed_commit();
        test_meta_at_commit();
        test_array_args();
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_done("store");
}
