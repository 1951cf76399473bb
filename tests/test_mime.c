/* test_mime.c: finding report parts in MIME messages: media types in any
 * letter case, file names on generic types, nested message/rfc822, base64 and
 * quoted-printable, headers, and the part/depth/size limits. */
#include <dirent.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/mime.h"

static const char report_json[] = "{\"organization-name\":\"Org\",\"report-id\":\"r=1\"}";

static const char HEAD[] = "From: reporter@sender.example\r\n"
                           "To: tlsrpt@mail.example\r\n"
                           "Subject: Report Domain: mail.example\r\n"
                           "  Submitter: sender.example\r\n"
                           "Message-ID: <abc.123@sender.example>\r\n"
                           "TLS-Report-Domain: mail.example\r\n"
                           "TLS-Report-Submitter: sender.example\r\n"
                           "MIME-Version: 1.0\r\n";

static char *base64_gzip_report(void)
{
    struct buf gz;
    char err[TR_ERRLEN];
    buf_init(&gz, 1 << 20);
    gz_deflate(report_json, strlen(report_json), 6, &gz, err);
    char *b64 = g_base64_encode(gz.data, gz.len);
    buf_free(&gz);
    return b64;
}

static tr_err extract(const char *msg, struct mime_message *m, char *err)
{
    static const struct mime_limits lim = MIME_DEFAULT_LIMITS;
    return mime_extract(msg, strlen(msg), &lim, m, err);
}

static void test_standard_report(void)
{
    char *b64 = base64_gzip_report();
    GString *s = g_string_new(HEAD);
    g_string_append(s, "Content-Type: multipart/report; report-type=tlsrpt; boundary=\"XX\"\r\n\r\n"
                       "--XX\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
                       "--XX\r\nContent-Type: application/tlsrpt+gzip\r\n"
                       "Content-Transfer-Encoding: base64\r\n"
                       "Content-Disposition: attachment; filename=\"a!b!1!2.json.gz\"\r\n\r\n");
    g_string_append(s, b64);
    g_string_append(s, "\r\n--XX--\r\n");

    struct mime_message m;
    char err[TR_ERRLEN];
    CHECK_INT(extract(s->str, &m, err), TR_OK);
    CHECK_INT(m.nparts, 1);
    CHECK_STR(m.parts[0].media_type, "application/tlsrpt+gzip");
    CHECK_STR(m.parts[0].filename, "a!b!1!2.json.gz");
    CHECK(gz_is_compressed(m.parts[0].body.data, m.parts[0].body.len));
    struct buf out;
    buf_init(&out, 1 << 20);
    CHECK_INT(gz_inflate(m.parts[0].body.data, m.parts[0].body.len, &out, err), TR_OK);
    CHECK_STR((char *)out.data, report_json);
    buf_free(&out);
    CHECK_STR(m.report_domain, "mail.example");
    CHECK_STR(m.report_submitter, "sender.example");
    CHECK_STR(m.message_id, "abc.123@sender.example");
    CHECK(m.subject && strstr(m.subject, "Report Domain: mail.example") &&
          strstr(m.subject, "Submitter: sender.example") && !strchr(m.subject, '\n'));
    mime_message_free(&m);
    g_string_free(s, TRUE);
    g_free(b64);
}

static void test_types_and_names(void)
{
    GString *s = g_string_new(HEAD);
    g_string_append(
        s, "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
           /* mixed-case media type, quoted-printable */
           "--B\r\nContent-Type: Application/TLSRPT+Json\r\n"
           "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
           "{\"organization-name\":\"Org\",\"report-id\":\"r=3D1\"}\r\n"
           /* octet-stream with a .json.gz name (in Content-Type name=) */
           "--B\r\nContent-Type: application/octet-stream; name=\"report.JSON.GZ\"\r\n\r\nxx\r\n"
           /* application/json with a .json file name */
           "--B\r\nContent-Type: application/json\r\n"
           "Content-Disposition: attachment; filename=r.json\r\n\r\n{}\r\n"
           /* plain application/tlsrpt (uncompressed, no +json) */
           "--B\r\nContent-Type: application/tlsrpt\r\n\r\n{}\r\n"
           /* not reports: text without a name, octet-stream with another name */
           "--B\r\nContent-Type: text/plain\r\n\r\n{}\r\n"
           "--B\r\nContent-Type: application/octet-stream; name=\"invoice.pdf\"\r\n\r\nxx\r\n"
           "--B\r\nContent-Type: application/gzip\r\n\r\nxx\r\n"
           "--B--\r\n");
    struct mime_message m;
    char err[TR_ERRLEN];
    CHECK_INT(extract(s->str, &m, err), TR_OK);
    CHECK_INT(m.nparts, 4);
    if (m.nparts == 4) {
        CHECK_STR(m.parts[0].media_type, "application/tlsrpt+json");
        CHECK_STR((char *)m.parts[0].body.data,
                  "{\"organization-name\":\"Org\",\"report-id\":\"r=1\"}");
        CHECK_STR(m.parts[1].media_type, "application/octet-stream");
        CHECK_STR(m.parts[1].filename, "report.JSON.GZ");
        CHECK_STR(m.parts[2].media_type, "application/json");
        CHECK_STR(m.parts[3].media_type, "application/tlsrpt");
    }
    mime_message_free(&m);
    g_string_free(s, TRUE);
}

