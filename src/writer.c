/* writer.c: the group-commit writer thread of `tlsrptd serve`.
 *
 * Requests are queued by HTTP threads; the writer takes all of them (up to
 * commit_max), stores them in one transaction and commits, then answers each.
 * When the database is unavailable (locked, read-only, disk full) the batch is
 * rolled back and every request in it is answered "storage unavailable", so
 * the sender retries; the next batch tries again, so the daemon recovers by
 * itself when the database is writable again. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/checkpoint.h"
#include "tlsrptd/log.h"
#include "tlsrptd/writer.h"

struct writer {
    struct ingest *ig;
    struct checkpointer *ckpt;
    size_t commit_max;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct writer_request *head, *tail;
    size_t queued, in_batch;
    bool stopping;
    bool failing; /* the last batch failed: log recovery once */
};

static void answer_all(struct writer_request *batch)
{
    while (batch) {
        struct writer_request *next = batch->next;
        batch->done(batch); /* may free batch */
        batch = next;
    }
}

static void run_batch(struct writer *w, struct writer_request *batch)
{
    char err[TR_ERRLEN];
    size_t n = 0;
    if (ingest_begin(w->ig, err) != TR_OK) {
        for (struct writer_request *r = batch; r; r = r->next) {
            memset(&r->res, 0, sizeof r->res);
            ingest_result_tempfail(&r->res, err);
            n++;
        }
    } else {
        for (struct writer_request *r = batch; r; r = r->next, n++)
            ingest_store(w->ig, r->job, &r->res);
        if (ingest_commit(w->ig, err) != TR_OK)
            for (struct writer_request *r = batch; r; r = r->next)
                ingest_result_tempfail(&r->res, err);
        else
            err[0] = 0;
    }
    if (err[0] && !w->failing) {
        tr_err_log("storage unavailable: %s; answering 503 until it recovers", err);
        w->failing = true;
    } else if (!err[0] && w->failing) {
        tr_info("storage available again");
        w->failing = false;
    }
    tr_debug("group commit: %zu report%s", n, n == 1 ? "" : "s");
    answer_all(batch);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
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
        run_batch(w, batch);
        pthread_mutex_lock(&w->mu);
        w->in_batch = 0;
    }
    pthread_mutex_unlock(&w->mu);
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
    w->commit_max = commit_max ? commit_max : 1;
    if ((w->ckpt = checkpointer_start(st, STORE_CHECKPOINT_PAGES, err)) == NULL) {
        ingest_free(w->ig);
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        checkpointer_stop(w->ckpt);
        ingest_free(w->ig);
        free(w);
        tr_fail(err, TR_ENOMEM, "cannot start the writer thread");
        return NULL;
    }
    return w;
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
    checkpointer_stop(w->ckpt);
    ingest_free(w->ig);
    free(w);
}
