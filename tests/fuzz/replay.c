/* replay.c: run a libFuzzer target's LLVMFuzzerTestOneInput() on files, without
 * libFuzzer, so the corpus is replayed as an ordinary test by any compiler
 * and build type (cf. sqlite test/fuzzcheck.c). Linked with one fuzz_*.c.
 *
 *   replay_<target> [-q] PATH...
 *
 * Each PATH is a file or a directory (walked recursively, hidden entries
 * skipped); paths that do not exist are skipped silently, so the optional
 * ../shared corpus may be named. Each input is copied into a buffer of exactly
 * its size, as libFuzzer does, so AddressSanitizer sees any over-read. Exits 1
 * when an input cannot be read or when no input ran at all. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/walk.h"

#define REPLAY_MAX_INPUT ((size_t)64 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_one(const char *path, bool quiet)
{
    char err[TR_ERRLEN];
    struct buf b;
    buf_init(&b, REPLAY_MAX_INPUT);
    if (buf_read_file(&b, path, err) != TR_OK) {
        fprintf(stderr, "replay: %s\n", err);
        buf_free(&b);
        return -1;
    }
    /* exactly len bytes (malloc(0) may return NULL: keep one byte then) */
    size_t len = b.len;
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        buf_free(&b);
        return -1;
    }
    if (len)
        memcpy(copy, b.data, len);
    buf_free(&b);
    if (!quiet) {
        fprintf(stderr, "replay: %s\n", path);
        fflush(stderr);
    }
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 0;
}

int main(int argc, char **argv)
{
    struct walk_list wl = {0};
    char err[TR_ERRLEN];
    bool quiet = false;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-q") == 0) {
            quiet = true;
            continue;
        }
        struct stat sb;
        if (stat(argv[i], &sb) != 0 && errno == ENOENT)
            continue; /* an optional corpus that is not there */
        if (walk_add(&wl, argv[i], err) != TR_OK) {
            fprintf(stderr, "replay: %s\n", err);
            rc = 1;
        }
    }
    size_t ran = 0, failed = 0;
    for (size_t i = 0; i < wl.n; i++) {
        if (run_one(wl.paths[i], quiet) == 0)
            ran++;
        else
            failed++;
    }
    walk_free(&wl);
    printf("%s: %zu inputs ran, %zu unreadable\n", argc > 0 ? argv[0] : "replay", ran, failed);
    if (failed || ran == 0)
        rc = 1;
    return rc;
}
