/* test_checkpoint.c: the SQLite backend's background checkpointer
 * (src/store_sqlite_checkpoint.c) on a bare connection: a cycle of the WAL
 * takes a few passes, not one per commit; and the pages the thread copies are
 * synced by the thread, so that the pass of the committing thread, which ends
 * the cycle, syncs only its own few; and while that sync of the thread's is
 * slow, the committing thread still keeps the WAL to twice the threshold.
 *
 * A counting VFS over the default one sees every write and sync of the
 * database file, by every connection (the checkpointer's own included). */
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "store_sqlite.h"

static char dir[] = "/tmp/tlsrptd-test-checkpoint-XXXXXX";

/* ---- the counting VFS ------------------------------------------------------------------------ */

static sqlite3_vfs *default_vfs;
static sqlite3_vfs counting_vfs;
static pthread_t committer;               /* the thread that commits (the test's own) */
static atomic_long unsynced_pages;        /* written to a database file since its last sync */
static atomic_long committer_syncs;       /* database syncs on the committing thread */
static atomic_long committer_flushed_max; /* the most pages one of them had to flush */
static atomic_long other_sync_delay_ns;   /* added to the syncs of sync_database: see cf_sync */
static _Thread_local int holds_checkpoint_lock; /* inside a checkpoint of SQLite's own */

struct counting_file {
    sqlite3_file base;
    int is_db;          /* the main database file (not the WAL or a journal) */
    sqlite3_file *real; /* default_vfs's file, allocated behind this struct */
};

static sqlite3_file *real_of(sqlite3_file *f)
{
    return ((struct counting_file *)f)->real;
}

static int cf_close(sqlite3_file *f)
{
    return real_of(f)->pMethods->xClose(real_of(f));
}
static int cf_read(sqlite3_file *f, void *out, int n, sqlite3_int64 off)
{
    return real_of(f)->pMethods->xRead(real_of(f), out, n, off);
}
static int cf_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
    if (((struct counting_file *)f)->is_db)
        atomic_fetch_add(&unsynced_pages, (n + 4095) / 4096);
    return real_of(f)->pMethods->xWrite(real_of(f), data, n, off);
}
static int cf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return real_of(f)->pMethods->xTruncate(real_of(f), size);
}
static int cf_sync(sqlite3_file *f, int flags)
{
    if (((struct counting_file *)f)->is_db) {
        long flushed = atomic_exchange(&unsynced_pages, 0);
        if (pthread_equal(pthread_self(), committer)) {
            atomic_fetch_add(&committer_syncs, 1);
            if (flushed > atomic_load(&committer_flushed_max))
                atomic_store(&committer_flushed_max, flushed);
        } else if (!holds_checkpoint_lock && atomic_load(&other_sync_delay_ns) > 0) {
            /* another thread's sync outside a checkpoint: the checkpointer's own */
            nanosleep(&(struct timespec){0, atomic_load(&other_sync_delay_ns)}, NULL);
        }
    }
    return real_of(f)->pMethods->xSync(real_of(f), flags);
}
static int cf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return real_of(f)->pMethods->xFileSize(real_of(f), size);
}
static int cf_lock(sqlite3_file *f, int level)
{
    return real_of(f)->pMethods->xLock(real_of(f), level);
}
static int cf_unlock(sqlite3_file *f, int level)
{
    return real_of(f)->pMethods->xUnlock(real_of(f), level);
}
static int cf_check_reserved(sqlite3_file *f, int *out)
{
    return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
static int cf_file_control(sqlite3_file *f, int op, void *arg)
{
    return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
static int cf_sector_size(sqlite3_file *f)
{
    return real_of(f)->pMethods->xSectorSize(real_of(f));
}
static int cf_device(sqlite3_file *f)
{
    return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}
static int cf_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return real_of(f)->pMethods->xShmMap(real_of(f), region, size, extend, out);
}
/* SQLite's checkpoint lock is the second of the WAL's shared-memory locks */
enum { WAL_CHECKPOINT_LOCK = 1 };
static int cf_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    if (offset == WAL_CHECKPOINT_LOCK && n == 1 && (flags & SQLITE_SHM_EXCLUSIVE))
        holds_checkpoint_lock = (flags & SQLITE_SHM_LOCK) != 0;
    return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}
