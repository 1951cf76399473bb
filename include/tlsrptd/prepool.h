/* prepool.h: the prepare pool of `tlsrptd serve`: a few threads that decode
 * and validate uploads, so that a hostile body being parsed never keeps
 * /healthz or another sender waiting. A small upload may instead be run by
 * the HTTP thread that received it (prepool_run_here), still within the
 * budget.
 *
 * Every task says how many bytes it may hold at most (its weight); the pool
 * runs a task only while the weights of the tasks that hold memory fit its
 * budget, so the memory of all uploads being parsed at once is bounded. A
 * task that does not fit waits, at most `wait` seconds, then is refused (the
 * endpoint answers 503 with Retry-After). Small tasks (a sixty-fourth of the
 * budget or less) may use an eighth more than the budget and pass large ones
 * that wait, so honest reports are not held up by a few big ones; a task
 * alone may exceed the budget (it would never run otherwise). A task holds its
 * weight until prepool_release(), after its answer: the parsed report lives
 * until the writer has stored it. When what is held falls to a quarter of a
 * peak of 8 MiB or more, a pool thread gives freed memory back to the system
 * (malloc_trim), at most once every five seconds: not on every swing of a
 * steady load, whose pages every thread would fault in again. */
#ifndef TLSRPTD_PREPOOL_H
#define TLSRPTD_PREPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "tlsrptd/err.h"

struct prepool;

struct prepool_task {
    size_t weight; /* in: bytes the task may hold at most */
    /* On a pool thread, once the weight fits. Returns 0 when done (the task
     * holds its weight, lowered with prepool_settle, until prepool_release),
     * or the weight to be queued again with. */
    size_t (*run)(struct prepool_task *t);
    /* Instead of run, on a pool thread (the next one free): the budget stayed
     * full for the whole wait, or the pool is stopping. retry_after: seconds
     * for Retry-After. */
    void (*refused)(struct prepool_task *t, unsigned retry_after);
    /* the pool's own */
    struct prepool_task *next;
    size_t held;
    struct timespec deadline;
};

/* threads >= 1; budget in bytes; wait in seconds (0: refuse at once what does
 * not fit). NULL with err set when a thread cannot be started. */
struct prepool *prepool_start(size_t threads, size_t budget, unsigned wait, char *err);
/* Queue t. False (t untouched, *retry_after set) when it is refused at once:
 * the pool is stopping, or it does not fit and may not wait, or the tasks
 * waiting already weigh four budgets. */
bool prepool_submit(struct prepool *p, struct prepool_task *t, unsigned *retry_after);
/* Run t on the calling thread, as a pool thread would, when it weighs at most
 * max_weight, nothing waits and it fits the budget now: a small task is done
 * sooner than a pool thread could be woken for it. False (t untouched) when it
 * was not run; the caller submits it. When run asks for more weight, t is
 * queued for the pool (still true). */
bool prepool_run_here(struct prepool *p, struct prepool_task *t, size_t max_weight);
/* Lower what t holds to weight (no-op when it holds less). */
void prepool_settle(struct prepool *p, struct prepool_task *t, size_t weight);
/* t holds nothing any more (no-op when it held nothing). */
void prepool_release(struct prepool *p, struct prepool_task *t);
/* Bytes held by tasks, and tasks waiting, now. */
void prepool_load(struct prepool *p, size_t *held, size_t *waiting);
/* How many times the pool has given freed memory back to the system. */
size_t prepool_trims(struct prepool *p);
/* Refuse what waits, let running tasks finish, join the threads. Submitting
 * afterwards is refused; settle and release stay valid until prepool_free. */
void prepool_stop(struct prepool *p);
void prepool_free(struct prepool *p);

#endif
