/* prepool.c: the prepare pool of `tlsrptd serve` (see prepool.h).
 *
 * One mutex guards the queue and the bytes held. Pool threads take the first
 * waiting task that fits the budget (small tasks may pass large ones, large
 * ones keep their order), run it unlocked, and when nothing fits refuse the
 * tasks whose wait is over, give memory back after a spike (at most once
 * every TRIM_PERIOD), or sleep until the next deadline or a release that
 * makes room for a waiting task. A caller may run a task itself when nothing
 * waits (prepool_run_here). Knows nothing of HTTP or reports. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include "tlsrptd/log.h"
#include "tlsrptd/prepool.h"
#include "tlsrptd/thread_prio.h"

#define RETRY_AFTER 5                 /* seconds, for a task refused for lack of memory */
#define TRIM_AFTER  ((size_t)8 << 20) /* give memory back after a peak of this much held */
#define TRIM_PERIOD 5                 /* seconds between two times memory is given back, at least */

struct prepool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *threads;
    size_t nthreads;
    size_t budget;
    unsigned wait;
    struct prepool_task *head, *tail; /* waiting, in arrival order */
    size_t waiting, waiting_bytes;
    size_t held; /* by tasks admitted and not released */
    size_t peak; /* most held since memory was last given back */
    bool stopping, trim_wanted;
    size_t trims;              /* times memory was given back */
    struct timespec last_trim; /* when, on CLOCK_MONOTONIC */
};

/* A spike is over when what is held has fallen to a quarter of its peak (and
 * to a sixteenth of the budget): under a steady load the held bytes swing by
 * a batch of answers around a level, and giving memory back on each swing
 * made every thread fault the pages in again. */
static bool spike_over(const struct prepool *p)
{
    return p->peak >= TRIM_AFTER && p->held <= p->peak / 4 && p->held <= p->budget / 16;
}

static bool is_small(const struct prepool *p, const struct prepool_task *t)
{
    return t->weight <= p->budget / 64;
}

static bool fits(const struct prepool *p, const struct prepool_task *t)
{
    if (p->held == 0)
        return true; /* alone, a task may exceed the budget: it would never run otherwise */
    size_t room = is_small(p, t) ? p->budget + p->budget / 8 : p->budget;
    return p->held <= room && t->weight <= room - p->held;
}

static void unlink_task(struct prepool *p, struct prepool_task *prev, struct prepool_task *t)
{
    if (prev)
        prev->next = t->next;
    else
        p->head = t->next;
    if (p->tail == t)
        p->tail = prev;
    t->next = NULL;
    p->waiting--;
    p->waiting_bytes -= t->weight;
}

