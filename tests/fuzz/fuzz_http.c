/* fuzz_http.c: libFuzzer target for the HTTP request path of a report POST:
 * endpoint_status() (endpoint.c), which runs the head checks, the gunzip of
 * Content-Encoding, the decode, the JSON pre-scan and the validator exactly
 * as `tlsrptd serve` does for each request (http.c calls the same
 * functions), with the daemon's default limits. Nothing is stored.
 *
 * Input: a request line "METHOD PATH", header lines "Name: value", an empty
 * line, then the body (LF or CRLF line ends; a missing empty line means an
 * empty body). Properties, or the target aborts: the status is one the
 * endpoint may give; every refusal names its reason; a request for another
 * path than /tlsrpt is 404 and only POST reaches the body; and for inputs up
 * to 64 KiB, the same request gives the same status twice and the weight the
 * prepare pool would charge is at least the bytes the prepared job holds
 * (with the tree the job parsed). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tlsrptd/endpoint.h"

#define FUZZ_HTTP_MAX_BODY  ((size_t)10 << 20) /* the default max_body */
#define FUZZ_HTTP_CHECK_MAX ((size_t)64 << 10) /* inputs checked twice and weighed */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, unsigned status, const char *detail)
{
    fprintf(stderr, "fuzz_http: %s (status %u, %s)\n", what, status, detail);
    abort();
}

/* The next line of [*p, end): NUL-terminated copy in out (n bytes, cut). */
static bool next_line(const uint8_t **p, const uint8_t *end, char *out, size_t n)
{
    if (*p >= end)
        return false;
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    size_t len = (size_t)(stop - *p);
    if (len && (*p)[len - 1] == '\r')
        len--;
    size_t k = len < n - 1 ? len : n - 1;
    memcpy(out, *p, k);
    out[k] = 0;
    *p = nl ? nl + 1 : end;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char line[1024], method[32] = "", path[512] = "/";
    char values[4][256];
    struct endpoint_head h = {method, NULL, NULL, NULL, NULL};
    const char **slots[4] = {&h.content_length, &h.transfer_encoding, &h.content_type,
                             &h.content_encoding};
    static const char *const names[4] = {"content-length", "transfer-encoding", "content-type",
                                         "content-encoding"};

    if (next_line(&p, end, line, sizeof line)) {
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = 0;
            snprintf(path, sizeof path, "%.511s", sp + 1); /* longer paths are cut */
        }
        snprintf(method, sizeof method, "%.31s", line);
    }
    while (next_line(&p, end, line, sizeof line) && line[0]) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = 0;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(line, names[i]) == 0) {
                snprintf(values[i], sizeof values[i], "%.255s", v);
                *slots[i] = values[i];
            }
        }
    }
    const uint8_t *body = p;
    size_t len = (size_t)(end - p);
    /* exactly len bytes, so AddressSanitizer sees an over-read of the body */
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, body, len);

    const struct ingest_limits lim = INGEST_DEFAULT_LIMITS;
    char detail[TR_ERRLEN];
    unsigned status = endpoint_status("/tlsrpt", path, &h, copy, len, FUZZ_HTTP_MAX_BODY, &lim,
                                      detail, sizeof detail);
    switch (status) {
    case 201:
    case 400:
    case 404:
    case 405:
    case 411:
    case 413:
    case 415:
        break;
    default:
        fail("an unexpected status", status, detail);
    }
    if (status != 201 && detail[0] == 0)
        fail("a refusal without a reason", status, detail);
    bool report_path = endpoint_is_report_path("/tlsrpt", path);
    if ((status == 404) != !report_path)
        fail("404 is for paths outside /tlsrpt, and only for them", status, path);
    if (report_path && strcmp(method, "POST") != 0 && status != 405)
        fail("only POST reaches the body", status, method);

    if (len > FUZZ_HTTP_CHECK_MAX) { /* the seeds of huge reports: once is enough */
        free(copy);
        return 0;
    }
    char again[TR_ERRLEN];
    unsigned status2 = endpoint_status("/tlsrpt", path, &h, copy, len, FUZZ_HTTP_MAX_BODY, &lim,
                                       again, sizeof again);
    if (status2 != status || strcmp(again, detail) != 0)
        fail("the same request answered differently", status2, again);

    /* the prepare pool's charge covers what the prepared job holds */
    bool gzip_encoded = false;
    struct endpoint_answer a;
    if (status == 201 || status == 400) {
        endpoint_check_head(&h, FUZZ_HTTP_MAX_BODY, &gzip_encoded, &a);
        size_t allowance = endpoint_allowance(copy, len, gzip_encoded, &lim);
        bool more;
        struct store_source src = {.kind = "http", .name = path, .client = "fuzz"};
        struct ingest_job *job =
            endpoint_prepare(copy, len, false, gzip_encoded, &src, &lim, allowance, &more);
        if (more) {
            allowance = lim.max_inflated;
            job = endpoint_prepare(copy, len, false, gzip_encoded, &src, &lim, allowance, &more);
        }
        if (job && endpoint_job_weight(job, &lim) > endpoint_weight(len, allowance, &lim))
            fail("a job holds more than its weight", status, detail);
        ingest_job_free(job);
    }
    free(copy);
    return 0;
}
