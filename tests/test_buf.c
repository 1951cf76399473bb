/* test_buf.c: the capped byte buffer and capped readers. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "check.h"
#include "tlsrptd/buf.h"

static void test_append_cap(void)
{
    struct buf b;
    buf_init(&b, 10);
    CHECK_INT(buf_append(&b, "hello", 5), TR_OK);
    CHECK_INT(buf_append(&b, "world", 5), TR_OK);
    CHECK_INT(b.len, 10);
    CHECK_INT(b.data[10], 0);
    CHECK_INT(buf_append(&b, "!", 1), TR_ETOOBIG);
    CHECK_INT(b.len, 10);
    CHECK(b.cap <= 11);
    buf_reset(&b);
    CHECK_INT(b.len, 0);
    buf_free(&b);
    CHECK(b.data == NULL);
}

static void test_read_file(void)
{
    char path[] = "/tmp/tlsrptd-test-buf-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, "0123456789abcdef", 16), 16);
    close(fd);

    struct buf b;
    char err[TR_ERRLEN];
    buf_init(&b, 16);
    CHECK_INT(buf_read_file(&b, path, err), TR_OK);
    CHECK_INT(b.len, 16);
    CHECK_STR((char *)b.data, "0123456789abcdef");
    buf_free(&b);

    buf_init(&b, 15);
    CHECK_INT(buf_read_file(&b, path, err), TR_ETOOBIG);
    CHECK_HAS(err, "larger than 15 bytes");
    buf_free(&b);

    /* a pipe has no size: the cap is found while reading */
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK_INT(write(p[1], "0123456789abcdef", 16), 16);
    close(p[1]);
    buf_init(&b, 8);
    CHECK_INT(buf_read_fd(&b, p[0], "pipe", err), TR_ETOOBIG);
    CHECK_HAS(err, "pipe: larger than 8 bytes");
    close(p[0]);
    buf_free(&b);

    buf_init(&b, 100);
    CHECK_INT(buf_read_file(&b, "/nonexistent/tlsrptd", err), TR_EIO);
    CHECK_HAS(err, "/nonexistent/tlsrptd: No such file");
    CHECK_INT(buf_read_file(&b, "/tmp", err), TR_EIO);
    CHECK_HAS(err, "is a directory");
    buf_free(&b);

    /* an empty file reads as an empty, NUL-terminated buffer */
    fd = open(path, O_WRONLY | O_TRUNC);
    close(fd);
    buf_init(&b, 100);
    CHECK_INT(buf_read_file(&b, path, err), TR_OK);
    CHECK_INT(b.len, 0);
    CHECK(b.data != NULL && b.data[0] == 0);
    buf_free(&b);
    unlink(path);
}

int main(void)
{
    test_append_cap();
    test_read_file();
    return check_done("buf");
}
