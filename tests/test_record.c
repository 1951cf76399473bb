/* test_record.c: the _smtp._tls record module: domains, URIs, the value and
 * its zone strings (escaping, 255-octet splitting), the RFC 8460 §3 grammar
 * (accepted and rejected records with the column of the first error), the
 * discovery rules, and the MTA-STS record and policy. */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tlsrptd/record.h"

static void test_domain(void)
{
    char out[RECORD_DOMAIN_MAX], err[TR_ERRLEN];
    CHECK_INT(record_domain("Mail.Example.", out, err), TR_OK);
    CHECK_STR(out, "mail.example");
    CHECK_INT(record_domain("xn--bcher-kva.example", out, err), TR_OK);
    CHECK_INT(record_domain("a-1.b2.example", out, err), TR_OK);

    CHECK_INT(record_domain("bücher.example", out, err), TR_EINVAL);
    CHECK_HAS(err, "give its A-label form 'xn--bcher-kva.example'");
    CHECK_INT(record_domain("", out, err), TR_EINVAL);
    CHECK_HAS(err, "empty name");
    CHECK_INT(record_domain("a..example", out, err), TR_EINVAL);
    CHECK_HAS(err, "empty label");
    CHECK_INT(record_domain("-a.example", out, err), TR_EINVAL);
    CHECK_HAS(err, "starts or ends with '-'");
    CHECK_INT(record_domain("a_b.example", out, err), TR_EINVAL);
    CHECK_HAS(err, "'_' is not allowed in a host name");
    CHECK_INT(record_domain("192.0.2.1", out, err), TR_EINVAL);
    CHECK_HAS(err, "numeric");
    CHECK_INT(record_domain("a b.example", out, err), TR_EINVAL);
    CHECK_HAS(err, "a space is not allowed");

    /* labels of 63 octets pass, 64 do not */
    char name[400];
    memset(name, 'a', 63);
    memcpy(name + 63, ".example", 9);
    CHECK_INT(record_domain(name, out, err), TR_OK);
    memset(name, 'a', 64);
    memcpy(name + 64, ".example", 9);
    CHECK_INT(record_domain(name, out, err), TR_EINVAL);
    CHECK_HAS(err, "longer than 63 octets");

    /* 242 octets fit behind _smtp._tls. (253 in all), 243 do not */
    for (size_t len = 242; len <= 243; len++) {
        size_t k = 0;
        while (k < len) {
            size_t lab = len - k > 60 ? 59 : len - k;
            memset(name + k, 'b', lab);
            k += lab;
            if (k < len)
                name[k++] = '.';
        }
        name[len] = 0;
        CHECK_INT(strlen(name), len);
        CHECK_INT(record_domain(name, out, err), len == 242 ? TR_OK : TR_EINVAL);
    }
    CHECK_HAS(err, "would exceed 253 octets");

    CHECK_INT(record_mx_host("*.MX.example", out, err), TR_OK);
    CHECK_STR(out, "*.mx.example");
    CHECK_INT(record_mx_host("mx*.example", out, err), TR_EINVAL);
}

static void check_norm(const char *in, const char *want, const char *note_has)
{
    char *out = NULL, note[TR_ERRLEN], err[TR_ERRLEN];
    CHECK_INT(record_uri_normalize(in, &out, note, err), TR_OK);
    CHECK_STR(out, want);
    if (note_has)
        CHECK_HAS(note, note_has);
    else
        CHECK_STR(note, "");
    free(out);
}

static void check_bad_uri(const char *in, const char *err_has)
{
    char *out = NULL, err[TR_ERRLEN];
    CHECK_INT(record_uri_normalize(in, &out, NULL, err), TR_EINVAL);
    CHECK(out == NULL);
    CHECK_HAS(err, err_has);
}

