/* console.c: the answers to GET / and GET /console/NAME (see console.h):
 * which embedded asset, whether the client's copy is current (304), whether
 * it takes the gzip copy, and the headers. The assets themselves are
 * generated into console_assets.c at build time. Speaks no HTTP library. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tlsrptd/console.h"

#define MAX_HEADER_SCAN 4096 /* octets of If-None-Match / Accept-Encoding looked at */

static const unsigned char not_found[] = "not found\n";
static const unsigned char not_allowed[] = "method not allowed\n";

bool console_path(const char *url)
{
    return strcmp(url, "/") == 0 || strcmp(url, "/console") == 0 ||
           strncmp(url, "/console/", 9) == 0;
}

static const struct console_asset *find_asset(const char *url)
{
    for (size_t i = 0; i < console_nassets; i++)
        if (strcmp(console_assets[i].path, url) == 0)
            return &console_assets[i];
    return NULL;
}

/* The next comma-separated element of a header list: [*start, *end) trimmed.
 * Returns false at the end. */
static bool next_element(const char **p, const char *limit, const char **start, const char **end)
{
    const char *s = *p;
    while (s < limit && (*s == ' ' || *s == '\t' || *s == ','))
        s++;
    if (s >= limit || *s == 0)
        return false;
    const char *e = s;
    while (e < limit && *e && *e != ',')
        e++;
    *p = e;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *start = s;
    *end = e;
    return true;
}

static const char *scan_limit(const char *h)
{
    size_t n = strnlen(h, MAX_HEADER_SCAN);
    return h + n;
}

bool console_accepts_gzip(const char *ae)
{
    if (ae == NULL)
        return false;
    const char *p = ae, *limit = scan_limit(ae), *s, *e;
    int gzip = -1, star = -1;
    while (next_element(&p, limit, &s, &e)) {
        const char *semi = s;
        while (semi < e && *semi != ';')
            semi++;
        const char *ne = semi;
        if (semi == e)
            semi = NULL;
        while (ne > s && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        size_t nl = (size_t)(ne - s);
        bool q0 = false;
        if (semi) { /* ";q=0", ";q=0.0", ...: not acceptable */
            const char *q = semi + 1;
            while (q < e && (*q == ' ' || *q == '\t'))
                q++;
            if (e - q >= 3 && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
                q0 = q[2] == '0';
                for (const char *d = q + 3; q0 && d < e; d++)
                    q0 = *d == '0' || *d == '.';
            }
        }
        if ((nl == 4 && strncasecmp(s, "gzip", 4) == 0) ||
            (nl == 6 && strncasecmp(s, "x-gzip", 6) == 0))
            gzip = !q0;
        else if (nl == 1 && s[0] == '*')
            star = !q0;
    }
    return gzip >= 0 ? gzip == 1 : star == 1;
}

/* If-None-Match with the weak comparison (RFC 9110 §13.1.2): "*", or any
 * listed tag (W/ ignored) equal to one of the asset's tags. */
static bool none_match_hits(const char *inm, const struct console_asset *a)
{
    if (inm == NULL)
        return false;
    const char *p = inm, *limit = scan_limit(inm), *s, *e;
    while (next_element(&p, limit, &s, &e)) {
        if (e - s == 1 && s[0] == '*')
            return true;
        if (e - s > 2 && s[0] == 'W' && s[1] == '/')
            s += 2;
        size_t n = (size_t)(e - s);
        if ((strlen(a->etag) == n && memcmp(a->etag, s, n) == 0) ||
            (a->gz_etag && strlen(a->gz_etag) == n && memcmp(a->gz_etag, s, n) == 0))
            return true;
    }
    return false;
}

static void add_header(struct console_reply *r, const char *name, const char *value)
{
    if (r->nheaders < CONSOLE_MAX_HEADERS) {
        r->header[r->nheaders][0] = name;
        r->header[r->nheaders][1] = value;
        r->nheaders++;
    }
}

void console_answer(const char *method, const char *url, const char *if_none_match,
                    const char *accept_encoding, struct console_reply *out)
{
    memset(out, 0, sizeof *out);
    add_header(out, "Content-Security-Policy", CONSOLE_CSP);
    add_header(out, "X-Content-Type-Options", "nosniff");
    add_header(out, "Referrer-Policy", "no-referrer");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        out->status = 405;
        out->body = not_allowed;
        out->len = sizeof not_allowed - 1;
        add_header(out, "Allow", "GET, HEAD");
        add_header(out, "Content-Type", "text/plain; charset=utf-8");
        return;
    }
    const struct console_asset *a = find_asset(url);
    if (a == NULL) {
        out->status = 404;
        out->body = not_found;
        out->len = sizeof not_found - 1;
        add_header(out, "Content-Type", "text/plain; charset=utf-8");
        return;
    }
    out->gzip = a->gz && console_accepts_gzip(accept_encoding);
    add_header(out, "Cache-Control", "no-cache");
    add_header(out, "ETag", out->gzip ? a->gz_etag : a->etag);
    if (a->gz)
        add_header(out, "Vary", "Accept-Encoding");
    if (none_match_hits(if_none_match, a)) {
        out->status = 304;
        return;
    }
    out->status = 200;
    out->body = out->gzip ? a->gz : a->data;
    out->len = out->gzip ? a->gz_len : a->len;
    add_header(out, "Content-Type", a->content_type);
    if (out->gzip)
        add_header(out, "Content-Encoding", "gzip");
}