static void cf_shm_barrier(sqlite3_file *f)
{
    real_of(f)->pMethods->xShmBarrier(real_of(f));
}
static int cf_shm_unmap(sqlite3_file *f, int del)
{
    return real_of(f)->pMethods->xShmUnmap(real_of(f), del);
}

/* version 2: no memory-mapped reads, so that every page goes through cf_write */
static const sqlite3_io_methods counting_io = {
    2,
    cf_close,
    cf_read,
    cf_write,
    cf_truncate,
    cf_sync,
    cf_file_size,
    cf_lock,
    cf_unlock,
    cf_check_reserved,
    cf_file_control,
    cf_sector_size,
    cf_device,
    cf_shm_map,
    cf_shm_lock,
    cf_shm_barrier,
    cf_shm_unmap,
    NULL,
    NULL,
};

static int cv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    struct counting_file *cf = (struct counting_file *)f;
    cf->real = (sqlite3_file *)(cf + 1);
    cf->is_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    int rc = default_vfs->xOpen(default_vfs, name, cf->real, flags, out_flags);
    cf->base.pMethods = cf->real->pMethods ? &counting_io : NULL;
    return rc;
}

static void counting_vfs_install(void)
{
    default_vfs = sqlite3_vfs_find(NULL);
    counting_vfs = *default_vfs;
    counting_vfs.zName = "counting";
    counting_vfs.szOsFile = (int)sizeof(struct counting_file) + default_vfs->szOsFile;
    counting_vfs.xOpen = cv_open;
    CHECK_INT(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
}

static void counting_vfs_remove(void)
{
    sqlite3_vfs_unregister(&counting_vfs);
    sqlite3_vfs_register(default_vfs, 1);
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* A database NAME in the test directory (its path in path), in WAL mode with
 * synchronous = NORMAL as serve's writer has it, and one table t. */
static sqlite3 *open_table(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db,
                           "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                           "CREATE TABLE t (x BLOB)",
                           NULL, NULL, NULL),
              SQLITE_OK);
    return db;
}

/* n commits of one page-sized row each, each synced to the WAL file as
 * serve's writer does it (synchronous = NORMAL, then a sync of the WAL before
 * the acknowledgement), so that a busy disk slows the commits as it slows the
 * checkpointer; with a pause of pause_ns after each so that the thread keeps
 * up where syncs are free. The largest size of the WAL file seen. */