static void test_uri(void)
{
    check_norm("https://collector.example/tlsrpt", "https://collector.example/tlsrpt", NULL);
    check_norm("HTTPS://Collector.Example:8443/TLSRPT", "https://collector.example:8443/TLSRPT",
               NULL);
    check_norm("MailTo:TLSRPT@Mail.Example", "mailto:TLSRPT@mail.example", NULL);
    check_norm("https://c.example/a;b,c!d", "https://c.example/a%3Bb%2Cc%21d",
               "';' as %3B, ',' as %2C, '!' as %21");
    check_norm("https://c.example/a%2cb", "https://c.example/a%2Cb", NULL);
    check_norm("mailto:%22a%20b%22@C.example", "mailto:%22a%20b%22@c.example", NULL);
    check_norm("mailto:a.b+tag@c.example?subject=TLS", "mailto:a.b+tag@c.example?subject=TLS",
               NULL);
    check_norm("https://[2001:db8::1]/r", "https://[2001:db8::1]/r", NULL);
    check_norm("https://192.0.2.1:443/r", "https://192.0.2.1:443/r", NULL);

    check_bad_uri("http://c.example/tlsrpt", "unknown scheme 'http:'");
    check_bad_uri("tlsrpt@c.example", "no scheme");
    check_bad_uri("mailto:", "without an address");
    check_bad_uri("mailto:nobody", "no '@'");
    check_bad_uri("mailto:a@b.example,c@d.example", "more than one address");
    check_bad_uri("mailto:a..b@c.example", "misplaced '.'");
    check_bad_uri("mailto:a@c_d.example", "mail domain");
    check_bad_uri("https:c.example", "without '//host'");
    check_bad_uri("https:///path", "without a host");
    check_bad_uri("https://c.example:99999/", "outside 1-65535");
    check_bad_uri("https://c.example/a b", "a space is not allowed in a URI");
    check_bad_uri("https://c.example/%zz", "two hex digits");
    check_bad_uri("https://c.example/\"q\"", "'\"' is not allowed");

    size_t pos;
    char err[TR_ERRLEN];
    CHECK_INT(record_uri_check("https://c.example/a!b", 21, &pos, err), TR_EINVAL);
    CHECK_INT(pos, 19);
    CHECK_HAS(err, "%21");

    char *u = NULL;
    CHECK_INT(record_mailbox_uri("tlsrpt@C.Example", &u, NULL, err), TR_OK);
    CHECK_STR(u, "mailto:tlsrpt@c.example");
    free(u);
    CHECK_INT(record_mailbox_uri("mailto:tlsrpt@c.example", &u, NULL, err), TR_OK);
    CHECK_STR(u, "mailto:tlsrpt@c.example");
    free(u);
    CHECK_INT(record_mailbox_uri("nobody", &u, NULL, err), TR_EINVAL);

    CHECK(record_uri_reaches("https://c.example/tlsrpt", "https://c.example/tlsrpt"));
    CHECK(record_uri_reaches("https://c.example/tlsrpt/mail.example", "https://c.example/tlsrpt/"));
    CHECK(record_uri_reaches("https://c.example/tlsrpt?d=1", "https://c.example/tlsrpt"));
    CHECK(!record_uri_reaches("https://c.example/tlsrptx", "https://c.example/tlsrpt"));
    CHECK(!record_uri_reaches("https://d.example/tlsrpt", "https://c.example/tlsrpt"));
    CHECK(record_uri_reaches("mailto:TLSRPT@c.example", "mailto:tlsrpt@c.example"));
    CHECK(record_uri_reaches("mailto:tlsrpt@c.example?subject=x", "mailto:tlsrpt@c.example"));
    CHECK(!record_uri_reaches("mailto:tlsrpt@c.example.net", "mailto:tlsrpt@c.example"));
    CHECK(!record_uri_reaches("https://c.example/tlsrpt", "mailto:tlsrpt@c.example"));
}

