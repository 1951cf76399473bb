/* endpoint.h: the decisions of the report endpoint (POST {path}), without
 * libmicrohttpd: which requests are refused on their head (405, 411, 413,
 * 415), how a body is decoded and prepared, what it costs to prepare, and
 * which status an outcome is answered with. http.c calls these for every
 * report request and endpoint_status() strings them together for one request
 * without storing anything, so the fuzz target of the HTTP path
 * (tests/fuzz/fuzz_http.c) runs the code the daemon runs. */
#ifndef TLSRPTD_ENDPOINT_H
#define TLSRPTD_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/ingest.h"

/* The parsed document of a JSON text (jsondoc.c) is at most this many times
 * the text's size, and at most the text plus this many bytes per value
 * (jsonscan bounds the values). The worst per byte is a flat array of 2-byte
 * values like `0,`: a 24-byte value each, and while the array is open a
 * 40-byte slot of the parse stack, which doubles as it grows (80). The worst
 * per value is an object member: 40 bytes, its stack slot's 80, and 8 bytes
 * of alignment after each of its two strings. jansson, asked only to describe
 * a text the parser refused, once the parser's memory is freed, builds less
 * (32 + 8 bytes per 2-byte value, 96 per value). */
#define ENDPOINT_TREE_PER_BYTE  56
#define ENDPOINT_TREE_PER_VALUE 136
/* No gzip stream inflates to more than 1032 times its size (deflate's best). */
#define ENDPOINT_INFLATE_RATIO 1032
/* Inflating is first tried within what the gzip trailer says (ISIZE), and at
 * least this much; a body that inflates to more is prepared again with the
 * full max_inflated (a multi-member body, or a trailer that lies). */
#define ENDPOINT_INFLATE_FLOOR ((size_t)16 << 10)
/* Besides the texts and the tree: the diagnostics kept (REPORT_MAX_DIAGNOSTIC_BYTES,
 * escaped as JSON) and the job's own bookkeeping. */
#define ENDPOINT_WEIGHT_EXTRA ((size_t)96 << 10)

/* The request head as received (header values NULL when absent). */
struct endpoint_head {
    const char *method;
    const char *content_length;
    const char *transfer_encoding;
    const char *content_type;
    const char *content_encoding;
};

/* A refusal: status 0 means none. error is static text; detail may be "". */
struct endpoint_answer {
    unsigned status;
    const char *error;
    char detail[160];
    unsigned retry_after;
};

/* True when url is path (the configured report path) or below it. */
bool endpoint_is_report_path(const char *path, const char *url);
/* 405 unless the method is POST. */
bool endpoint_check_method(const struct endpoint_head *h, struct endpoint_answer *a);
/* What can be refused before the body: 411 without a length, 413 for a
 * Content-Length over max_body, 415 for another media type or encoding.
 * True when the body is to be read; *gzip_encoded then says Content-Encoding: gzip. */
bool endpoint_check_head(const struct endpoint_head *h, size_t max_body, bool *gzip_encoded,
                         struct endpoint_answer *a);

/* How much inflated text to allow the first time body is prepared, and the
 * bytes that preparing it may hold at most with that allowance (body, its
 * copy, inflated text, parsed tree): the unit of the prepare pool's budget. */
size_t endpoint_allowance(const void *body, size_t len, bool gzip_encoded,
                          const struct ingest_limits *lim);
size_t endpoint_weight(size_t len, size_t allowance, const struct ingest_limits *lim);
/* The bytes a prepared job holds until it is freed (for prepool_settle). */
size_t endpoint_job_weight(const struct ingest_job *job, const struct ingest_limits *lim);

/* Decode and prepare body[0..len) (gunzipped first with gzip_encoded), with
 * at most allowance bytes of inflated text (0 or lim->max_inflated: the
 * limit itself; endpoint_allowance() gives 0 for JSON bodies). When
 * the text needs more than allowance < lim->max_inflated, returns NULL with
 * *again set: prepare again with lim->max_inflated. Otherwise the job (NULL
 * only when out of memory). With take, body (malloc'd) is the job's or freed,
 * unless *again; without, it is copied. */
struct ingest_job *endpoint_prepare(void *body, size_t len, bool take, bool gzip_encoded,
                                    const struct store_source *src, const struct ingest_limits *lim,
                                    size_t allowance, bool *again);

/* The status an outcome is answered with: 201, 200, 400 or 503. */
unsigned endpoint_status_of(enum ingest_outcome o);

/* One report request, for the fuzz target: the status the endpoint answers
 * (404 outside path, head refusals, 413 past max_body, then 201 for a body
 * that would be stored, 400 for one that would be refused), nothing stored;
 * detail (n bytes) says why when not 201. No rate limit, no prepare pool. */
unsigned endpoint_status(const char *path, const char *url, const struct endpoint_head *h,
                         const void *body, size_t len, size_t max_body,
                         const struct ingest_limits *lim, char *detail, size_t n);

#endif
