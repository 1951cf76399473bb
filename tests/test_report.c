/* test_report.c: the validator, both sides of every acceptance rule of
 * docs/acceptance.md, date-time parsing, and hostile JSON (depth, UTF-8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tlsrptd/buf.h"
#include "tlsrptd/report.h"

/* A valid report; tests substitute pieces with %s-free string surgery. */
#define R_FAILURES                                                                                 \
    "\"failure-details\":[{\"result-type\":\"certificate-expired\",\"sending-mta-ip\":"            \
    "\"192.0.2.1\",\"receiving-ip\":\"2001:db8::1\",\"receiving-mx-hostname\":\"mx.example.com\"," \
    "\"failed-session-count\":3}]"
#define R_HEAD                                                                                     \
    "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":\"2026-01-01T00:00:00Z\","  \
    "\"end-datetime\":\"2026-01-01T23:59:59Z\"},\"contact-info\":\"a@b.example\","                 \
    "\"report-id\":\"r1\","
#define R_POLICY                                                                                   \
    "{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":[\"version: STSv1\"],"                 \
    "\"policy-domain\":\"Example.COM.\",\"mx-host\":[\"mx.example.com\"]},"                        \
    "\"summary\":{\"total-successful-session-count\":10,\"total-failure-session-count\":3}"        \
    "," R_FAILURES "}"
#define VALID R_HEAD "\"policies\":[" R_POLICY "]}"

struct parsed {
    tr_err rc;
    struct report r;
    struct diag_list d;
};

static void parse_opt(struct parsed *p, const char *json, const char *fallback)
{
    struct report_options opt = {0, fallback, NULL};
    memset(p, 0, sizeof *p);
    p->rc = report_parse(json, strlen(json), &opt, &p->r, &p->d);
}

static void parse(struct parsed *p, const char *json)
{
    parse_opt(p, json, NULL);
}

static void done(struct parsed *p)
{
    if (p->rc == TR_OK)
        report_free(&p->r);
    diag_list_free(&p->d);
}

/* True when d has a finding of level at a path containing path with a message containing msg. */
static int has(const struct parsed *p, enum diag_level level, const char *path, const char *msg)
{
    for (size_t i = 0; i < p->d.n; i++) {
        const struct diag *g = &p->d.items[i];
        if (g->level == level && strstr(g->path, path) && strstr(g->message, msg))
            return 1;
    }
    fprintf(stderr, "  no %s at '%s' with '%s'; have:\n", diag_level_name(level), path, msg);
    for (size_t i = 0; i < p->d.n; i++)
        fprintf(stderr, "    %s %s: %s\n", diag_level_name(p->d.items[i].level), p->d.items[i].path,
                p->d.items[i].message);
    return 0;
}

/* Replace the first occurrence of from with to in VALID; returns a static buffer. */
static const char *valid_with(const char *from, const char *to)
{
    static char out[8192];
    const char *v = VALID;
    const char *at = strstr(v, from);
    if (at == NULL) {
        fprintf(stderr, "test bug: '%s' not in VALID\n", from);
        abort();
    }
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - v), v, to, at + strlen(from));
    return out;
}

static void expect_reject(const char *json, const char *path, const char *msg)
{
    struct parsed p;
    parse(&p, json);
    CHECK(p.rc != TR_OK);
    CHECK(p.d.errors > 0);
    CHECK(has(&p, DIAG_ERROR, path, msg));
    done(&p);
}

static void test_valid(void)
{
    struct parsed p;
    parse(&p, VALID);
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.errors, 0);
    CHECK_INT(p.d.warnings, 0);
    CHECK_INT(p.d.notes, 0);
    CHECK_STR(p.r.organization_name, "Org");
    CHECK_STR(p.r.report_id, "r1");
    CHECK_STR(p.r.contact_info, "a@b.example");
    CHECK_INT(p.r.start_time, 1767225600);
    CHECK_INT(p.r.end_time, 1767225600 + 86399);
    CHECK_INT(p.r.npolicies, 1);
    struct report_policy *pol = &p.r.policies[0];
    CHECK_STR(pol->policy_type, "sts");
    CHECK_STR(pol->policy_domain, "example.com"); /* lower-cased, trailing dot dropped */
    CHECK_INT(json_array_size(pol->policy_strings), 1);
    CHECK_INT(json_array_size(pol->mx_hosts), 1);
    CHECK_INT(pol->successful_sessions, 10);
    CHECK_INT(pol->failed_sessions, 3);
    CHECK_INT(pol->nfailures, 1);
    CHECK_STR(pol->failures[0].result_type, "certificate-expired");
    CHECK_STR(pol->failures[0].sending_mta_ip, "192.0.2.1");
    CHECK_STR(pol->failures[0].receiving_ip, "2001:db8::1");
    CHECK_STR(pol->failures[0].receiving_mx_hostname, "mx.example.com");
    CHECK_INT(pol->failures[0].failed_session_count, 3);
    done(&p);
}

