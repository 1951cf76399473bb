/* writer.c: the group-commit writer thread (see writer.h).
 *
 * Requests are queued by request threads; the writer takes all of them (up to
 * commit_max), stores them in one transaction and commits, then answers each.
 * A batch that loses a race with another writer (TR_ERETRY: a deadlock or
 * serialization failure on a shared PostgreSQL) runs again at once. When the
 * database is unavailable (locked, read-only, gone, disk full, PostgreSQL
 * down) the batch is rolled back and, without a spool, every request in it is
 * answered "storage unavailable" so the sender retries; with a spool the HTTP
 * requests are written to it and answered 202, and from then on new ones go
 * to the spool too (so the spool keeps arrival order) until it has been
 * drained into the database. Maildir requests are never spooled: their files
 * wait in new/.
 *
 * Once a second the thread checks the database when it is idle: that the
 * file is still there and writable (SQLite) or the connection alive
 * (PostgreSQL), and while something failed, that a write transaction can
 * start. A connection that cannot recover by itself (a deleted or replaced
 * file, a file that was read-only when opened, a lost PostgreSQL connection)
 * is opened again. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/log.h"
#include "tlsrptd/spool.h"
#include "tlsrptd/writer.h"

#define RETRIES       5  /* runs of a batch that keeps losing races */
#define BACKOFF_MAX   30 /* seconds between attempts while storage is down */
#define DRAIN_BATCH   64 /* spool entries stored in one transaction */
#define HEALTH_PERIOD 5  /* seconds between checks while all is well */

struct writer {
    struct store *st;
    struct ingest *ig;
    struct ingest_limits lim;
    size_t commit_max;
    struct spool *spool;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct writer_request *head, *tail;
    size_t queued, in_batch;
    bool stopping;
    /* the state of storage, read by writer_healthy() under mu */
    bool healthy;
    char why[TR_ERRLEN];
    size_t spooled;
    /* the writer thread's own */
    bool spooling;     /* new HTTP requests go to the spool until it is drained */
    time_t next_try;   /* while failing: when to try the database again */
    unsigned backoff;  /* seconds */
    time_t next_check; /* when all is well: the next health check */
    bool maintenance;  /* the backend's background work runs */
};

static void set_health(struct writer *w, bool healthy, const char *why)
{
    pthread_mutex_lock(&w->mu);
    bool was = w->healthy;
    w->healthy = healthy;
    snprintf(w->why, sizeof w->why, "%s", healthy ? "" : why);
    w->spooled = w->spool ? spool_count(w->spool) : 0;
    pthread_mutex_unlock(&w->mu);
    if (was && !healthy)
        tr_err_log("storage unavailable: %s; %s until it recovers", why,
                   w->spool ? "spooling HTTP reports (202)" : "answering 503");
    else if (!was && healthy)
        tr_info("storage available again");
}

static void answer_all(struct writer_request *batch)
{
    while (batch) {
        struct writer_request *next = batch->next;
        batch->done(batch); /* may free batch */
        batch = next;
    }
}

static void failed(struct writer *w, const char *err)
{
    set_health(w, false, err);
    time_t now = time(NULL);
    if (w->backoff && now < w->next_try)
        return; /* requests failing meanwhile do not put off the planned attempt */
    w->backoff = w->backoff ? (w->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : w->backoff * 2) : 1;
    w->next_try = now + w->backoff;
}

/* Open the database again when its connection cannot recover by itself. */
static void reopen_if_needed(struct writer *w)
{
    char why[TR_ERRLEN], err[TR_ERRLEN];
    if (store_check_writable(w->st, why) == TR_OK)
        return;
    if (w->maintenance) {
        store_stop_maintenance(w->st);
        w->maintenance = false;
    }
    if (store_reconnect(w->st, err) != TR_OK) {
        tr_debug("reopening the database: %s", err);
        return;
    }
    tr_info("database %s opened again", store_name(w->st));
    if (store_start_maintenance(w->st, err) == TR_OK)
        w->maintenance = true;
}

/* Store the jobs in one transaction, running it again when it loses a race.
 * On failure every result is "storage unavailable" and err says why. */
static tr_err store_jobs(struct writer *w, struct ingest_job **jobs, struct ingest_result **res,
                         size_t n, char *err)
{
    tr_err rc = TR_EDB;
    for (int attempt = 0; attempt < RETRIES; attempt++) {
        for (size_t i = 0; i < n; i++)
            ingest_result_free(res[i]);
        if ((rc = ingest_begin(w->ig, err)) == TR_OK) {
            for (size_t i = 0; i < n; i++)
                ingest_store(w->ig, jobs[i], res[i]);
            rc = ingest_commit(w->ig, err);
        }
        if (rc != TR_ERETRY)
            break;
        tr_debug("group commit lost a race (%s); running it again", err);
    }
    if (rc != TR_OK)
        for (size_t i = 0; i < n; i++) {
            ingest_result_free(res[i]);
            ingest_result_tempfail(res[i], err);
        }
    return rc;
}

