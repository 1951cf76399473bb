/* test_gz.c: capped inflate: round trips, gzip bombs, truncation,
 * concatenated members, zlib streams, trailing bytes. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>
#include "check.h"
#include "tlsrptd/gz.h"

static const char json[] = "{\"organization-name\":\"Example\",\"report-id\":\"1\"}";

static void gzip_of(const char *s, size_t n, struct buf *out)
{
    char err[TR_ERRLEN];
    buf_init(out, 1 << 20);
    CHECK_INT(gz_deflate(s, n, 6, out, err), TR_OK);
}

static void test_round_trip(void)
{
    struct buf gz, out;
    char err[TR_ERRLEN];
    gzip_of(json, strlen(json), &gz);
    CHECK(gz_is_compressed(gz.data, gz.len));
    CHECK(gz.data[0] == 0x1f && gz.data[1] == 0x8b);
    buf_init(&out, 1 << 20);
    CHECK_INT(gz_inflate(gz.data, gz.len, &out, err), TR_OK);
    CHECK_INT(out.len, strlen(json));
    CHECK_STR((char *)out.data, json);
    buf_free(&out);
    buf_free(&gz);

    CHECK(!gz_is_compressed("{\"a\":1}", 7));
    CHECK(!gz_is_compressed("From: x", 7));
    CHECK(!gz_is_compressed("\x1f", 1));
}

static void test_zlib(void)
{
    unsigned char z[256];
    uLongf zlen = sizeof z;
    CHECK_INT(compress(z, &zlen, (const Bytef *)json, strlen(json)), Z_OK);
    CHECK(gz_is_compressed(z, zlen));
    struct buf out;
    char err[TR_ERRLEN];
    buf_init(&out, 1 << 20);
    CHECK_INT(gz_inflate(z, zlen, &out, err), TR_OK);
    CHECK_STR((char *)out.data, json);
    buf_free(&out);
}

static void test_concatenated_members(void)
{
    struct buf a, b, both, out;
    char err[TR_ERRLEN];
    gzip_of(json, 20, &a);
    gzip_of(json + 20, strlen(json) - 20, &b);
    buf_init(&both, 1 << 20);
    buf_append(&both, a.data, a.len);
    buf_append(&both, b.data, b.len);
    buf_init(&out, 1 << 20);
    CHECK_INT(gz_inflate(both.data, both.len, &out, err), TR_OK);
    CHECK_STR((char *)out.data, json);

    /* zero padding after the last member is tolerated */
    buf_append(&both, "\0\0\0\0", 4);
    buf_reset(&out);
    CHECK_INT(gz_inflate(both.data, both.len, &out, err), TR_OK);
    CHECK_STR((char *)out.data, json);

    /* other trailing bytes are not */
    buf_append(&both, "junk", 4);
    buf_reset(&out);
    CHECK_INT(gz_inflate(both.data, both.len, &out, err), TR_EPARSE);
    CHECK_HAS(err, "unexpected bytes after member 2");
    buf_free(&a);
    buf_free(&b);
    buf_free(&both);
    buf_free(&out);
}

static void test_truncated_and_corrupt(void)
{
    struct buf gz, out;
    char err[TR_ERRLEN];
    gzip_of(json, strlen(json), &gz);
    buf_init(&out, 1 << 20);
    /* cut anywhere: never a success */
    for (size_t cut = 1; cut < gz.len; cut++) {
        buf_reset(&out);
        tr_err e = gz_inflate(gz.data, cut, &out, err);
        CHECK(e == TR_EPARSE);
    }
    buf_reset(&out);
    CHECK_INT(gz_inflate(gz.data, gz.len - 4, &out, err), TR_EPARSE);
    CHECK_HAS(err, "truncated");

    /* a flipped bit in the body: CRC or data error */
    gz.data[gz.len / 2] ^= 0x55;
    buf_reset(&out);
    CHECK_INT(gz_inflate(gz.data, gz.len, &out, err), TR_EPARSE);
    buf_free(&gz);
    buf_free(&out);
}

/* A gzip bomb: 1 GiB of zeros, compressed (about 1 MiB). Inflating stops at the
 * cap with memory bounded by the cap. Under valgrind (TLSRPTD_VALGRIND=1 in the
 * environment) the bomb is 48 MiB, still past the cap, and RSS is not measured. */