static void test_value_and_zone(void)
{
    const char *uris[] = {"https://collector.example/tlsrpt", "mailto:tlsrpt@mail.example"};
    char *v = record_value(uris, 2);
    CHECK_STR(v, "v=TLSRPTv1; rua=https://collector.example/tlsrpt,mailto:tlsrpt@mail.example");
    char *line = record_zone_line("_smtp._tls.mail.example", 3600, v);
    CHECK_STR(line, "_smtp._tls.mail.example. 3600 IN TXT \"v=TLSRPTv1; "
                    "rua=https://collector.example/tlsrpt,mailto:tlsrpt@mail.example\"");
    free(line);
    free(v);

    /* escaping: quotes and backslashes (mailto:"a\"b"@x), other bytes as \DDD */
    char *z = record_zone_strings("a\"b\\c\td", 7);
    CHECK_STR(z, "\"a\\\"b\\\\c\\009d\"");
    free(z);
    z = record_zone_strings("", 0);
    CHECK_STR(z, "\"\"");
    free(z);

    /* splitting: 255 octets are one string, 256 two (255 + 1), 511 three */
    char big[600];
    memset(big, 'x', sizeof big);
    for (size_t len = 254; len <= 511; len++) {
        z = record_zone_strings(big, len);
        size_t quotes = 0, xs = 0;
        for (char *p = z; *p; p++)
            quotes += *p == '"', xs += *p == 'x';
        size_t want = (len + 254) / 255;
        CHECK_INT(quotes, 2 * want);
        CHECK_INT(xs, len);
        CHECK_INT(strlen(z), len + 3 * want - 1);
        free(z);
    }
    z = record_zone_strings(big, 256);
    CHECK(strncmp(z + 256, "\" \"x\"", 5) == 0); /* '"' + 255 x, then the 256th alone */
    free(z);
    /* escaping counts the octets of the value, not of the escaped text */
    big[254] = '"';
    z = record_zone_strings(big, 255);
    CHECK_INT(strlen(z), 255 + 1 + 2);
    CHECK(strcmp(z + strlen(z) - 3, "\\\"\"") == 0);
    free(z);
}

struct pcase {
    const char *rec;
    size_t col; /* 0: valid */
    const char *has;
    int nrua, next;
};