/* The requests of a batch into the spool: 202 (or 400 for one that can only
 * be quarantined, which happens when it is drained). */
static void spool_batch(struct writer *w, struct writer_request *batch, const char *why)
{
    for (struct writer_request *r = batch; r; r = r->next) {
        ingest_result_free(&r->res);
        size_t len;
        const struct store_source *src;
        const void *data = ingest_job_input(r->job, &len, &src);
        char err[TR_ERRLEN];
        if (!r->spoolable || data == NULL) {
            ingest_result_tempfail(&r->res, why);
            continue;
        }
        if (spool_put(w->spool, data, len, src, err) != TR_OK) {
            tr_warn("%s", err);
            ingest_result_tempfail(&r->res, err);
            continue;
        }
        const char *reason;
        if (ingest_job_rejected(r->job, &reason)) {
            r->res.outcome = INGEST_REJECTED; /* quarantined when the spool is drained */
            snprintf(r->res.reason, sizeof r->res.reason, "%s", reason);
        } else {
            r->res.outcome = INGEST_SPOOLED;
            snprintf(r->res.reason, sizeof r->res.reason, "%s", why);
        }
    }
    pthread_mutex_lock(&w->mu);
    w->spooled = spool_count(w->spool);
    pthread_mutex_unlock(&w->mu);
}

static void run_batch(struct writer *w, struct writer_request *batch)
{
    size_t n = 0;
    for (struct writer_request *r = batch; r; r = r->next)
        n++;
    if (w->spooling) { /* keep arrival order: behind what waits in the spool */
        spool_batch(w, batch, w->why[0] ? w->why : "storage unavailable");
        answer_all(batch);
        return;
    }
    struct ingest_job **jobs = malloc(n * sizeof *jobs);
    struct ingest_result **res = malloc(n * sizeof *res);
    char err[TR_ERRLEN] = "out of memory";
    tr_err rc = TR_ENOMEM;
    if (jobs && res) {
        size_t i = 0;
        for (struct writer_request *r = batch; r; r = r->next, i++) {
            jobs[i] = r->job;
            res[i] = &r->res;
            memset(&r->res, 0, sizeof r->res);
        }
        rc = store_jobs(w, jobs, res, n, err);
    } else {
        for (struct writer_request *r = batch; r; r = r->next)
            ingest_result_tempfail(&r->res, err);
    }
    free(jobs);
    free(res);
    if (rc == TR_OK) {
        w->backoff = 0;
        if (!w->healthy)
            set_health(w, true, "");
    } else {
        failed(w, err);
        if (w->spool) {
            w->spooling = true;
            spool_batch(w, batch, err);
        }
    }
    tr_debug("group commit: %zu report%s", n, n == 1 ? "" : "s");
    answer_all(batch);
}

/* Store the oldest spooled inputs; true when the spool is empty afterwards. */
static bool drain(struct writer *w)
{
    struct spool_entry entries[DRAIN_BATCH];
    size_t n = spool_peek(w->spool, entries, DRAIN_BATCH);
    if (n == 0)
        return true;
    struct ingest_job *jobs[DRAIN_BATCH];
    struct ingest_result results[DRAIN_BATCH], *res[DRAIN_BATCH];
    /* spooled bodies are decoded HTTP bodies: up to max_inflated */
    struct ingest_limits lim = w->lim;
    if (lim.max_input < lim.max_inflated)
        lim.max_input = lim.mime.max_message = lim.max_inflated;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        jobs[k] = ingest_prepare(entries[i].data, entries[i].len, false, &entries[i].src, &lim);
        if (jobs[k] == NULL)
            break; /* out of memory: the rest waits */
        memset(&results[k], 0, sizeof results[k]);
        res[k] = &results[k];
        k++;
    }
    char err[TR_ERRLEN] = "out of memory";
    tr_err rc = k ? store_jobs(w, jobs, res, k, err) : TR_ENOMEM;
    size_t stored = 0, quarantined = 0;
    for (size_t i = 0; i < k; i++) {
        if (rc == TR_OK && spool_remove(w->spool, &entries[i], err) != TR_OK)
            tr_warn("%s", err); /* drained again later: a duplicate */
        stored += results[i].outcome == INGEST_STORED || results[i].outcome == INGEST_DUPLICATE;
        quarantined += results[i].outcome == INGEST_REJECTED;
        ingest_result_free(&results[i]);
        ingest_job_free(jobs[i]);
    }
    for (size_t i = 0; i < n; i++)
        spool_entry_free(&entries[i]);
    if (rc != TR_OK) {
        failed(w, err);
        return false;
    }
    tr_info("spool: %zu inputs stored or found duplicate, %zu quarantined, %zu still waiting",
            stored, quarantined, spool_count(w->spool));
    w->backoff = 0;
    set_health(w, true, "");
    return spool_count(w->spool) == 0;
}

