/* test_prepool.c: the prepare pool: the budget holds (large tasks one after
 * another, small ones beside them), a task alone may exceed it, waiting ends
 * in a refusal, a task that asks for more is queued again, stopping refuses
 * what waits. Tasks block on a gate the test opens, so nothing depends on
 * timing but the refusal after the wait. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "tlsrptd/prepool.h"

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
};
static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};

static void gate_set(bool open)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = open;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

struct job {
    struct prepool_task task; /* first */
    struct prepool *pool;
    atomic_int ran, refused;
    unsigned retry_after;
    size_t ask_again; /* run() asks once for this weight */
    bool wait_gate, release_after;
};

static atomic_int running;

static size_t job_run(struct prepool_task *t)
{
    struct job *j = (struct job *)(void *)t;
    if (j->ask_again) {
        size_t w = j->ask_again;
        j->ask_again = 0;
        return w;
    }
    atomic_fetch_add(&running, 1);
    pthread_mutex_lock(&gate.mu);
    while (j->wait_gate && !gate.open)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
    atomic_fetch_sub(&running, 1);
    atomic_fetch_add(&j->ran, 1);
    if (j->release_after)
        prepool_release(j->pool, t);
    return 0;
}

static void job_refused(struct prepool_task *t, unsigned retry_after)
{
    struct job *j = (struct job *)(void *)t;
    j->retry_after = retry_after;
    atomic_fetch_add(&j->refused, 1);
}

static void init(struct job *j, struct prepool *p, size_t weight, bool wait_gate)
{
    memset(j, 0, sizeof *j);
    j->pool = p;
    j->task.weight = weight;
    j->task.run = job_run;
    j->task.refused = job_refused;
    j->wait_gate = wait_gate;
}

static void settle_down(void)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static bool wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 400 && atomic_load(v) != want; i++)
        settle_down();
    return atomic_load(v) == want;
}

static void test_budget(void)
{
    char err[TR_ERRLEN];
    struct prepool *p = prepool_start(4, 1000, 30, err);
    CHECK(p != NULL);
    struct job big[3], small;
    unsigned ra;
    gate_set(false);
    for (int i = 0; i < 3; i++)
        init(&big[i], p, 600, true);
    init(&small, p, 10, true);
    for (int i = 0; i < 3; i++)
        CHECK(prepool_submit(p, &big[i].task, &ra));
    CHECK(wait_for(&running, 1)); /* 600 of 1000: the second large one waits */
    CHECK(prepool_submit(p, &small.task, &ra));
    CHECK(wait_for(&running, 2)); /* the small one passes the waiting large ones */
    size_t held, waiting;
    prepool_load(p, &held, &waiting);
    CHECK_INT(held, 610);
    CHECK_INT(waiting, 2);
    gate_set(true);
    CHECK(wait_for(&big[0].ran, 1));
    prepool_settle(p, &big[0].task, 100); /* lowered: 100 + 10 held, room for one more */
    CHECK(wait_for(&big[1].ran, 1));
    prepool_release(p, &big[0].task);
    prepool_release(p, &big[1].task);
    prepool_release(p, &small.task);
    CHECK(wait_for(&big[2].ran, 1));
    prepool_release(p, &big[2].task);
    prepool_release(p, &big[2].task); /* twice is harmless */
    prepool_load(p, &held, &waiting);
    CHECK_INT(held, 0);
    CHECK_INT(waiting, 0);
    CHECK_INT(small.ran, 1);

    /* alone, a task may exceed the budget */
    struct job huge;
    init(&huge, p, 5000, false);
    huge.release_after = true;
    CHECK(prepool_submit(p, &huge.task, &ra));
    CHECK(wait_for(&huge.ran, 1));

    /* asking for more: queued again, then run with the new weight */
    struct job more;
    init(&more, p, 10, false);
    more.ask_again = 900;
    CHECK(prepool_submit(p, &more.task, &ra));
    CHECK(wait_for(&more.ran, 1));
    CHECK_INT(more.task.weight, 900);
    prepool_release(p, &more.task);
    prepool_free(p);
}

static void test_refusals(void)
{
    char err[TR_ERRLEN];
    unsigned ra = 0;
    /* no waiting: what does not fit is refused at once */
    struct prepool *p = prepool_start(1, 1000, 0, err);
    struct job a, b;
    gate_set(false);
    init(&a, p, 800, true);
    init(&b, p, 800, true);
    CHECK(prepool_submit(p, &a.task, &ra));
    CHECK(wait_for(&running, 1));
    CHECK(!prepool_submit(p, &b.task, &ra));
    CHECK(ra >= 1);
    gate_set(true);
    CHECK(wait_for(&a.ran, 1));
    prepool_release(p, &a.task);
    prepool_free(p);

    /* waiting one second: then refused with a Retry-After (by the idle thread) */
    p = prepool_start(2, 1000, 1, err);
    gate_set(false);
    init(&a, p, 800, true);
    init(&b, p, 800, false);
    CHECK(prepool_submit(p, &a.task, &ra));
    CHECK(wait_for(&running, 1));
    CHECK(prepool_submit(p, &b.task, &ra));
    CHECK(wait_for(&b.refused, 1));
    CHECK_INT(b.ran, 0);
    CHECK(b.retry_after >= 1);
    /* stopping: what waits is refused, what runs finishes */
    struct job c;
    init(&c, p, 800, false);
    CHECK(prepool_submit(p, &c.task, &ra));
    gate_set(true);
    prepool_stop(p);
    CHECK_INT(a.ran, 1);
    CHECK_INT(c.ran + c.refused, 1);
    CHECK(!prepool_submit(p, &c.task, &ra));
    prepool_release(p, &a.task);
    prepool_release(p, &c.task);
    prepool_free(p);
}

int main(void)
{
    test_budget();
    test_refusals();
    return check_done("prepool");
}