static void test_reject_document(void)
{
    expect_reject("{\"a\":\"\xff\xfe\"}", "", "not valid JSON");          /* not UTF-8 */
    expect_reject("{\"organization-name\": \"x\"", "", "not valid JSON"); /* not JSON */
    expect_reject("", "", "not valid JSON");
    expect_reject("[1,2]", "", "top level is an array");
    expect_reject("\"report\"", "", "top level is a string");
    expect_reject(valid_with("\"report-id\":\"r1\",", "\"report-id\":\"r1\",\"report-id\":\"r2\","),
                  "", "duplicate key");
    expect_reject(VALID "garbage", "", "not valid JSON");
    /* a NUL inside a string is not allowed */
    struct parsed p;
    const char nul[] = "{\"organization-name\":\"a\\u0000b\"}";
    parse(&p, nul);
    CHECK(p.rc != TR_OK);
    done(&p);
}

static void test_reject_header_fields(void)
{
    expect_reject(valid_with("\"organization-name\":\"Org\",", ""), "organization-name", "missing");
    expect_reject(valid_with("\"organization-name\":\"Org\"", "\"organization-name\":\"\""),
                  "organization-name", "empty");
    expect_reject(valid_with("\"organization-name\":\"Org\"", "\"organization-name\":7"),
                  "organization-name", "not a string");
    expect_reject(valid_with("\"report-id\":\"r1\",", ""), "report-id", "missing");
    expect_reject(valid_with("\"report-id\":\"r1\"", "\"report-id\":null"), "report-id",
                  "not a string");
    expect_reject(valid_with("\"report-id\":\"r1\"", "\"report-id\":\"\""), "report-id", "empty");
}

static void test_reject_dates(void)
{
    expect_reject(valid_with("\"start-datetime\":\"2026-01-01T00:00:00Z\",", ""),
                  "date-range.start-datetime", "missing");
    expect_reject(valid_with("2026-01-01T23:59:59Z", "yesterday"), "date-range.end-datetime",
                  "not an RFC 3339 date-time");
    expect_reject(valid_with("2026-01-01T23:59:59Z", "2026-02-30T00:00:00Z"),
                  "date-range.end-datetime", "not an RFC 3339");
    expect_reject(valid_with("2026-01-01T23:59:59Z", "2025-12-31T00:00:00Z"),
                  "date-range.end-datetime", "before start-datetime");
    expect_reject(valid_with("\"date-range\":{", "\"date-range\":[],\"x\":{"), "date-range",
                  "not an object");
    expect_reject(valid_with("\"end-datetime\":\"2026-01-01T23:59:59Z\"", "\"end-datetime\":1"),
                  "date-range.end-datetime", "not a string");
    /* end == start is a (short) range, accepted */
    struct parsed p;
    parse(&p, valid_with("2026-01-01T23:59:59Z", "2026-01-01T00:00:00Z"));
    CHECK_INT(p.rc, TR_OK);
    done(&p);
}

static void test_reject_policies(void)
{
    expect_reject(R_HEAD "\"x\":1}", "policies", "missing");
    expect_reject(R_HEAD "\"policies\":{}}", "policies", "not an array");
    expect_reject(R_HEAD "\"policies\":[]}", "policies", "empty");
    expect_reject(R_HEAD "\"policies\":[7]}", "policies[0]", "not an object");
    expect_reject(valid_with("\"policy-type\":\"sts\",", ""), "policies[0].policy.policy-type",
                  "missing");
    expect_reject(valid_with("\"policy-type\":\"sts\"", "\"policy-type\":[\"sts\"]"),
                  "policies[0].policy.policy-type", "not a string");
    expect_reject(valid_with("{\"policy\":{", "{\"pol\":{"), "policies[0].policy", "missing");
    expect_reject(valid_with("\"summary\":{\"total-successful-session-count\":10,"
                             "\"total-failure-session-count\":3},",
                             ""),
                  "policies[0].summary", "missing");
    expect_reject(valid_with("\"total-successful-session-count\":10,", ""),
                  "policies[0].summary.total-successful-session-count", "missing");
    expect_reject(
        valid_with("\"total-failure-session-count\":3", "\"total-failure-session-count\":\"3\""),
        "policies[0].summary.total-failure-session-count", "not an integer");
    expect_reject(
        valid_with("\"total-failure-session-count\":3", "\"total-failure-session-count\":3.5"),
        "policies[0].summary.total-failure-session-count", "not an integer");
    expect_reject(
        valid_with("\"total-failure-session-count\":3", "\"total-failure-session-count\":-1"),
        "policies[0].summary.total-failure-session-count", "outside [0, 2^53]");
    expect_reject(valid_with("\"total-successful-session-count\":10",
                             "\"total-successful-session-count\":9007199254740993"),
                  "policies[0].summary.total-successful-session-count", "outside [0, 2^53]");
    /* 2^53 itself is accepted */
    struct parsed p;
    parse(&p, valid_with("\"total-successful-session-count\":10",
                         "\"total-successful-session-count\":9007199254740992"));
    CHECK_INT(p.rc, TR_OK);
    done(&p);
    /* 513 policies of 2^53 sessions each add up to more than 2^62 */
    {
        struct buf big;
        buf_init(&big, 1 << 20);
        const char *head = R_HEAD "\"policies\":[";
        buf_append(&big, head, strlen(head));
        for (int i = 0; i < 513; i++) {
            const char *pol = "{\"policy\":{\"policy-type\":\"no-policy-found\"},\"summary\":{"
                              "\"total-successful-session-count\":9007199254740992,"
                              "\"total-failure-session-count\":0}}";
            if (i)
                buf_append(&big, ",", 1);
            buf_append(&big, pol, strlen(pol));
        }
        buf_append(&big, "]}", 2);
        expect_reject((const char *)big.data, "policies", "add up to more than 2^62");
        buf_free(&big);
    }
    /* the second policy's error names its index */
    expect_reject(R_HEAD "\"policies\":[" R_POLICY ",{\"policy\":{\"policy-type\":\"sts\"},"
                         "\"summary\":{\"total-successful-session-count\":1}}]}",
                  "policies[1].summary.total-failure-session-count", "missing");
}