/* Idle work, about once a second: health, reopening, draining the spool. */
static void tick(struct writer *w)
{
    time_t now = time(NULL);
    bool failing = !w->healthy;
    bool waiting = w->spool && spool_count(w->spool) > 0;
    if (!failing && !waiting) {
        w->spooling = false; /* nothing waits in the spool (a failed batch of Maildir
                                requests put none there): store directly */
        if (now < w->next_check)
            return;
        w->next_check = now + HEALTH_PERIOD;
        char why[TR_ERRLEN];
        if (store_check_writable(w->st, why) != TR_OK) {
            failed(w, why);
            reopen_if_needed(w);
        }
        return;
    }
    if (now < w->next_try)
        return;
    reopen_if_needed(w);
    if (waiting) {
        if (drain(w) && w->spooling) {
            w->spooling = false;
            tr_info("spool drained; storing directly again");
        }
        return;
    }
    /* a probe: can a write transaction start? */
    char why[TR_ERRLEN];
    tr_err rc = store_check_writable(w->st, why);
    if (rc == TR_OK && (rc = store_begin(w->st, why)) == TR_OK)
        store_rollback(w->st);
    if (rc == TR_OK) {
        w->backoff = 0;
        set_health(w, true, "");
    } else {
        failed(w, why);
    }
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->head == NULL && !w->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0 && w->head == NULL &&
                !w->stopping) {
                pthread_mutex_unlock(&w->mu);
                tick(w);
                pthread_mutex_lock(&w->mu);
            }
        }
        if (w->head == NULL && w->stopping)
            break;
        /* take up to commit_max requests */
        struct writer_request *batch = w->head, *last = w->head;
        size_t n = 1;
        while (last->next && n < w->commit_max)
            last = last->next, n++;
        w->head = last->next;
        if (w->head == NULL)
            w->tail = NULL;
        last->next = NULL;
        w->queued -= n;
        w->in_batch = n;
        pthread_mutex_unlock(&w->mu);
        tick(w); /* a writer that is never idle still checks, reopens and drains */
        run_batch(w, batch);
        pthread_mutex_lock(&w->mu);
        w->in_batch = 0;
    }
    pthread_mutex_unlock(&w->mu);
    /* what still waits in the spool is stored at the next start */
    return NULL;
}

struct writer *writer_start(struct store *st, const struct ingest_limits *lim, size_t commit_max,
                            char *err)
{
    struct writer *w = calloc(1, sizeof *w);
    if (w == NULL || (w->ig = ingest_new(st, lim)) == NULL) {
        free(w);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    static const struct ingest_limits defaults = INGEST_DEFAULT_LIMITS;
    w->st = st;
    w->lim = lim ? *lim : defaults;
    w->commit_max = commit_max ? commit_max : 1;
    w->healthy = true;
    if (store_start_maintenance(st, err) != TR_OK) {
        ingest_free(w->ig);
        free(w);
        return NULL;
    }
    w->maintenance = true;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    char why[TR_ERRLEN];
    if (store_check_writable(st, why) != TR_OK) {
        w->healthy = false;
        snprintf(w->why, sizeof w->why, "%s", why);
    }
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        store_stop_maintenance(st);
        ingest_free(w->ig);
        free(w);
        tr_fail(err, TR_ENOMEM, "cannot start the writer thread");
        return NULL;
    }
    return w;
}

tr_err writer_set_spool(struct writer *w, const char *dir, size_t max_bytes, char *err)
{
    struct spool *sp = spool_open(dir, max_bytes, err);
    if (sp == NULL)
        return TR_EIO;
    pthread_mutex_lock(&w->mu);
    w->spool = sp;
    w->spooled = spool_count(sp);
    if (w->spooled)
        w->spooling = true; /* what waits from the last run goes first */
    pthread_mutex_unlock(&w->mu);
    return TR_OK;
}

void writer_submit(struct writer *w, struct writer_request *req)
{
    req->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = req;
    else
        w->head = req;
    w->tail = req;
    w->queued++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

size_t writer_pending(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->queued + w->in_batch;
    pthread_mutex_unlock(&w->mu);
    return n;
}

bool writer_healthy(struct writer *w, char *why, size_t n)
{
    pthread_mutex_lock(&w->mu);
    bool ok = w->healthy;
    if (why && n)
        snprintf(why, n, "%s", w->why);
    pthread_mutex_unlock(&w->mu);
    return ok;
}

size_t writer_spooled(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->spooled;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void writer_stop(struct writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    if (w->maintenance)
        store_stop_maintenance(w->st);
    spool_close(w->spool);
    ingest_free(w->ig);
    free(w);
}
