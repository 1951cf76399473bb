/* store_sqlite_checkpoint.c: WAL checkpoints on a background thread, for the
 * SQLite backend's one long-lived writer (store_start_maintenance). SQLite's
 * automatic checkpoint runs inside the COMMIT that crosses the threshold, so
 * every few seconds under load one group commit (and every request waiting on
 * it) would stall while 32 MiB of WAL are copied and synced.
 *
 * sqlite3_wal_hook() on the writer's connection replaces its automatic
 * checkpoint; the hook runs on the writer thread after each commit and only
 * raises a flag once the WAL holds enough pages. The checkpointer thread owns
 * a second connection to the same file and runs the checkpoints there, so
 * commits no longer pay for them (except, once per cycle of the WAL, for the
 * last few pages: see on_wal_commit). The thread also syncs the database file
 * after each of its passes (sync_database), which SQLite would leave to the
 * pass that ends the cycle, the writer's. Checkpoints only copy committed
 * pages, and a sync more only makes them durable sooner, so this changes
 * nothing about what is durable when. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include "store_sqlite.h"
#include "tlsrptd/log.h"

struct checkpointer {
    sqlite3 *writer; /* the writer's connection, whose commits call the hook */
    sqlite3 *db;     /* the checkpointer's own connection */
    unsigned pages;  /* the threshold: WAL pages that start a pass */
    unsigned tail;   /* WAL pages left uncopied that the writer copies itself */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool wanted;  /* raised by the hook, cleared by the thread */
    atomic_bool copying; /* the thread is checkpointing */
    bool stopping;
    atomic_ulong runs;
    atomic_ulong db_syncs; /* the thread's syncs of the database file */
    /* the writer's view of the WAL (the writer thread only) */
    int last_frames;    /* pages in the WAL after the previous commit */
    atomic_ulong cycle; /* WAL restarts seen; only the writer counts them */
    /* the last pass (under mu): of which cycle, and the pages it had copied */
    unsigned long pass_cycle;
    int pass_copied;
    bool tail_due; /* a pass of the thread ended: the writer may copy the tail */
};

static void note_pass(struct checkpointer *c, unsigned long cycle, int ncopied, bool by_thread)
{
    pthread_mutex_lock(&c->mu);
    c->pass_cycle = cycle;
    c->pass_copied = ncopied;
    c->tail_due = by_thread;
    pthread_mutex_unlock(&c->mu);
    atomic_fetch_add(&c->runs, 1);
}

/* On the writer thread, after each commit: nframes = pages now in the WAL.
 *
 * SQLite starts the WAL over only when a write transaction begins with every
 * frame already copied, which the writer never sees while the thread copies:
 * the writer commits meanwhile. So the thread copies what the WAL holds, and
 * again what was committed during that pass (a smaller part each time), until
 * at most `tail` pages are left; those the writer copies itself, between two
 * commits, and its next transaction restarts the WAL. One cycle of the WAL
 * takes a few passes, each copying a page once however often the commits of
 * the cycle changed it. (A pass after every commit would copy every change of
 * a hot page and sync both files each time.) When a reader keeps the WAL
 * from starting over, the writer waits for the next `tail` pages and the
 * thread's pass over them before it tries again. Past twice the threshold, when
 * the thread cannot keep up, the writer copies the rest whatever its size.
 * PASSIVE never waits: while the thread copies, the writer looks again after
 * its next commit. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *schema, int nframes)
{
    (void)schema;
    struct checkpointer *c = arg;
    if (nframes < c->last_frames) /* the WAL has started over */
        atomic_fetch_add(&c->cycle, 1);
    c->last_frames = nframes;
    if (nframes < (int)c->pages || atomic_load(&c->copying))
        return SQLITE_OK;
    pthread_mutex_lock(&c->mu);
    int left = c->pass_cycle == atomic_load(&c->cycle) ? nframes - c->pass_copied : nframes;
    bool tail_due = c->tail_due;
    c->tail_due = false;
    pthread_mutex_unlock(&c->mu);
    if (nframes < 2 * (int)c->pages) {
        if (left > (int)c->tail) { /* a pass for the thread */
            if (!atomic_exchange(&c->wanted, true)) {
                pthread_mutex_lock(&c->mu);
                pthread_cond_signal(&c->cv);
                pthread_mutex_unlock(&c->mu);
            }
            return SQLITE_OK;
        }
        if (!tail_due)
            return SQLITE_OK; /* copied, but the WAL did not start over (a reader was on it) */
    }
    int nlog = 0, ncopied = 0;
    if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied) ==
        SQLITE_OK) {
        atomic_store(&c->wanted, false); /* all copied: nothing for the thread */
        note_pass(c, atomic_load(&c->cycle), ncopied, false);
        tr_debug("checkpoint: writer copied the WAL's last pages (%d of %d)", ncopied, nlog);
    }
    return SQLITE_OK;
}

