/* test_ingest.c: the one ingest path: sniffing, decoding, storing, duplicates,
 * quarantine, sources from mail headers, and batches that fail; the storing
 * half on SQLite, and on PostgreSQL too with TLSRPTD_PG_STATE set (the
 * directory of the cluster tests/pg_cluster.py started). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <zlib.h>
#include "check.h"
#include "check_db.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/ingest.h"

static char dir[] = "/tmp/tlsrptd-test-ingest-XXXXXX";
static const char *samples;

static const char JSON[] =
    "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":\"2026-01-01T00:00:00Z\","
    "\"end-datetime\":\"2026-01-01T23:59:59Z\"},\"contact-info\":\"x@y\",\"report-id\":\"%s\","
    "\"policies\":[{\"policy\":{\"policy-type\":\"sts\"%s},\"summary\":{"
    "\"total-successful-session-count\":4,\"total-failure-session-count\":1}}]}";

static void test_decode(void)
{
    struct ingest_decoded dec;
    char err[TR_ERRLEN];
    char json[2048];
    snprintf(json, sizeof json, JSON, "r1", "");

    /* JSON, after white space and a BOM */
    char padded[2100];
    snprintf(padded, sizeof padded, "\xef\xbb\xbf \r\n\t%s", json);
    CHECK_INT(ingest_decode(padded, strlen(padded), NULL, &dec, err), TR_OK);
    CHECK_INT(dec.npayloads, 1);
    CHECK(!dec.is_message);
    CHECK(dec.payloads[0].json == (const unsigned char *)padded);
    ingest_decoded_free(&dec);

    /* gzip and zlib */
    struct buf gz;
    buf_init(&gz, 1 << 20);
    gz_deflate(json, strlen(json), 6, &gz, err);
    CHECK_INT(ingest_decode(gz.data, gz.len, NULL, &dec, err), TR_OK);
    CHECK_INT(dec.payloads[0].decode_err, TR_OK);
    CHECK_INT(dec.payloads[0].jsonlen, strlen(json));
    ingest_decoded_free(&dec);
    unsigned char z[2048];
    uLongf zlen = sizeof z;
    compress(z, &zlen, (const Bytef *)json, strlen(json));
    CHECK_INT(ingest_decode(z, zlen, NULL, &dec, err), TR_OK);
    CHECK_INT(dec.payloads[0].jsonlen, strlen(json));
    ingest_decoded_free(&dec);

    /* a truncated gzip is a payload that failed to decode */
    CHECK_INT(ingest_decode(gz.data, gz.len - 5, NULL, &dec, err), TR_OK);
    CHECK_INT(dec.payloads[0].decode_err, TR_EPARSE);
    CHECK_HAS(dec.payloads[0].decode_reason, "truncated");
    ingest_decoded_free(&dec);

    /* inflated size is capped */
    struct ingest_limits lim = INGEST_DEFAULT_LIMITS;
    lim.max_inflated = 100;
    CHECK_INT(ingest_decode(gz.data, gz.len, &lim, &dec, err), TR_OK);
    CHECK_INT(dec.payloads[0].decode_err, TR_ETOOBIG);
    ingest_decoded_free(&dec);
    buf_free(&gz);

    /* not a report at all */
    CHECK_INT(ingest_decode("\x89PNG\r\n", 6, NULL, &dec, err), TR_EPARSE);
    CHECK_HAS(err, "first byte 0x89");
    ingest_decoded_free(&dec);
    CHECK_INT(ingest_decode("", 0, NULL, &dec, err), TR_EPARSE);
    CHECK_HAS(err, "empty");
    ingest_decoded_free(&dec);
    CHECK_INT(ingest_decode(" \n ", 3, NULL, &dec, err), TR_EPARSE);
    CHECK_HAS(err, "white space");
    ingest_decoded_free(&dec);
    lim = (struct ingest_limits)INGEST_DEFAULT_LIMITS;
    lim.max_input = 10;
    CHECK_INT(ingest_decode(json, strlen(json), &lim, &dec, err), TR_ETOOBIG);
    ingest_decoded_free(&dec);
}

/* max_inflated bounds the report parts of one message together: many parts
 * cost no more than one. */
