/* store_sqlite_walbuf.c: a SQLite VFS that gathers a transaction's WAL writes
 * into one write(2) (store_sqlite.h). It wraps the default VFS; every file
 * but a WAL behaves exactly as there.
 *
 * Why: SQLite writes each WAL frame with two calls, its 24-byte header and
 * its page, at increasing offsets. A group commit of a dozen reports writes
 * some 70 frames, so about 140 pwrite(2) calls, each taking the inode lock
 * and visiting the page cache for a few bytes; on the HTTP benchmark they were
 * a quarter of the writer thread's time. Here the frames are appended to a
 * buffer and written with one call when the transaction's commit frame is
 * complete.
 *
 * When the buffer is written: after the page of a commit frame (a frame
 * header whose "database size" field is not zero marks the commit), so an
 * error (ENOSPC, EIO) is returned by the very write that ends the commit and
 * SQLite rolls the transaction back before anyone can see it; before any
 * read, size, truncate, sync or file control of the WAL, so this connection
 * never reads bytes it has not written; when a write does not continue the
 * buffer (a new WAL header at offset 0, a checksum rewrite); when the buffer
 * would pass WALBUF_MAX; and on close. Other connections only read frames
 * that a committed header names, and the header is published after the
 * commit frame's write returned, so they never see a frame still buffered.
 *
 * Nothing changes about durability: SQLite never assumed that a write reached
 * the disk before a sync, and the sync (SQLite's or the syncer's fdatasync of
 * the WAL) comes after the commit's write. A crash with frames still buffered
 * is a crash before the commit: the transaction did not happen. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "store_sqlite.h"
#include "tlsrptd/buf.h"

#define WAL_FRAME_HEADER 24         /* bytes of a WAL frame's header */
#define WALBUF_MAX       (1 << 20)  /* buffered at most; larger writes go straight through */
#define WRITE_MAX        (31 << 12) /* per call: the unix VFS writes at most 128 KiB - 1 */

struct walbuf_file {
    sqlite3_file base; /* base.pMethods: &walbuf_io */
    sqlite3_file *real;
    bool wal;
    struct buf pending; /* frames not yet written, at most WALBUF_MAX bytes */
    sqlite3_int64 off;  /* file offset of pending.data[0] */
    bool commit_frame;  /* the last write was a commit frame's header */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs walbuf_vfs;

/* The real file lives in the same allocation, after ours, aligned. */
#define REAL_OFFSET ((sizeof(struct walbuf_file) + 15) & ~(size_t)15)

static int flush(struct walbuf_file *p)
{
    int rc = SQLITE_OK;
    size_t len = p->pending.len;
    for (size_t done = 0; done < len && rc == SQLITE_OK;) {
        size_t n = len - done < WRITE_MAX ? len - done : WRITE_MAX;
        rc = p->real->pMethods->xWrite(p->real, p->pending.data + done, (int)n,
                                       p->off + (sqlite3_int64)done);
        done += n;
    }
    buf_reset(&p->pending);
    return rc;
}

static int wb_close(sqlite3_file *f)
{
    struct walbuf_file *p = (struct walbuf_file *)f;
    int rc = flush(p);
    int rc2 = p->real->pMethods->xClose(p->real);
    buf_free(&p->pending);
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *f, void *out, int n, sqlite3_int64 off)
{
    struct walbuf_file *p = (struct walbuf_file *)f;
    int rc = flush(p);
    return rc != SQLITE_OK ? rc : p->real->pMethods->xRead(p->real, out, n, off);
}

static int wb_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
    struct walbuf_file *p = (struct walbuf_file *)f;
    if (!p->wal)
        return p->real->pMethods->xWrite(p->real, data, n, off);
    const unsigned char *h = data;
    bool ends_commit = p->commit_frame; /* this is the page of a commit frame */
    bool commit_header = n == WAL_FRAME_HEADER && (h[4] | h[5] | h[6] | h[7]) != 0;
    int rc = SQLITE_OK;
    size_t len = p->pending.len;
    if (len > 0 && (off != p->off + (sqlite3_int64)len || len + (size_t)n > WALBUF_MAX))
        rc = flush(p);
    if (rc == SQLITE_OK &&
        ((size_t)n > WRITE_MAX || buf_append(&p->pending, data, (size_t)n) != TR_OK)) {
        /* too large to be worth copying, or no memory: written as SQLite would */
        rc = flush(p);
        if (rc == SQLITE_OK)
            rc = p->real->pMethods->xWrite(p->real, data, n, off);
    } else if (rc == SQLITE_OK) {
        if (p->pending.len == (size_t)n) /* the first bytes buffered */
            p->off = off;
        if (ends_commit)
            rc = flush(p); /* the transaction is complete */
    }
    p->commit_frame = rc == SQLITE_OK && commit_header;
    return rc;
}

