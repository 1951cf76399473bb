/* buf.c: growable byte buffer with a hard cap, capped readers. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tlsrptd/buf.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

tr_err buf_reserve(struct buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return TR_ETOOBIG;
    size_t need = b->len + extra + 1; /* + NUL */
    if (need <= b->cap)
        return TR_OK;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    unsigned char *p = realloc(b->data, ncap);
    if (p == NULL)
        return TR_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return TR_OK;
}

tr_err buf_append(struct buf *b, const void *p, size_t n)
{
    tr_err e = buf_reserve(b, n);
    if (e != TR_OK)
        return e;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return TR_OK;
}

tr_err buf_read_fd(struct buf *b, int fd, const char *name, char *err)
{
    for (;;) {
        if (b->len == b->max) {
            /* at the cap: one more byte means the input is too large */
            unsigned char probe;
            ssize_t r;
            do
                r = read(fd, &probe, 1);
            while (r < 0 && errno == EINTR);
            if (r > 0)
                return tr_fail(err, TR_ETOOBIG, "%s: larger than %zu bytes", name, b->max);
            if (r < 0)
                return tr_fail(err, TR_EIO, "%s: %s", name, strerror(errno));
            break;
        }
        /* the room there is first (a file's size was reserved), else 64 KiB more */
        size_t want = b->cap > b->len + 1 ? b->cap - b->len - 1 : 65536;
        if (want > b->max - b->len)
            want = b->max - b->len;
        if (buf_reserve(b, want) != TR_OK)
            return tr_fail(err, TR_ENOMEM, "%s: out of memory", name);
        ssize_t r = read(fd, b->data + b->len, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return tr_fail(err, TR_EIO, "%s: %s", name, strerror(errno));
        }
        if (r == 0)
            break;
        b->len += (size_t)r;
    }
    if (buf_reserve(b, 0) != TR_OK)
        return tr_fail(err, TR_ENOMEM, "%s: out of memory", name);
    b->data[b->len] = 0;
    return TR_OK;
}

tr_err buf_read_file(struct buf *b, const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tr_fail(err, TR_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            close(fd);
            return tr_fail(err, TR_EIO, "%s: is a directory", path);
        }
        if (S_ISREG(sb.st_mode) && (uintmax_t)sb.st_size > b->max) {
            close(fd);
            return tr_fail(err, TR_ETOOBIG, "%s: larger than %zu bytes", path, b->max);
        }
        /* one byte more, for the read that finds the end */
        if (S_ISREG(sb.st_mode) && sb.st_size > 0)
            (void)buf_reserve(b, (size_t)sb.st_size + ((size_t)sb.st_size < b->max));
    }
    tr_err e = buf_read_fd(b, fd, path, err);
    close(fd);
    return e;
}
