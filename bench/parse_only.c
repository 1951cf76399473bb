/* parse_only.c: the baseline of the ingest benchmark (bench/ingest.sh).
 *
 *   parse_only FILE|DIR ...
 *
 * Walks its inputs as `tlsrptd ingest` does (walk_add: recursive, sorted,
 * hidden entries skipped) and for each file does only what no collector can
 * skip: read it (buf_read_file, a fresh buffer per file as ingest does),
 * inflate it when compressed (gz_inflate with the default cap) and parse it
 * (json_loadb with JSON_REJECT_DUPLICATES), then json_decref. No validation,
 * no storage. Prints the number of files and files/s on stdout; exits 1 when a
 * file could not be read, inflated or parsed. A benchmark tool, not part of
 * tlsrptd. */
#include <jansson.h>
#include <stdio.h>
#include <time.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/walk.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read, inflate, parse one file. Returns 0, or -1 with err set. */
static int parse_one(const char *path, const struct ingest_limits *lim, size_t *json_bytes,
                     char *err)
{
    struct buf in, out;
    json_t *root = NULL;
    int rc = -1;
    buf_init(&in, lim->max_input);
    buf_init(&out, lim->max_inflated);
    if (buf_read_file(&in, path, err) != TR_OK)
        goto done;
    const unsigned char *json = in.data;
    size_t len = in.len;
    if (gz_is_compressed(in.data, in.len)) {
        if (gz_inflate(in.data, in.len, &out, err) != TR_OK)
            goto done;
        json = out.data;
        len = out.len;
    }
    json_error_t jerr;
    root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, TR_ERRLEN, "%s: %s at line %d column %d", path, jerr.text, jerr.line,
                 jerr.column);
        goto done;
    }
    *json_bytes += len;
    rc = 0;
done:
    json_decref(root);
    buf_free(&out);
    buf_free(&in);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: parse_only FILE|DIR ...\n");
        return 64;
    }
    const struct ingest_limits lim = INGEST_DEFAULT_LIMITS;
    struct walk_list inputs = {0};
    char err[TR_ERRLEN];
    double t0 = now();
    for (int i = 1; i < argc; i++) {
        if (walk_add(&inputs, argv[i], err) != TR_OK) {
            fprintf(stderr, "parse_only: %s\n", err);
            walk_free(&inputs);
            return 1;
        }
    }
    double t1 = now();
    size_t failed = 0, json_bytes = 0;
    for (size_t i = 0; i < inputs.n; i++) {
        if (parse_one(inputs.paths[i], &lim, &json_bytes, err) != 0) {
            if (failed++ < 10)
                fprintf(stderr, "parse_only: %s\n", err);
        }
    }
    double t2 = now();
    double secs = t2 - t1;
    printf("parse_only: %zu files (%zu failed), %.1f MiB of JSON, walk %.3f s, parse %.3f s: "
           "%.0f files/s\n",
           inputs.n, failed, (double)json_bytes / (1 << 20), t1 - t0, secs,
           secs > 0 ? (double)inputs.n / secs : 0.0);
    walk_free(&inputs);
    return failed ? 1 : 0;
}
