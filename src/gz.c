/* gz.c: gzip/zlib inflate with an output cap, and gzip deflate (zlib).
 * inflateInit2(15 + 32) detects gzip or zlib headers; after each gzip member
 * the next one (if any) is read too, as gzip(1) does. */
#include <stdint.h>
#include <string.h>
#include <zlib.h>
#include "tlsrptd/gz.h"

bool gz_is_compressed(const void *p, size_t n)
{
    const unsigned char *b = p;
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return true;
    /* zlib: CM = 8, CINFO <= 7, header checksum */
    return n >= 2 && (b[0] & 0x0f) == 8 && (b[0] >> 4) <= 7 && ((b[0] << 8) | b[1]) % 31 == 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

tr_err gz_inflate(const void *in, size_t inlen, struct buf *out, char *err)
{
    return gz_inflate_each(in, inlen, out, NULL, NULL, err);
}

/* Output is added at most this much at a time. */
#define GZ_CHUNK 65536

/* The room to start with: a gzip stream's own word for its size (its last
 * four bytes, the size modulo 2^32; only a hint, as a hostile sender may lie
 * there), else four times the input; at least 1 KiB, at most GZ_CHUNK. */
static size_t first_chunk(const unsigned char *in, size_t len)
{
    size_t hint = len <= GZ_CHUNK / 4 ? 4 * len : GZ_CHUNK;
    if (len >= 18 && in[0] == 0x1f && in[1] == 0x8b) /* header 10, trailer 8 */
        hint = (size_t)in[len - 4] | (size_t)in[len - 3] << 8 | (size_t)in[len - 2] << 16 |
               (size_t)in[len - 1] << 24;
    hint += 1; /* inflate ends with room to spare, not at a full buffer */
    return hint < 1024 ? 1024 : hint > GZ_CHUNK ? GZ_CHUNK : hint;
}

tr_err gz_inflate_each(const void *in, size_t inlen, struct buf *out,
                       tr_err (*each)(void *cls, const struct buf *out, char *err), void *cls,
                       char *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK)
        return tr_fail(err, TR_ENOMEM, "gzip: cannot initialise zlib");

    const unsigned char *next = in;
    size_t left = inlen;
    tr_err rc = TR_OK;
    int members = 0;
    size_t chunk = first_chunk(in, inlen);

    for (;;) {
        /* zlib counts in uInt; feed at most 1 GiB at a time */
        uInt feed = left > (1u << 30) ? (1u << 30) : (uInt)left;
        zs.next_in = (Bytef *)(uintptr_t)next;
        zs.avail_in = feed;

        int ret;
        do {
            if (out->len >= out->max) {
                /* at the cap: anything more is too much */
                unsigned char probe;
                zs.next_out = &probe;
                zs.avail_out = 1;
                ret = inflate(&zs, Z_NO_FLUSH);
                if (zs.avail_out == 0) {
                    rc =
                        tr_fail(err, TR_ETOOBIG, "gzip: inflates to more than %zu bytes", out->max);
                    goto done;
                }
            } else {
                /* the room there is first, else a chunk more */
                size_t room = out->cap > out->len + 1 ? out->cap - out->len - 1 : chunk;
                if (room > GZ_CHUNK)
                    room = GZ_CHUNK;
                if (room > out->max - out->len)
                    room = out->max - out->len;
                chunk = GZ_CHUNK;
                if (buf_reserve(out, room) != TR_OK) {
                    rc = tr_fail(err, TR_ENOMEM, "gzip: out of memory");
                    goto done;
                }
                zs.next_out = out->data + out->len;
                zs.avail_out = (uInt)room;
                ret = inflate(&zs, Z_NO_FLUSH);
                out->len += room - zs.avail_out;
                out->data[out->len] = 0;
                if (each && room > zs.avail_out && (rc = each(cls, out, err)) != TR_OK)
                    goto done; /* the caller has seen enough */
            }
            if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR) {
                rc = tr_fail(err, TR_EPARSE, "gzip: corrupt data at input byte %zu: %s",
                             (size_t)(next - (const unsigned char *)in) + (feed - zs.avail_in),
                             zs.msg ? zs.msg : "invalid stream");
                goto done;
            }
            if (ret == Z_MEM_ERROR) {
                rc = tr_fail(err, TR_ENOMEM, "gzip: out of memory");
                goto done;
            }
        } while (ret == Z_OK && (zs.avail_in > 0 || zs.avail_out == 0));

        size_t used = feed - zs.avail_in;
        next += used;
        left -= used;

        if (ret == Z_STREAM_END) {
            members++;
            if (left == 0)
                break;
            if (left >= 2 && next[0] == 0x1f && next[1] == 0x8b) {
                inflateReset(&zs); /* another gzip member follows */
                continue;
            }
            if (all_zero(next, left))
                break; /* zero padding after the last member (tape-style) */
            rc = tr_fail(err, TR_EPARSE, "gzip: %zu unexpected bytes after member %d", left,
                         members);
            goto done;
        }
        if (left == 0) {
            rc = tr_fail(err, TR_EPARSE, "gzip: truncated stream (%zu bytes inflated, no end)",
                         out->len);
            goto done;
        }
        if (ret == Z_BUF_ERROR && used == 0) {
            rc = tr_fail(err, TR_EPARSE, "gzip: stream makes no progress");
            goto done;
        }
    }
done:
    inflateEnd(&zs);
    if (out->data)
        out->data[out->len] = 0;
    return rc;
}

tr_err gz_deflate(const void *in, size_t inlen, int level, struct buf *out, char *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inlen > (1u << 30))
        return tr_fail(err, TR_ETOOBIG, "gzip: %zu bytes are too many to compress at once", inlen);
    /* A window and hash table sized to the input: zlib's defaults allocate
     * 256 KiB of state per call, which for a 2 KiB report costs more than the
     * compression itself. The output is ordinary gzip either way. */
    int wbits = 9;
    while (wbits < 15 && ((size_t)1 << wbits) < inlen + 262)
        wbits++;
    int mem_level = wbits - 6 < 1 ? 1 : wbits - 6 > 8 ? 8 : wbits - 6;
    if (deflateInit2(&zs, level, Z_DEFLATED, wbits + 16, mem_level, Z_DEFAULT_STRATEGY) != Z_OK)
        return tr_fail(err, TR_ENOMEM, "gzip: cannot initialise zlib");
    uLong bound = deflateBound(&zs, (uLong)inlen);
    tr_err rc = buf_reserve(out, bound);
    if (rc != TR_OK) {
        tr_fail(err, rc, "gzip: %s for the compressed output", tr_strerror(rc));
        goto done;
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)inlen;
    zs.next_out = out->data + out->len;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        rc = tr_fail(err, TR_EIO, "gzip: deflate failed");
        goto done;
    }
    out->len += bound - zs.avail_out;
    out->data[out->len] = 0;
done:
    deflateEnd(&zs);
    return rc;
}