static void test_reject_failure_details(void)
{
    expect_reject(valid_with("\"result-type\":\"certificate-expired\",", ""),
                  "policies[0].failure-details[0].result-type", "missing");
    expect_reject(valid_with("\"result-type\":\"certificate-expired\"", "\"result-type\":5"),
                  "policies[0].failure-details[0].result-type", "not a string");
    expect_reject(valid_with(",\"failed-session-count\":3", ""),
                  "policies[0].failure-details[0].failed-session-count", "missing");
    expect_reject(valid_with("\"failed-session-count\":3", "\"failed-session-count\":-2"),
                  "policies[0].failure-details[0].failed-session-count", "outside");
    expect_reject(valid_with("\"failure-details\":[", "\"failure-details\":[1,"),
                  "policies[0].failure-details[0]", "not an object");
    /* failure-details missing, empty or null: accepted */
    struct parsed p;
    parse(&p, valid_with("\"failure-details\":[{\"result-type\":\"certificate-expired\","
                         "\"sending-mta-ip\":\"192.0.2.1\",\"receiving-ip\":\"2001:db8::1\","
                         "\"receiving-mx-hostname\":\"mx.example.com\","
                         "\"failed-session-count\":3}]",
                         "\"failure-details\":null"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "policies[0].failure-details", "null"));
    done(&p);
}

static void test_all_errors_reported(void)
{
    /* validate lists every error, not just the first */
    struct parsed p;
    parse(&p, "{\"date-range\":{\"start-datetime\":\"x\",\"end-datetime\":\"y\"},\"policies\":[]}");
    CHECK(p.rc != TR_OK);
    CHECK(p.d.errors >= 5);
    CHECK(has(&p, DIAG_ERROR, "organization-name", "missing"));
    CHECK(has(&p, DIAG_ERROR, "report-id", "missing"));
    CHECK(has(&p, DIAG_ERROR, "date-range.start-datetime", "not an RFC 3339"));
    CHECK(has(&p, DIAG_ERROR, "date-range.end-datetime", "not an RFC 3339"));
    CHECK(has(&p, DIAG_ERROR, "policies", "empty"));
    char first[TR_ERRLEN];
    diag_first_error(&p.d, first, sizeof first);
    CHECK_STR(first, "organization-name: missing");
    done(&p);
}

