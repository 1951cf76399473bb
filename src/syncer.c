/* syncer.c: the syncer thread (syncer.h).
 *
 * Submitted batches wait in a list. The thread takes all that wait, syncs each
 * distinct file among their descriptors once (after a reconnect two batches
 * may name different WAL files), then calls done() for each in order with the
 * outcome of its file's sync. A submit that cannot allocate its list entry
 * waits for the thread to finish everything before it, then syncs and calls
 * done() itself, so the order holds. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tlsrptd/syncer.h"

struct waiting {
    struct waiting *next;
    int fd;
    void *batch;
    tr_err rc; /* of its file's sync */
    char err[TR_ERRLEN];
};

struct syncer {
    syncer_done_fn done;
    void *cls;
    size_t max_waiting;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, room; /* room: also signalled when everything is done */
    struct waiting *head, *tail;
    size_t pending; /* submitted and not yet done */
    bool stopping;
};

static tr_err sync_one(int fd, char *err)
{
    if (fdatasync(fd) == 0)
        return TR_OK;
    return tr_fail(err, TR_EDB, "syncing the database's log to disk failed: %s", strerror(errno));
}

/* Sync the files of a list of batches, each distinct file once. */
static void sync_all(struct waiting *list)
{
    for (struct waiting *a = list; a; a = a->next) {
        a->rc = TR_OK;
        if (a->fd < 0)
            continue;
        struct stat sa;
        bool stat_ok = fstat(a->fd, &sa) == 0;
        struct waiting *same = NULL; /* an earlier batch of the same file, synced already */
        for (struct waiting *b = list; stat_ok && b != a && same == NULL; b = b->next) {
            struct stat sb;
            if (b->fd >= 0 && fstat(b->fd, &sb) == 0 && sb.st_dev == sa.st_dev &&
                sb.st_ino == sa.st_ino)
                same = b;
        }
        if (same) { /* its sync came after this batch's commit too */
            a->rc = same->rc;
            snprintf(a->err, sizeof a->err, "%s", same->err);
        } else {
            a->rc = sync_one(a->fd, a->err);
        }
    }
}

static void finish(struct syncer *s, struct waiting *list)
{
    size_t n = 0;
    while (list) {
        struct waiting *next = list->next;
        if (list->fd >= 0)
            close(list->fd);
        s->done(list->batch, list->rc, list->err, s->cls);
        free(list);
        list = next;
        n++;
    }
    pthread_mutex_lock(&s->mu);
    s->pending -= n;
    pthread_cond_broadcast(&s->room);
    pthread_mutex_unlock(&s->mu);
}

static void *syncer_main(void *arg)
{
    struct syncer *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->head == NULL && !s->stopping)
            pthread_cond_wait(&s->work, &s->mu);
        if (s->head == NULL)
            break;
        struct waiting *list = s->head;
        s->head = s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        sync_all(list);
        finish(s, list);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

struct syncer *syncer_start(syncer_done_fn done, void *cls, size_t max_waiting)
{
    struct syncer *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->done = done;
    s->cls = cls;
    s->max_waiting = max_waiting ? max_waiting : 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->room, NULL);
    if (pthread_create(&s->thread, NULL, syncer_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->room);
        free(s);
        return NULL;
    }
    return s;
}

void syncer_submit(struct syncer *s, int fd, void *batch)
{
    struct waiting *w = calloc(1, sizeof *w);
    if (w == NULL) { /* in turn, on this thread */
        syncer_wait(s);
        struct waiting one = {.fd = fd, .batch = batch};
        sync_all(&one);
        if (fd >= 0)
            close(fd);
        s->done(batch, one.rc, one.err, s->cls);
        return;
    }
    w->fd = fd;
    w->batch = batch;
    pthread_mutex_lock(&s->mu);
    while (s->pending >= s->max_waiting)
        pthread_cond_wait(&s->room, &s->mu);
    if (s->tail)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
    s->pending++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

void syncer_wait(struct syncer *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->pending > 0)
        pthread_cond_wait(&s->room, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void syncer_stop(struct syncer *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->room);
    free(s);
}
