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
 * Draining: the oldest entries are stored in one transaction that also
 * records their names (meta "spool:NAME"); the files are removed after the
 * commit, then the names. An entry found recorded was committed by a run cut
 * short before it removed the file: it is removed without being stored or
 * counted again.
 *
 * A commit whose answer is lost (PostgreSQL stopping, a network cut) may have
 * happened or not. So that its reports, spooled, are not counted again as
 * duplicates of themselves, each direct commit also sets the meta key
 * "commit:SPOOL-ID" to a ticket drawn for it, and the spooled entries carry
 * that ticket: an entry whose ticket is the key's value when it is drained
 * was committed (tickets do not repeat, and nothing commits directly while
 * the spool holds entries, so the value is still that commit's). While the
 * spool holds entries and storage takes writes, the
 * thread drains in slices of DRAIN_SLICE_MS between the batches of new
 * requests (which go to the spool behind them), so the spool empties under
 * load too.
 *
 * With a store that commits without syncing (defer_sync: SQLite), a batch is
 * answered by the syncer (syncer.h) once its commit is on disk, while this
 * thread stores the next; a spool entry's file is removed only after the
 * commit that stored it is synced. Until that sync is done the next batch's
 * transaction stays open and takes in the requests that arrive meanwhile (its
 * commit could not be synced any sooner), so a request waits for two batches'
 * time, not three.
 *
 * Once a second, busy or idle, the thread checks the database: that the
 * file is still there and writable (SQLite) or the connection alive
 * (PostgreSQL), and while something failed, that a write transaction can
 * start. A connection that cannot recover by itself (a deleted or replaced
 * file, a file that was read-only when opened, a lost PostgreSQL connection)
 * is opened again. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "tlsrptd/log.h"
#include "tlsrptd/spool.h"
#include "tlsrptd/syncer.h"
#include "tlsrptd/writer.h"

#define RETRIES        5   /* runs of a batch that keeps losing races */
#define BACKOFF_MAX    30  /* seconds between attempts while storage is down */
#define DRAIN_BATCH    64  /* spool entries stored in one transaction */
#define DRAIN_SLICE_MS 250 /* draining between two batches of new requests, at most */
#define HEALTH_PERIOD  5   /* seconds between checks while all is well */
#define MARKER_PREFIX  "spool:"
#define TICKET_PREFIX  "commit:"
#define SYNC_WAITING   1 /* committed batches waiting for the disk, at most */

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
    size_t unanswered; /* requests of committed batches waiting for the syncer */
    struct syncer *syncer;
    bool stopping;
    void (*on_commit)(void *cls); /* writer_on_commit */
    void *on_commit_cls;
    /* the state of storage, read by writer_healthy() under mu */
    bool healthy;
    char why[TR_ERRLEN];
    size_t spooled;
    /* the writer thread's own */
    bool spooling;        /* new HTTP requests go to the spool until it is drained */
    time_t next_try;      /* while failing: when to try the database again */
    unsigned backoff;     /* seconds */
    time_t next_check;    /* when all is well: the next health check */
    bool maintenance;     /* the backend's background work runs */
    char ticket_key[64];  /* "commit:SPOOL-ID", with a spool */
    uint64_t next_ticket; /* drawn at random, then counted up */
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

/* After a successful commit: the hook, if any. */
static void committed(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    void (*fn)(void *) = w->on_commit;
    void *cls = w->on_commit_cls;
    pthread_mutex_unlock(&w->mu);
    if (fn)
        fn(cls);
}

static void answer_all(struct writer_request *batch)
{
    while (batch) {
        struct writer_request *next = batch->next;
        batch->done(batch); /* may free batch */
        batch = next;
    }
}

/* What a batch stored cannot be acknowledged (its sync failed): every
 * request is answered "storage unavailable", and its sender retries. */
static void unacknowledge(struct writer_request *batch, const char *err)
{
    for (struct writer_request *r = batch; r; r = r->next)
        if (r->res.outcome != INGEST_UNREADABLE) {
            ingest_result_free(&r->res);
            ingest_result_tempfail(&r->res, err);
        }
}

/* On the syncer thread: the batch's commit is on disk (rc TR_OK), or the disk
 * failed to write it, and then nothing in it may be acknowledged: the sender
 * retries, and finds the report stored if the disk did keep it. */
static void answer_synced(void *batch, tr_err rc, const char *err, void *cls)
{
    struct writer *w = cls;
    size_t n = 0;
    for (struct writer_request *r = batch; r; r = r->next)
        n++;
    if (rc != TR_OK) {
        unacknowledge(batch, err);
        tr_err_log("%s; %zu request%s answered \"storage unavailable\"", err, n, n == 1 ? "" : "s");
    }
    answer_all(batch);
    pthread_mutex_lock(&w->mu);
    w->unanswered -= n;
    if (w->unanswered == 0)
        pthread_cond_signal(&w->cv); /* an open batch may commit now */
    pthread_mutex_unlock(&w->mu);
}

/* Answer a batch once what its commit stored is durable (in order behind the
 * batches before it). */
static void answer_when_synced(struct writer *w, struct writer_request *batch, bool committed_now)
{
    size_t n = 0;
    for (struct writer_request *r = batch; r; r = r->next)
        n++;
    char err[TR_ERRLEN];
    tr_err rc = TR_OK;
    int fd = committed_now ? store_sync_fd(w->st, &rc, err) : -1;
    if (rc != TR_OK) { /* answered at once, as a failed sync */
        unacknowledge(batch, err);
        tr_err_log("%s", err);
    }
    pthread_mutex_lock(&w->mu);
    w->unanswered += n;
    pthread_mutex_unlock(&w->mu);
    syncer_submit(w->syncer, fd, batch);
}

/* Storage failed: the next attempt to reopen or probe it is backoff seconds
 * away. Batches that fail meanwhile (requests keep coming) do not move that
 * attempt further away, or a steady sender would keep it from ever coming. */
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

/* Up to max queued requests, in order (NULL when none), under mu; *last (if
 * not NULL) is set to the last one taken. They count as in the batch. */
static struct writer_request *take_queued(struct writer *w, size_t max,
                                          struct writer_request **last_out)
{
    if (w->head == NULL || max == 0)
        return NULL;
    struct writer_request *first = w->head, *last = w->head;
    size_t n = 1;
    while (last->next && n < max)
        last = last->next, n++;
    w->head = last->next;
    if (w->head == NULL)
        w->tail = NULL;
    last->next = NULL;
    w->queued -= n;
    w->in_batch += n;
    if (last_out)
        *last_out = last;
    return first;
}

/* While the batch before the open one waits for its sync, its commit could not
 * be synced any sooner: wait for requests instead and return those queued (a
 * list appended after *last, the open batch's last request, whose last one
 * then becomes *last; at most commit_max in all), or NULL once that sync is
 * done, or the writer stops, or the batch is full. Without this a
 * request arriving during a batch waited for the batch after it: three
 * batches' time from arrival to answer instead of two, and batches of a third
 * of the clients instead of half. */
static struct writer_request *take_while_syncing(struct writer *w, struct writer_request **last,
                                                 size_t n)
{
    pthread_mutex_lock(&w->mu);
    while (w->unanswered > 0 && w->head == NULL && !w->stopping && n < w->commit_max)
        pthread_cond_wait(&w->cv, &w->mu);
    struct writer_request *more = NULL, *more_last = NULL;
    if (w->unanswered > 0 && !w->stopping && n < w->commit_max &&
        (more = take_queued(w, w->commit_max - n, &more_last)) != NULL) {
        (*last)->next = more;
        *last = more_last;
    }
    pthread_mutex_unlock(&w->mu);
    return more;
}

/* A request's job and result in slot i of a batch's arrays. */
static void put_job(struct ingest_job **jobs, struct ingest_result **res, size_t i,
                    struct writer_request *r)
{
    jobs[i] = r->job;
    res[i] = &r->res;
    memset(&r->res, 0, sizeof r->res);
}

/* Store the *count jobs in one transaction, running it again when it loses a
 * race. With last (not NULL: the batch's last request), requests that arrive
 * while the batch before is being synced join the transaction (appended to
 * jobs and res, which have room for commit_max, and to the batch's list;
 * *count says how many there are in the end). markers (NULL, or one per job)
 * are recorded in the same transaction for the jobs that did not fail for
 * lack of memory. ticket (0: none) is set as the spool's last commit in the
 * same transaction, and in_commit (NULL, or one per job) tells which jobs the
 * last commit tried held. On failure every result is "storage unavailable"
 * and err says why. */
static tr_err store_jobs(struct writer *w, struct ingest_job **jobs, struct ingest_result **res,
                         size_t *count, struct writer_request **last, char *const *markers,
                         int64_t ticket, bool *in_commit, char *err)
{
    tr_err rc = TR_EDB;
    size_t n = *count;
    for (int attempt = 0; attempt < RETRIES; attempt++) {
        for (size_t i = 0; i < n; i++)
            ingest_result_free(res[i]);
        if ((rc = ingest_begin(w->ig, err)) == TR_OK) {
            for (size_t i = 0; i < n; i++)
                ingest_store(w->ig, jobs[i], res[i]);
            /* the first attempt takes in what arrives while the batch before waits for its sync */
            for (struct writer_request *r; last && attempt == 0 && !ingest_failed(w->ig) &&
                                           (r = take_while_syncing(w, last, n)) != NULL;)
                for (; r; r = r->next, n++) {
                    put_job(jobs, res, n, r);
                    ingest_store(w->ig, jobs[n], res[n]);
                }
            *count = n;
            for (size_t i = 0; markers && i < n && rc == TR_OK && !ingest_failed(w->ig); i++)
                if (res[i]->outcome != INGEST_TEMPFAIL)
                    rc = store_counter_add(w->st, markers[i], 1, NULL, err);
            if (rc == TR_OK && ticket)
                rc = store_meta_set_at_commit(w->st, w->ticket_key, ticket, err);
            for (size_t i = 0; in_commit && i < n; i++)
                in_commit[i] = rc == TR_OK && res[i]->outcome != INGEST_TEMPFAIL;
            if (rc == TR_OK)
                rc = ingest_commit(w->ig, err);
            else
                ingest_rollback(w->ig);
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
 * be quarantined, which happens when it is drained). in_commit (NULL, or one
 * per request): the requests a commit of the given ticket held, whose outcome
 * is unknown. */
static void spool_batch(struct writer *w, struct writer_request *batch, const char *why,
                        const bool *in_commit, int64_t ticket)
{
    size_t i = 0;
    for (struct writer_request *r = batch; r; r = r->next, i++) {
        ingest_result_free(&r->res);
        size_t len;
        const struct store_source *src;
        const void *data = ingest_job_input(r->job, &len, &src);
        char err[TR_ERRLEN];
        if (!r->spoolable || data == NULL) {
            ingest_result_tempfail(&r->res, why);
            continue;
        }
        const char *reason;
        bool rejected = ingest_job_rejected(r->job, &reason);
        int64_t commit = in_commit && in_commit[i] ? ticket : 0;
        if (spool_put(w->spool, data, len, src, rejected ? reason : NULL, commit, err) != TR_OK) {
            tr_warn("%s", err);
            ingest_result_tempfail(&r->res, err);
            continue;
        }
        if (rejected) {
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
    if (w->spooling && spool_count(w->spool) == 0)
        w->spooling = false; /* nothing waits: the database again */
    if (w->spooling) {       /* keep arrival order: behind what waits in the spool */
        spool_batch(w, batch, w->why[0] ? w->why : "storage unavailable", NULL, 0);
        answer_when_synced(w, batch, false);
        return;
    }
    size_t room = n > w->commit_max ? n : w->commit_max;
    struct ingest_job **jobs = malloc(room * sizeof *jobs);
    struct ingest_result **res = malloc(room * sizeof *res);
    bool *in_commit = w->spool ? calloc(room, sizeof *in_commit) : NULL;
    int64_t ticket = 0; /* with a spool: a new one each time, never 0 or negative */
    while (w->spool && ticket == 0)
        ticket = (int64_t)(w->next_ticket++ & (uint64_t)INT64_MAX);
    char err[TR_ERRLEN] = "out of memory";
    tr_err rc = TR_ENOMEM;
    if (jobs && res && (in_commit || !w->spool)) {
        size_t i = 0;
        struct writer_request *last = batch;
        for (struct writer_request *r = batch; r; last = r, r = r->next, i++)
            put_job(jobs, res, i, r);
        rc = store_jobs(w, jobs, res, &n, &last, NULL, ticket, in_commit, err);
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
        committed(w);
    } else {
        failed(w, err);
        if (w->spool) {
            spool_batch(w, batch, err, in_commit, ticket);
            /* only what the spool holds must go first (a batch of mails holds none) */
            w->spooling = spool_count(w->spool) > 0;
        }
    }
    free(in_commit);
    tr_debug("group commit: %zu report%s", n, n == 1 ? "" : "s");
    answer_when_synced(w, batch, rc == TR_OK);
}

/* The meta key recording that spool entry name was committed (malloc'd). */
static char *marker_of(const char *name)
{
    size_t n = strlen(MARKER_PREFIX) + strlen(name) + 1;
    char *m = malloc(n);
    if (m)
        snprintf(m, n, "%s%s", MARKER_PREFIX, name);
    return m;
}

/* Forget the markers of drained entries whose files are gone (a failure
 * leaves them behind: harmless, a name never comes again). */
static void forget_markers(struct writer *w, char *const *markers, size_t n)
{
    char err[TR_ERRLEN];
    tr_err rc = store_begin(w->st, err);
    for (size_t i = 0; rc == TR_OK && i < n; i++)
        if (markers[i])
            rc = store_counter_delete(w->st, markers[i], err);
    if (rc == TR_OK)
        rc = store_commit(w->st, err);
    else
        store_rollback(w->st);
    if (rc != TR_OK)
        tr_debug("spool: forgetting the names of drained entries: %s", err);
}

/* Store the oldest spooled inputs; true when the spool is empty afterwards. */
static bool drain(struct writer *w)
{
    struct spool_entry entries[DRAIN_BATCH];
    size_t n = spool_peek(w->spool, entries, DRAIN_BATCH);
    if (n == 0)
        return true;
    char *markers[DRAIN_BATCH] = {NULL};
    bool done[DRAIN_BATCH] = {false}; /* committed: the file may go */
    struct ingest_job *jobs[DRAIN_BATCH];
    char *job_markers[DRAIN_BATCH];
    size_t job_entry[DRAIN_BATCH];
    struct ingest_result results[DRAIN_BATCH], *res[DRAIN_BATCH];
    /* spooled bodies are decoded HTTP bodies: up to max_inflated */
    struct ingest_limits lim = w->lim;
    if (lim.max_input < lim.max_inflated)
        lim.max_input = lim.mime.max_message = lim.max_inflated;
    char err[TR_ERRLEN] = "out of memory";
    tr_err rc = TR_OK;
    size_t k = 0, again = 0;
    int64_t last_commit = 0; /* the ticket of this spool's last direct commit */
    for (size_t i = 0; i < n; i++)
        if (entries[i].commit) { /* asked once, and only when an entry has a ticket */
            rc = store_counter_get(w->st, w->ticket_key, &last_commit, err);
            break;
        }
    /* a prefix of the entries: out of memory, the rest waits */
    for (size_t i = 0; i < n && rc == TR_OK; i++) {
        struct spool_entry *e = &entries[i];
        int64_t seen = 0;
        if ((markers[i] = marker_of(e->name)) == NULL)
            break;
        if ((rc = store_counter_get(w->st, markers[i], &seen, err)) != TR_OK)
            break;
        /* committed by a run cut short before it removed the file, or by the
         * commit that spooled it, whose answer was lost */
        if (seen || (e->commit && e->commit == last_commit)) {
            done[i] = true;
            again++;
            continue;
        }
        jobs[k] = e->rejected
                      ? ingest_prepare_rejected(e->data, e->len, false, &e->src, e->rejected)
                      : ingest_prepare(e->data, e->len, false, &e->src, &lim);
        if (jobs[k] == NULL)
            break;
        job_markers[k] = markers[i];
        job_entry[k] = i;
        memset(&results[k], 0, sizeof results[k]);
        res[k] = &results[k];
        k++;
    }
    if (rc == TR_OK && k > 0)
        rc = store_jobs(w, jobs, res, &k, NULL, job_markers, 0, NULL, err);
    if (rc == TR_OK && (k > 0 || again > 0))
        rc = store_sync(w->st, err); /* what the files held is on disk before they go */
    for (size_t i = 0; rc != TR_OK && i < n; i++)
        done[i] = false; /* every file stays; tried again next time */
    size_t stored = 0, quarantined = 0;
    for (size_t j = 0; j < k; j++) {
        stored += results[j].outcome == INGEST_STORED || results[j].outcome == INGEST_DUPLICATE;
        quarantined += results[j].outcome == INGEST_REJECTED;
        done[job_entry[j]] = rc == TR_OK && results[j].outcome != INGEST_TEMPFAIL;
        ingest_result_free(&results[j]);
        ingest_job_free(jobs[j]);
    }
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        char rm_err[TR_ERRLEN];
        if (done[i] && spool_remove(w->spool, &entries[i], rm_err) != TR_OK)
            tr_warn("%s", rm_err); /* its marker stays: found committed next time */
        else if (done[i]) {
            any = true;
            continue;
        }
        free(markers[i]);
        markers[i] = NULL;
    }
    if (any)
        forget_markers(w, markers, n);
    for (size_t i = 0; i < n; i++) {
        free(markers[i]);
        spool_entry_free(&entries[i]);
    }
    if (rc != TR_OK) {
        failed(w, err);
        return false;
    }
    committed(w);
    if (again)
        tr_info("spool: %zu entries were already stored (before a restart, or by a commit whose "
                "answer was lost); their files removed",
                again);
    if (stored || quarantined)
        tr_info("spool: %zu inputs stored or found duplicate, %zu quarantined, %zu still waiting",
                stored, quarantined, spool_count(w->spool));
    w->backoff = 0;
    set_health(w, true, ""); /* also publishes the spool's count */
    return spool_count(w->spool) == 0;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Whether the spool waits to be drained and storage may be tried now. */
static bool drain_due(const struct writer *w)
{
    return w->spool && spool_count(w->spool) > 0 && time(NULL) >= w->next_try;
}

/* Between batches, at least once a second: health, reopening, draining the
 * spool (for DRAIN_SLICE_MS at most, so new requests are answered). */
static void tick(struct writer *w)
{
    time_t now = time(NULL);
    bool failing = !w->healthy;
    bool waiting = w->spool && spool_count(w->spool) > 0;
    if (w->spooling && !waiting) /* nothing to keep the order behind */
        w->spooling = false;
    if (!failing && !waiting) {
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
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        bool empty;
        do
            empty = drain(w);
        while (!empty && w->healthy && ms_since(&t0) < DRAIN_SLICE_MS);
        if (empty && w->spooling) {
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
    time_t ticked = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        /* the spool and the health checks are the writer thread's own: read unlocked */
        if (w->head == NULL && !w->stopping && !drain_due(w)) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&w->cv, &w->mu, &until);
        }
        if (w->head == NULL && w->stopping)
            break;
        struct writer_request *batch = take_queued(w, w->commit_max, NULL);
        pthread_mutex_unlock(&w->mu);
        /* under load too: a busy writer still drains the spool and checks health */
        if (time(NULL) != ticked || drain_due(w)) {
            ticked = time(NULL);
            tick(w);
        }
        if (batch)
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
    if ((w->syncer = syncer_start(answer_synced, w, SYNC_WAITING)) == NULL) {
        store_stop_maintenance(st);
        ingest_free(w->ig);
        free(w);
        tr_fail(err, TR_ENOMEM, "cannot start the syncer thread");
        return NULL;
    }
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
        syncer_stop(w->syncer);
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
    uint64_t first_ticket;
    if (getrandom(&first_ticket, sizeof first_ticket, 0) != (ssize_t)sizeof first_ticket) {
        spool_close(sp);
        return tr_fail(err, TR_EIO, "no random bytes for the commit tickets: %s", strerror(errno));
    }
    pthread_mutex_lock(&w->mu);
    w->spool = sp;
    w->next_ticket = first_ticket;
    snprintf(w->ticket_key, sizeof w->ticket_key, "%s%s", TICKET_PREFIX, spool_id(sp));
    w->spooled = spool_count(sp);
    if (w->spooled)
        w->spooling = true; /* what waits from the last run goes first */
    pthread_mutex_unlock(&w->mu);
    return TR_OK;
}

void writer_on_commit(struct writer *w, void (*fn)(void *cls), void *cls)
{
    pthread_mutex_lock(&w->mu);
    w->on_commit = fn;
    w->on_commit_cls = cls;
    pthread_mutex_unlock(&w->mu);
}

void writer_submit(struct writer *w, struct writer_request *req)
{
    req->next = NULL;
    pthread_mutex_lock(&w->mu);
    bool was_empty = w->head == NULL; /* the writer waits only for an empty queue */
    if (w->tail)
        w->tail->next = req;
    else
        w->head = req;
    w->tail = req;
    w->queued++;
    if (was_empty)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

size_t writer_pending(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->queued + w->in_batch + w->unanswered;
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
    syncer_stop(w->syncer); /* answers what still waits for the disk */
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    if (w->maintenance)
        store_stop_maintenance(w->st);
    spool_close(w->spool);
    ingest_free(w->ig);
    free(w);
}
