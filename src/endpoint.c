/* endpoint.c: the decisions of the report endpoint, without libmicrohttpd
 * (see endpoint.h). Pure functions of the request and the limits; the one
 * that prepares a body runs on a prepare-pool thread in serve. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tlsrptd/endpoint.h"

bool endpoint_is_report_path(const char *path, const char *url)
{
    size_t pl = strlen(path);
    return strncmp(url, path, pl) == 0 && (url[pl] == 0 || url[pl] == '/');
}

static bool refuse(struct endpoint_answer *a, unsigned status, const char *error,
                   const char *detail)
{
    a->status = status;
    a->error = error;
    snprintf(a->detail, sizeof a->detail, "%s", detail);
    a->retry_after = 0;
    return false;
}

bool endpoint_check_method(const struct endpoint_head *h, struct endpoint_answer *a)
{
    a->status = 0;
    if (h->method == NULL || strcmp(h->method, "POST") != 0)
        return refuse(a, 405, "method not allowed", "reports are POSTed");
    return true;
}

static bool media_type_ok(const char *ct)
{
    static const char *const ok[] = {"application/tlsrpt+gzip",  "application/tlsrpt+json",
                                     "application/tlsrpt",       "application/json",
                                     "application/gzip",         "application/x-gzip",
                                     "application/octet-stream", NULL};
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    for (const char *const *t = ok; *t; t++)
        if (strlen(*t) == n && strncasecmp(ct, *t, n) == 0)
            return true;
    return false;
}

bool endpoint_check_head(const struct endpoint_head *h, size_t max_body, bool *gzip_encoded,
                         struct endpoint_answer *a)
{
    a->status = 0;
    *gzip_encoded = false;
    if (h->content_length == NULL && h->transfer_encoding == NULL)
        return refuse(a, 411, "length required", "send Content-Length or a chunked body");
    if (h->content_length) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(h->content_length, &end, 10);
        if (errno == 0 && end != h->content_length && n > max_body) {
            refuse(a, 413, "request body too large", "");
            snprintf(a->detail, sizeof a->detail,
                     "Content-Length %llu is over the limit of %zu bytes", n, max_body);
            return false;
        }
    }
    if (h->content_type == NULL || !media_type_ok(h->content_type))
        return refuse(a, 415, "unsupported media type",
                      "send application/tlsrpt+gzip or application/tlsrpt+json");
    const char *ce = h->content_encoding;
    if (ce && (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0))
        *gzip_encoded = true;
    else if (ce && strcasecmp(ce, "identity") != 0)
        return refuse(a, 415, "unsupported content encoding", "only gzip is accepted");
    return true;
}

/* ---- what preparing costs ------------------------------------------------------------------- */

static size_t tree_bytes(size_t json, const struct ingest_limits *lim)
{
    size_t values = jsonscan_effective(&lim->json).max_values;
    size_t by_size =
        json > SIZE_MAX / ENDPOINT_TREE_PER_BYTE ? SIZE_MAX : json * ENDPOINT_TREE_PER_BYTE;
    size_t by_values = json + values * ENDPOINT_TREE_PER_VALUE;
    return by_size < by_values ? by_size : by_values;
}

static bool looks_like_json(const unsigned char *s, size_t n)
{
    size_t i = n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf ? 3 : 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i < n && (s[i] == '{' || s[i] == '[');
}

size_t endpoint_allowance(const void *body, size_t len, bool gzip_encoded,
                          const struct ingest_limits *lim)
{
    const unsigned char *b = body;
    size_t max = lim->max_inflated;
    if (!gzip_encoded && looks_like_json(b, len))
        return 0; /* nothing to inflate */
    if (len < 18 || b[0] != 0x1f || b[1] != 0x8b)
        return max; /* zlib or a mail message: no size to go by */
    /* gzip: the last member's size (mod 2^32) is in its last four bytes */
    size_t isize = (size_t)b[len - 4] | (size_t)b[len - 3] << 8 | (size_t)b[len - 2] << 16 |
                   (size_t)b[len - 1] << 24;
    size_t a = isize < ENDPOINT_INFLATE_FLOOR ? ENDPOINT_INFLATE_FLOOR : isize;
    if (len <= max / ENDPOINT_INFLATE_RATIO && a > len * ENDPOINT_INFLATE_RATIO)
        a = len * ENDPOINT_INFLATE_RATIO; /* more than deflate can give: the trailer lies */
    return a < max ? a : max;
}

