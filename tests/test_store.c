/* test_store.c: schema migrations, reports and duplicates, raw bytes,
 * transactions, the bounded quarantine, locked and foreign databases, and the
 * background checkpointer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "check_db.h"
#include "tlsrptd/checkpoint.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/store.h"

/* the compiled-in migrations (schema_sql.c, made by cmake/embed_schema.cmake) */
struct tlsrptd_schema_file {
    const char *name;
    const char *sql;
};
extern const struct tlsrptd_schema_file tlsrptd_schema[];
extern const size_t tlsrptd_schema_count;

static char dir[] = "/tmp/tlsrptd-test-store-XXXXXX";
static char dbpath[256];

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
    struct store_source src = {"file", "test.json", NULL, "<m@x>", "a.example", NULL, NULL};
    struct store_blob blob;
    CHECK_INT(store_serialize(&r, &d, raw, rawlen, strlen(json), &blob, err), TR_OK);
    CHECK_INT(store_add_report(st, &r, &d, &src, &blob, id, dup, err), TR_OK);
    store_blob_free(&blob);
    report_free(&r);
    diag_list_free(&d);
}

static void test_schema_and_reports(void)
{
    struct store *st = open_db(NULL);
    CHECK_INT(count(st, "PRAGMA user_version"), (int64_t)tlsrptd_schema_count);
    CHECK_STR(text(st, "PRAGMA journal_mode"), "wal");
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
    CHECK_INT(count(st, "SELECT policy_domain IS NULL FROM policies WHERE idx = 1"), 1);
    CHECK_STR(text(st, "SELECT diagnostics FROM reports"),
              text(st, "SELECT diagnostics FROM reports"));
    CHECK(strstr(text(st, "SELECT diagnostics FROM reports"), "contact-info") != NULL);

    /* small raw JSON is stored as received */
    CHECK_STR(text(st, "SELECT raw_encoding FROM reports"), "identity");
    CHECK_STR(text(st, "SELECT CAST(raw AS TEXT) FROM reports"), REPORT);

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
    CHECK_STR(text(st, "SELECT raw_encoding FROM reports ORDER BY id DESC LIMIT 1"), "gzip");
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(store_db(st), "SELECT raw FROM reports ORDER BY id DESC LIMIT 1", -1, &s,
                       NULL);
    CHECK(sqlite3_step(s) == SQLITE_ROW);
    CHECK(sqlite3_column_bytes(s, 0) < (int)biglen / 2);
    struct buf out;
    buf_init(&out, 1 << 20);
    CHECK_INT(gz_inflate(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), &out, err),
              TR_OK);
    CHECK_STR((char *)out.data, big);
    sqlite3_finalize(s);
    buf_free(&out);
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
    CHECK_INT(count(st, "SELECT length(raw) FROM reports ORDER BY id DESC LIMIT 1"),
              (int64_t)gz.len);
    buf_free(&gz);

    /* a rolled-back batch leaves nothing */
    memcpy(strstr(other, "23:59:58Z"), "23:59:57Z", 9);
    CHECK_INT(store_begin(st, err), TR_OK);
    add(st, other, other, strlen(other), &id2, &dup);
    store_rollback(st);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 3);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM policies"), 6);
    store_close(st);

    /* reopening applies no migration twice */
    st = open_db(NULL);
    CHECK_INT(count(st, "PRAGMA user_version"), (int64_t)tlsrptd_schema_count);
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
    struct store_source src = {"http", "/tlsrpt", "192.0.2.9", NULL, NULL, NULL, NULL};
    int64_t id;
    char raw[200];
    memset(raw, 'x', sizeof raw);

    CHECK_INT(store_begin(st, err), TR_OK);
    for (int i = 0; i < 5; i++)
        CHECK_INT(store_add_quarantine(st, &src, "not JSON", raw, 10, &id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine"), 3);
    CHECK_INT(count(st, "SELECT MIN(id) FROM quarantine"), 3); /* the oldest went */
    CHECK_INT(count(st, "SELECT value FROM meta WHERE key = 'quarantine_evicted'"), 2);
    CHECK_INT(count(st, "SELECT value FROM meta WHERE key = 'quarantine_rows'"), 3);
    CHECK_INT(count(st, "SELECT value FROM meta WHERE key = 'quarantine_bytes'"), 30);
    CHECK_STR(text(st, "SELECT reason FROM quarantine LIMIT 1"), "not JSON");
    CHECK_STR(text(st, "SELECT source_client FROM quarantine LIMIT 1"), "192.0.2.9");

    /* the byte budget evicts old entries too */
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK_INT(store_add_quarantine(st, &src, "big", raw, 90, &id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(count(st, "SELECT SUM(length(raw)) FROM quarantine"), 100); /* 10 + 90 */
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine"), 2);

    /* an input larger than the whole budget keeps its reason, not its bytes */
    CHECK_INT(store_begin(st, err), TR_OK);
    CHECK_INT(store_add_quarantine(st, &src, "huge", raw, 200, &id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_INT(count(st, "SELECT raw IS NULL AND raw_kept = 0 AND raw_size = 200 FROM quarantine "
                        "WHERE reason = 'huge'"),
              1);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine WHERE reason = 'big'"), 1);
    store_close(st);
}

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
}

/* 002_rollups.sql: every stored report adds to the per-domain totals (one
 * reports count per report and domain), duplicates and rejects are counted,
 * and a database made before the migration is backfilled. */
static void test_rollups(void)
{
    char path[300], err[TR_ERRLEN];
    snprintf(path, sizeof path, "%s/rollup.db", dir);
    struct store *st = NULL;
    CHECK_INT(store_open(path, NULL, &st, err), TR_OK);
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
    struct store_source src = {"http", "/tlsrpt", "127.0.0.1", NULL, NULL, NULL, NULL};
    CHECK_INT(store_add_quarantine(st, &src, "not a report", "x", 1, &id, err), TR_OK);
    CHECK_INT(store_commit(st, err), TR_OK);
    CHECK_STR(text(st, "SELECT group_concat(policy_domain || '/' || reporter || '/' || successful "
                       "|| '/' || failed || '/' || reports, ' ') FROM rollup_sessions"),
              "/Org/1/0/1 a.example/Org/11/4/2");
    CHECK_STR(text(st, "SELECT group_concat(policy_domain || '/' || result_type || '/' || failed, "
                       "' ') FROM rollup_failures"),
              "a.example/certificate-expired/4");
    CHECK_STR(text(st, "SELECT group_concat(source || '/' || outcome || '/' || count, ' ') "
                       "FROM outcome_counts"),
              "file/duplicate/1 file/stored/2 http/rejected/1");
    /* the all-time tables agree */
    CHECK_STR(text(st, "SELECT group_concat(policy_domain || '/' || successful || '/' || failed "
                       "|| '/' || reports, ' ') FROM domain_totals"),
              "/1/0/1 a.example/11/4/2");
    CHECK_STR(text(st, "SELECT group_concat(policy_domain || '/' || result_type || '/' || failed, "
                       "' ') FROM domain_failures"),
              "a.example/certificate-expired/4");
    CHECK_STR(text(st, "SELECT group_concat(policy_domain || '/' || reporter, ' ') "
                       "FROM domain_reporters"),
              "/Org a.example/Org");
    store_close(st);

    /* a version-1 database with a report in it: the migration backfills */
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
    CHECK_STR(text(st, "SELECT policy_domain || '/' || reporter FROM domain_reporters"),
              "b.example/Old");
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
    CHECK_INT(store_open(path, NULL, &st, err), TR_OK);
    struct checkpointer *c = checkpointer_start(st, 32, err);
    CHECK(c != NULL);
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
    for (int i = 0; i < 200 && checkpointer_runs(c) == 0; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    CHECK(checkpointer_runs(c) > 0);
    fprintf(stderr, "checkpointer: %lu runs, WAL at most %lld bytes\n", checkpointer_runs(c),
            (long long)wal_max);
    CHECK(wal_max < 1024 * 1024); /* 2 x 32 pages and a few commits */
    checkpointer_stop(c);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 400);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM failure_details"), 400);
    store_close(st);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(dbpath, sizeof dbpath, "%s/t.db", dir);
    test_schema_and_reports();
    test_quarantine();
    test_locked_and_foreign();
    test_checkpointer();
    test_rollups();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_done("store");
}