static void test_forwarded(void)
{
    /* the report travels inside a forwarded message/rfc822 part; the outer
     * message lacks the TLS-Report headers, the inner one has them */
    const char *msg = "From: admin@mail.example\r\nSubject: Fwd: report\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: multipart/mixed; boundary=\"O\"\r\n\r\n"
                      "--O\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                      "--O\r\nContent-Type: message/rfc822\r\n\r\n"
                      "From: reporter@sender.example\r\nMessage-ID: <inner@sender.example>\r\n"
                      "TLS-Report-Domain: inner.example\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: multipart/report; report-type=tlsrpt; boundary=\"I\"\r\n\r\n"
                      "--I\r\nContent-Type: application/tlsrpt+json\r\n\r\n{\"a\":1}\r\n--I--\r\n"
                      "\r\n--O--\r\n";
    struct mime_message m;
    char err[TR_ERRLEN];
    CHECK_INT(extract(msg, &m, err), TR_OK);
    CHECK_INT(m.nparts, 1);
    CHECK_STR(m.report_domain, "inner.example");
    CHECK_STR(m.subject, "Fwd: report"); /* the outer message's own headers win */
    CHECK_STR(m.media_type, "multipart/mixed");
    mime_message_free(&m);
}

static void test_two_reports_and_no_report(void)
{
    const char *two = "From: a@b\r\nContent-Type: multipart/report; boundary=\"Q\"\r\n\r\n"
                      "--Q\r\nContent-Type: application/tlsrpt+json\r\n\r\n{\"n\":1}\r\n"
                      "--Q\r\nContent-Type: application/tlsrpt+json\r\n\r\n{\"n\":2}\r\n--Q--\r\n";
    struct mime_message m;
    char err[TR_ERRLEN];
    CHECK_INT(extract(two, &m, err), TR_OK);
    CHECK_INT(m.nparts, 2);
    mime_message_free(&m);

    const char *none = "From: cron@host\r\nSubject: Cron output\r\nMessage-ID: <c@host>\r\n\r\n"
                       "nothing to see\r\n";
    CHECK_INT(extract(none, &m, err), TR_ENOREPORT);
    CHECK_HAS(err, "no TLS-RPT report part");
    CHECK_STR(m.subject, "Cron output"); /* headers are returned for the quarantine */
    CHECK_STR(m.message_id, "c@host");
    mime_message_free(&m);

    /* a missing closing boundary still yields the part */
    const char *open = "From: a@b\r\nContent-Type: multipart/report; boundary=\"Q\"\r\n\r\n"
                       "--Q\r\nContent-Type: application/tlsrpt+json\r\n\r\n{\"n\":1}\r\n--Q\r\n";
    CHECK_INT(extract(open, &m, err), TR_OK);
    CHECK_INT(m.nparts, 1);
    mime_message_free(&m);
}