static int wb_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct walbuf_file *p = (struct walbuf_file *)f;
    int rc = flush(p);
    return rc != SQLITE_OK ? rc : p->real->pMethods->xTruncate(p->real, size);
}

static int wb_sync(sqlite3_file *f, int flags)
{
    struct walbuf_file *p = (struct walbuf_file *)f;
    int rc = flush(p);
    return rc != SQLITE_OK ? rc : p->real->pMethods->xSync(p->real, flags);
}

static int wb_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    struct walbuf_file *p = (struct walbuf_file *)f;
    int rc = flush(p);
    return rc != SQLITE_OK ? rc : p->real->pMethods->xFileSize(p->real, size);
}

static int wb_file_control(sqlite3_file *f, int op, void *arg)
{
    struct walbuf_file *p = (struct walbuf_file *)f;
    int rc = flush(p);
    return rc != SQLITE_OK ? rc : p->real->pMethods->xFileControl(p->real, op, arg);
}

/* ---- passed through unchanged ---------------------------------------------------------------- */

#define REAL(f) (((struct walbuf_file *)(f))->real)

static int wb_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int wb_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int wb_check_reserved_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int wb_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int wb_device_characteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int wb_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int wb_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int wb_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int wb_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int wb_unfetch(sqlite3_file *f, sqlite3_int64 off, void *page)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, page);
}

static const sqlite3_io_methods walbuf_io = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved_lock,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    struct walbuf_file *p = (struct walbuf_file *)f;
    memset(p, 0, sizeof *p);
    buf_init(&p->pending, WALBUF_MAX);
    p->real = (sqlite3_file *)((char *)p + REAL_OFFSET);
    int rc = real_vfs->xOpen(real_vfs, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK || p->real->pMethods == NULL) {
        p->base.pMethods = NULL; /* SQLite does not close a file that failed to open */
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    /* the methods above call what the real file has; version 3 is what the
     * unix VFS gives every file (WAL mode needs version 2's shared memory) */
    if (p->real->pMethods->iVersion < 3) {
        p->real->pMethods->xClose(p->real);
        p->base.pMethods = NULL;
        return SQLITE_CANTOPEN;
    }
    p->wal = (flags & SQLITE_OPEN_WAL) != 0;
    p->base.pMethods = &walbuf_io;
    return SQLITE_OK;
}

/* The VFS's own methods are the real one's, called with the real VFS. */
static int wb_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int wb_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *wb_dlopen(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void wb_dlerror(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    real_vfs->xDlError(real_vfs, n, out);
}

static void (*wb_dlsym(sqlite3_vfs *v, void *lib, const char *sym))(void)
{
    (void)v;
    return real_vfs->xDlSym(real_vfs, lib, sym);
}

static void wb_dlclose(sqlite3_vfs *v, void *lib)
{
    (void)v;
    real_vfs->xDlClose(real_vfs, lib);
}

static int wb_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int wb_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return real_vfs->xSleep(real_vfs, us);
}

static int wb_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int wb_get_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int wb_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

int sqlite_walbuf_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL || real_vfs->iVersion < 2)
        return SQLITE_ERROR;
    walbuf_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)(REAL_OFFSET + (size_t)real_vfs->szOsFile),
        .mxPathname = real_vfs->mxPathname,
        .zName = SQLITE_WALBUF_VFS,
        .xOpen = wb_open,
        .xDelete = wb_delete,
        .xAccess = wb_access,
        .xFullPathname = wb_full_pathname,
        .xDlOpen = wb_dlopen,
        .xDlError = wb_dlerror,
        .xDlSym = wb_dlsym,
        .xDlClose = wb_dlclose,
        .xRandomness = wb_randomness,
        .xSleep = wb_sleep,
        .xCurrentTime = wb_current_time,
        .xGetLastError = wb_get_last_error,
        .xCurrentTimeInt64 = wb_current_time_int64,
    };
    return sqlite3_vfs_register(&walbuf_vfs, 0);
}
