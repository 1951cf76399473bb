/* test_mailcheck.c: the RFC 8460 §5.1 and §5.3 mail-format checks of
 * `validate --strict`, both sides of each: a message as RFC 8460 writes it
 * passes, each way a report generator can get it wrong is named with its
 * section. Messages are written here, parsed by mime.c and report.c as the
 * validator does. */
#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/mailcheck.h"

static const char REPORT[] =
    "{\"organization-name\":\"Sender\",\"date-range\":{\"start-datetime\":"
    "\"2026-01-01T00:00:00Z\",\"end-datetime\":\"2026-01-01T23:59:59Z\"},"
    "\"contact-info\":\"tlsrpt@Sender.example\",\"report-id\":\"r1\",\"policies\":[{\"policy\":"
    "{\"policy-type\":\"sts\",\"policy-domain\":\"mail.example\"},\"summary\":{"
    "\"total-successful-session-count\":1,\"total-failure-session-count\":0}}]}";
#define GOOD_NAME "sender.example!mail.example!1767225600!1767311999.json.gz"

/* What a test message is made of; NULL leaves a header field out. */
struct mail {
    const char *content_type; /* the message's; "" for a message that IS the report part */
    const char *report_domain, *report_submitter;
    const char *part_type;
    const char *filename;
    bool gzip; /* the part's bytes: gzip, or the JSON as it is */
    const char *report;
};

static struct mail good(void)
{
    struct mail m = {"multipart/report; report-type=tlsrpt; boundary=\"XX\"",
                     "mail.example",
                     "sender.example",
                     "application/tlsrpt+gzip",
                     GOOD_NAME,
                     true,
                     REPORT};
    return m;
}

struct checked {
    struct diag_list d;
    tr_err extracted, parsed;
};

/* Write the message, extract it, parse its report part and check it. */
static void check_mail(const struct mail *m, struct checked *out)
{
    memset(out, 0, sizeof *out);
    char err[TR_ERRLEN];
    struct buf body;
    buf_init(&body, 1 << 20);
    if (m->gzip)
        gz_deflate(m->report, strlen(m->report), 6, &body, err);
    else
        buf_append(&body, m->report, strlen(m->report));
    char *b64 = g_base64_encode(body.data, body.len);
    buf_free(&body);

    GString *s = g_string_new("From: tlsrpt@sender.example\r\nTo: rua@mail.example\r\n"
                              "Subject: Report Domain: mail.example Submitter: sender.example\r\n"
                              " Report-ID: <r1@sender.example>\r\n");
    if (m->report_domain)
        g_string_append_printf(s, "TLS-Report-Domain: %s\r\n", m->report_domain);
    if (m->report_submitter)
        g_string_append_printf(s, "TLS-Report-Submitter: %s\r\n", m->report_submitter);
    g_string_append(s, "MIME-Version: 1.0\r\n");
    GString *part = g_string_new(NULL);
    g_string_append_printf(part, "Content-Type: %s\r\nContent-Transfer-Encoding: base64\r\n",
                           m->part_type);
    if (m->filename)
        g_string_append_printf(part, "Content-Disposition: attachment; filename=\"%s\"\r\n",
                               m->filename);
    if (m->content_type[0])
        g_string_append_printf(s,
                               "Content-Type: %s\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
                               "A TLS report.\r\n--XX\r\n%s\r\n%s\r\n--XX--\r\n",
                               m->content_type, part->str, b64);
    else
        g_string_append_printf(s, "%s\r\n%s\r\n", part->str, b64);
    g_string_free(part, TRUE);
    g_free(b64);

    struct mime_message msg;
    static const struct mime_limits lim = MIME_DEFAULT_LIMITS;
    out->extracted = mime_extract(s->str, s->len, &lim, &msg, err);
    g_string_free(s, TRUE);
    if (out->extracted != TR_OK || msg.nparts != 1) {
        fprintf(stderr, "  test message not extracted: %s\n", err);
        mime_message_free(&msg);
        return;
    }
    struct buf json;
    buf_init(&json, 1 << 20);
    const struct buf *raw = &msg.parts[0].body;
    if (gz_is_compressed(raw->data, raw->len))
        gz_inflate(raw->data, raw->len, &json, err);
    else
        buf_append(&json, raw->data, raw->len);
    struct report_options ropt = {0, msg.report_domain, NULL};
    struct report r;
    struct diag_list rd = {0};
    out->parsed = report_parse(json.data, json.len, &ropt, &r, &rd);
    diag_list_free(&rd);
    mailcheck_report_part(&msg, 0, out->parsed == TR_OK ? &r : NULL, &out->d);
    if (out->parsed == TR_OK)
        report_free(&r);
    buf_free(&json);
    mime_message_free(&msg);
}

