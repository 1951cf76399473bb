/* test_jsonscan.c: the JSON pre-scan: every bound at its limit and one past
 * it, with the path and the bound named; escaped keys; domains compared as
 * stored; what is not JSON is left to the parser. Also checks that every
 * report of samples/ and of the shared corpus passes with the defaults. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "corpus_payloads.h"
#include "tlsrptd/buf.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/jsonscan.h"
#include "tlsrptd/walk.h"

/* A growing text built from printf pieces. */
struct text {
    char *s;
    size_t len, cap;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->s = realloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static struct jsonscan_stats st;
static char err[TR_ERRLEN];

static tr_err scan(const struct text *t, const struct jsonscan_limits *lim)
{
    err[0] = 0;
    return jsonscan_check(t->s, t->len, lim, &st, err);
}

static tr_err scan_str(const char *s, const struct jsonscan_limits *lim)
{
    err[0] = 0;
    return jsonscan_check(s, strlen(s), lim, &st, err);
}

/* {"policies":[ POLICY x n ]} where each policy has `details` failure details */
static void report(struct text *t, size_t policies, size_t details, size_t strings, size_t domains)
{
    t->len = 0;
    add(t, "{\"organization-name\":\"x\",\"policies\":[");
    for (size_t p = 0; p < policies; p++) {
        add(t,
            "%s{\"policy\":{\"policy-type\":\"sts\",\"policy-domain\":\"D%zu.Example.\","
            "\"mx-host\":[",
            p ? "," : "", domains ? p % domains : 0);
        for (size_t k = 0; k < strings; k++)
            add(t, "%s\"mx%zu\"", k ? "," : "", k);
        add(t, "]},\"summary\":{},\"failure-details\":[");
        for (size_t k = 0; k < details; k++)
            add(t, "%s{\"result-type\":\"x\",\"failed-session-count\":1}", k ? "," : "");
        add(t, "]}");
    }
    add(t, "]}");
}

static void test_report_bounds(void)
{
    struct text t = {0};
    struct jsonscan_limits lim = {0};
    lim.max_policies = 5;
    lim.max_failure_details = 7;
    lim.max_policy_strings = 3;
    lim.max_policy_domains = 4;

    report(&t, 5, 7, 3, 4);
    CHECK_INT(scan(&t, &lim), TR_OK);

    report(&t, 6, 1, 1, 1);
    CHECK_INT(scan(&t, &lim), TR_ETOOBIG);
    CHECK_STR(st.path, "policies");
    CHECK_STR(err, "more than 5 policies (max_policies)");

    report(&t, 2, 8, 1, 1);
    CHECK_INT(scan(&t, &lim), TR_ETOOBIG);
    CHECK_STR(st.path, "policies[0].failure-details");
    CHECK_STR(err, "more than 7 entries (max_failure_details)");

    report(&t, 2, 1, 4, 1);
    CHECK_INT(scan(&t, &lim), TR_ETOOBIG);
    CHECK_STR(st.path, "policies[0].policy.mx-host");
    CHECK_STR(err, "more than 3 entries (max_policy_strings)");

    /* five domains, the last one over the bound; upper case and the trailing dot
     * make no difference (d0.example. == D0.Example.) */
    report(&t, 5, 1, 1, 5);
    CHECK_INT(scan(&t, &lim), TR_ETOOBIG);
    CHECK_STR(st.path, "policies[4].policy.policy-domain");
    CHECK_STR(err, "more than 4 distinct policy domains in one report (max_policy_domains)");
    CHECK_INT(scan_str("{\"policies\":[{\"policy\":{\"policy-domain\":\"a.example\"}},"
                       "{\"policy\":{\"policy-domain\":\"A.EXAMPLE.\"}},"
                       "{\"policy\":{\"policy-domain\":\"\"}},"
                       "{\"policy\":{\"policy-domain\":\"b.example\"}}]}",
                       &(struct jsonscan_limits){.max_policy_domains = 2}),
              TR_OK);

    /* the defaults: 1000 policies, 10000 failure-details */
    report(&t, 1000, 1, 1, 100);
    CHECK_INT(scan(&t, NULL), TR_OK);
    report(&t, 1001, 1, 1, 1);
    CHECK_INT(scan(&t, NULL), TR_ETOOBIG);
    CHECK_HAS(err, "1000 policies");
    report(&t, 1, 10000, 1, 1);
    CHECK_INT(scan(&t, NULL), TR_OK);
    report(&t, 1, 10001, 1, 1);
    CHECK_INT(scan(&t, NULL), TR_ETOOBIG);
    CHECK_HAS(err, "10000 entries");
    free(t.s);
}

static void test_escaped_keys(void)
{
    struct jsonscan_limits lim = {.max_policies = 1};
    /* "polic\u0069es" is "policies" to jansson: the same bound applies */
    CHECK_INT(scan_str("{\"polic\\u0069es\":[{},{}]}", &lim), TR_ETOOBIG);
    CHECK_HAS(err, "max_policies");
    CHECK_INT(scan_str("{\"policies\\/\":[{},{}]}", &lim), TR_OK); /* "policies/" */
    CHECK_INT(scan_str("{\"nested\":{\"policies\":[{},{}]}}", &lim), TR_OK);
    CHECK_INT(scan_str("[{\"policies\":[{},{}]}]", &lim), TR_OK);
    /* a policy-domain key written with an escape still counts domains */
    CHECK_INT(scan_str("{\"policies\":[{\"policy\":{\"policy-\\u0064omain\":\"a\"}},"
                       "{\"policy\":{\"policy-domain\":\"b\"}}]}",
                       &(struct jsonscan_limits){.max_policy_domains = 1}),
              TR_ETOOBIG);
}

static void test_strings_numbers_keys(void)
{
    struct jsonscan_limits lim = {.max_string = 8};
    CHECK_INT(scan_str("{\"a\":\"12345678\"}", &lim), TR_OK);
    CHECK_INT(scan_str("{\"a\":\"123456789\"}", &lim), TR_ETOOBIG);
    CHECK_STR(st.path, "a");
    CHECK_STR(err, "a string longer than 8 bytes (max_json_string)");
    /* escapes count as written */
    CHECK_INT(scan_str("{\"a\":\"\\\"\\\"\\\"\\\"\"}", &lim), TR_OK);
    CHECK_INT(scan_str("{\"a\":\"\\\"\\\"\\\"\\\"\\\"\"}", &lim), TR_ETOOBIG);
    CHECK_INT(scan_str("{\"123456789\":1}", &lim), TR_ETOOBIG);
    CHECK_STR(err, "a key longer than 8 bytes (max_json_string)");
    CHECK_INT(scan_str("[123456789]", &lim), TR_ETOOBIG);
    CHECK_STR(st.path, "[0]");
    CHECK_STR(err, "a number longer than 8 bytes (max_json_string)");
    CHECK_INT(scan_str("[12345678,true,null]", &lim), TR_OK);

    struct text t = {0};
    add(&t, "{");
    for (int i = 0; i < JSONSCAN_MAX_KEYS; i++)
        add(&t, "%s\"k%d\":%d", i ? "," : "", i, i);
    add(&t, "}");
    CHECK_INT(scan(&t, NULL), TR_OK);
    t.len--;
    add(&t, ",\"one-more\":0}");
    CHECK_INT(scan(&t, NULL), TR_ETOOBIG);
    CHECK_STR(st.path, "");
    CHECK_STR(err, "an object with more than 100 keys (a fixed limit)");

    t.len = 0;
    add(&t, "{\"x\":[");
    for (int i = 0; i <= JSONSCAN_MAX_ARRAY; i++)
        add(&t, "%s0", i ? "," : "");
    add(&t, "]}");
    CHECK_INT(scan(&t, NULL), TR_ETOOBIG);
    CHECK_STR(st.path, "x");
    CHECK_STR(err, "an array of more than 10000 elements (a fixed limit)");
    free(t.s);
}

static void test_values_and_depth(void)
{
    struct jsonscan_limits lim = {.max_values = 1000};
    struct text t = {0};
    add(&t, "[");
    for (int i = 0; i < 999; i++)
        add(&t, "%s[]", i ? "," : "");
    add(&t, "]");
    CHECK_INT(scan(&t, &lim), TR_OK);
    CHECK_INT(st.values, 1000);
    t.len--;
    add(&t, ",1]");
    CHECK_INT(scan(&t, &lim), TR_ETOOBIG);
    CHECK_STR(err, "more than 1000 values in one document (max_json_values)");
    free(t.s);

    struct jsonscan_limits d = {.max_depth = 3};
    CHECK_INT(scan_str("[[[]]]", &d), TR_OK);
    CHECK_INT(scan_str("[[[[]]]]", &d), TR_ETOOBIG);
    CHECK_STR(st.path, "");
    CHECK_STR(err, "JSON nested deeper than 3 levels (at byte 3)");
    /* brackets inside strings do not nest */
    CHECK_INT(scan_str("[\"[[[[[[\",{\"{{{{\":\"]]]]\"}]", &d), TR_OK);
}

static void test_not_json_is_left_to_the_parser(void)
{
    struct jsonscan_limits lim = {.max_depth = 2, .max_string = 4};
    /* the scan stops where the text stops being JSON: jansson stops there too */
    CHECK_INT(scan_str("[]][[[[[[[[", &lim), TR_OK);
    CHECK_INT(scan_str("[}[[[[[[", &lim), TR_OK);
    CHECK_INT(scan_str("[@ \"0123456789\"", &lim), TR_OK);
    CHECK_INT(scan_str("[\"abc", &lim), TR_OK);
    CHECK_INT(scan_str("\"ab\\", &lim), TR_OK);
    CHECK_INT(scan_str("", &lim), TR_OK);
    CHECK_INT(jsonscan_check("[\0[[[", 5, &lim, &st, err), TR_OK);
    CHECK_INT(jsonscan_check("[1,2]", 5, NULL, NULL, NULL), TR_OK);
    CHECK_INT(jsonscan_check("[[[[[[", 6, &lim, NULL, NULL), TR_ETOOBIG);
}

/* Fed in pieces (as it is inflated), a text gets the verdict and path it gets
 * whole; a string too long is refused before its end arrives. */
static tr_err feed_pieces(const struct text *t, const struct jsonscan_limits *lim, size_t step,
                          char *path, size_t n)
{
    struct jsonscan *sc = jsonscan_new(lim);
    tr_err rc = TR_OK;
    char e[TR_ERRLEN];
    for (size_t have = 0; rc == TR_OK && have < t->len;) {
        have = have + step < t->len ? have + step : t->len;
        /* a fresh copy each time: the text may move between calls */
        char *copy = malloc(have + 1);
        memcpy(copy, t->s, have);
        rc = jsonscan_feed(sc, copy, have, have == t->len, e);
        if (rc != TR_OK)
            snprintf(path, n, "%s", jsonscan_stats(sc)->path);
        free(copy);
    }
    jsonscan_free(sc);
    return rc;
}

static void test_incremental(void)
{
    struct text t = {0};
    struct jsonscan_limits lim = {.max_policies = 5,
                                  .max_failure_details = 7,
                                  .max_policy_strings = 3,
                                  .max_policy_domains = 4};
    struct {
        size_t policies, details, strings, domains;
        tr_err want;
    } cases[] = {{5, 7, 3, 4, TR_OK},
                 {6, 1, 1, 1, TR_ETOOBIG},
                 {2, 8, 1, 1, TR_ETOOBIG},
                 {2, 1, 4, 1, TR_ETOOBIG},
                 {5, 1, 1, 5, TR_ETOOBIG}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        report(&t, cases[c].policies, cases[c].details, cases[c].strings, cases[c].domains);
        CHECK_INT(scan(&t, &lim), cases[c].want);
        char whole[JSONSCAN_PATHLEN];
        snprintf(whole, sizeof whole, "%s", st.path);
        static const size_t steps[] = {1, 2, 3, 7, 64, 1000, 65536};
        for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
            char path[JSONSCAN_PATHLEN] = "";
            CHECK_INT(feed_pieces(&t, &lim, steps[k], path, sizeof path), cases[c].want);
            if (cases[c].want != TR_OK)
                CHECK_STR(path, whole);
        }
    }
    /* refused before the end of the string arrives */
    struct jsonscan *sc = jsonscan_new(&(struct jsonscan_limits){.max_string = 100});
    t.len = 0;
    add(&t, "\xef\xbb\xbf{\"policies\":[{\"policy\":{\"policy-domain\":\"");
    for (int i = 0; i < 101; i++)
        add(&t, "a");
    CHECK_INT(jsonscan_feed(sc, t.s, t.len - 1, false, err), TR_OK);
    CHECK_INT(jsonscan_feed(sc, t.s, t.len, false, err), TR_ETOOBIG);
    CHECK_STR(jsonscan_stats(sc)->path, "policies[0].policy.policy-domain");
    CHECK_INT(jsonscan_feed(sc, t.s, t.len, true, err), TR_ETOOBIG); /* for good */
    jsonscan_free(sc);
    /* a number at the end of a piece is not counted before it ends */
    sc = jsonscan_new(&(struct jsonscan_limits){.max_values = 3});
    CHECK_INT(jsonscan_feed(sc, "[1,2", 4, false, err), TR_OK);
    CHECK_INT(jsonscan_stats(sc)->values, 2);
    CHECK_INT(jsonscan_feed(sc, "[1,23]", 6, true, err), TR_OK);
    CHECK_INT(jsonscan_stats(sc)->values, 3);
    jsonscan_free(sc);
    free(t.s);
}

/* Every JSON payload of samples/ and the shared corpus is within the defaults. */
static void within_defaults(const char *path, const unsigned char *json, size_t len, void *arg)
{
    (void)arg;
    tr_err rc = jsonscan_check(json, len, NULL, &st, err);
    if (rc != TR_OK)
        fprintf(stderr, "%s: %s: %s\n", path, st.path, err);
    CHECK_INT(rc, TR_OK);
}

int main(int argc, char **argv)
{
    test_report_bounds();
    test_escaped_keys();
    test_strings_numbers_keys();
    test_values_and_depth();
    test_not_json_is_left_to_the_parser();
    test_incremental();
    CHECK(each_corpus_payload((const char *const *)argv + 1, argc - 1, within_defaults, NULL) >= 5);
    return check_done("jsonscan");
}
