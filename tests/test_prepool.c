/* test_prepool.c: the prepare pool: the budget holds (large tasks one after
 * another, small ones beside them), a task alone may exceed it, waiting ends
 * in a refusal, a task that asks for more is queued again, stopping refuses
 * what waits; a small task runs on the caller's thread when nothing waits;
 * giving memory back wakes the pool threads only when a task waits for it.
 * Tasks block on a gate the test opens, so nothing depends on timing but the
 * refusal after the wait. */
#define _DEFAULT_SOURCE /* syscall */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
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
    pthread_t ran_on;
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
    j->ran_on = pthread_self();
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
    CHECK(wait_for(&small.ran, 1)); /* its thread may not have run since the gate opened */

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

static void test_run_here(void)
{
    char err[TR_ERRLEN];
    unsigned ra;
    struct prepool *p = prepool_start(2, 1000, 30, err);
    CHECK(p != NULL);
    gate_set(true);
    /* small, nothing waits, it fits: run on this thread, holding its weight */
    struct job a;
    init(&a, p, 300, false);
    CHECK(prepool_run_here(p, &a.task, 500));
    CHECK_INT(a.ran, 1);
    CHECK(pthread_equal(a.ran_on, pthread_self()));
    size_t held, waiting;
    prepool_load(p, &held, &waiting);
    CHECK_INT(held, 300);
    /* heavier than the caller allows, or more than the budget has room for: not run */
    struct job b;
    init(&b, p, 600, false);
    CHECK(!prepool_run_here(p, &b.task, 500));
    CHECK_INT(b.ran, 0);
    CHECK(prepool_submit(p, &b.task, &ra)); /* the caller submits what was not run */
    CHECK(wait_for(&b.ran, 1));
    CHECK(!pthread_equal(b.ran_on, pthread_self()));
    prepool_release(p, &b.task);
    struct job c;
    init(&c, p, 800, false); /* 300 + 800 > 1000 */
    CHECK(!prepool_run_here(p, &c.task, 5000));
    CHECK_INT(c.ran, 0);
    prepool_release(p, &a.task);

    /* a task waits: one run here would pass it */
    gate_set(false);
    struct job blocker, queued, late;
    init(&blocker, p, 900, true);
    init(&queued, p, 900, true);
    init(&late, p, 10, false);
    CHECK(prepool_submit(p, &blocker.task, &ra));
    CHECK(wait_for(&running, 1));
    CHECK(prepool_submit(p, &queued.task, &ra));
    CHECK(!prepool_run_here(p, &late.task, 500));
    gate_set(true);
    CHECK(wait_for(&blocker.ran, 1));
    prepool_release(p, &blocker.task);
    CHECK(wait_for(&queued.ran, 1));
    prepool_release(p, &queued.task);

    /* asking for more: queued for the pool, which runs it with the new weight */
    struct job more;
    init(&more, p, 10, false);
    more.ask_again = 700;
    CHECK(prepool_run_here(p, &more.task, 500));
    CHECK(wait_for(&more.ran, 1));
    CHECK_INT(more.task.weight, 700);
    CHECK(!pthread_equal(more.ran_on, pthread_self()));
    prepool_release(p, &more.task);

    /* stopping: nothing more runs here */
    prepool_stop(p);
    struct job d;
    init(&d, p, 10, false);
    CHECK(!prepool_run_here(p, &d.task, 500));
    prepool_load(p, &held, &waiting);
    CHECK_INT(held, 0);
    prepool_free(p);
}

/* Context switches of this process's threads other than the caller's. */
static long others_switches(void)
{
    long total = 0;
    pid_t self = (pid_t)syscall(SYS_gettid);
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char *end;
        long tid = strtol(e->d_name, &end, 10);
        if (*end != 0 || e->d_name[0] == '.' || tid == self)
            continue;
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f)) {
            long n;
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
                total += n;
        }
        if (f)
            fclose(f);
    }
    closedir(d);
    return total;
}

