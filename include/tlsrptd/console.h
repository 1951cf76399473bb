/* console.h: the web console of `tlsrptd serve` (DESIGN §11): its assets
 * (web/: HTML, CSS, JavaScript, SVG; and Debian's Chart.js), compiled into the binary by
 * cmake/embed_web.cmake, and the answer to a GET of one of them: GET / (the
 * page) and GET /console/NAME, with a strong ETag (If-None-Match: 304), the
 * gzip copy made at build time when the client accepts gzip, and the
 * security headers on every answer. The console reads only the JSON API
 * (/api/v1/...), which keeps its own access rule.
 *
 * Knows nothing of libmicrohttpd: http.c sends what console_answer() says. */
#ifndef TLSRPTD_CONSOLE_H
#define TLSRPTD_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

/* One embedded file (console_assets[], generated; ends with a NULL path). */
struct console_asset {
    const char *path; /* "/" (index.html) or "/console/NAME" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag;        /* quoted, strong */
    const unsigned char *gz; /* the gzip copy, NULL when it would not be smaller */
    size_t gz_len;
    const char *gz_etag; /* quoted, strong; differs from etag */
};
extern const struct console_asset console_assets[];
extern const size_t console_nassets;

/* Sent on every console answer. */
#define CONSOLE_CSP                                                                                \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "frame-ancestors 'none'"

#define CONSOLE_MAX_HEADERS 10

/* What to answer: a status, static bytes (never freed) and the headers. */
struct console_reply {
    unsigned status; /* 200, 304, 404 or 405 */
    const unsigned char *body;
    size_t len;
    const char *header[CONSOLE_MAX_HEADERS][2]; /* name, value; static strings */
    size_t nheaders;
    bool gzip; /* body is the gzip copy */
};

/* True for the console's paths: "/" and everything below /console/. */
bool console_path(const char *url);
/* Whether an Accept-Encoding header allows gzip: listed (or x-gzip) with a q
 * above 0, or not listed and "*" with a q above 0 (RFC 9110 §12.5.3). NULL:
 * no. (http.c asks it for the API's JSON too.) */
bool console_accepts_gzip(const char *accept_encoding);
/* The answer to method url (a console_path) with the request's
 * If-None-Match and Accept-Encoding (either may be NULL). */
void console_answer(const char *method, const char *url, const char *if_none_match,
                    const char *accept_encoding, struct console_reply *out);

#endif