static void test_accepted_quirks(void)
{
    struct parsed p;

    /* date-times without a timezone: warning, UTC assumed */
    parse(&p, valid_with("\"start-datetime\":\"2026-01-01T00:00:00Z\"",
                         "\"start-datetime\":\"2026-01-01T00:00:00\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 1);
    CHECK(has(&p, DIAG_WARNING, "date-range.start-datetime", "no timezone; UTC assumed"));
    CHECK_INT(p.r.start_time, 1767225600);
    done(&p);

    /* contact-info null or missing: warning */
    parse(&p, valid_with("\"contact-info\":\"a@b.example\"", "\"contact-info\":null"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_WARNING, "contact-info", "null"));
    CHECK(p.r.contact_info == NULL);
    done(&p);
    parse(&p, valid_with("\"contact-info\":\"a@b.example\",", ""));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_WARNING, "contact-info", "missing"));
    done(&p);

    /* policy-domain missing: warning; the TLS-Report-Domain header fills in */
    parse(&p, valid_with("\"policy-domain\":\"Example.COM.\",", ""));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_WARNING, "policies[0].policy.policy-domain", "missing"));
    CHECK(p.r.policies[0].policy_domain == NULL);
    done(&p);
    parse_opt(&p, valid_with("\"policy-domain\":\"Example.COM.\",", ""), "Mail.Example");
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 1);
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.policy-domain", "TLS-Report-Domain"));
    CHECK_STR(p.r.policies[0].policy_domain, "mail.example");
    done(&p);
    /* a present policy-domain wins over the header */
    parse_opt(&p, VALID, "other.example");
    CHECK_STR(p.r.policies[0].policy_domain, "example.com");
    done(&p);

    /* mx-host as a single string */
    parse(&p, valid_with("\"mx-host\":[\"mx.example.com\"]", "\"mx-host\":\"*.example.com\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 0);
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.mx-host", "single string"));
    CHECK_INT(json_array_size(p.r.policies[0].mx_hosts), 1);
    CHECK_STR(json_string_value(json_array_get(p.r.policies[0].mx_hosts, 0)), "*.example.com");
    done(&p);

    /* Microsoft: the TLSA policy-string is one string holding a JSON array */
    parse(&p, valid_with("\"policy-string\":[\"version: STSv1\"]",
                         "\"policy-string\":[\"[\\\"3 1 1 AA\\\",\\\"3 1 1 BB\\\"]\"]"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.policy-string", "unwrapped"));
    CHECK_INT(json_array_size(p.r.policies[0].policy_strings), 2);
    CHECK_STR(json_string_value(json_array_get(p.r.policies[0].policy_strings, 1)), "3 1 1 BB");
    done(&p);
    /* ... but an ordinary one-line policy-string starting with '[' stays as it is */
    parse(&p, valid_with("\"policy-string\":[\"version: STSv1\"]", "\"policy-string\":[\"[x\"]"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_STR(json_string_value(json_array_get(p.r.policies[0].policy_strings, 0)), "[x");
    done(&p);

    /* unknown policy-type and result-type: stored verbatim */
    parse(&p, valid_with("\"policy-type\":\"sts\"", "\"policy-type\":\"dane-ta\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.policy-type", "stored as sent"));
    CHECK_STR(p.r.policies[0].policy_type, "dane-ta");
    done(&p);
    parse(&p, valid_with("certificate-expired", "Testing"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "failure-details[0].result-type", "not a result type"));
    CHECK_STR(p.r.policies[0].failures[0].result_type, "Testing");
    done(&p);

    /* IP fields that are not IP addresses: kept as text */
    parse(&p, valid_with("192.0.2.1", "x.x.x.x"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "failure-details[0].sending-mta-ip", "not an IP address"));
    CHECK_STR(p.r.policies[0].failures[0].sending_mta_ip, "x.x.x.x");
    done(&p);

    /* unknown keys at every level */
    parse(&p, valid_with("\"report-id\":\"r1\",", "\"report-id\":\"r1\",\"extra\":{\"a\":[1]},"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "extra", "unknown key"));
    done(&p);

    /* SocketLabs' receiving-mx-host-name typo is taken as receiving-mx-hostname */
    parse(&p, valid_with("\"receiving-mx-hostname\"", "\"receiving-mx-host-name\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_STR(p.r.policies[0].failures[0].receiving_mx_hostname, "mx.example.com");
    done(&p);

    /* failure counts that do not add up to the summary: the summary is counted */
    parse(&p, valid_with("\"failed-session-count\":3", "\"failed-session-count\":5"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "policies[0].failure-details", "adds up to 5, summary says 3"));
    CHECK_INT(p.r.policies[0].failed_sessions, 3);
    CHECK_INT(p.r.policies[0].failures[0].failed_session_count, 5);
    done(&p);

    /* end-datetime at the next day's 00:00:00Z */
    parse(&p, valid_with("2026-01-01T23:59:59Z", "2026-01-02T00:00:00Z"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "date-range.end-datetime", "next day"));
    done(&p);

    /* a UTF-8 byte order mark */
    parse(&p, "\xef\xbb\xbf" VALID);
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_NOTE, "", "byte order mark"));
    done(&p);

    /* non-ASCII UTF-8 in strings is fine */
    parse(&p, valid_with("\"Org\"", "\"Bundesamt f\xc3\xbcr Post\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_STR(p.r.organization_name, "Bundesamt f\xc3\xbcr Post");
    done(&p);
}

static void test_depth(void)
{
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = 0;
    struct parsed p;
    parse(&p, deep);
    CHECK_INT(p.rc, TR_ETOOBIG);
    CHECK(has(&p, DIAG_ERROR, "", "nested deeper than 32 levels"));
    done(&p);
    /* brackets inside strings do not count */
    char *str = malloc(n + 64);
    snprintf(str, n + 64, "{\"organization-name\":\"");
    size_t at = strlen(str);
    memset(str + at, '[', 1000);
    snprintf(str + at + 1000, 8, "\"}");
    parse(&p, str);
    CHECK(p.d.n > 0 && strstr(p.d.items[0].message, "nested") == NULL);
    done(&p);
    /* a configured depth */
    struct report_options opt = {4, NULL, NULL};
    memset(&p, 0, sizeof p);
    p.rc = report_parse(VALID, strlen(VALID), &opt, &p.r, &p.d);
    CHECK_INT(p.rc, TR_ETOOBIG);
    done(&p);
    free(deep);
    free(str);
}

static void test_datetimes(void)
{
    int64_t t;
    bool zone;
    CHECK_INT(report_parse_datetime("1970-01-01T00:00:00Z", &t, &zone), 0);
    CHECK_INT(t, 0);
    CHECK(zone);
    CHECK_INT(report_parse_datetime("2016-04-01T00:00:00Z", &t, &zone), 0);
    CHECK_INT(t, 1459468800);
    CHECK_INT(report_parse_datetime("2016-04-01t00:00:00z", &t, &zone), 0);
    CHECK_INT(t, 1459468800);
    CHECK_INT(report_parse_datetime("2016-04-01T02:00:00+02:00", &t, &zone), 0);
    CHECK_INT(t, 1459468800);
    CHECK_INT(report_parse_datetime("2016-03-31T16:00:00-0800", &t, &zone), 0);
    CHECK_INT(t, 1459468800);
    CHECK_INT(report_parse_datetime("2016-04-01T00:00:00.123456Z", &t, &zone), 0);
    CHECK_INT(t, 1459468800);
    CHECK_INT(report_parse_datetime("2016-04-01 00:00:00", &t, &zone), 0);
    CHECK(!zone);
    CHECK_INT(report_parse_datetime("2024-02-29T12:00:00Z", &t, &zone), 0); /* leap year */
    CHECK_INT(report_parse_datetime("2016-12-31T23:59:60Z", &t, &zone), 0); /* leap second */
    CHECK_INT(t, 1483228799);
    CHECK_INT(report_parse_datetime("2023-02-29T12:00:00Z", &t, &zone), -1);
    CHECK_INT(report_parse_datetime("2016-13-01T00:00:00Z", &t, &zone), -1);
    CHECK_INT(report_parse_datetime("2016-04-01T24:00:00Z", &t, &zone), -1);
    CHECK_INT(report_parse_datetime("2016-04-01T00:00:00.Z", &t, &zone), -1);
    CHECK_INT(report_parse_datetime("2016-04-01T00:00:00+2", &t, &zone), -1);
    CHECK_INT(report_parse_datetime("2016-04-01T00:00:00Zjunk", &t, &zone), -1);
    CHECK_INT(report_parse_datetime("2016-04-01", &t, &zone), -1);
    CHECK_INT(report_parse_datetime("", &t, &zone), -1);
    CHECK_INT(report_parse_datetime(NULL, &t, &zone), -1);
    char out[32];
    report_format_time(1459468800, out, sizeof out);
    CHECK_STR(out, "2016-04-01T00:00:00Z");
}

static void test_registries(void)
{
    CHECK(report_known_result_type("sts-webpki-invalid"));
    CHECK(report_known_result_type("dane-required"));
    CHECK(!report_known_result_type("Testing"));
    CHECK(report_known_policy_type("no-policy-found"));
    CHECK(!report_known_policy_type("STS"));
}

static void test_diag_json(void)
{
    struct parsed p;
    parse(&p, valid_with("\"contact-info\":\"a@b.example\"", "\"contact-info\":null"));
    json_t *j = diag_list_json(&p.d);
    CHECK_INT(json_array_size(j), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0), "level")), "warning");
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0), "path")), "contact-info");
    json_decref(j);
    done(&p);
}

