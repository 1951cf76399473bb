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
 * commits no longer pay for them (except, once per two thresholds, for the
 * last few pages: see on_wal_commit). Checkpoints only copy committed pages, so
 * this changes nothing about what is durable when. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include "store_sqlite.h"
#include "tlsrptd/log.h"

struct checkpointer {
    sqlite3 *writer; /* the writer's connection, whose commits call the hook */
    sqlite3 *db;     /* the checkpointer's own connection */
    unsigned pages;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool wanted;   /* raised by the hook, cleared by the thread */
    atomic_bool copying;  /* the thread is checkpointing */
    atomic_bool catch_up; /* the writer is to finish the copy: no new passes */
    bool stopping;
    atomic_ulong runs;
};

/* On the writer thread, after each commit: nframes = pages now in the WAL. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *schema, int nframes)
{
    (void)schema;
    struct checkpointer *c = arg;
    if (nframes < (int)c->pages)
        return SQLITE_OK;
    if (!atomic_exchange(&c->wanted, true)) {
        pthread_mutex_lock(&c->mu);
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    /* SQLite starts the WAL over only when a write transaction begins with
     * every frame already copied, which a busy writer never sees: the
     * checkpointer is always a few commits behind. So past twice the
     * threshold the thread starts no new pass (catch_up), and the writer,
     * once the current pass is over, copies the last few frames itself
     * (PASSIVE never waits: while the thread copies it fails at once and is
     * tried after the next commit). Its next transaction restarts the WAL. */
    if (nframes >= 2 * (int)c->pages)
        atomic_store(&c->catch_up, true);
    if (atomic_load(&c->catch_up) && !atomic_load(&c->copying)) {
        int nlog = 0, ncopied = 0;
        if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied) ==
            SQLITE_OK) {
            atomic_store(&c->wanted, false); /* all copied: nothing for the thread */
            atomic_store(&c->catch_up, false);
            atomic_fetch_add(&c->runs, 1);
            tr_debug("checkpoint: writer copied the WAL's last pages (%d of %d)", ncopied, nlog);
        }
    }
    return SQLITE_OK;
}

static void checkpoint(struct checkpointer *c)
{
    int nlog = 0, ncopied = 0;
    atomic_store(&c->copying, true);
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied);
    atomic_store(&c->copying, false);
    atomic_fetch_add(&c->runs, 1);
    if (rc != SQLITE_OK)
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
        if (!atomic_load(&c->wanted) || atomic_load(&c->catch_up)) {
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