static void test_inflated_total(void)
{
    char json[2048], err[TR_ERRLEN];
    snprintf(json, sizeof json, JSON, "r1", "");
    struct buf gz;
    buf_init(&gz, 1 << 20);
    gz_deflate(json, strlen(json), 6, &gz, err);
    gchar *b64 = g_base64_encode(gz.data, gz.len);
    struct buf msg;
    buf_init(&msg, 1 << 20);
    const char *head = "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/"
                       "report; report-type=tlsrpt; boundary=\"B\"\r\n\r\n";
    const char *part = "--B\r\nContent-Type: application/tlsrpt+gzip\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n";
    buf_append(&msg, head, strlen(head));
    for (int i = 0; i < 2; i++) {
        buf_append(&msg, part, strlen(part));
        buf_append(&msg, b64, strlen(b64));
        buf_append(&msg, "\r\n", 2);
    }
    buf_append(&msg, "--B--\r\n", 7);

    struct ingest_limits lim = INGEST_DEFAULT_LIMITS;
    struct ingest_decoded dec;
    CHECK_INT(ingest_decode(msg.data, msg.len, &lim, &dec, err), TR_OK);
    CHECK_INT(dec.npayloads, 2);
    CHECK_INT(dec.payloads[1].decode_err, TR_OK);
    ingest_decoded_free(&dec);
    lim.max_inflated = strlen(json) * 3 / 2; /* room for one part, not for two */
    CHECK_INT(ingest_decode(msg.data, msg.len, &lim, &dec, err), TR_OK);
    CHECK_INT(dec.npayloads, 2);
    CHECK_INT(dec.payloads[0].decode_err, TR_OK);
    CHECK_INT(dec.payloads[1].decode_err, TR_ETOOBIG);
    CHECK_HAS(dec.payloads[1].decode_reason, "inflate to more than");
    CHECK_HAS(dec.payloads[1].decode_reason, "together");
    ingest_decoded_free(&dec);
    g_free(b64);
    buf_free(&msg);
    buf_free(&gz);
}

/* A report keeps at most REPORT_MAX_DIAGNOSTICS findings, then one note saying
 * how many more there were; the counts stay true. */
static void test_diagnostics_capped(void)
{
    struct buf j;
    buf_init(&j, 1 << 20);
    char key[64];
    const char *head =
        "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":"
        "\"2026-01-01T00:00:00Z\",\"end-datetime\":\"2026-01-01T23:59:59Z\"},\"contact-info\":"
        "\"x@y\",\"report-id\":\"many-notes\",\"policies\":[{\"policy\":{\"policy-type\":"
        "\"sts\",\"policy-domain\":\"a.example\"},\"summary\":{\"total-successful-session-"
        "count\":4,\"total-failure-session-count\":150},\"failure-details\":[";
    buf_append(&j, head, strlen(head));
    for (int i = 0; i < 150; i++) { /* an unknown result type is a note */
        int n = snprintf(key, sizeof key, "%s{\"result-type\":\"x%d\",\"failed-session-count\":1}",
                         i ? "," : "", i);
        buf_append(&j, key, (size_t)n);
    }
    buf_append(&j, "]}]}", 4);
    struct report r;
    struct diag_list d = {0};
    CHECK_INT(report_parse(j.data, j.len, NULL, &r, &d), TR_OK);
    CHECK_INT(d.notes, 150);
    CHECK_INT(d.n, REPORT_MAX_DIAGNOSTICS + 1);
    CHECK_HAS(d.items[d.n - 1].message, "50 more notes not kept");
    json_t *arr = diag_list_json(&d);
    CHECK_INT(json_array_size(arr), REPORT_MAX_DIAGNOSTICS + 1);
    json_decref(arr);
    report_free(&r);
    diag_list_free(&d);

    /* the first error is kept even past the cap: it is the reason for rejecting */
    buf_reset(&j);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "%c\"x-%d\":%d", i ? ',' : '{', i, i);
        buf_append(&j, key, (size_t)n);
    }
    buf_append(&j, "}", 1);
    memset(&d, 0, sizeof d);
    CHECK_INT(report_parse(j.data, j.len, NULL, &r, &d), TR_EINVAL);
    char first[TR_ERRLEN];
    diag_first_error(&d, first, sizeof first);
    CHECK_STR(first, "organization-name: missing");
    CHECK_INT(d.n, REPORT_MAX_DIAGNOSTICS + 2);
    CHECK_INT(d.dropped[DIAG_ERROR], 3);
    CHECK_HAS(d.items[d.n - 1].message, "3 more errors and 1 more warnings not kept");
    diag_list_free(&d);
    buf_free(&j);
}

static void read_sample(const char *name, struct buf *b)
{
    char path[4096], err[TR_ERRLEN];
    snprintf(path, sizeof path, "%s/%s", samples, name);
    buf_init(b, 1 << 20);
    CHECK_INT(buf_read_file(b, path, err), TR_OK);
}

static void ingest_sample(struct ingest *ig, const char *name, struct ingest_result *res)
{
    struct buf b;
    read_sample(name, &b);
    struct store_source src = {.kind = "file", .name = name};
    ingest_input(ig, b.data, b.len, &src, res);
    buf_free(&b);
}

