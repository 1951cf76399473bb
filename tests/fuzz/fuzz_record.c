/* fuzz_record.c: libFuzzer target for record.c, the parsers that read DNS
 * data and user input. Aborts when a property breaks: record_parse() reports
 * an error column inside the input (or just past it) or, for a valid record,
 * spans inside the input whose URIs pass record_uri_check(); the discovery
 * rules over the input cut into strings give back exactly the input;
 * record_uri_normalize() and record_domain() are idempotent and their output
 * passes their own checks; a generated value parses; and the zone strings of
 * the input unescape to the input, in pieces of at most 255 octets. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/record.h"

#define FUZZ_RECORD_MAX 4096 /* DNS allows 64 KiB; longer adds nothing here */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static __attribute__((noreturn)) void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_record: %s (%s)\n", what, detail);
    abort();
}

static void check_parse(const char *rec, size_t len)
{
    struct record_parse pr;
    tr_err rc = record_parse(rec, len, &pr);
    if (rc != TR_OK) {
        if (rc != TR_EPARSE || pr.err_col < 1 || pr.err_col > len + 1 || pr.err[0] == 0)
            fail("an error outside the input, or without a message", pr.err);
        return;
    }
    if (pr.nrua == 0 || len < 10 || memcmp(rec, "v=TLSRPTv1", 10) != 0)
        fail("a valid record without rua or v=TLSRPTv1 first", "");
    for (size_t i = 0; i < pr.nrua; i++) {
        size_t pos;
        char err[TR_ERRLEN];
        if (pr.rua[i].off + pr.rua[i].len > len ||
            record_uri_check(rec + pr.rua[i].off, pr.rua[i].len, &pos, err) != TR_OK)
            fail("a rua span outside the input, or not a valid URI", err);
    }
    for (size_t i = 0; i < pr.next; i++)
        if (pr.ext[i].off + pr.ext[i].len > len ||
            memchr(rec + pr.ext[i].off, '=', pr.ext[i].len) == NULL)
            fail("an extension span outside the input, or without '='", "");
}

static void check_discovery(const char *rec, size_t len, size_t cut)
{
    struct record_string strs[64];
    size_t n = 0;
    for (size_t off = 0; off < len && n < 63; off += cut)
        strs[n++] = (struct record_string){rec + off, len - off < cut ? len - off : cut};
    if (n == 63) /* the rest in one string */
        strs[n - 1].len = len - (size_t)(strs[n - 1].s - rec);
    struct record_txt txt = {strs, n};
    struct record_discovery d;
    char err[TR_ERRLEN];
    tr_err rc = record_discover(&txt, 1, &d, err);
    bool tagged = len >= 11 && memcmp(rec, "v=TLSRPTv1;", 11) == 0;
    if ((rc == TR_OK) != tagged)
        fail("discovery kept a record it should drop, or dropped one it should keep", err);
    if (rc == TR_OK && (d.len != len || memcmp(d.record, rec, len) != 0))
        fail("the strings joined are not the record", "");
    record_discovery_free(&d);
}

static void check_uri(const char *s)
{
    char *a = NULL, *b = NULL, err[TR_ERRLEN];
    if (record_uri_normalize(s, &a, NULL, err) != TR_OK)
        return;
    size_t pos;
    if (record_uri_check(a, strlen(a), &pos, err) != TR_OK)
        fail("a normalised URI fails the check", err);
    if (record_uri_normalize(a, &b, NULL, err) != TR_OK || strcmp(a, b) != 0)
        fail("normalising is not idempotent", a);
    const char *uris[] = {a};
    char *value = record_value(uris, 1);
    struct record_parse pr;
    if (value == NULL || record_parse(value, strlen(value), &pr) != TR_OK || pr.nrua != 1)
        fail("a generated value does not parse", value ? pr.err : "no value");
    if (!record_uri_reaches(a, a))
        fail("a URI does not reach itself", a);
    free(value);
    free(a);
    free(b);
}

static void check_domain(const char *s)
{
    char a[RECORD_DOMAIN_MAX], b[RECORD_DOMAIN_MAX], err[TR_ERRLEN];
    if (record_domain(s, a, err) != TR_OK)
        return;
    if (strlen(a) > 242 || record_domain(a, b, err) != TR_OK || strcmp(a, b) != 0)
        fail("a checked domain is too long or changes when checked again", a);
}

/* Undo record_zone_strings: the octets, and the largest piece. Strings are
 * quoted and separated by one space; inside, '\\' escapes one octet or DDD. */
static size_t unzone(const char *z, char *out, size_t *largest)
{
    size_t n = 0, piece = 0;
    bool in = false;
    *largest = 0;
    for (const char *p = z; *p; p++) {
        if (!in) {
            if (*p == '"')
                in = true, piece = 0;
            else if (*p != ' ')
                fail("text outside the quoted strings", z);
            continue;
        }
        if (*p == '"') {
            in = false;
            if (piece > *largest)
                *largest = piece;
            continue;
        }
        if (*p == '\\' && p[1] >= '0' && p[1] <= '9') {
            out[n++] = (char)((p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0'));
            p += 3;
        } else {
            if (*p == '\\')
                p++;
            out[n++] = *p;
        }
        piece++;
    }
    if (in)
        fail("an unterminated string", z);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_RECORD_MAX)
        return 0;
    const char *rec = (const char *)data;
    check_parse(rec, size);
    check_discovery(rec, size, 1 + (size ? data[size - 1] % 300 : 0));

    char *copy = malloc(size + 1), *back = malloc(size + 1);
    if (copy == NULL || back == NULL)
        abort();
    memcpy(copy, data, size);
    copy[size] = 0; /* the text before the first NUL, as from a command line */
    check_uri(copy);
    check_domain(copy);

    char *z = record_zone_strings(rec, size);
    size_t largest = 0;
    if (z == NULL || unzone(z, back, &largest) != size || memcmp(back, rec, size) != 0)
        fail("the zone strings do not unescape to the input", z ? z : "");
    if (largest > RECORD_STRING_MAX)
        fail("a zone string longer than 255 octets", "");
    free(z);
    free(copy);
    free(back);
    return 0;
}