static void test_limits(void)
{
    struct mime_message m;
    char err[TR_ERRLEN];

    /* part count */
    GString *s = g_string_new("From: a@b\r\nContent-Type: multipart/mixed; boundary=\"P\"\r\n\r\n");
    for (int i = 0; i < 50; i++)
        g_string_append(s, "--P\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    g_string_append(s, "--P--\r\n");
    struct mime_limits lim = MIME_DEFAULT_LIMITS;
    lim.max_parts = 20;
    CHECK_INT(mime_extract(s->str, s->len, &lim, &m, err), TR_ETOOBIG);
    CHECK_HAS(err, "more than 20 parts");
    mime_message_free(&m);
    g_string_free(s, TRUE);

    /* nesting depth */
    s = g_string_new("From: a@b\r\n");
    for (int i = 0; i < 40; i++)
        g_string_append_printf(
            s, "Content-Type: multipart/mixed; boundary=\"D%d\"\r\n\r\n--D%d\r\n", i, i);
    g_string_append(s, "Content-Type: application/tlsrpt+json\r\n\r\n{}\r\n");
    lim = (struct mime_limits)MIME_DEFAULT_LIMITS;
    CHECK_INT(mime_extract(s->str, s->len, &lim, &m, err), TR_ETOOBIG);
    CHECK_HAS(err, "nested deeper than 16");
    mime_message_free(&m);
    g_string_free(s, TRUE);

    /* report parts */
    s = g_string_new("From: a@b\r\nContent-Type: multipart/report; boundary=\"R\"\r\n\r\n");
    for (int i = 0; i < 5; i++)
        g_string_append(s, "--R\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n");
    g_string_append(s, "--R--\r\n");
    lim.max_reports = 4;
    CHECK_INT(mime_extract(s->str, s->len, &lim, &m, err), TR_ETOOBIG);
    CHECK_HAS(err, "more than 4 report parts");
    mime_message_free(&m);

    /* message size */
    lim = (struct mime_limits)MIME_DEFAULT_LIMITS;
    lim.max_message = 100;
    CHECK_INT(mime_extract(s->str, s->len, &lim, &m, err), TR_ETOOBIG);
    CHECK_HAS(err, "larger than 100 bytes");
    mime_message_free(&m);
    g_string_free(s, TRUE);
}

static void test_sniff(void)
{
    CHECK(mime_looks_like_message("From: a@b\r\n", 11));
    CHECK(mime_looks_like_message("Return-Path: <a@b>\n", 19));
    CHECK(mime_looks_like_message("From a@b Thu Jan  1 00:00:00 2026\n", 34));
    CHECK(!mime_looks_like_message("{\"a\":1}", 7));
    CHECK(!mime_looks_like_message("\x1f\x8b", 2));
    CHECK(!mime_looks_like_message("no colon here", 13));
    CHECK(!mime_looks_like_message(": empty name", 12));
}

/* Every .eml of the shared corpus yields its report part(s); the negative one none. */
static void test_corpus(const char *corpus)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/real", corpus);
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "shared corpus not found at %s\n", dir);
        CHECK(d != NULL);
        return;
    }
    struct dirent *de;
    int seen = 0;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 4, ".eml") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        gchar *data;
        gsize len;
        if (!g_file_get_contents(path, &data, &len, NULL)) {
            CHECK(!"corpus file readable");
            continue;
        }
        struct mime_message m;
        char err[TR_ERRLEN];
        static const struct mime_limits lim = MIME_DEFAULT_LIMITS;
        tr_err e = mime_extract(data, len, &lim, &m, err);
        if (strstr(de->d_name, "not-a-report"))
            CHECK_INT(e, TR_ENOREPORT);
        else {
            if (e != TR_OK)
                fprintf(stderr, "%s: %s\n", de->d_name, err);
            CHECK_INT(e, TR_OK);
            CHECK_INT(m.nparts, 1);
            CHECK_STR(m.media_type, "multipart/report");
            CHECK_STR(mime_param(&m, "report-type"), "tlsrpt");
            if (m.nparts == 1)
                CHECK(m.parts[0].is_gzip ==
                      (strcmp(m.parts[0].media_type, "application/tlsrpt+gzip") == 0));
        }
        mime_message_free(&m);
        g_free(data);
        seen++;
    }
    closedir(d);
    CHECK(seen >= 10);
}

/* A message with the report part given; the part's headers and body follow
 * the top-level Content-Type line ct. A NEW string (g_free). */
static char *message_with(const char *ct, const char *part_headers, const char *body)
{
    return g_strdup_printf("%sContent-Type: %s\r\n\r\n"
                           "--XX\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
                           "--XX\r\n%s\r\n%s\r\n--XX--\r\n",
                           HEAD, ct, part_headers, body);
}

/* What validate --strict needs (issue 17): the top-level media type and its
 * parameters, each report part's type, file name and whether it is gzip. */
