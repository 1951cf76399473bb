/* gz.h: gzip/zlib inflate with an output cap (zlib).
 * Knows nothing of JSON or MIME. */
#ifndef TLSRPTD_GZ_H
#define TLSRPTD_GZ_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/buf.h"

#define GZ_DEFAULT_MAX_OUT ((size_t)32 << 20) /* 32 MiB */

/* True when p starts with a gzip member (1f 8b) or a zlib header. */
bool gz_is_compressed(const void *p, size_t n);

/* Inflate a gzip (one or more concatenated members) or zlib stream into out
 * (appending; out->max is the cap). Truncated streams, corrupt data and
 * non-gzip bytes after the last member are TR_EPARSE; output past out->max is
 * TR_ETOOBIG. err is set on failure. */
tr_err gz_inflate(const void *in, size_t inlen, struct buf *out, char *err);
/* gz_inflate, calling each(cls, out, err) after every piece of output (64 KiB at
 * most; out holds everything so far, NUL-terminated): a result other than TR_OK
 * stops inflating and is returned, with err as each() set it. */
tr_err gz_inflate_each(const void *in, size_t inlen, struct buf *out,
                       tr_err (*each)(void *cls, const struct buf *out, char *err), void *cls,
                       char *err);

/* Compress in into a single gzip member appended to out (level 1-9). */
tr_err gz_deflate(const void *in, size_t inlen, int level, struct buf *out, char *err);

#endif
