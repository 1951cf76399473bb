/* fuzz_gz.c: libFuzzer target for gz.c. Inflates the input into a buffer
 * capped at 1 MiB; when that succeeds, checks three properties and aborts when
 * one breaks: the same input inflates again under a cap of exactly the output
 * size but fails with TR_ETOOBIG one byte below it, and deflating the output
 * then inflating it again gives the same bytes back. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/gz.h"

#define FUZZ_GZ_MAX ((size_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_gz: %s (%s)\n", what, err);
    abort();
}

static bool same(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[TR_ERRLEN] = "";
    struct buf out, again, packed, back;
    buf_init(&out, FUZZ_GZ_MAX);
    buf_init(&again, 0);
    buf_init(&packed, FUZZ_GZ_MAX + (FUZZ_GZ_MAX >> 4) + 1024);
    buf_init(&back, FUZZ_GZ_MAX);

    (void)gz_is_compressed(data, size);
    if (gz_inflate(data, size, &out, err) != TR_OK)
        goto done;

    /* the cap is exact: the output fits in out.len bytes and not in one less */
    again.max = out.len;
    if (gz_inflate(data, size, &again, err) != TR_OK || !same(&out, &again))
        fail("inflate under a cap of exactly the output size differs", err);
    if (out.len > 0) {
        buf_free(&again);
        buf_init(&again, out.len - 1);
        if (gz_inflate(data, size, &again, err) != TR_ETOOBIG)
            fail("inflate under a cap one byte below the output size did not fail", err);
    }

    /* round trip, at a level picked by the input */
    int level = 1 + (size ? data[size - 1] : 0) % 9;
    if (gz_deflate(out.data, out.len, level, &packed, err) != TR_OK)
        fail("deflate failed", err);
    if (!gz_is_compressed(packed.data, packed.len))
        fail("deflate output is not recognised as gzip", "");
    if (gz_inflate(packed.data, packed.len, &back, err) != TR_OK)
        fail("re-inflate of deflate output failed", err);
    if (!same(&out, &back))
        fail("round trip changed the data", "");
done:
    buf_free(&out);
    buf_free(&again);
    buf_free(&packed);
    buf_free(&back);
    return 0;
}