/* One sample in a transaction of its own. Whether a report was stored or is
 * a duplicate is settled at the commit (PostgreSQL sends a batch's reports
 * then), so the result is read after it. */
static void ingest_committed(struct ingest *ig, const char *name, struct ingest_result *res)
{
    char err[TR_ERRLEN];
    CHECK_INT(ingest_begin(ig, err), TR_OK);
    ingest_sample(ig, name, res);
    CHECK_INT(ingest_commit(ig, err), TR_OK);
}

static void test_ingest_samples(struct store *st)
{
    struct ingest *ig = ingest_new(st, NULL);
    struct ingest_result res;

    ingest_committed(ig, "report.json", &res);
    CHECK_INT(res.outcome, INGEST_STORED);
    CHECK_INT(res.nreports, 1);
    CHECK_STR(res.reports[0].organization_name, "Sample Sender Ltd");
    CHECK_INT(res.reports[0].npolicies, 2);
    CHECK_INT(res.reports[0].successful_sessions, 1240);
    CHECK_INT(res.reports[0].failed_sessions, 7);
    int64_t first = res.reports[0].id;
    ingest_result_free(&res);

    ingest_committed(ig, "report.json", &res);
    CHECK_INT(res.outcome, INGEST_DUPLICATE);
    CHECK_INT(res.reports[0].id, first);
    ingest_result_free(&res);

    ingest_committed(ig, "report.json.gz", &res);
    CHECK_INT(res.outcome, INGEST_STORED);
    ingest_result_free(&res);

    ingest_committed(ig, "report.eml", &res);
    CHECK_INT(res.outcome, INGEST_STORED);
    ingest_result_free(&res);

    ingest_committed(ig, "invalid.json", &res);
    CHECK_INT(res.outcome, INGEST_REJECTED);
    CHECK(res.quarantine_id > 0);
    CHECK_HAS(res.reason, "report-id: empty");
    ingest_result_free(&res);

    ingest_committed(ig, "not-a-report.eml", &res);
    CHECK_INT(res.outcome, INGEST_REJECTED);
    CHECK_HAS(res.reason, "no TLS-RPT report part");
    CHECK(res.quarantine_id > 0);
    ingest_result_free(&res);

    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), 3);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM quarantine"), 2);
    CHECK_STR(text(st, "SELECT source_message_id FROM reports WHERE source_name = 'report.eml'"),
              "sample-1@sender.example");
    CHECK_STR(text(st, "SELECT source_report_domain FROM reports WHERE source_name = 'report.eml'"),
              "mail.example");
    CHECK_STR(text(st, "SELECT source_submitter FROM reports WHERE source_name = 'report.eml'"),
              "sender.example");
    CHECK_HAS(text(st, "SELECT source_subject FROM reports WHERE source_name = 'report.eml'"),
              "Report-ID: <2026-11-03T00:00:00Z_mail.example>");
    CHECK_STR(text(st, "SELECT source_subject FROM quarantine WHERE source_name = "
                       "'not-a-report.eml'"),
              "Cron <root@host> run-parts /etc/cron.daily");
    CHECK_INT(count(st, "SELECT raw_size FROM quarantine WHERE source_name = 'invalid.json'"), 344);
    ingest_free(ig);
}

static void test_message_parts(struct store *st)
{
    char err[TR_ERRLEN], good[2048], nodomain[2048], msg[8192];
    snprintf(good, sizeof good, JSON, "part-good", ",\"policy-domain\":\"good.example\"");
    snprintf(nodomain, sizeof nodomain, JSON, "part-nodomain", "");
    snprintf(msg, sizeof msg,
             "From: r@sender.example\nTLS-Report-Domain: Header.Example\nMessage-ID: <two@x>\n"
             "Content-Type: multipart/report; report-type=tlsrpt; boundary=\"Z\"\n\n"
             "--Z\nContent-Type: application/tlsrpt+json\n\n%s\n"
             "--Z\nContent-Type: application/tlsrpt+json\n\n{\"broken\": \n"
             "--Z\nContent-Type: application/tlsrpt+json\n\n%s\n--Z--\n",
             good, nodomain);
    struct ingest *ig = ingest_new(st, NULL);
    struct ingest_result res;
    struct store_source src = {.kind = "stdin", .name = "-"};
    CHECK_INT(ingest_begin(ig, err), TR_OK);
    ingest_input(ig, msg, strlen(msg), &src, &res);
    CHECK_INT(ingest_commit(ig, err), TR_OK);
    /* two good reports stored, the broken part quarantined with the whole message */
    CHECK_INT(res.outcome, INGEST_STORED);
    CHECK_INT(res.nreports, 3);
    CHECK_INT(res.reports[0].outcome, INGEST_STORED);
    CHECK_INT(res.reports[1].outcome, INGEST_REJECTED);
    CHECK_INT(res.reports[2].outcome, INGEST_STORED);
    CHECK_HAS(res.reason, "report part 2 of 3");
    CHECK(res.quarantine_id > 0);
    ingest_result_free(&res);
    /* the policy without policy-domain took the TLS-Report-Domain header */
    CHECK_STR(text(st, "SELECT p.policy_domain FROM policies p JOIN reports r ON r.id = p.report "
                       "WHERE r.report_id = 'part-nodomain'"),
              "header.example");
    CHECK_STR(text(st, "SELECT source_message_id FROM quarantine ORDER BY id DESC LIMIT 1"),
              "two@x");
    ingest_free(ig);
}

