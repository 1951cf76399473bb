/* test_jsondoc.c: the one-arena JSON parser against jansson, whose JSON it
 * must take exactly: every edge case of strings, numbers, literals, nesting
 * and duplicate keys is given to both, which must agree on whether it is JSON
 * and, where it is, on every value; the values of a few are checked by hand;
 * and every JSON payload of samples/ and the shared corpus parses to the same
 * document as jansson's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "corpus_payloads.h"
#include "tlsrptd/jsondoc.h"
#include "tlsrptd/report.h"

/* Both parsers on text[0..len): 1 when both take it and agree, 0 when both
 * refuse it, -1 when they disagree. */
static int compare(const char *text, size_t len)
{
    struct jsondoc *doc = NULL, *ref = NULL;
    tr_err rc = jsondoc_parse(text, len, &doc, NULL);
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    int verdict = -1;
    if (rc != TR_OK && j == NULL)
        verdict = 0;
    if (rc == TR_OK && j != NULL && jsondoc_from_jansson(j, &ref) == TR_OK)
        verdict = jd_equal(jsondoc_root(doc), jsondoc_root(ref)) ? 1 : -1;
    if (verdict < 0)
        fprintf(stderr, "disagree on [%.*s]: jsondoc %s, jansson %s\n", (int)len, text,
                rc == TR_OK ? "takes it" : "refuses it", j ? "takes it" : jerr.text);
    jsondoc_free(doc);
    jsondoc_free(ref);
    json_decref(j);
    return verdict;
}

static int compare_str(const char *text)
{
    return compare(text, strlen(text));
}

static void test_edges(void)
{
    static const char *const taken[] = {
        "{}",
        "[]",
        " \t\r\n{ } ",
        "0",
        "-0",
        "\"top\"",
        "true",
        "false",
        "null",
        "{\"a\":{\"b\":[1,{\"c\":null}]},\"d\":\"\"}",
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
        "[\"\\u00e9\\u20AC\\ud83d\\ude00\\uFFFF\\u0001\"]",
        "[\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf\"]",
        "[9223372036854775807,-9223372036854775808,123456789]",
        "[1.5,-0.0,0.0,1e2,1E+2,1e-2,2.5E-3,1e-400,123.456e7]",
        "{\"\":1,\"a\":2}",
        "{\"a\":1,\"A\":2}",
        "[[],[[]],{}]",
        "[\"\x7f\"]",
    };
    static const char *const refused[] = {
        "",
        " ",
        "{",
        "[",
        "]",
        "[1,]",
        "{\"a\":1,}",
        "{,}",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{a:1}",
        "{'a':1}",
        "[1 2]",
        "{\"a\":1 \"b\":2}",
        "tru",
        "truex",
        "nul",
        "falsey",
        "True",
        "NaN",
        "Infinity",
        "-",
        "+1",
        "01",
        "-01",
        "1.",
        ".5",
        "1e",
        "1e+",
        "0x10",
        "1.e5",
        "--1",
        "[\"a\"",
        "\"abc",
        "\"\\x41\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\ud800\"",
        "\"\\ud800x\"",
        "\"\\ud800\\u0041\"",
        "\"\\udc00\"",
        "\"\\u0000\"",
        "\"a\\\"",
        "[9223372036854775808]",
        "[-9223372036854775809]",
        "[99999999999999999999999]",
        "[1e400]",
        "[-1e400]",
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "[1] [2]",
        "{} x",
        "\"\xc0\xaf\"",
        "\"\xc1\xbf\"",
        "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xc3\"",
        "\"\xe4\xb8\"",
        "\"\x80\"",
        "\"\xff\"",
        "\"a\x01\"",
        "\"\t\"",
        "\"\n\"",
        "/*c*/1",
        "[1]//",
    };
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++)
        CHECK_INT(compare_str(taken[i]), 1);
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        CHECK_INT(compare_str(refused[i]), 0);
    /* a NUL byte inside the text, in a string and after the value */
    CHECK_INT(compare("[\"a\0b\"]", 7), 0);
    CHECK_INT(compare("[1]\0", 4), 0);
}

/* Nesting: as deep as jansson goes (2048 values, the innermost scalar
 * counted too), and one deeper. */
static void test_depth(void)
{
    for (size_t depth = 2047; depth <= 2049; depth++) {
        char *t = malloc(2 * depth + 1);
        memset(t, '[', depth);
        memset(t + depth, ']', depth);
        CHECK_INT(compare(t, 2 * depth), depth <= 2048 ? 1 : 0);
        memset(t, '[', depth - 1); /* depth - 1 arrays around a scalar */
        t[depth - 1] = '1';
        memset(t + depth, ']', depth - 1);
        CHECK_INT(compare(t, 2 * depth - 1), depth <= 2048 ? 1 : 0);
        free(t);
    }
}

/* jansson loses a NUL byte right after a number or a literal ("[1\0]" is
 * [1] to it); jsondoc refuses the text, which is not JSON, and a report
 * holding one is refused with the byte and its offset named. */