/* The pages a pass copied, written to the database file's page cache, are
 * flushed here, on this thread. SQLite syncs the database file only in the
 * pass that copies the WAL's last frame, the writer's (on_wal_commit): left to
 * it, that sync flushed every page of the cycle (megabytes under load) and
 * held the writer, and every request waiting on a commit, for 15-20 ms once
 * per cycle. */
static void sync_database(struct checkpointer *c)
{
    sqlite3_file *file = NULL;
    if (sqlite3_file_control(c->db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
        file == NULL || file->pMethods == NULL)
        return;
    int rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK) /* the writer's pass syncs it again, and reports a failure */
        tr_warn("checkpoint: syncing the database file: %s", sqlite3_errstr(rc));
    else
        atomic_fetch_add(&c->db_syncs, 1);
}

static void checkpoint(struct checkpointer *c)
{
    int nlog = 0, ncopied = 0;
    atomic_store(&c->copying, true);
    unsigned long cycle = atomic_load(&c->cycle);
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied);
    /* The sync is no copy: while it runs (long on a busy disk), a writer past
     * twice the threshold must be free to copy the rest itself. The pass is
     * noted after it, so that the writer's usual tail pass does not sync the
     * same pages alongside. */
    atomic_store(&c->copying, false);
    if (rc == SQLITE_OK && ncopied > 0)
        sync_database(c);
    if (rc == SQLITE_OK)
        note_pass(c, cycle, ncopied, true);
    else
        atomic_fetch_add(&c->runs, 1);
    if (rc == SQLITE_BUSY) /* the writer is copying the tail: its pass covers this one */
        tr_debug("checkpoint: the writer is copying");
    else if (rc != SQLITE_OK)
        tr_warn("checkpoint: %s", sqlite3_errmsg(c->db));
    else if (nlog < 0)
        tr_warn("checkpoint: the database is not in WAL mode");
    else
        tr_debug("checkpoint: %d of %d WAL pages copied", ncopied, nlog);
}

static void *checkpointer_main(void *arg)
{
    struct checkpointer *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        if (!atomic_load(&c->wanted)) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        pthread_mutex_unlock(&c->mu);
        atomic_store(&c->wanted, false);
        checkpoint(c);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct checkpointer *checkpointer_start(sqlite3 *writer, const char *path, unsigned pages,
                                        char *err)
{
    struct checkpointer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    c->writer = writer;
    c->pages = pages ? pages : 1;
    /* 128 pages (512 KiB) at the default threshold: copied and synced
     * between two commits in a few milliseconds */
    c->tail = c->pages / 64 > 16 ? c->pages / 64 : 16;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        tr_fail(err, TR_EDB, "database %s: opening the checkpoint connection: %s", path,
                c->db ? sqlite3_errmsg(c->db) : "out of memory");
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    /* A connection only finds out that the database is in WAL mode when it
     * first reads it; until then a checkpoint does nothing (and says so with
     * -1 pages). */
    if (sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) != SQLITE_OK) {
        tr_fail(err, TR_EDB, "database %s: reading it from the checkpoint connection: %s", path,
                sqlite3_errmsg(c->db));
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thread, NULL, checkpointer_main, c) != 0) {
        tr_fail(err, TR_ENOMEM, "cannot start the checkpoint thread");
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    sqlite3_wal_hook(writer, on_wal_commit, c);
    return c;
}

void checkpointer_stop(struct checkpointer *c)
{
    if (c == NULL)
        return;
    sqlite3_wal_autocheckpoint(c->writer, SQLITE_CHECKPOINT_PAGES); /* removes our hook */
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    sqlite3_close(c->db);
    free(c);
}

unsigned long checkpointer_runs(struct checkpointer *c)
{
    return atomic_load(&c->runs);
}

unsigned long checkpointer_db_syncs(struct checkpointer *c)
{
    return atomic_load(&c->db_syncs);
}