static const struct pcase cases[] = {
    /* accepted */
    {"v=TLSRPTv1; rua=mailto:tlsrpt@mail.example", 0, NULL, 1, 0},
    {"v=TLSRPTv1;rua=https://c.example/tlsrpt", 0, NULL, 1, 0},
    {"v=TLSRPTv1;  \trua=https://c.example/tlsrpt", 0, NULL, 1, 0},
    {"v=TLSRPTv1; rua=https://c.example/tlsrpt;", 0, NULL, 1, 0},
    {"v=TLSRPTv1; rua=https://c.example/tlsrpt ; ", 0, NULL, 1, 0},
    {"v=TLSRPTv1; rua=https://c.example/r,mailto:a@b.example", 0, NULL, 2, 0},
    {"v=TLSRPTv1; rua=https://c.example/r , mailto:a@b.example", 0, NULL, 2, 0},
    {"v=TLSRPTv1; rua=https://c.example/r\t,\tmailto:a@b.example", 0, NULL, 2, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example; ext=1", 0, NULL, 1, 1},
    {"v=TLSRPTv1; x.y_z-1=v:/?@[]~; rua=mailto:a@b.example; 9=9;", 0, NULL, 1, 2},
    {"v=TLSRPTv1; rua=MAILTO:a@B.example", 0, NULL, 1, 0},
    {"v=TLSRPTv1; rua=https://c.example/a%21b%2Cc%3Bd", 0, NULL, 1, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example?subject=tls%20report", 0, NULL, 1, 0},
    /* rejected: the version */
    {"V=TLSRPTv1; rua=mailto:a@b.example", 1, "case-sensitive", 0, 0},
    {"v=tlsrptv1; rua=mailto:a@b.example", 1, "case-sensitive", 0, 0},
    {"rua=mailto:a@b.example; v=TLSRPTv1", 1, "must come first", 0, 0},
    {" v=TLSRPTv1; rua=mailto:a@b.example", 1, "must come first", 0, 0},
    {"v=STSv1; id=1", 1, "starts with 'v=TLSRPTv1'", 0, 0},
    {"v=TLSRPTv2; rua=mailto:a@b.example", 1, "starts with", 0, 0},
    {"v=TLSRPTv10; rua=mailto:a@b.example", 11, "expected ';'", 0, 0},
    {"v=TLSRPTv1 ; rua=mailto:a@b.example", 11, "whitespace before the first ';'", 0, 0},
    {"v=TLSRPTv1", 11, "expected '; rua=URI'", 0, 0},
    {"v=TLSRPTv1;", 12, "expected 'rua=URI'", 0, 0},
    {"v=TLSRPTv1; ", 13, "expected 'rua=URI'", 0, 0},
    /* rejected: rua */
    {"v=TLSRPTv1; Rua=mailto:a@b.example", 13, "case-sensitive", 0, 0},
    {"v=TLSRPTv1; RUA=mailto:a@b.example", 13, "'RUA=' is not 'rua='", 0, 0},
    {"v=TLSRPTv1; ext=1", 1, "no rua= field", 0, 0},
    {"v=TLSRPTv1; rua=", 17, "expected a URI after 'rua='", 0, 0},
    {"v=TLSRPTv1; rua= mailto:a@b.example", 17, "whitespace is not allowed", 0, 0},
    {"v=TLSRPTv1; rua =mailto:a@b.example", 16, "expected '='", 0, 0},
    {"v=TLSRPTv1; rua=http://c.example/r", 17, "unknown scheme 'http:'", 0, 0},
    {"v=TLSRPTv1; rua=ftp://c.example/r", 17, "unknown scheme 'ftp:'", 0, 0},
    {"v=TLSRPTv1; rua=tlsrpt@b.example", 17, "no scheme", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example,", 36, "expected a URI after ','", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example,,https://c.example/", 36, "expected a URI", 0, 0},
    {"v=TLSRPTv1; rua=https://c.example/a!b", 36, "'!' must be percent-encoded", 0, 0},
    {"v=TLSRPTv1; rua=https://c.example/a b", 37, "expected ';' between fields", 0, 0},
    {"v=TLSRPTv1; rua=https://c.example/a\"b", 36, "not allowed in a URI", 0, 0},
    {"v=TLSRPTv1; rua=mailto:nobody", 24, "no '@'", 0, 0},
    {"v=TLSRPTv1; rua=https://c.example/%4", 35, "two hex digits", 0, 0},
    /* rejected: delimiters and extensions */
    {"v=TLSRPTv1;; rua=mailto:a@b.example", 12, "empty field", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example;;", 36, "empty field", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example ", 35, "trailing whitespace", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example; ext=a=b", 42, "'=' is not allowed", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example; ext=", 41, "empty value", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example; ext", 40, "expected '='", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example; _x=1", 37, "expected a field name", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example; e*t=1", 38, "'*' is not allowed in a field name", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example; e=x y", 41, "expected ';' between fields", 0, 0},
    {"v=TLSRPTv1; rua=mailto:a@b.example; "
     "abcdefghijklmnopqrstuvwxyz0123456=1",
     69, "longer than 32", 0, 0},
};

static void test_parse(void)
{
    size_t nvalid = 0, ninvalid = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct pcase *c = &cases[i];
        struct record_parse pr;
        tr_err rc = record_parse(c->rec, strlen(c->rec), &pr);
        if (c->col == 0) {
            nvalid++;
            if (rc != TR_OK)
                fprintf(stderr, "case %zu: %s: col %zu %s\n", i, c->rec, pr.err_col, pr.err);
            CHECK_INT(rc, TR_OK);
            CHECK_INT(pr.err_col, 0);
            CHECK_INT(pr.nrua, c->nrua);
            CHECK_INT(pr.next, c->next);
        } else {
            ninvalid++;
            if (rc != TR_EPARSE || pr.err_col != c->col)
                fprintf(stderr, "case %zu: %s: col %zu %s\n", i, c->rec, pr.err_col, pr.err);
            CHECK_INT(rc, TR_EPARSE);
            CHECK_INT(pr.err_col, c->col);
            CHECK_HAS(pr.err, c->has);
        }
    }
    CHECK(nvalid >= 10);
    CHECK(ninvalid >= 20);

    /* destinations and extensions come back as spans of the record */
    const char *rec = "v=TLSRPTv1; rua=https://c.example/r , mailto:a@b.example; k=v;";
    struct record_parse pr;
    CHECK_INT(record_parse(rec, strlen(rec), &pr), TR_OK);
    CHECK_INT(pr.nrua, 2);
    CHECK(strncmp(rec + pr.rua[0].off, "https://c.example/r", pr.rua[0].len) == 0);
    CHECK_INT(pr.rua[0].len, strlen("https://c.example/r"));
    CHECK(strncmp(rec + pr.rua[1].off, "mailto:a@b.example", pr.rua[1].len) == 0);
    CHECK_INT(pr.next, 1);
    CHECK(strncmp(rec + pr.ext[0].off, "k=v", 3) == 0 && pr.ext[0].len == 3);
    CHECK_INT(pr.nwarn, 0);

    /* valid, with warnings: a second rua=, more than two destinations */
    rec = "v=TLSRPTv1; rua=mailto:a@b.example; rua=https://c.example/r,https://d.example/r";
    CHECK_INT(record_parse(rec, strlen(rec), &pr), TR_OK);
    CHECK_INT(pr.nrua, 3);
    CHECK_INT(pr.nwarn, 2);
    CHECK_INT(pr.warn_col[0], 37);
    CHECK_HAS(pr.warn[0], "second rua=");
    CHECK_HAS(pr.warn[1], "first only");

    /* a NUL octet (from DNS) is an error at its column, not the end */
    CHECK_INT(record_parse("v=TLSRPTv1; rua=mailto:a@b.example\0x", 36, &pr), TR_EPARSE);
    CHECK_INT(pr.err_col, 35);
}

static void test_discovery(void)
{
    const struct record_string here[] = {{"v=TLSRPTv1; rua=mailto:a@b.example", 35}};
    const struct record_string split[] = {
        {"v=TLSRPTv1;", 11}, {" rua=mailto:", 12}, {"a@b.example", 11}};
    const struct record_string spf[] = {{"v=spf1 -all", 11}};
    const struct record_string spaced[] = {{"v=TLSRPTv1 ; rua=mailto:a@b.example", 36}};
    /* split across the tag itself: joined, it begins with v=TLSRPTv1; */
    const struct record_string tag_split[] = {{"v=TLS", 5}, {"RPTv1;rua=mailto:a@b.example", 28}};
    struct record_discovery d;
    char err[TR_ERRLEN];

    struct record_txt one[] = {{here, 1}, {spf, 1}};
    CHECK_INT(record_discover(one, 2, &d, err), TR_OK);
    CHECK_INT(d.ntxt, 2);
    CHECK_INT(d.ntlsrpt, 1);
    CHECK_STR(d.record, "v=TLSRPTv1; rua=mailto:a@b.example");
    CHECK_INT(d.nstrings, 1);
    record_discovery_free(&d);

    struct record_txt s[] = {{split, 3}};
    CHECK_INT(record_discover(s, 1, &d, err), TR_OK);
    CHECK_STR(d.record, "v=TLSRPTv1; rua=mailto:a@b.example");
    CHECK_INT(d.len, 34);
    CHECK_INT(d.nstrings, 3);
    record_discovery_free(&d);

    struct record_txt ts[] = {{tag_split, 2}};
    CHECK_INT(record_discover(ts, 1, &d, err), TR_OK);
    record_discovery_free(&d);

    struct record_txt two[] = {{here, 1}, {split, 3}};
    CHECK_INT(record_discover(two, 2, &d, err), TR_EINVAL);
    CHECK(d.record == NULL);
    CHECK_INT(d.ntlsrpt, 2);
    CHECK_HAS(err, "2 records begin with 'v=TLSRPTv1;'");
    record_discovery_free(&d);

    struct record_txt none[] = {{spf, 1}, {spaced, 1}};
    CHECK_INT(record_discover(none, 2, &d, err), TR_EINVAL);
    CHECK_INT(d.ntlsrpt, 0);
    CHECK_HAS(err, "2 TXT records, none beginning with");
    record_discovery_free(&d);

    CHECK_INT(record_discover(NULL, 0, &d, err), TR_EINVAL);
    CHECK_HAS(err, "no TXT record");
    record_discovery_free(&d);
}

static void test_sts(void)
{
    const char *mx[] = {"mx1.mail.example", "*.mx.mail.example"};
    char *p = record_sts_policy("testing", mx, 2, 604800);
    CHECK_STR(p, "version: STSv1\r\nmode: testing\r\nmx: mx1.mail.example\r\n"
                 "mx: *.mx.mail.example\r\nmax_age: 604800\r\n");
    char id[17], id2[17];
    record_sts_id(p, id);
    CHECK_INT(strlen(id), 16);
    CHECK(strspn(id, "0123456789abcdef") == 16);
    record_sts_id(p, id2);
    CHECK_STR(id, id2);
    free(p);
    p = record_sts_policy("enforce", mx, 2, 604800);
    record_sts_id(p, id2);
    CHECK(strcmp(id, id2) != 0);
    free(p);
    /* FNV-1a 64 of the empty string is its offset basis */
    record_sts_id("", id);
    CHECK_STR(id, "cbf29ce484222325");
}

int main(void)
{
    test_domain();
    test_uri();
    test_value_and_zone();
    test_parse();
    test_discovery();
    test_sts();
    return check_done("test_record");
}