static off_t commit_rows(sqlite3 *db, const char *path, int n, long pause_ns)
{
    char wal[310];
    snprintf(wal, sizeof wal, "%s-wal", path);
    int wal_fd = open(wal, O_RDONLY | O_CLOEXEC); /* the WAL is rewritten, never replaced */
    CHECK(wal_fd >= 0);
    sqlite3_stmt *ins = NULL;
    CHECK_INT(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (zeroblob(3000))", -1, &ins, NULL),
              SQLITE_OK);
    off_t wal_max = 0;
    for (int i = 0; i < n; i++) {
        CHECK_INT(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
        CHECK_INT(fdatasync(wal_fd), 0);
        struct stat sb;
        if (fstat(wal_fd, &sb) == 0 && sb.st_size > wal_max)
            wal_max = sb.st_size;
        nanosleep(&(struct timespec){0, pause_ns}, NULL);
    }
    sqlite3_finalize(ins);
    close(wal_fd);
    return wal_max;
}

/* The checkpointer copies a cycle of the WAL in a few passes: before, every
 * commit past the threshold started one (each copying that commit's pages and
 * syncing both files). 1,500 commits against a threshold of 64 pages: the WAL
 * starts over about every 64 commits, after a few passes, and stays small;
 * every row is there. */
static void test_checkpoint_passes(void)
{
    char path[300], err[TR_ERRLEN];
    sqlite3 *db = open_table("passes.db", path, sizeof path);
    struct checkpointer *ck = checkpointer_start(db, path, 64, err);
    CHECK(ck != NULL);
    enum { COMMITS = 1500 };
    off_t wal_max = commit_rows(db, path, COMMITS, 500000);
    unsigned long runs = checkpointer_runs(ck);
    fprintf(stderr, "checkpointer: %lu passes for %d commits, WAL at most %lld bytes\n", runs,
            COMMITS, (long long)wal_max);
    CHECK(runs > 10);            /* it did checkpoint ... */
    CHECK(runs < COMMITS / 4);   /* ... but not after every commit (about 6 a cycle) */
    CHECK(wal_max < 160 * 4120); /* below 2 x 64 pages and a few commits */
    checkpointer_stop(ck);
    sqlite3_stmt *cnt = NULL;
    CHECK_INT(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM t", -1, &cnt, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_step(cnt), SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(cnt, 0), COMMITS);
    sqlite3_finalize(cnt);
    sqlite3_close(db);
}

/* Before, the thread's passes left the pages they copied unsynced, and
 * SQLite synced the database file only in the pass that ended the cycle: the
 * committing thread's, which had to flush every page of the cycle (under the
 * HTTP benchmark 15-20 ms, with every request of the next commit waiting).
 * Now each pass of the thread syncs what it copied. 2,000 commits against a
 * threshold of 512 pages (a cycle of about 256 commits; a tail of 16 pages):
 * the committing thread syncs the database file at the end of each cycle,
 * and never has much more than its tail to flush (about 190 pages before). */
static void test_thread_syncs_what_it_copies(void)
{
    char path[300], err[TR_ERRLEN];
    committer = pthread_self();
    atomic_store(&unsynced_pages, 0);
    atomic_store(&committer_syncs, 0);
    atomic_store(&committer_flushed_max, 0);
    counting_vfs_install();
    sqlite3 *db = open_table("syncs.db", path, sizeof path);
    struct checkpointer *ck = checkpointer_start(db, path, 512, err);
    CHECK(ck != NULL);
    commit_rows(db, path, 2000, 250000);
    /* before the close, whose last checkpoint syncs on this thread too */
    unsigned long thread_syncs = checkpointer_db_syncs(ck);
    long syncs = atomic_load(&committer_syncs), flushed = atomic_load(&committer_flushed_max);
    checkpointer_stop(ck);
    sqlite3_close(db);
    counting_vfs_remove();
    fprintf(stderr,
            "checkpointer: the thread synced the database %lu times; the committing thread "
            "%ld times, flushing at most %ld pages\n",
            thread_syncs, syncs, flushed);
    CHECK(syncs > 5);         /* the cycles did end on the committing thread ... */
    CHECK(thread_syncs > 5);  /* ... after passes of the thread, which synced ... */
    CHECK(flushed <= 3 * 16); /* ... so that it flushed its tail, not the cycle */
}

/* The thread's sync of the database file can be slow (a busy disk: in CI it
 * took long enough for the WAL to reach 180 pages against a threshold of 64).
 * It is no copy, so it must not keep the committing thread from copying the
 * rest itself once the WAL holds twice the threshold. Each sync of the
 * thread's outside SQLite's checkpoints takes 100 ms here, the time of about
 * 150 commits: the WAL stays below twice the threshold and a few commits. */
static void test_slow_sync_does_not_hold_the_wal(void)
{
    char path[300], err[TR_ERRLEN];
    committer = pthread_self();
    atomic_store(&other_sync_delay_ns, 100 * 1000 * 1000L);
    counting_vfs_install();
    sqlite3 *db = open_table("slow.db", path, sizeof path);
    struct checkpointer *ck = checkpointer_start(db, path, 64, err);
    CHECK(ck != NULL);
    off_t wal_max = commit_rows(db, path, 1500, 500000);
    unsigned long thread_syncs = checkpointer_db_syncs(ck);
    checkpointer_stop(ck);
    sqlite3_close(db);
    counting_vfs_remove();
    atomic_store(&other_sync_delay_ns, 0);
    fprintf(stderr,
            "checkpointer: with 100 ms syncs the thread synced %lu times, WAL at most %lld "
            "bytes\n",
            thread_syncs, (long long)wal_max);
    CHECK(thread_syncs > 0);
    CHECK(wal_max < 160 * 4120);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    test_checkpoint_passes();
    test_thread_syncs_what_it_copies();
    test_slow_sync_does_not_hold_the_wal();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_done("checkpoint");
}