/* The first waiting task that fits; large ones are taken in order. */
static struct prepool_task *pick(struct prepool *p)
{
    bool large_waits = false;
    for (struct prepool_task *prev = NULL, *t = p->head; t; prev = t, t = t->next) {
        bool small = is_small(p, t);
        if (!small && large_waits)
            continue;
        if (fits(p, t)) {
            unlink_task(p, prev, t);
            return t;
        }
        if (!small)
            large_waits = true;
    }
    return NULL;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

/* Unlink the tasks whose wait is over (all of them when stopping). */
static struct prepool_task *take_expired(struct prepool *p, const struct timespec *now)
{
    struct prepool_task *out = NULL, **end = &out;
    for (struct prepool_task *prev = NULL, *t = p->head, *next; t; t = next) {
        next = t->next;
        if (p->stopping || before(&t->deadline, now)) {
            unlink_task(p, prev, t);
            *end = t;
            end = &t->next;
        } else {
            prev = t;
        }
    }
    return out;
}

/* t is about to run: it holds its weight from now on. */
static void admit(struct prepool *p, struct prepool_task *t)
{
    t->held = t->weight;
    p->held += t->held;
    if (p->held > p->peak)
        p->peak = p->held;
}

/* t was run and asks for more weight: back to the front of the queue, holding nothing. */
static void requeue(struct prepool *p, struct prepool_task *t, size_t again)
{
    p->held -= t->held;
    t->held = 0;
    t->weight = again;
    t->next = p->head;
    p->head = t;
    if (p->tail == NULL)
        p->tail = t;
    p->waiting++;
    p->waiting_bytes += again;
    pthread_cond_broadcast(&p->cv);
}

static void *pool_main(void *arg)
{
    struct prepool *p = arg;
    thread_prio_prepare(); /* the writer, which waits for us, runs first */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct prepool_task *t = pick(p);
        if (t) {
            admit(p, t);
            pthread_mutex_unlock(&p->mu);
            size_t again = t->run(t);
            pthread_mutex_lock(&p->mu);
            if (again)
                requeue(p, t, again);
            continue;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct prepool_task *expired = take_expired(p, &now);
        if (expired) {
            unsigned retry_after = p->stopping ? 60 : RETRY_AFTER;
            pthread_mutex_unlock(&p->mu);
            for (struct prepool_task *next; expired; expired = next) {
                next = expired->next;
                expired->next = NULL;
                expired->refused(expired, retry_after);
            }
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->stopping)
            break;
        if (p->trim_wanted && !spike_over(p))
            p->trim_wanted = false; /* a load came back before the memory was given */
        bool trim_due =
            p->trim_wanted && (p->trims == 0 || now.tv_sec - p->last_trim.tv_sec >= TRIM_PERIOD);
        if (trim_due) {
            p->trim_wanted = false;
            p->peak = p->held;
            p->trims++;
            p->last_trim = now;
            pthread_mutex_unlock(&p->mu);
#ifdef __GLIBC__
            malloc_trim(0); /* the trees of a spike were freed: hand their pages back */
#endif
            pthread_mutex_lock(&p->mu);
            continue;
        }
        struct timespec until = now;
        until.tv_sec += 1;
        for (struct prepool_task *w = p->head; w; w = w->next)
            if (before(&w->deadline, &until))
                until = w->deadline;
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct prepool *prepool_start(size_t threads, size_t budget, unsigned wait, char *err)
{
    struct prepool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->threads = calloc(threads ? threads : 1, sizeof *p->threads)) == NULL) {
        free(p);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    p->budget = budget;
    p->wait = wait;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < (threads ? threads : 1); i++) {
        int e = pthread_create(&p->threads[i], NULL, pool_main, p);
        if (e != 0) {
            tr_fail(err, TR_ENOMEM, "cannot start a prepare thread: %s", strerror(e));
            prepool_stop(p);
            prepool_free(p);
            return NULL;
        }
        p->nthreads++;
    }
    return p;
}

bool prepool_submit(struct prepool *p, struct prepool_task *t, unsigned *retry_after)
{
    pthread_mutex_lock(&p->mu);
    bool ok = !p->stopping;
    *retry_after = ok ? RETRY_AFTER : 60;
    if (ok && !(p->head == NULL && fits(p, t)))
        ok = p->wait > 0 && p->waiting_bytes <= 4 * p->budget &&
             t->weight <= 4 * p->budget - p->waiting_bytes;
    if (ok) {
        clock_gettime(CLOCK_MONOTONIC, &t->deadline);
        t->deadline.tv_sec += p->wait;
        t->held = 0;
        t->next = NULL;
        if (p->tail)
            p->tail->next = t;
        else
            p->head = t;
        p->tail = t;
        p->waiting++;
        p->waiting_bytes += t->weight;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

bool prepool_run_here(struct prepool *p, struct prepool_task *t, size_t max_weight)
{
    pthread_mutex_lock(&p->mu);
    /* only when nothing waits: a task run here must not pass one queued before it */
    bool here = !p->stopping && p->head == NULL && t->weight <= max_weight && fits(p, t);
    if (here) {
        admit(p, t);
        t->next = NULL;
        clock_gettime(CLOCK_MONOTONIC, &t->deadline); /* in case it is queued again */
        t->deadline.tv_sec += p->wait;
    }
    pthread_mutex_unlock(&p->mu);
    if (!here)
        return false;
    size_t again = t->run(t);
    if (again) {
        pthread_mutex_lock(&p->mu);
        requeue(p, t, again);
        pthread_mutex_unlock(&p->mu);
    }
    return true;
}

void prepool_settle(struct prepool *p, struct prepool_task *t, size_t weight)
{
    pthread_mutex_lock(&p->mu);
    if (weight < t->held) {
        p->held -= t->held - weight;
        t->held = weight;
        if (p->head)
            pthread_cond_broadcast(&p->cv); /* room for what waits */
    }
    pthread_mutex_unlock(&p->mu);
}

void prepool_release(struct prepool *p, struct prepool_task *t)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    if (t->held) {
        p->held -= t->held;
        t->held = 0;
        bool trim_now = !p->trim_wanted && spike_over(p);
        p->trim_wanted = p->trim_wanted || trim_now;
        /* waking the threads for nothing would cost a context switch each, per
         * upload; a trim that must wait for TRIM_PERIOD is seen by their
         * once-a-second wake-up */
        if (p->head || trim_now)
            pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

size_t prepool_trims(struct prepool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->trims;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void prepool_load(struct prepool *p, size_t *held, size_t *waiting)
{
    pthread_mutex_lock(&p->mu);
    *held = p->held;
    *waiting = p->waiting;
    pthread_mutex_unlock(&p->mu);
}

void prepool_stop(struct prepool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    bool joined = p->stopping && p->nthreads == 0;
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (joined)
        return;
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
}

void prepool_free(struct prepool *p)
{
    if (p == NULL)
        return;
    prepool_stop(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
