/* test_report.c: the validator, both sides of every acceptance rule of
 * DESIGN.md §3, date-time parsing, and hostile JSON (depth, UTF-8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tlsrptd/buf.h"
#include "tlsrptd/report.h"

/* A valid report; tests substitute pieces with %s-free string surgery. */
#define R_HEAD                                                                                     \
    "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":\"2026-01-01T00:00:00Z\","  \
    "\"end-datetime\":\"2026-01-01T23:59:59Z\"},\"contact-info\":\"a@b.example\","                 \
    "\"report-id\":\"r1\","
#define R_POLICY                                                                                   \
    "{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":[\"version: STSv1\"],"                 \
    "\"policy-domain\":\"Example.COM.\",\"mx-host\":[\"mx.example.com\"]},"                        \
    "\"summary\":{\"total-successful-session-count\":10,\"total-failure-session-count\":3},"       \
    "\"failure-details\":[{\"result-type\":\"certificate-expired\",\"sending-mta-ip\":"            \
    "\"192.0.2.1\",\"receiving-ip\":\"2001:db8::1\",\"receiving-mx-hostname\":\"mx.example.com\"," \
    "\"failed-session-count\":3}]}"
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
        valid_with("\"total-failure-session-count\":3", "\"total-failure-session-count\":3.0"),
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
    expect_reject(valid_with("\"failure-details\":[{\"result-type\":\"certificate-expired\","
                             "\"sending-mta-ip\":\"192.0.2.1\",\"receiving-ip\":\"2001:db8::1\","
                             "\"receiving-mx-hostname\":\"mx.example.com\","
                             "\"failed-session-count\":3}]",
                             "\"failure-details\":{}"),
                  "policies[0].failure-details", "not an array");
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
    return check_done("report");
}