/* ---- issue 17: the edge cases of peers' reports ------------------------------------------- */

/* The first policy of an accepted report; a zeroed one (with one zeroed
 * failure) when the report was rejected, so that a failing check does not crash. */
static const struct report_policy *pol0(const struct parsed *p)
{
    static struct report_failure no_failure;
    static struct report_policy none = {.failures = &no_failure};
    return p->rc == TR_OK && p->r.npolicies ? &p->r.policies[0] : &none;
}

/* failure-details that is not an array: accepted with a warning, the summary
 * counts, the breakdown by result type is unknown. */
static void test_failure_details_not_array(void)
{
    static const char *const shapes[] = {
        "\"failure-details\":{\"result-type\":\"certificate-expired\",\"failed-session-count\":3}",
        "\"failure-details\":\"certificate-expired\"",
        "\"failure-details\":3",
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        struct parsed p;
        parse(&p, valid_with(R_FAILURES, shapes[i]));
        CHECK_INT(p.rc, TR_OK);
        CHECK_INT(p.d.errors, 0);
        CHECK_INT(p.d.warnings, 1);
        CHECK(has(&p, DIAG_WARNING, "policies[0].failure-details", "not an array"));
        CHECK(has(&p, DIAG_WARNING, "policies[0].failure-details", "breakdown"));
        if (p.rc == TR_OK) {
            CHECK_INT(pol0(&p)->failed_sessions, 3); /* the summary counts */
            CHECK_INT(pol0(&p)->successful_sessions, 10);
            CHECK_INT(pol0(&p)->nfailures, 0);
            CHECK(pol0(&p)->failures_unknown);
        }
        done(&p);
    }
    /* the other side: an array, empty, missing or null is a known breakdown */
    struct parsed p;
    parse(&p, VALID);
    CHECK(!pol0(&p)->failures_unknown);
    done(&p);
    parse(&p, valid_with(R_FAILURES, "\"failure-details\":[]"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 0);
    CHECK(!pol0(&p)->failures_unknown);
    done(&p);
    parse(&p, valid_with(R_FAILURES, "\"failure-details\":null"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(!pol0(&p)->failures_unknown);
    done(&p);
    /* ... and a bad entry inside an array still rejects the report */
    expect_reject(valid_with(R_FAILURES, "\"failure-details\":[{\"result-type\":\"x\"}]"),
                  "policies[0].failure-details[0].failed-session-count", "missing");
}

/* organization-name or report-id of only white space: empty, rejected. */
static void test_blank_names(void)
{
    static const char *const blanks[] = {
        " ",       "   ",      "\\t", " \\r\\n ", "\\u00a0", "\\u3000", "\\u2003\\u2009",
        "\\ufeff", "\\u200b ",
    };
    for (size_t i = 0; i < sizeof blanks / sizeof *blanks; i++) {
        char org[64], rid[64];
        snprintf(org, sizeof org, "\"organization-name\":\"%s\"", blanks[i]);
        snprintf(rid, sizeof rid, "\"report-id\":\"%s\"", blanks[i]);
        expect_reject(valid_with("\"organization-name\":\"Org\"", org), "organization-name",
                      "empty");
        expect_reject(valid_with("\"report-id\":\"r1\"", rid), "report-id", "empty");
    }
    /* the other side: a name with white space around or inside it, or a
     * non-ASCII one, is a name */
    static const char *const names[] = {" Org ", "A B", "\\u00a0x", "\\u00e9", "-", "0"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char org[64];
        snprintf(org, sizeof org, "\"organization-name\":\"%s\"", names[i]);
        struct parsed p;
        parse(&p, valid_with("\"organization-name\":\"Org\"", org));
        CHECK_INT(p.rc, TR_OK);
        CHECK_INT(p.d.warnings, 0);
        done(&p);
    }
}

/* A date without a time: accepted with a warning, the start of that day UTC,
 * as an end its last second. */
static void test_date_without_time(void)
{
    struct parsed p;
    parse(&p, valid_with("\"start-datetime\":\"2026-01-01T00:00:00Z\"",
                         "\"start-datetime\":\"2026-01-01\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 1);
    CHECK(has(&p, DIAG_WARNING, "date-range.start-datetime", "date without a time"));
    CHECK(has(&p, DIAG_WARNING, "date-range.start-datetime", "2026-01-01T00:00:00Z"));
    CHECK_INT(p.r.start_time, 1767225600);
    CHECK_STR(p.r.start_text, "2026-01-01"); /* as sent */
    done(&p);

    parse(&p, valid_with("\"end-datetime\":\"2026-01-01T23:59:59Z\"",
                         "\"end-datetime\":\"2026-01-01\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 1);
    CHECK(has(&p, DIAG_WARNING, "date-range.end-datetime", "2026-01-01T23:59:59Z"));
    CHECK_INT(p.r.end_time, 1767225600 + 86399);
    done(&p);

    /* both: one whole day, as a sender that writes dates means it */
    parse(&p, valid_with("\"start-datetime\":\"2026-01-01T00:00:00Z\",\"end-datetime\":"
                         "\"2026-01-01T23:59:59Z\"",
                         "\"start-datetime\":\"2024-02-29\",\"end-datetime\":\"2024-02-29\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 2);
    CHECK_INT(p.r.start_time, 1709164800);
    CHECK_INT(p.r.end_time, 1709164800 + 86399);
    done(&p);

    /* the other side: what is not a date stays unparseable */
    static const char *const bad[] = {"2026-02-30",  "2023-02-29", "2026-1-01",  "2026-01-01Z",
                                      "2026-01-01T", "20260101",   "2026-13-01", "2026-01-01 "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char field[64];
        snprintf(field, sizeof field, "\"end-datetime\":\"%s\"", bad[i]);
        expect_reject(valid_with("\"end-datetime\":\"2026-01-01T23:59:59Z\"", field),
                      "date-range.end-datetime", "not an RFC 3339 date-time");
    }
    /* an end date before the start is still an error */
    expect_reject(
        valid_with("\"end-datetime\":\"2026-01-01T23:59:59Z\"", "\"end-datetime\":\"2025-12-31\""),
        "date-range.end-datetime", "before start-datetime");
}

/* A count written with a zero fraction (2.0): accepted with a warning. */
static void test_zero_fraction_counts(void)
{
    struct parsed p;
    parse(&p,
          valid_with("\"total-failure-session-count\":3", "\"total-failure-session-count\":3.0"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 1);
    CHECK(has(&p, DIAG_WARNING, "policies[0].summary.total-failure-session-count", "3.0"));
    CHECK(has(&p, DIAG_WARNING, "policies[0].summary.total-failure-session-count", "counted as 3"));
    CHECK_INT(pol0(&p)->failed_sessions, 3);
    done(&p);

    parse(&p, valid_with("\"failed-session-count\":3", "\"failed-session-count\":3.00"));
    CHECK_INT(p.rc, TR_OK);
    CHECK(has(&p, DIAG_WARNING, "failure-details[0].failed-session-count", "counted as 3"));
    CHECK_INT(pol0(&p)->failures[0].failed_session_count, 3);
    done(&p);

    parse(&p, valid_with("\"total-successful-session-count\":10",
                         "\"total-successful-session-count\":1e1"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(pol0(&p)->successful_sessions, 10);
    done(&p);

    parse(&p, valid_with("\"total-successful-session-count\":10",
                         "\"total-successful-session-count\":-0.0"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(pol0(&p)->successful_sessions, 0);
    done(&p);

    parse(&p, valid_with("\"total-successful-session-count\":10",
                         "\"total-successful-session-count\":9007199254740992.0"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(pol0(&p)->successful_sessions, 9007199254740992LL);
    done(&p);

    /* the other side: a real fraction, a negative or a too large one */
    expect_reject(
        valid_with("\"total-failure-session-count\":3", "\"total-failure-session-count\":2.5"),
        "policies[0].summary.total-failure-session-count", "not an integer");
    expect_reject(valid_with("\"failed-session-count\":3", "\"failed-session-count\":0.001"),
                  "failure-details[0].failed-session-count", "not an integer");
    expect_reject(
        valid_with("\"total-failure-session-count\":3", "\"total-failure-session-count\":-1.0"),
        "policies[0].summary.total-failure-session-count", "outside [0, 2^53]");
    expect_reject(valid_with("\"total-successful-session-count\":10",
                             "\"total-successful-session-count\":1e300"),
                  "policies[0].summary.total-successful-session-count", "outside [0, 2^53]");
    expect_reject(valid_with("\"total-successful-session-count\":10",
                             "\"total-successful-session-count\":18014398509481984.0"),
                  "policies[0].summary.total-successful-session-count", "outside [0, 2^53]");
}

/* "mx-host": "" is not a host: a warning, nothing stored for it. */
static void test_empty_mx_host(void)
{
    struct parsed p;
    parse(&p, valid_with("\"mx-host\":[\"mx.example.com\"]", "\"mx-host\":\"\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 1);
    CHECK(has(&p, DIAG_WARNING, "policies[0].policy.mx-host", "empty"));
    CHECK(has(&p, DIAG_WARNING, "policies[0].policy.mx-host", "not stored as a host"));
    CHECK(json_array_size(pol0(&p)->mx_hosts) == 0);
    done(&p);

    parse(&p, valid_with("\"mx-host\":[\"mx.example.com\"]",
                         "\"mx-host\":[\"\",\"mx.example.com\",\" \"]"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 2);
    CHECK(has(&p, DIAG_WARNING, "policies[0].policy.mx-host[0]", "not stored as a host"));
    CHECK(has(&p, DIAG_WARNING, "policies[0].policy.mx-host[2]", "not stored as a host"));
    CHECK_INT(json_array_size(pol0(&p)->mx_hosts), 1);
    CHECK_STR(json_string_value(json_array_get(pol0(&p)->mx_hosts, 0)), "mx.example.com");
    done(&p);

    parse(&p, valid_with("\"mx-host\":[\"mx.example.com\"]", "\"mx-host\":[\"\"]"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 1);
    CHECK_INT(json_array_size(pol0(&p)->mx_hosts), 0);
    done(&p);

    /* the other side: real hosts stay, an empty list is no finding */
    parse(&p, valid_with("\"mx-host\":[\"mx.example.com\"]", "\"mx-host\":[]"));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings + p.d.notes, 0);
    done(&p);
    parse(&p, valid_with("\"mx-host\":[\"mx.example.com\"]",
                         "\"mx-host\":[\"*.example.com\",\"mx2.example.com\"]"));
    CHECK_INT(p.d.warnings + p.d.notes, 0);
    CHECK_INT(json_array_size(pol0(&p)->mx_hosts), 2);
    done(&p);
}

/* A TLS-Report-Domain header naming another domain: the body wins, said in a
 * note (RFC 8460 §5.6 allows the discrepancy: warning counts stay as they are). */
static void test_header_domain_differs(void)
{
    struct parsed p;
    parse_opt(&p, VALID, "other.example");
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 0);
    CHECK_INT(p.d.notes, 1);
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.policy-domain", "other.example"));
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.policy-domain", "TLS-Report-Domain"));
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.policy-domain", "RFC 8460 §5.6"));
    CHECK_STR(pol0(&p)->policy_domain, "example.com"); /* the body wins */
    done(&p);

    /* two policies for example.com: one note for the report */
    parse_opt(&p, R_HEAD "\"policies\":[" R_POLICY "," R_POLICY "]}", "other.example");
    CHECK_INT(p.d.notes, 1);
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.policy-domain", "TLS-Report-Domain"));
    done(&p);
    /* the header's domain is filled into a policy without one; another policy
     * names another domain: the header still names no domain of the body */
    parse_opt(&p,
              R_HEAD "\"policies\":[{\"policy\":{\"policy-type\":\"no-policy-found\"},"
                     "\"summary\":{\"total-successful-session-count\":1,"
                     "\"total-failure-session-count\":0}}," R_POLICY "]}",
              "other.example");
    CHECK(has(&p, DIAG_NOTE, "policies[1].policy.policy-domain", "TLS-Report-Domain"));
    CHECK_STR(pol0(&p)->policy_domain, "other.example");
    CHECK(pol0(&p)->domain_from_header);
    done(&p);

    /* the other side: a report about several domains, one of them the header's */
    parse_opt(&p,
              R_HEAD
              "\"policies\":[{\"policy\":{\"policy-type\":\"no-policy-found\","
              "\"policy-domain\":\"other.example\"},\"summary\":{"
              "\"total-successful-session-count\":1,\"total-failure-session-count\":0}}," R_POLICY
              "]}",
              "example.com");
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings + p.d.notes, 0);
    done(&p);
    /* only header-filled domains: nothing of the body to compare */
    parse_opt(&p, valid_with("\"policy-domain\":\"Example.COM.\",", ""), "mail.example");
    CHECK_INT(p.d.notes, 1); /* "taken from the TLS-Report-Domain header" */
    CHECK(has(&p, DIAG_NOTE, "policies[0].policy.policy-domain", "taken from"));
    done(&p);

    /* the other side: the same domain in another letter case or with a dot */
    static const char *const same[] = {"example.com", "EXAMPLE.COM", "example.com.",
                                       " example.com"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        parse_opt(&p, VALID, same[i]);
        CHECK_INT(p.rc, TR_OK);
        CHECK_INT(p.d.warnings + p.d.notes, 0);
        done(&p);
    }
    /* no header: nothing to compare */
    parse_opt(&p, VALID, NULL);
    CHECK_INT(p.d.warnings + p.d.notes, 0);
    done(&p);
}

/* The RFC 8460 §4.4 field formats: IP addresses and additional-information as
 * a URI. Notes (kept as text), which validate --strict makes errors. */
static void test_field_formats(void)
{
    struct parsed p;
    parse(&p, valid_with("\"192.0.2.1\"", "\"192.0.2.256\""));
    CHECK_INT(p.rc, TR_OK);
    CHECK_INT(p.d.warnings, 0);
    CHECK(has(&p, DIAG_NOTE, "failure-details[0].sending-mta-ip", "not an IP address"));
    CHECK(has(&p, DIAG_NOTE, "failure-details[0].sending-mta-ip", "RFC 8460 §4.4"));
    done(&p);
    parse(&p, valid_with("\"2001:db8::1\"", "\"2001:db8:::1\""));
    CHECK(has(&p, DIAG_NOTE, "failure-details[0].receiving-ip", "RFC 8460 §4.4"));
    done(&p);

    static const char *const bad_uris[] = {
        "https://x.example/report_info ? id = 5065427 c - 23 d3# StatusCode",
        "www.example.com/info",
        "no scheme",
        "1http://x.example/",
        "https://x.example/%zz",
        "https://x.example/\\u00e9",
        "",
    };
    for (size_t i = 0; i < sizeof bad_uris / sizeof *bad_uris; i++) {
        char field[256];
        snprintf(field, sizeof field,
                 "\"receiving-ip\":\"2001:db8::1\",\"additional-information\":\"%s\"", bad_uris[i]);
        parse(&p, valid_with("\"receiving-ip\":\"2001:db8::1\"", field));
        CHECK_INT(p.rc, TR_OK);
        CHECK_INT(p.d.warnings, 0);
        CHECK(has(&p, DIAG_NOTE, "failure-details[0].additional-information", "not a URI"));
        CHECK(has(&p, DIAG_NOTE, "failure-details[0].additional-information", "RFC 8460 §4.4"));
        if (p.rc == TR_OK) /* kept as text */
            CHECK(pol0(&p)->failures[0].additional_information != NULL);
        done(&p);
    }
    /* the other side: URIs as RFC 3986 writes them */
    static const char *const good_uris[] = {
        "https://reports.example.com/info?id=5065427c-23d3#StatusCode",
        "mailto:postmaster@example.com",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "https://x.example/a%20b",
        "http://[2001:db8::1]:8080/x;y=1,z!$&'()*+",
    };
    for (size_t i = 0; i < sizeof good_uris / sizeof *good_uris; i++) {
        char field[256];
        snprintf(field, sizeof field,
                 "\"receiving-ip\":\"2001:db8::1\",\"additional-information\":\"%s\"",
                 good_uris[i]);
        parse(&p, valid_with("\"receiving-ip\":\"2001:db8::1\"", field));
        CHECK_INT(p.rc, TR_OK);
        CHECK_INT(p.d.warnings + p.d.notes, 0);
        done(&p);
    }
}

int main(void)
{
    test_valid();
    test_reject_document();
    test_reject_header_fields();
    test_reject_dates();
    test_reject_policies();
    test_reject_failure_details();
    test_all_errors_reported();
    test_accepted_quirks();
    test_depth();
    test_datetimes();
    test_registries();
    test_diag_json();
    test_failure_details_not_array();
    test_blank_names();
    test_date_without_time();
    test_zero_fraction_counts();
    test_empty_mx_host();
    test_header_domain_differs();
    test_field_formats();
    return check_done("report");
}