static void test_bomb(void)
{
    const bool valgrind = getenv("TLSRPTD_VALGRIND") != NULL;
    const int mib = valgrind ? 48 : 1024;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    CHECK_INT(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = 4 << 20;
    unsigned char *bomb = malloc(cap);
    static unsigned char zeros[1 << 20];
    zs.next_out = bomb;
    zs.avail_out = (uInt)cap;
    for (int i = 0; i < mib; i++) {
        zs.next_in = zeros;
        zs.avail_in = sizeof zeros;
        CHECK(deflate(&zs, i == mib - 1 ? Z_FINISH : Z_NO_FLUSH) != Z_STREAM_ERROR);
    }
    size_t bomblen = cap - zs.avail_out;
    deflateEnd(&zs);
    CHECK(bomblen < (2u << 20));

    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    struct buf out;
    char err[TR_ERRLEN];
    buf_init(&out, GZ_DEFAULT_MAX_OUT);
    CHECK_INT(gz_inflate(bomb, bomblen, &out, err), TR_ETOOBIG);
    CHECK_HAS(err, "inflates to more than 33554432 bytes");
    CHECK_INT(out.len, GZ_DEFAULT_MAX_OUT);
    CHECK(out.cap <= GZ_DEFAULT_MAX_OUT + 1);
    getrusage(RUSAGE_SELF, &after);
    /* the process grew by at most the cap plus slack (ru_maxrss is in KiB);
     * AddressSanitizer keeps freed blocks in quarantine, so allow it more */
    long bound = (long)((GZ_DEFAULT_MAX_OUT >> 10) + 16384);
#if defined(__SANITIZE_ADDRESS__)
    bound *= 4;
#endif
    if (!valgrind)
        CHECK(after.ru_maxrss - before.ru_maxrss < bound);
    buf_free(&out);

    /* with a small cap the bomb stops early */
    buf_init(&out, 1000);
    CHECK_INT(gz_inflate(bomb, bomblen, &out, err), TR_ETOOBIG);
    CHECK_INT(out.len, 1000);
    buf_free(&out);
    free(bomb);
}

static void test_exact_cap(void)
{
    /* output exactly at the cap is fine; one byte over is not */
    struct buf gz, out;
    char err[TR_ERRLEN];
    gzip_of(json, strlen(json), &gz);
    buf_init(&out, strlen(json));
    CHECK_INT(gz_inflate(gz.data, gz.len, &out, err), TR_OK);
    buf_free(&out);
    buf_init(&out, strlen(json) - 1);
    CHECK_INT(gz_inflate(gz.data, gz.len, &out, err), TR_ETOOBIG);
    buf_free(&out);
    buf_free(&gz);
}

/* Incompressible input of any size fits in len + len/4 + 4 KiB (what store
 * reserves), whatever window gz_deflate picks, and inflates back. */
static void test_deflate_incompressible(void)
{
    unsigned state = 12345;
    for (size_t n = 1; n <= (256u << 10); n *= 3) {
        unsigned char *in = malloc(n);
        for (size_t i = 0; i < n; i++) {
            state = state * 1103515245u + 12345u;
            in[i] = (unsigned char)(state >> 16);
        }
        struct buf gz, out;
        char err[TR_ERRLEN];
        buf_init(&gz, n + n / 4 + 4096);
        CHECK_INT(gz_deflate(in, n, 6, &gz, err), TR_OK);
        buf_init(&out, n);
        CHECK_INT(gz_inflate(gz.data, gz.len, &out, err), TR_OK);
        CHECK(out.len == n && memcmp(out.data, in, n) == 0);
        buf_free(&gz);
        buf_free(&out);
        free(in);
    }
}

/* gz_inflate_each: called after each piece of output, which it can stop. */
struct pieces {
    size_t calls, last_len, stop_after;
};

static tr_err count_piece(void *cls, const struct buf *out, char *err)
{
    struct pieces *p = cls;
    p->calls++;
    CHECK(out->len > p->last_len);
    CHECK_INT(out->data[out->len], 0);
    p->last_len = out->len;
    if (p->stop_after && out->len >= p->stop_after)
        return tr_fail(err, TR_EINVAL, "seen enough at %zu", out->len);
    return TR_OK;
}

static void test_inflate_each(void)
{
    size_t n = (size_t)1 << 20;
    unsigned char *zeros = calloc(1, n);
    struct buf gz, out;
    char err[TR_ERRLEN];
    buf_init(&gz, 2 * n);
    CHECK_INT(gz_deflate(zeros, n, 6, &gz, err), TR_OK);
    struct pieces p = {0, 0, 0};
    buf_init(&out, 2 * n);
    CHECK_INT(gz_inflate_each(gz.data, gz.len, &out, count_piece, &p, err), TR_OK);
    CHECK_INT(out.len, n);
    CHECK_INT(p.last_len, n);
    CHECK(p.calls >= n / 65536);
    buf_free(&out);
    struct pieces stop = {0, 0, 100000};
    buf_init(&out, 2 * n);
    CHECK_INT(gz_inflate_each(gz.data, gz.len, &out, count_piece, &stop, err), TR_EINVAL);
    CHECK_HAS(err, "seen enough");
    CHECK(out.len < 200000); /* stopped early, not inflated to the end */
    buf_free(&out);
    buf_free(&gz);
    free(zeros);
}

int main(void)
{
    test_round_trip();
    test_zlib();
    test_concatenated_members();
    test_truncated_and_corrupt();
    test_bomb();
    test_exact_cap();
    test_deflate_incompressible();
    test_inflate_each();
    return check_done("gz");
}