static void dump(const struct diag_list *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "    %s %s: %s\n", diag_level_name(d->items[i].level), d->items[i].path,
                d->items[i].message);
}

/* True when d has an error at path whose message holds msg and names section. */
static int has_error(const struct diag_list *d, const char *path, const char *msg,
                     const char *section)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct diag *g = &d->items[i];
        if (g->level == DIAG_ERROR && strcmp(g->path, path) == 0 && strstr(g->message, msg) &&
            strstr(g->message, section))
            return 1;
    }
    fprintf(stderr, "  no error at '%s' with '%s' and '%s'; have:\n", path, msg, section);
    dump(d);
    return 0;
}

/* Every finding is an error that names an RFC 8460 section. */
static void all_name_a_section(const struct diag_list *d)
{
    for (size_t i = 0; i < d->n; i++) {
        CHECK_INT(d->items[i].level, DIAG_ERROR);
        CHECK_HAS(d->items[i].message, "RFC 8460 §5.");
    }
}

/* m has exactly n findings, one of them the error described. */
static void expect(const struct mail *m, size_t n, const char *path, const char *msg,
                   const char *section)
{
    struct checked c;
    check_mail(m, &c);
    CHECK_INT(c.extracted, TR_OK);
    CHECK(has_error(&c.d, path, msg, section));
    if (c.d.n != n) {
        fprintf(stderr, "  expected %zu findings:\n", n);
        dump(&c.d);
    }
    CHECK_INT(c.d.n, n);
    all_name_a_section(&c.d);
    diag_list_free(&c.d);
}

static void expect_clean(const struct mail *m)
{
    struct checked c;
    check_mail(m, &c);
    CHECK_INT(c.extracted, TR_OK);
    CHECK_INT(c.parsed, TR_OK);
    if (c.d.n) {
        fprintf(stderr, "  expected no finding:\n");
        dump(&c.d);
    }
    CHECK_INT(c.d.n, 0);
    diag_list_free(&c.d);
}

/* The form RFC 8460 §5.1 and §5.3 describe passes, in its allowed variants. */
static void test_conforming(void)
{
    struct mail m = good();
    expect_clean(&m);
    m.filename = "sender.example!mail.example!1767225600!1767311999!0001abc.json.gz";
    expect_clean(&m);
    m.filename = "Sender.Example!MAIL.example!1767225600!1767311999.JSON.GZ"; /* ABNF: any case */
    expect_clean(&m);
    m = good();
    m.content_type = "Multipart/Report; Report-Type=\"TLSRPT\"; boundary=\"XX\"";
    expect_clean(&m);
    m = good();
    m.part_type = "application/tlsrpt+json";
    m.gzip = false;
    m.filename = "sender.example!mail.example!1767225600!1767311999.json";
    expect_clean(&m);
    m = good();
    m.report_domain = "MAIL.example.";
    m.report_submitter = "Sender.Example";
    expect_clean(&m);
}

/* §5.3: multipart/report; report-type=tlsrpt, and a multipart at all. */
static void test_message_type(void)
{
    struct mail m = good();
    m.content_type = "multipart/related; boundary=\"XX\"";
    expect(&m, 1, "message Content-Type", "multipart/related, not multipart/report", "§5.3");
    m.content_type = "multipart/mixed; boundary=\"XX\"";
    expect(&m, 1, "message Content-Type", "multipart/mixed, not multipart/report", "§5.3");
    m.content_type = "multipart/report; boundary=\"XX\"";
    expect(&m, 1, "message Content-Type", "without report-type=tlsrpt", "§5.3");
    m.content_type = "multipart/report; report-type=disposition-notification; boundary=\"XX\"";
    expect(&m, 1, "message Content-Type", "report-type=disposition-notification, not tlsrpt",
           "§5.3");
    m.content_type = ""; /* the message is the report part */
    expect(&m, 1, "message Content-Type", "not multipart", "§5.3");
}