/* Settling and releasing with nothing waiting must not wake the pool threads:
 * `serve` does both for every upload, and each wake-up is a context switch
 * per thread for nothing. */
static void test_quiet_release(void)
{
    char err[TR_ERRLEN];
    unsigned ra;
    struct prepool *p = prepool_start(4, 1 << 20, 30, err);
    CHECK(p != NULL);
    gate_set(true);
    struct job j;
    init(&j, p, 1 << 20, false);
    CHECK(prepool_submit(p, &j.task, &ra));
    CHECK(wait_for(&j.ran, 1));
    settle_down(); /* every pool thread asleep again */
    long before = others_switches();
    for (size_t w = (1u << 20) - 1; w >= (1u << 20) - 2000; w--) {
        prepool_settle(p, &j.task, w);
        sched_yield(); /* a woken thread would run now */
    }
    prepool_release(p, &j.task);
    long woken = others_switches() - before;
    CHECK(before >= 0);
    if (woken >= 50)
        fprintf(stderr, "pool threads switched %ld times for 2000 settles\n", woken);
    CHECK(woken < 50); /* the 1-second timed waits, at most, and scheduling noise */
    prepool_free(p);
}

/* Memory is given back after a spike, not under a steady load. Uploads in
 * flight hold their weight until answered, so under a steady load the held
 * bytes swing by a batch of answers around a level: a load of about a hundred
 * concurrent reports swung around 8 MiB, and each swing called malloc_trim,
 * whose freed pages every thread then faulted back in (-30 % on the HTTP
 * benchmark). */
#define STEADY_JOBS 12
static void test_trim_after_spikes_only(void)
{
    char err[TR_ERRLEN];
    const size_t mib = (size_t)1 << 20;
    struct prepool *p = prepool_start(2, 128 * mib, 30, err);
    CHECK(p != NULL);
    struct job jobs[STEADY_JOBS];
    for (size_t i = 0; i < STEADY_JOBS; i++)
        init(&jobs[i], p, mib, false);
    /* steady: 8 uploads held, one more admitted and the oldest answered, over and over */
    for (size_t i = 0; i < 8; i++)
        CHECK(prepool_run_here(p, &jobs[i].task, 2 * mib));
    for (size_t round = 0; round < 2000; round++) {
        struct job *in = &jobs[(round + 8) % STEADY_JOBS], *out = &jobs[round % STEADY_JOBS];
        in->task.weight = mib;
        CHECK(prepool_run_here(p, &in->task, 2 * mib));
        prepool_release(p, &out->task);
        if (round % 100 == 0)
            sched_yield(); /* a woken pool thread would trim now */
    }
    settle_down();
    size_t steady = prepool_trims(p);
    if (steady != 0)
        fprintf(stderr, "a steady load trimmed %zu times\n", steady);
    CHECK(steady == 0);
    /* the load ends: what it held is given back once */
    for (size_t i = 0; i < STEADY_JOBS; i++)
        prepool_release(p, &jobs[i].task);
    for (int i = 0; i < 100 && prepool_trims(p) == 0; i++)
        settle_down();
    CHECK(prepool_trims(p) == 1);
    /* spikes in quick succession: at most one trim per interval */
    for (size_t spike = 0; spike < 5; spike++) {
        for (size_t i = 0; i < 10; i++) {
            jobs[i].task.weight = mib;
            CHECK(prepool_run_here(p, &jobs[i].task, 2 * mib));
        }
        for (size_t i = 0; i < 10; i++)
            prepool_release(p, &jobs[i].task);
        settle_down();
    }
    CHECK(prepool_trims(p) == 1);
    prepool_free(p);
}

int main(void)
{
    test_budget();
    test_refusals();
    test_run_here();
    test_quiet_release();
    test_trim_after_spikes_only();
    return check_done("prepool");
}