size_t endpoint_weight(size_t len, size_t allowance, const struct ingest_limits *lim)
{
    /* the body and a copy (or GMime's), the inflated text and its gzip copy
     * for storage, the tree of the JSON, the diagnostics and bookkeeping */
    return 2 * len + 2 * allowance + tree_bytes(allowance ? allowance : len, lim) +
           ENDPOINT_WEIGHT_EXTRA;
}

size_t endpoint_job_weight(const struct ingest_job *job, const struct ingest_limits *lim)
{
    size_t json = 0;
    size_t bytes = ingest_job_bytes(job, &json);
    return bytes + (json ? tree_bytes(json, lim) : 0);
}

/* ---- preparing ------------------------------------------------------------------------------ */

struct ingest_job *endpoint_prepare(void *body, size_t len, bool take, bool gzip_encoded,
                                    const struct store_source *src, const struct ingest_limits *lim,
                                    size_t allowance, bool *again)
{
    struct ingest_limits l = *lim;
    bool capped = allowance > 0 && allowance < lim->max_inflated; /* 0: JSON, nothing inflates */
    l.max_inflated = capped ? allowance : lim->max_inflated;
    *again = false;
    if (!gzip_encoded) {
        struct ingest_job *job = ingest_prepare(body, len, take && !capped, src, &l);
        if (job && capped && ingest_job_inflate_capped(job)) {
            ingest_job_free(job);
            *again = true;
            return NULL;
        }
        if (take && capped)
            free(body);
        return job;
    }
    struct buf plain;
    char err[TR_ERRLEN];
    buf_init(&plain, l.max_inflated);
    tr_err e = ingest_inflate(body, len, &plain, &l, err);
    if (e == TR_ETOOBIG && capped) {
        buf_free(&plain);
        *again = true;
        return NULL;
    }
    if (e != TR_OK) {
        /* refused, but kept: the writer quarantines the body as received */
        buf_free(&plain);
        char reason[TR_ERRLEN];
        if (e == TR_EINVAL) /* over a bound of what a report may hold */
            snprintf(reason, sizeof reason, "%s", err);
        else
            snprintf(reason, sizeof reason, "Content-Encoding: gzip body: %.200s", err);
        if (e == TR_ENOMEM) {
            if (take)
                free(body);
            return NULL;
        }
        return ingest_prepare_rejected(body, len, take, src, reason);
    }
    if (plain.data == NULL && buf_reserve(&plain, 0) != TR_OK) {
        if (take)
            free(body);
        return NULL;
    }
    /* what is left of the allowance for a gzip body inside the gzip encoding */
    l.max_inflated -= plain.len < l.max_inflated ? plain.len : l.max_inflated;
    struct ingest_job *job = ingest_prepare(plain.data, plain.len, true, src, &l);
    if (job && capped && ingest_job_inflate_capped(job)) {
        ingest_job_free(job);
        *again = true;
        return NULL;
    }
    if (take)
        free(body);
    return job;
}

unsigned endpoint_status_of(enum ingest_outcome o)
{
    switch (o) {
    case INGEST_STORED:
        return 201;
    case INGEST_DUPLICATE:
        return 200;
    case INGEST_REJECTED:
        return 400;
    default:
        return 503;
    }
}

unsigned endpoint_status(const char *path, const char *url, const struct endpoint_head *h,
                         const void *body, size_t len, size_t max_body,
                         const struct ingest_limits *lim, char *detail, size_t n)
{
    struct endpoint_answer a;
    bool gzip_encoded;
    snprintf(detail, n, "%s", "");
    if (!endpoint_is_report_path(path, url)) {
        snprintf(detail, n, "not found");
        return 404;
    }
    if (!endpoint_check_method(h, &a) || !endpoint_check_head(h, max_body, &gzip_encoded, &a)) {
        snprintf(detail, n, "%s: %s", a.error, a.detail);
        return a.status;
    }
    if (len > max_body) {
        snprintf(detail, n, "the body is larger than %zu bytes", max_body);
        return 413;
    }
    struct store_source src = {.kind = "http", .name = url, .client = "fuzz"};
    bool again;
    size_t allowance = endpoint_allowance(body, len, gzip_encoded, lim);
    struct ingest_job *job = endpoint_prepare((void *)(uintptr_t)body, len, false, gzip_encoded,
                                              &src, lim, allowance, &again);
    if (again)
        job = endpoint_prepare((void *)(uintptr_t)body, len, false, gzip_encoded, &src, lim,
                               lim->max_inflated, &again);
    if (job == NULL) {
        snprintf(detail, n, "out of memory");
        return 503;
    }
    enum ingest_outcome o = ingest_job_verdict(job, detail, n);
    ingest_job_free(job);
    return endpoint_status_of(o);
}