/* §5.3: the report part's media type, and bytes that match it. */
static void test_part_type(void)
{
    struct mail m = good();
    m.part_type = "application/json";
    m.gzip = false;
    m.filename = "sender.example!mail.example!1767225600!1767311999.json";
    expect(&m, 1, "report part Content-Type",
           "application/json, not application/tlsrpt+json or application/tlsrpt+gzip", "§5.3");
    m = good();
    m.part_type = "application/tlsrpt";
    expect(&m, 1, "report part Content-Type", "application/tlsrpt, not", "§5.3");
    m = good();
    m.part_type = "application/gzip";
    expect(&m, 1, "report part Content-Type", "application/gzip, not", "§5.3");

    /* uncompressed JSON in a part typed +gzip and named .json.gz: both are wrong */
    m = good();
    m.gzip = false;
    expect(&m, 2, "report part Content-Type", "holds uncompressed JSON, not gzip", "§5.3");
    expect(&m, 2, "report part filename", "ends in .json.gz but the part holds uncompressed",
           "§5.1");
    /* gzip under +json, named .json */
    m = good();
    m.part_type = "application/tlsrpt+json";
    m.filename = "sender.example!mail.example!1767225600!1767311999.json";
    expect(&m, 2, "report part Content-Type", "holds gzip", "§5.3");
    expect(&m, 2, "report part filename", "ends in .json but the part holds gzip", "§5.1");
    /* gzip under +gzip but named .json */
    m = good();
    m.filename = "sender.example!mail.example!1767225600!1767311999.json";
    expect(&m, 1, "report part filename", "ends in .json but the part holds gzip", "§5.1");
}

/* §5.1: the file-name convention, and that it agrees with the report. */
static void test_filename(void)
{
    struct mail m = good();
    m.filename = NULL;
    expect(&m, 1, "report part filename", "none", "§5.1");
    static const char *const bad[] = {
        "report.json.gz",
        "sender.example!mail.example!1767225600!1767311999.gz",
        "sender.example!mail.example!1767225600!1767311999.json.zip",
        "sender.example!mail.example!1767225600.json.gz",
        "sender.example!mail.example!1767225600!1767311999!001!2.json.gz",
        "sender.example!mail.example!2026-01-01!1767311999.json.gz",
        "sender.example!mail.example!1767225600!1767311999!0-1.json.gz",
        "sender.example!mail.example!1767225600!1767311999!.json.gz",
        "sender example!mail.example!1767225600!1767311999.json.gz",
        "sender.example!!1767225600!1767311999.json.gz",
        "sender.example!mail.example!!1767311999.json.gz",
        "sender.example!mail.example!99999999999999999999999!1767311999.json.gz",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m.filename = bad[i];
        expect(&m, 1, "report part filename", "sender!policy-domain!begin-timestamp", "§5.1");
    }
    /* the convention kept, but the name says something else than the report */
    m.filename = "sender.example!other.example!1767225600!1767311999.json.gz";
    expect(&m, 1, "report part filename", "policy domain other.example", "§5.1");
    m.filename = "sender.example!mail.example!1767225601!1767311999.json.gz";
    expect(&m, 1, "report part filename", "begin-timestamp 1767225601", "§5.1");
    m.filename = "sender.example!mail.example!1767225600!1767312000.json.gz";
    expect(&m, 1, "report part filename", "end-timestamp 1767312000", "§5.1");
    m.filename = "google.com!mail.example!1767225600!1767311999.json.gz";
    expect(&m, 1, "report part filename", "sender google.com", "§5.1");
}

/* §5.3: the TLS-Report-Domain and TLS-Report-Submitter header fields. */
static void test_headers(void)
{
    struct mail m = good();
    m.report_domain = NULL;
    expect(&m, 1, "message TLS-Report-Domain", "missing", "§5.3");
    m.report_domain = "mail example";
    expect(&m, 1, "message TLS-Report-Domain", "not a domain name", "§5.3");
    m = good();
    m.report_submitter = NULL;
    expect(&m, 1, "message TLS-Report-Submitter", "missing", "§5.3");
    m.report_submitter = "-sender.example";
    expect(&m, 1, "message TLS-Report-Submitter", "not a domain name", "§5.3");
    m.report_submitter = "mail.sender.example";
    expect(&m, 1, "message TLS-Report-Submitter", "contact-info", "§5.3");
}

/* A report the validator rejected: the checks of the message alone still run. */
static void test_rejected_report(void)
{
    struct mail m = good();
    m.report = "{\"organization-name\":\"\"}";
    m.content_type = "multipart/related; boundary=\"XX\"";
    m.report_submitter = NULL;
    m.filename = "x.json.gz";
    struct checked c;
    check_mail(&m, &c);
    CHECK_INT(c.extracted, TR_OK);
    CHECK(c.parsed != TR_OK);
    CHECK(has_error(&c.d, "message Content-Type", "multipart/related", "§5.3"));
    CHECK(has_error(&c.d, "message TLS-Report-Submitter", "missing", "§5.3"));
    CHECK(has_error(&c.d, "report part filename", "sender!policy-domain", "§5.1"));
    CHECK_INT(c.d.n, 3);
    all_name_a_section(&c.d);
    diag_list_free(&c.d);
}

int main(void)
{
    test_conforming();
    test_message_type();
    test_part_type();
    test_filename();
    test_headers();
    test_rejected_report();
    return check_done("mailcheck");
}
