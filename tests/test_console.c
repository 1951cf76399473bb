/* test_console.c: the console's answers: which asset, 304 for a current
 * If-None-Match, the gzip copy when Accept-Encoding takes it, 404 and 405, and
 * the security headers on every answer. (it_console drives the same through
 * the daemon and a browser.) */
#include <stdint.h>
#include <string.h>
#include <zlib.h>
#include "check.h"
#include "tlsrptd/console.h"

static const char *header(const struct console_reply *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->header[i][0], name) == 0)
            return r->header[i][1];
    return NULL;
}

static void check_security(const struct console_reply *r)
{
    CHECK_STR(header(r, "Content-Security-Policy"), CONSOLE_CSP);
    CHECK_STR(header(r, "X-Content-Type-Options"), "nosniff");
    CHECK_STR(header(r, "Referrer-Policy"), "no-referrer");
}

static const struct console_asset *asset(const char *path)
{
    for (size_t i = 0; i < console_nassets; i++)
        if (strcmp(console_assets[i].path, path) == 0)
            return &console_assets[i];
    return NULL;
}

static void test_assets(void)
{
    CHECK(console_nassets >= 10);
    const struct console_asset *page = asset("/"), *chart = asset("/console/chart.min.js");
    CHECK(page != NULL && chart != NULL);
    if (page == NULL || chart == NULL)
        return;
    CHECK_STR(page->content_type, "text/html; charset=utf-8");
    CHECK(strstr((const char *)page->data, "/console/app.js") != NULL); /* NUL-ended */
    CHECK_STR(chart->content_type, "text/javascript; charset=utf-8");
    CHECK(chart->gz != NULL && chart->gz_len < chart->len / 2);
    for (size_t i = 0; i < console_nassets; i++) {
        const struct console_asset *a = &console_assets[i];
        CHECK(a->etag[0] == '"' && strlen(a->etag) == 22);
        CHECK(a->gz == NULL || (a->gz_etag && strcmp(a->gz_etag, a->etag) != 0));
        if (a->gz == NULL)
            continue;
        /* the gzip copy holds the file, with no time stamp in its header */
        CHECK(a->gz[0] == 0x1f && a->gz[1] == 0x8b && a->gz[4] == 0 && a->gz[7] == 0);
        unsigned char out[300000];
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        CHECK_INT(inflateInit2(&zs, 16 + 15), Z_OK);
        zs.next_in = (unsigned char *)(uintptr_t)a->gz;
        zs.avail_in = (unsigned)a->gz_len;
        zs.next_out = out;
        zs.avail_out = sizeof out;
        CHECK_INT(inflate(&zs, Z_FINISH), Z_STREAM_END);
        CHECK_INT(zs.total_out, a->len);
        CHECK(zs.total_out == a->len && memcmp(out, a->data, a->len) == 0);
        inflateEnd(&zs);
    }
}

static void test_paths(void)
{
    CHECK(console_path("/"));
    CHECK(console_path("/console/app.js"));
    CHECK(console_path("/console/nope"));
    CHECK(!console_path("/consolex"));
    CHECK(!console_path("/api/v1/summary"));
    CHECK(!console_path(""));
}

static void test_answers(void)
{
    struct console_reply r;
    const struct console_asset *page = asset("/");
    if (page == NULL)
        return;
    console_answer("GET", "/", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(!r.gzip && r.body == page->data && r.len == page->len);
    CHECK_STR(header(&r, "ETag"), page->etag);
    CHECK_STR(header(&r, "Content-Type"), "text/html; charset=utf-8");
    CHECK(header(&r, "Content-Encoding") == NULL);
    check_security(&r);

    console_answer("HEAD", "/", NULL, "gzip, deflate, br", &r);
    CHECK_INT(r.status, 200);
    CHECK(r.gzip && r.body == page->gz && r.len == page->gz_len);
    CHECK_STR(header(&r, "Content-Encoding"), "gzip");
    CHECK_STR(header(&r, "ETag"), page->gz_etag);
    CHECK_STR(header(&r, "Vary"), "Accept-Encoding");

    /* If-None-Match: the weak comparison, either representation's tag, or * */
    char weak[64];
    snprintf(weak, sizeof weak, "\"x\", W/%s", page->etag);
    const char *hits[] = {page->etag, weak, page->gz_etag, "*", " \"a\" ,*"};
    for (size_t i = 0; i < sizeof hits / sizeof *hits; i++) {
        console_answer("GET", "/", hits[i], NULL, &r);
        CHECK_INT(r.status, 304);
        CHECK_INT(r.len, 0);
        CHECK_STR(header(&r, "ETag"), page->etag);
        check_security(&r);
    }
    const char *misses[] = {"\"other\"", "", "W/", ",,,", "\"4618b17455172b749b9\""};
    for (size_t i = 0; i < sizeof misses / sizeof *misses; i++) {
        console_answer("GET", "/", misses[i], NULL, &r);
        CHECK_INT(r.status, 200);
    }

    console_answer("GET", "/console/nope.js", NULL, "gzip", &r);
    CHECK_INT(r.status, 404);
    check_security(&r);
    console_answer("POST", "/", NULL, NULL, &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(header(&r, "Allow"), "GET, HEAD");
    check_security(&r);
}

static void test_accept_encoding(void)
{
    CHECK(console_accepts_gzip("gzip"));
    CHECK(console_accepts_gzip("GZIP"));
    CHECK(console_accepts_gzip("x-gzip"));
    CHECK(console_accepts_gzip("deflate, gzip;q=0.5, br"));
    CHECK(console_accepts_gzip("br;q=1.0, gzip ; q=1"));
    CHECK(console_accepts_gzip("*"));
    CHECK(console_accepts_gzip("identity, *;q=0.1"));
    CHECK(!console_accepts_gzip(NULL));
    CHECK(!console_accepts_gzip(""));
    CHECK(!console_accepts_gzip("identity"));
    CHECK(!console_accepts_gzip("br, deflate"));
    CHECK(!console_accepts_gzip("gzip;q=0"));
    CHECK(!console_accepts_gzip("gzip;q=0.000, *"));
    CHECK(!console_accepts_gzip("*;q=0"));
    CHECK(!console_accepts_gzip("gzipx, xgzip"));
    CHECK(!console_accepts_gzip("*, gzip;q=0")); /* listed wins over * */
    char huge[10000];
    memset(huge, ',', sizeof huge - 6);
    memcpy(huge + sizeof huge - 6, "gzip", 5);
    CHECK(!console_accepts_gzip(huge)); /* only the first 4 KiB are looked at */
}

int main(void)
{
    test_assets();
    test_paths();
    test_answers();
    test_accept_encoding();
    return check_done("console");
}
