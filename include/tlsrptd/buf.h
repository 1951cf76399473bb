/* buf.h: a growable byte buffer with a hard cap, and capped file/fd readers.
 * A buf owns its data; buf_free() releases it. data is always NUL-terminated
 * (one spare byte) so text parsers may rely on it, but len excludes the NUL. */
#ifndef TLSRPTD_BUF_H
#define TLSRPTD_BUF_H

#include <stddef.h>
#include "tlsrptd/err.h"

struct buf {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t max; /* appending past max fails with TR_ETOOBIG */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b); /* len = 0, keeps memory */
tr_err buf_reserve(struct buf *b, size_t extra);
tr_err buf_append(struct buf *b, const void *p, size_t n);

/* Read a whole file or fd into b (appending), failing with TR_ETOOBIG past b->max
 * and TR_EIO on read errors; err names the input. */
tr_err buf_read_file(struct buf *b, const char *path, char *err);
tr_err buf_read_fd(struct buf *b, int fd, const char *name, char *err);

#endif