static void test_failed_batch(struct store *st)
{
    char err[TR_ERRLEN], json[2048];
    struct ingest *ig = ingest_new(st, NULL);
    struct ingest_result a, b;
    struct store_source src = {.kind = "file", .name = "x"};
    int64_t before = count(st, "SELECT COUNT(*) FROM reports");

    CHECK_INT(ingest_begin(ig, err), TR_OK);
    snprintf(json, sizeof json, JSON, "batch-1", "");
    ingest_input(ig, json, strlen(json), &src, &a);
    CHECK_INT(a.outcome, INGEST_STORED);
    /* the storage breaks mid-batch: every write fails now */
    bool pg = store_dialect(st) == STORE_DIALECT_POSTGRESQL;
    count(st, pg ? "SET TRANSACTION READ ONLY" : "PRAGMA query_only = 1");
    snprintf(json, sizeof json, JSON, "batch-2", "");
    ingest_input(ig, json, strlen(json), &src, &b);
    CHECK_INT(b.outcome, INGEST_TEMPFAIL);
    CHECK(ingest_failed(ig));
    CHECK_INT(ingest_commit(ig, err), TR_EDB);
    if (!pg) /* PostgreSQL: the failed transaction took its read-only mode with it */
        count(st, "PRAGMA query_only = 0");
    /* nothing of the batch was kept, so "stored" must not be acknowledged */
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), before);
    ingest_result_tempfail(&a, err);
    CHECK_INT(ingest_exit_code(a.outcome), 75);
    ingest_result_free(&a);
    ingest_result_free(&b);

    /* the next batch works again */
    CHECK_INT(ingest_begin(ig, err), TR_OK);
    ingest_input(ig, json, strlen(json), &src, &b);
    CHECK_INT(b.outcome, INGEST_STORED);
    CHECK_INT(ingest_commit(ig, err), TR_OK);
    CHECK_INT(count(st, "SELECT COUNT(*) FROM reports"), before + 1);
    ingest_result_free(&b);
    ingest_free(ig);
}

static void test_exit_codes(void)
{
    CHECK_INT(ingest_exit_code(INGEST_STORED), 0);
    CHECK_INT(ingest_exit_code(INGEST_DUPLICATE), 0);
    CHECK_INT(ingest_exit_code(INGEST_REJECTED), 65);
    CHECK_INT(ingest_exit_code(INGEST_UNREADABLE), 74);
    CHECK_INT(ingest_exit_code(INGEST_TEMPFAIL), 75);
    CHECK_STR(ingest_outcome_name(INGEST_DUPLICATE), "duplicate");
}

int main(int argc, char **argv)
{
    samples = argc > 1 ? argv[1] : "samples";
    if (mkdtemp(dir) == NULL)
        return 1;
    char path[300], err[TR_ERRLEN];
    snprintf(path, sizeof path, "%s/t.db", dir);
    struct store *st = NULL;
    CHECK_INT(store_open(path, NULL, &st, err), TR_OK);
    test_decode();
    test_inflated_total();
    test_diagnostics_capped();
    if (st) {
        test_ingest_samples(st);
        test_message_parts(st);
        test_failed_batch(st);
        store_close(st);
    }
    /* the same on PostgreSQL, in the database unit_ingest, when a cluster is there */
    if (check_db_pg_target(path, sizeof path, "unit_ingest")) {
        fprintf(stderr, "ingest: the store tests on %s\n", path);
        st = NULL;
        CHECK_INT(store_open(path, NULL, &st, err), TR_OK);
        if (st) { /* what an earlier run left goes: the counts below start from nothing */
            count(st, "DROP SCHEMA public CASCADE");
            count(st, "CREATE SCHEMA public");
            store_close(st);
            st = NULL;
            CHECK_INT(store_open(path, NULL, &st, err), TR_OK);
        }
        if (st) {
            test_ingest_samples(st);
            test_message_parts(st);
            test_failed_batch(st);
            store_close(st);
        }
    }
    test_exit_codes();
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_done("ingest");
}