static void test_jansson_nul_quirk(void)
{
    struct jsondoc *doc;
    CHECK_INT(jsondoc_parse("[1\0]", 4, &doc, NULL), TR_EPARSE);
    json_t *j = json_loadb("[1\0]", 4, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    CHECK(j != NULL);
    json_decref(j);

    static const char text[] =
        "{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":"
        "\"2026-01-01T00:00:00Z\",\"end-datetime\":\"2026-01-01T23:59:59Z\"},"
        "\"contact-info\":\"a@example.com\",\"report-id\":\"r1\",\"policies\":[{\"policy\":"
        "{\"policy-type\":\"sts\",\"policy-domain\":\"example.com\"},\"summary\":"
        "{\"total-successful-session-count\":7\0,\"total-failure-session-count\":0}}]}";
    struct report r;
    struct diag_list d = {0};
    CHECK_INT(report_parse(text, sizeof text - 1, NULL, &r, &d), TR_EPARSE);
    char first[TR_ERRLEN];
    diag_first_error(&d, first, sizeof first);
    CHECK_HAS(first, "not valid JSON: byte 0x00 at offset 287");
    diag_list_free(&d);
}

static void test_values(void)
{
    const char *text = "{\"s\":\"a\\u00e9\\ud83d\\ude00\\n\",\"i\":-9223372036854775808,"
                       "\"r\":2.5,\"l\":[true,false,null,[]],\"o\":{},\"k\\u0041\":0}";
    struct jsondoc *doc;
    CHECK_INT(jsondoc_parse(text, strlen(text), &doc, NULL), TR_OK);
    const struct jd_value *root = jsondoc_root(doc);
    CHECK(jd_is(root, JD_OBJECT));
    CHECK_INT(root->len, 6);
    CHECK_STR(root->u.members[0].key, "s"); /* members in document order */
    CHECK_STR(root->u.members[5].key, "kA");
    const struct jd_value *s = jd_get(root, "s");
    CHECK(jd_is(s, JD_STRING));
    CHECK_STR(s->u.str, "a\xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK_INT(s->len, 8);
    CHECK(jd_is(jd_get(root, "i"), JD_INTEGER));
    CHECK(jd_get(root, "i")->u.integer == -9223372036854775807LL - 1);
    CHECK(jd_is(jd_get(root, "r"), JD_REAL) && jd_get(root, "r")->u.real == 2.5);
    const struct jd_value *l = jd_get(root, "l");
    CHECK(jd_is(l, JD_ARRAY) && l->len == 4);
    CHECK(l->u.items[0].type == JD_TRUE && l->u.items[1].type == JD_FALSE &&
          l->u.items[2].type == JD_NULL && l->u.items[3].type == JD_ARRAY);
    CHECK_INT(l->u.items[3].len, 0);
    CHECK(jd_is(jd_get(root, "o"), JD_OBJECT) && jd_get(root, "o")->len == 0);
    CHECK(jd_get(root, "missing") == NULL);
    CHECK(jd_get(l, "s") == NULL); /* not an object */
    CHECK(jd_get(NULL, "s") == NULL);
    jsondoc_free(doc);
}

/* A document too large for the first arena block: values and strings spread
 * over several blocks stay intact. */
static void test_large(void)
{
    size_t n = 20000;
    size_t size = n * 24 + 16;
    char *t = malloc(size), *p = t;
    *p++ = '[';
    for (size_t i = 0; i < n; i++)
        p += snprintf(p, size - (size_t)(p - t), "%s{\"k\":\"v%zu\"}", i ? "," : "", i);
    *p++ = ']';
    CHECK_INT(compare(t, (size_t)(p - t)), 1);
    struct jsondoc *doc;
    CHECK_INT(jsondoc_parse(t, (size_t)(p - t), &doc, NULL), TR_OK);
    const struct jd_value *last = &jsondoc_root(doc)->u.items[n - 1];
    CHECK_STR(jd_get(last, "k")->u.str, "v19999");
    jsondoc_free(doc);
    free(t);
}

/* Every JSON payload of samples/ and the shared corpus: the same document. */
static void same_document(const char *path, const unsigned char *text, size_t len, void *arg)
{
    (void)arg;
    const char *json = (const char *)text;
    if (len >= 3 && memcmp(json, "\xef\xbb\xbf", 3) == 0) {
        json += 3; /* as report.c skips it */
        len -= 3;
    }
    int verdict = compare(json, len);
    if (verdict < 0)
        fprintf(stderr, "%s: the parsers disagree\n", path);
    CHECK(verdict >= 0);
}

int main(int argc, char **argv)
{
    test_edges();
    test_depth();
    test_jansson_nul_quirk();
    test_values();
    test_large();
    CHECK(each_corpus_payload((const char *const *)argv + 1, argc - 1, same_document, NULL) >= 5);
    return check_done("jsondoc");
}