static void test_strict_facts(void)
{
    char *b64 = base64_gzip_report();
    struct mime_message m;
    char err[TR_ERRLEN];

    /* the RFC 8460 §5.3 form */
    char *msg = message_with("multipart/report; report-type=\"tlsrpt\"; boundary=\"XX\"",
                             "Content-Type: application/tlsrpt+gzip\r\n"
                             "Content-Transfer-Encoding: base64\r\n"
                             "Content-Disposition: attachment; "
                             "filename=\"s.example!mail.example!1!2.json.gz\"\r\n",
                             b64);
    CHECK_INT(extract(msg, &m, err), TR_OK);
    CHECK_STR(m.media_type, "multipart/report");
    CHECK_STR(mime_param(&m, "report-type"), "tlsrpt");
    CHECK_STR(mime_param(&m, "Report-Type"), "tlsrpt");
    CHECK_STR(mime_param(&m, "boundary"), "XX");
    CHECK(mime_param(&m, "charset") == NULL);
    CHECK_INT(m.nparams, 2);
    CHECK_INT(m.nparts, 1);
    if (m.nparts == 1) {
        CHECK(m.parts[0].is_gzip);
        CHECK_STR(m.parts[0].filename, "s.example!mail.example!1!2.json.gz");
    }
    mime_message_free(&m);
    g_free(msg);

    /* multipart/related: still extracted (real senders must keep working),
     * and the type is there for --strict to name */
    msg = message_with("Multipart/Related; boundary=\"XX\"",
                       "Content-Type: application/tlsrpt+gzip\r\n"
                       "Content-Transfer-Encoding: base64\r\n",
                       b64);
    CHECK_INT(extract(msg, &m, err), TR_OK);
    CHECK_INT(m.nparts, 1);
    CHECK_STR(m.media_type, "multipart/related");
    CHECK(mime_param(&m, "report-type") == NULL);
    mime_message_free(&m);
    g_free(msg);

    /* a report part typed application/json (found by its .json name) */
    msg = message_with("multipart/report; report-type=tlsrpt; boundary=\"XX\"",
                       "Content-Type: application/json\r\n"
                       "Content-Disposition: attachment; filename=\"r.json\"\r\n",
                       report_json);
    CHECK_INT(extract(msg, &m, err), TR_OK);
    CHECK_INT(m.nparts, 1);
    if (m.nparts == 1) {
        CHECK_STR(m.parts[0].media_type, "application/json");
        CHECK(!m.parts[0].is_gzip);
    }
    mime_message_free(&m);
    g_free(msg);

    /* uncompressed JSON in a part typed +gzip and named .json.gz */
    msg = message_with("multipart/report; report-type=tlsrpt; boundary=\"XX\"",
                       "Content-Type: application/tlsrpt+gzip\r\n"
                       "Content-Disposition: attachment; filename=\"r.json.gz\"\r\n",
                       report_json);
    CHECK_INT(extract(msg, &m, err), TR_OK);
    CHECK_INT(m.nparts, 1);
    if (m.nparts == 1) {
        CHECK(!m.parts[0].is_gzip);
        CHECK_STR(m.parts[0].filename, "r.json.gz");
        CHECK_STR((char *)m.parts[0].body.data, report_json);
    }
    mime_message_free(&m);
    g_free(msg);

    /* a message that is not multipart: the report is the message's body */
    GString *s = g_string_new(HEAD);
    g_string_append(s, "Content-Type: application/tlsrpt+gzip\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n");
    g_string_append(s, b64);
    g_string_append(s, "\r\n");
    CHECK_INT(extract(s->str, &m, err), TR_OK);
    CHECK_INT(m.nparts, 1);
    CHECK_STR(m.media_type, "application/tlsrpt+gzip");
    CHECK_INT(m.nparams, 0);
    if (m.nparts == 1)
        CHECK(m.parts[0].is_gzip);
    mime_message_free(&m);
    g_string_free(s, TRUE);

    /* no Content-Type at all: text/plain (RFC 2045 §5.2), even without a report */
    const char *none = "From: cron@host\r\nSubject: Cron output\r\n\r\nnothing\r\n";
    CHECK_INT(extract(none, &m, err), TR_ENOREPORT);
    CHECK_STR(m.media_type, "text/plain");
    mime_message_free(&m);

    /* parameters are bounded */
    s = g_string_new("From: a@b\r\nContent-Type: multipart/report; boundary=\"Q\"");
    for (int i = 0; i < 100; i++)
        g_string_append_printf(s, "; p%d=v%d", i, i);
    g_string_append(s,
                    "\r\n\r\n--Q\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n--Q--\r\n");
    CHECK_INT(extract(s->str, &m, err), TR_OK);
    CHECK_INT(m.nparams, MIME_MAX_PARAMS);
    CHECK_STR(mime_param(&m, "boundary"), "Q");
    mime_message_free(&m);
    g_string_free(s, TRUE);
    g_free(b64);
}

int main(int argc, char **argv)
{
    test_standard_report();
    test_types_and_names();
    test_forwarded();
    test_two_reports_and_no_report();
    test_limits();
    test_sniff();
    test_strict_facts();
    if (argc > 2)
        test_corpus(argv[2]);
    return check_done("mime");
}
