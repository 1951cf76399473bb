/* cli_ingest.c: `tlsrptd ingest` (files, directories, stdin; MDA exit codes)
 * and `tlsrptd validate` (every finding, nothing stored). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/log.h"
#include "tlsrptd/mailcheck.h"
#include "tlsrptd/syncer.h"
#include "tlsrptd/thread_prio.h"
#include "tlsrptd/walk.h"

/* ---- shared argument handling ------------------------------------------------------------- */

/* The command's own flags and its inputs (argv pointers, borrowed). */
struct ingest_args {
    const char *cmd;
    const char **inputs;
    size_t ninputs;
    bool quiet, strict;
    bool strict_only; /* validate: --strict is the only flag */
    int progress;     /* -1: when stderr is a terminal */
};

enum { FLAG_QUIET_SHORT, FLAG_QUIET, FLAG_PROGRESS, FLAG_NO_PROGRESS, FLAG_STRICT };

static const struct cli_flag ingest_flags[] = {
    {"q", false}, {"quiet", false}, {"progress", false}, {"no-progress", false}, {NULL, false},
};
static const struct cli_flag validate_flags[] = {{"strict", false}, {NULL, false}};

static int take_arg(void *ctx, int flag, const char *value)
{
    struct ingest_args *a = ctx;
    if (a->strict_only && flag >= 0)
        flag = FLAG_STRICT; /* validate's one flag */
    switch (flag) {
    case -1:
        a->inputs[a->ninputs++] = value;
        return 0;
    case FLAG_QUIET_SHORT:
    case FLAG_QUIET:
        a->quiet = true;
        return 0;
    case FLAG_PROGRESS:
    case FLAG_NO_PROGRESS:
        a->progress = flag == FLAG_PROGRESS;
        return 0;
    case FLAG_STRICT:
        a->strict = true;
        return 0;
    default:
        return cli_usage_error(a->cmd, "unexpected option");
    }
}

/* Config and arguments of ingest or validate; 0, or the exit code (-1 after --help). */
static int parse_args(const char *cmd, int argc, char **argv, struct config *cfg,
                      void (*help)(void), const struct cli_flag *flags, struct ingest_args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->progress = -1;
    a->strict_only = flags == validate_flags;
    a->inputs = calloc((size_t)argc + 1, sizeof *a->inputs);
    if (a->inputs == NULL)
        return cli_config_error(cmd, "out of memory");
    config_init(cfg);
    int rc = cli_args(cmd, argc, argv, cfg, help, flags, take_arg, a);
    if (rc == 0 && a->ninputs == 0)
        rc = cli_usage_error(cmd, "no input given (FILE, DIR or - for stdin)");
    return rc;
}

static void free_args(struct config *cfg, struct ingest_args *a)
{
    free(a->inputs);
    config_free(cfg);
}

/* ---- ingest --------------------------------------------------------------------------------- */

static void ingest_help(void)
{
    printf("Usage: tlsrptd ingest [-c FILE] [OPTIONS] FILE|DIR|- ...\n"
           "\n"
           "Store TLS-RPT reports. Each input is sniffed by content: JSON, gzip (or zlib)\n"
           "JSON, or a mail message whose report parts are extracted. Directories are\n"
           "walked recursively in sorted order (hidden entries and *.conf files skipped);\n"
           "'-' reads one input from stdin, which makes tlsrptd usable as an MDA.\n"
           "\n"
           "Prints one line per input: stored, duplicate or rejected (with the reason).\n"
           "Rejected inputs are kept in the database's quarantine.\n"
           "\n"
           "Options:\n"
           "  -c, --config FILE      config file (default " TLSRPTD_CONFIG_FILE " when it exists)\n"
           "  -q, --quiet            print only rejected and failed inputs\n"
           "  --progress, --no-progress  progress line on stderr (default: when a terminal)\n"
           "\n"
           "Every key of tlsrptd.conf is also a flag (flags override the file); those\n"
           "that matter here: --db, --commit-max (inputs committed together; a batch is\n"
           "also committed after one second), --busy-timeout, --max-message (largest\n"
           "input), --max-inflated, --max-json-depth, --max-parts, --quarantine-bytes,\n"
           "--quarantine-rows, --domains and --domains-file (the own domains: a report\n"
           "for none of them is rejected, other domains' policies are skipped with a\n"
           "warning). Their defaults:\n");
    config_print_help(stdout);
    printf("\nExit status (sysexits.h, for MTAs): 0 all stored or duplicate; 65 an input is\n"
           "not an acceptable report; 74 an input could not be read; 75 the database is\n"
           "unavailable, or a DKIM key could not be looked up (dkim = require): try again\n"
           "later; 64 usage; 78 the config file is unusable.\n"
           "The worst one wins.\n");
}

struct pending {
    char *name;
    struct ingest_job *job; /* until the commit when the store may still read it (PostgreSQL) */
    size_t owner;           /* the reader thread that prepared it (and frees it) */
    struct ingest_result res;
};

struct ingest_run {
    bool quiet, progress;
    size_t total, done;
    size_t counts[INGEST_TEMPFAIL + 1];
    int exit_code;
    struct timespec start, last_progress;
};

static double elapsed(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void clear_progress(struct ingest_run *run)
{
    if (run->progress)
        fputs("\r\033[K", stderr);
}

static void show_progress(struct ingest_run *run, bool force)
{
    if (!run->progress)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!force && elapsed(&run->last_progress, &now) < 0.2)
        return;
    run->last_progress = now;
    double secs = elapsed(&run->start, &now);
    fprintf(stderr, "\r\033[K%zu/%zu inputs  %zu stored  %zu duplicate  %zu rejected  %.0f/s",
            run->done, run->total, run->counts[INGEST_STORED], run->counts[INGEST_DUPLICATE],
            run->counts[INGEST_REJECTED], secs > 0 ? (double)run->done / secs : 0.0);
    fflush(stderr);
}

static void print_report(FILE *out, const struct ingest_report *r)
{
    if (r->outcome == INGEST_REJECTED) {
        fprintf(out, "rejected: %s", r->reason);
        return;
    }
    fprintf(out, "%s report %lld: %s %s, %s, %zu polic%s, %lld successful, %lld failed",
            r->outcome == INGEST_STORED ? "stored" : "duplicate of", (long long)r->id,
            r->organization_name, r->report_id, r->first_domain ? r->first_domain : "(no domain)",
            r->npolicies, r->npolicies == 1 ? "y" : "ies", (long long)r->successful_sessions,
            (long long)r->failed_sessions);
    if (r->warnings)
        fprintf(out, ", %zu warning%s", r->warnings, r->warnings == 1 ? "" : "s");
}

static void print_result(struct ingest_run *run, const struct pending *p)
{
    const struct ingest_result *res = &p->res;
    run->counts[res->outcome]++;
    int code = ingest_exit_code(res->outcome);
    if (code > run->exit_code)
        run->exit_code = code;
    if (run->quiet && code == 0)
        return;
    FILE *out = stdout;
    clear_progress(run);
    fprintf(out, "%s: ", p->name);
    if (res->outcome == INGEST_UNREADABLE || res->outcome == INGEST_TEMPFAIL ||
        res->nreports == 0) {
        fprintf(out, "%s: %s",
                res->input_tempfail ? "temporary failure" : ingest_outcome_name(res->outcome),
                res->reason);
    } else {
        for (size_t i = 0; i < res->nreports; i++) {
            if (i)
                fputs("; ", out);
            print_report(out, &res->reports[i]);
        }
    }
    if (res->quarantine_id > 0)
        fprintf(out, " (quarantine %lld)", (long long)res->quarantine_id);
    fputc('\n', out);
}

static void read_input(const char *name, const struct ingest_limits *lim, struct buf *b, tr_err *e,
                       char *err)
{
    buf_init(b, lim->max_input);
    if (strcmp(name, "-") == 0)
        *e = buf_read_fd(b, STDIN_FILENO, "stdin", err);
    else
        *e = buf_read_file(b, name, err);
}

/* The size of an input too large to read: the file's size, or what stdin gave so far. */
static size_t input_size(const char *name, const struct buf *partial)
{
    struct stat sb;
    if (strcmp(name, "-") != 0 && stat(name, &sb) == 0 && sb.st_size > 0)
        return (size_t)sb.st_size;
    return partial->len;
}

struct reader;
static void reader_discard(struct reader *rd, size_t owner, struct ingest_job *job, char *name);

/* A batch of inputs: stored in one transaction, then printed once the
 * syncer has made its commit durable. */
struct batch {
    size_t n;
    struct pending items[];
};

/* What the syncer's callback prints to and gives back to. */
struct printer {
    struct ingest_run *run;
    struct reader *rd;
};

/* The batch's commit or its sync failed: every input read is "storage
 * unavailable" (exit 75: try again later). */
static void unacknowledge(struct batch *b, const char *err)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].res.outcome != INGEST_UNREADABLE) {
            ingest_result_free(&b->items[i].res);
            ingest_result_tempfail(&b->items[i].res, err);
        }
}

/* On the syncer thread, in batch order: print every result (each one
 * "storage unavailable" when the commit or its sync failed), then hand the
 * inputs back to their readers. */
static void print_synced(void *arg, tr_err rc, const char *err, void *cls)
{
    struct batch *b = arg;
    struct printer *pr = cls;
    if (rc != TR_OK)
        unacknowledge(b, err);
    for (size_t i = 0; i < b->n; i++) {
        struct pending *p = &b->items[i];
        print_result(pr->run, p);
        ingest_result_free(&p->res);
        reader_discard(pr->rd, p->owner, p->job, p->name);
    }
    fflush(stdout); /* a batch's lines as soon as they are true */
    pr->run->done += b->n;
    show_progress(pr->run, false);
    free(b);
}

/* Finish a batch: commit, and hand it to the syncer, which prints it once
 * the commit is on disk (or at once, every input "storage unavailable", when
 * the commit failed). False when storage failed. */
static bool flush_batch(struct ingest *ig, struct store *st, struct syncer *sy, struct batch *b)
{
    char err[TR_ERRLEN];
    tr_err rc = ingest_commit(ig, err);
    int fd = rc == TR_OK ? store_sync_fd(st, &rc, err) : -1;
    if (rc != TR_OK)
        unacknowledge(b, err);
    syncer_submit(sy, fd, b);
    return rc == TR_OK;
}

/* ---- the reader threads --------------------------------------------------------------------- */

/* Reader threads read and prepare (decode, validate) inputs into a ring; the
 * main thread stores them. Readers claim input indices in order and may finish
 * out of order, but the main thread takes them strictly in input order: which
 * copy of a report counts as the duplicate depends on that order.
 *
 * A stored input goes back to the reader that prepared it, to be freed there:
 * memory freed by the thread that allocated it stays in that thread's malloc
 * caches, where freeing it from the main thread would contend for the
 * reader's arena lock on its many small blocks.
 *
 * The ring holds enough for the readers to keep preparing while the main
 * thread commits (a commit of 1,024 reports takes tens of milliseconds):
 * with 128 they stopped after 128 and the main thread then waited for them
 * (a quarter of its time when measured). A prepared report holds its input
 * and its strings (its parsed document is freed once it is prepared:
 * report_detach), a few KiB, so 512 of them stay well within ingest's memory
 * bound. */
#define QUEUE_CAP   512
#define WAKE_BATCH  16 /* wake a sleeping writer only per this many ready inputs */
#define MAX_READERS 4

struct queue_item {
    struct ingest_job *job; /* NULL when out of memory */
    char *name;
    size_t owner; /* index of the reader that prepared it */
};

/* What the main thread is done with, waiting for its reader to free it. */
struct discards {
    struct queue_item *items;
    size_t n, cap;
};

struct reader {
    pthread_mutex_t mu;
    pthread_cond_t ready, room;
    struct queue_item items[QUEUE_CAP];
    bool filled[QUEUE_CAP];
    size_t next;     /* next input index a reader claims */
    size_t consumed; /* next input index the writer takes */
    size_t active;   /* reader threads still running */
    bool stop;       /* the main thread wants no more */
    /* each side wakes the other only past a threshold, so inputs are handed
     * over in bunches instead of one context switch each */
    bool writer_waiting;
    size_t readers_waiting;
    const struct walk_list *inputs;
    const struct ingest_limits *lim;
    struct discards discards[MAX_READERS];
    bool exited[MAX_READERS]; /* the reader frees nothing more: the main thread does */
};

/* One reader thread's own view: the shared state and its index. */
struct reader_self {
    struct reader *rd;
    size_t index;
};

static void free_discards(struct discards *d)
{
    for (size_t i = 0; i < d->n; i++) {
        ingest_job_free(d->items[i].job);
        free(d->items[i].name);
    }
    d->n = 0;
}

/* The main thread is done with job and name (either may be NULL): hand them
 * to the reader that allocated them, or free them here when it has gone or
 * the list cannot grow. */
static void reader_discard(struct reader *rd, size_t owner, struct ingest_job *job, char *name)
{
    struct queue_item item = {job, name, owner};
    if (job == NULL && name == NULL)
        return;
    pthread_mutex_lock(&rd->mu);
    struct discards *d = &rd->discards[owner];
    bool kept = false;
    if (!rd->exited[owner]) {
        if (d->n == d->cap) {
            size_t cap = d->cap ? 2 * d->cap : 64;
            struct queue_item *v = realloc(d->items, cap * sizeof *v);
            if (v != NULL) {
                d->items = v;
                d->cap = cap;
            }
        }
        if (d->n < d->cap) {
            d->items[d->n++] = item;
            kept = true;
        }
    }
    pthread_mutex_unlock(&rd->mu);
    if (!kept) {
        struct discards one = {&item, 1, 1};
        free_discards(&one);
    }
}

/* A reader takes what was handed back to it (under rd->mu): *mine, empty
 * before, swaps with the shared list. */
static void take_discards(struct reader *rd, size_t self, struct discards *mine)
{
    struct discards t = rd->discards[self];
    rd->discards[self] = *mine;
    *mine = t;
}

static struct ingest_job *read_and_prepare(const char *name, const struct ingest_limits *lim)
{
    struct store_source src = {.kind = strcmp(name, "-") == 0 ? "stdin" : "file", .name = name};
    struct buf in;
    char err[TR_ERRLEN];
    tr_err e;
    buf_init(&in, lim->max_input);
    if (strcmp(name, "-") == 0)
        e = buf_read_fd(&in, STDIN_FILENO, "stdin", err);
    else
        e = buf_read_file(&in, name, err);
    if (e != TR_OK) {
        size_t size = e == TR_ETOOBIG ? input_size(name, &in) : 0;
        buf_free(&in);
        return ingest_prepare_failed(&src, e, err, size);
    }
    return ingest_prepare(in.data, in.len, true, &src, lim); /* takes in.data */
}

/* Ready inputs from the writer's position on, counting up to WAKE_BATCH. */
static size_t ready_run(const struct reader *rd)
{
    size_t n = 0;
    while (n < WAKE_BATCH && rd->consumed + n < rd->next &&
           rd->filled[(rd->consumed + n) % QUEUE_CAP])
        n++;
    return n;
}

static void *reader_main(void *arg)
{
    struct reader *rd = ((struct reader_self *)arg)->rd;
    size_t self = ((struct reader_self *)arg)->index;
    struct discards mine = {0};
    thread_prio_prepare(); /* the main thread, which waits for us, runs first */
    for (;;) {
        pthread_mutex_lock(&rd->mu);
        take_discards(rd, self, &mine);
        while (!rd->stop && rd->next < rd->inputs->n && rd->next - rd->consumed >= QUEUE_CAP) {
            rd->readers_waiting++;
            pthread_cond_wait(&rd->room, &rd->mu);
            rd->readers_waiting--;
        }
        if (rd->stop || rd->next >= rd->inputs->n) {
            pthread_mutex_unlock(&rd->mu);
            break;
        }
        size_t i = rd->next++;
        pthread_mutex_unlock(&rd->mu);
        free_discards(&mine);

        const char *name = rd->inputs->paths[i];
        struct queue_item item = {read_and_prepare(name, rd->lim), strdup(name), self};

        pthread_mutex_lock(&rd->mu);
        rd->items[i % QUEUE_CAP] = item;
        rd->filled[i % QUEUE_CAP] = true;
        if (rd->writer_waiting &&
            (ready_run(rd) >= WAKE_BATCH || rd->next >= rd->inputs->n || rd->stop))
            pthread_cond_signal(&rd->ready);
        pthread_mutex_unlock(&rd->mu);
    }
    pthread_mutex_lock(&rd->mu);
    rd->exited[self] = true;
    rd->active--;
    pthread_cond_broadcast(&rd->ready);
    take_discards(rd, self, &mine);
    pthread_mutex_unlock(&rd->mu);
    free_discards(&mine);
    free(mine.items);
    return NULL;
}

/* Next prepared input in input order; false when every input was taken. */
static bool reader_next(struct reader *rd, struct queue_item *out)
{
    pthread_mutex_lock(&rd->mu);
    while (!rd->filled[rd->consumed % QUEUE_CAP] && rd->active > 0) {
        rd->writer_waiting = true;
        pthread_cond_wait(&rd->ready, &rd->mu);
        rd->writer_waiting = false;
    }
    size_t slot = rd->consumed % QUEUE_CAP;
    bool got = rd->filled[slot];
    if (got) {
        *out = rd->items[slot];
        rd->filled[slot] = false;
        rd->consumed++;
        if (rd->readers_waiting && rd->next - rd->consumed <= QUEUE_CAP / 2)
            pthread_cond_broadcast(&rd->room);
    }
    pthread_mutex_unlock(&rd->mu);
    return got;
}

/* Stop the readers, wait for them, and drop what they prepared. */
static void reader_stop(struct reader *rd)
{
    pthread_mutex_lock(&rd->mu);
    rd->stop = true;
    pthread_cond_broadcast(&rd->room);
    while (rd->active > 0)
        pthread_cond_wait(&rd->ready, &rd->mu);
    for (size_t k = 0; k < QUEUE_CAP; k++) {
        if (rd->filled[k]) {
            ingest_job_free(rd->items[k].job);
            free(rd->items[k].name);
            rd->filled[k] = false;
        }
    }
    pthread_mutex_unlock(&rd->mu);
}

/* ---- ingest --------------------------------------------------------------------------------- */

/* SQLite reaches its -shm file through mmap. On a full file system a page of
 * it may have no block behind it (with 1 KiB blocks, say), and touching it is
 * SIGBUS: as an MDA, ingest must then exit 75 (try again later), not die of a
 * signal, which an MTA takes as a permanent failure. Calling only write() and
 * _exit() is safe here: both are async-signal-safe and touch nothing the
 * interrupted code holds; and leaving at this point loses nothing, as the exit
 * status is the
 * only acknowledgement (stdout lines still buffered are lost, not stored
 * reports) and the unfinished transaction is rolled back by SQLite's WAL at
 * the next open. */
static void exit_tempfail(int sig)
{
    static const char msg[] = "tlsrptd ingest: SIGBUS: a file mapped into memory could not be "
                              "written (is the file system full?); try again later\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(EXIT_TEMPFAIL);
}

int cmd_ingest(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = exit_tempfail;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);

    struct config cfg;
    struct ingest_args args;
    int rc = parse_args("ingest", argc, argv, &cfg, ingest_help, ingest_flags, &args);
    if (rc == 0)
        rc = cli_config_trust(&cfg, "ingest"); /* domains, domains_file */
    if (rc != 0) {
        free_args(&cfg, &args);
        return rc < 0 ? 0 : rc;
    }
    struct ingest_limits lim;
    cli_config_limits(&cfg, &lim);
    struct store_options sopt;
    cli_config_store_options(&cfg, &sopt);
    struct ingest_run run = {0};
    run.quiet = args.quiet;
    size_t batch_size = cfg.commit_max;

    struct walk_list inputs = {0};
    char err[TR_ERRLEN];
    for (size_t i = 0; i < args.ninputs; i++) {
        if (walk_add(&inputs, args.inputs[i], err) != TR_OK) {
            fprintf(stderr, "tlsrptd ingest: %s\n", err);
            walk_free(&inputs);
            free_args(&cfg, &args);
            return EXIT_IOERR;
        }
    }

    struct store *st = NULL;
    sopt.defer_sync = true; /* each batch is printed once its commit is synced */
    if (store_open(cfg.db, &sopt, &st, err) != TR_OK) {
        fprintf(stderr, "tlsrptd ingest: %s\n", err);
        walk_free(&inputs);
        free_args(&cfg, &args);
        return EXIT_TEMPFAIL;
    }
    struct ingest *ig = ingest_new(st, &lim);
    struct reader rd = {.inputs = &inputs, .lim = &lim};
    pthread_t readers[MAX_READERS];
    struct reader_self selves[MAX_READERS];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nreaders = cpus >= MAX_READERS ? MAX_READERS : cpus >= 2 ? (size_t)cpus : 1;
    if (nreaders > inputs.n)
        nreaders = inputs.n ? inputs.n : 1;
    bool started = ig != NULL && pthread_mutex_init(&rd.mu, NULL) == 0 &&
                   pthread_cond_init(&rd.ready, NULL) == 0 &&
                   pthread_cond_init(&rd.room, NULL) == 0;
    for (size_t k = 0; started && k < nreaders; k++) {
        pthread_mutex_lock(&rd.mu);
        rd.active++;
        pthread_mutex_unlock(&rd.mu);
        selves[k] = (struct reader_self){&rd, k};
        if (pthread_create(&readers[k], NULL, reader_main, &selves[k]) != 0) {
            rd.active--;
            nreaders = k;
        }
    }
    if (!started || nreaders == 0) {
        fprintf(stderr, "tlsrptd ingest: out of memory\n");
        ingest_free(ig);
        store_close(st);
        walk_free(&inputs);
        free_args(&cfg, &args);
        return EXIT_TEMPFAIL;
    }

    run.total = inputs.n;
    run.progress =
        args.progress == 1 || (args.progress == -1 && isatty(STDERR_FILENO) && inputs.n > 1);
    clock_gettime(CLOCK_MONOTONIC, &run.start);
    struct printer printer = {&run, &rd};
    /* two batches in flight: one being synced and printed, the next one stored */
    struct syncer *sy = syncer_start(print_synced, &printer, 1);
    size_t taken = 0; /* inputs taken from the readers (run.done: printed) */
    bool ok = sy != NULL;
    if (!ok)
        fprintf(stderr, "tlsrptd ingest: cannot start a thread\n");
    struct queue_item item;
    while (ok && reader_next(&rd, &item)) {
        struct batch *b = malloc(sizeof *b + batch_size * sizeof b->items[0]);
        if (b == NULL || ingest_begin(ig, err) != TR_OK) {
            fprintf(stderr, "tlsrptd ingest: %s\n", b ? err : "out of memory");
            ingest_job_free(item.job);
            free(item.name);
            free(b);
            ok = false;
            break;
        }
        b->n = 0;
        struct timespec batch_start, now;
        clock_gettime(CLOCK_MONOTONIC, &batch_start);
        for (;;) {
            struct pending *p = &b->items[b->n++];
            p->name = item.name;
            p->job = item.job;
            p->owner = item.owner;
            if (item.job != NULL) {
                ingest_store(ig, item.job, &p->res);
                if (ingest_result_settled(&p->res)) { /* not needed until the commit */
                    reader_discard(&rd, item.owner, item.job, NULL);
                    p->job = NULL;
                }
            } else {
                memset(&p->res, 0, sizeof p->res);
                ingest_result_tempfail(&p->res, "out of memory");
            }
            taken++;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (ingest_failed(ig) || b->n == batch_size || elapsed(&batch_start, &now) >= 1.0 ||
                !reader_next(&rd, &item))
                break;
        }
        ok = flush_batch(ig, st, sy, b);
    }
    syncer_stop(sy); /* every batch printed */
    if (!ok)
        reader_stop(&rd);
    for (size_t k = 0; k < nreaders; k++)
        pthread_join(readers[k], NULL);
    for (size_t k = 0; k < MAX_READERS; k++) { /* each reader freed what it was given */
        free_discards(&rd.discards[k]);
        free(rd.discards[k].items);
    }
    pthread_mutex_destroy(&rd.mu);
    pthread_cond_destroy(&rd.ready);
    pthread_cond_destroy(&rd.room);

    size_t skipped = inputs.n - taken;
    if (!ok) {
        if (skipped)
            fprintf(stderr, "tlsrptd ingest: storage unavailable; %zu input%s not processed\n",
                    skipped, skipped == 1 ? "" : "s");
        run.exit_code = EXIT_TEMPFAIL;
    }
    clear_progress(&run);
    if (inputs.n > 1) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double secs = elapsed(&run.start, &now);
        fprintf(stderr,
                "tlsrptd ingest: %zu inputs in %.2f s (%.0f/s): %zu stored, %zu duplicate, %zu "
                "rejected, %zu unreadable, %zu not stored (storage unavailable)\n",
                run.done, secs, secs > 0 ? (double)run.done / secs : 0.0, run.counts[INGEST_STORED],
                run.counts[INGEST_DUPLICATE], run.counts[INGEST_REJECTED],
                run.counts[INGEST_UNREADABLE], run.counts[INGEST_TEMPFAIL] + skipped);
    }
    ingest_free(ig);
    store_close(st);
    walk_free(&inputs);
    free_args(&cfg, &args);
    return run.exit_code;
}

/* ---- validate ------------------------------------------------------------------------------- */

static void validate_help(void)
{
    printf("Usage: tlsrptd validate [-c FILE] [--strict] [OPTIONS] FILE|DIR|- ...\n"
           "\n"
           "Check TLS-RPT reports (JSON, gzip or mail messages) against RFC 8460 and the\n"
           "acceptance rules of tlsrptd, printing every error, warning and note with the\n"
           "JSON path it concerns. Nothing is stored.\n"
           "\n"
           "  error    the report cannot be counted: tlsrptd rejects it\n"
           "  warning  an RFC deviation that strict parsers reject; tlsrptd accepts it\n"
           "  note     a tolerated quirk (unknown keys, mx-host as a string, ...)\n"
           "\n"
           "Options:\n"
           "  -c, --config FILE      config file (default " TLSRPTD_CONFIG_FILE " when it exists)\n"
           "  --strict               for people testing their own report generators: every\n"
           "                         warning and note is an error, and a mail message must\n"
           "                         also follow RFC 8460 §5.3 (multipart/report;\n"
           "                         report-type=tlsrpt, the part's media type and bytes,\n"
           "                         TLS-Report-Domain and TLS-Report-Submitter) and §5.1\n"
           "                         (the part's file name)\n"
           "  --max-message SIZE, --max-inflated SIZE, --max-json-depth N, --max-parts N\n"
           "                         limits, as for ingest (keys of tlsrptd.conf)\n"
           "\n"
           "Exit status: 0 every report is acceptable; 65 one is not; 74 unreadable input;\n"
           "64 usage; 78 the config file is unusable.\n");
}

/* One finding; under --strict a warning or note is printed as the error it
 * then is, saying what it would be without. */
static void print_diag(const char *label, const struct diag *g, bool strict)
{
    bool promoted = strict && g->level != DIAG_ERROR;
    printf("%s: %s: %s%s%s%s%s%s\n", label, promoted ? "error" : diag_level_name(g->level), g->path,
           g->path[0] ? ": " : "", g->message, promoted ? " (--strict; a " : "",
           promoted ? diag_level_name(g->level) : "", promoted ? " without it)" : "");
}

/* Validate report payload k of dec and print what was found. True when it is
 * acceptable (under strict: without any finding). */
static bool validate_payload(const char *label, size_t k, const struct ingest_decoded *dec,
                             const struct ingest_limits *lim, bool strict)
{
    const struct ingest_payload *p = &dec->payloads[k];
    if (p->decode_err != TR_OK) {
        printf("%s: error: %s\n%s: invalid\n", label, p->decode_reason, label);
        return false;
    }
    struct report_options ropt = {lim->max_depth, dec->is_message ? dec->msg.report_domain : NULL,
                                  &lim->json};
    struct report r;
    struct diag_list d = {0};
    tr_err e = p->decode_err;
    if (e != TR_OK)
        diag_add(&d, DIAG_ERROR, "", "%s", p->decode_reason);
    else
        e = report_parse(p->json, p->jsonlen, &ropt, &r, &d);
    if (strict && dec->is_message && k < dec->msg.nparts)
        mailcheck_report_part(&dec->msg, k, e == TR_OK ? &r : NULL, &d);
    for (size_t i = 0; i < d.n; i++)
        print_diag(label, &d.items[i], strict);

    size_t findings = d.errors + d.warnings + d.notes;
    bool valid = e == TR_OK && (strict ? findings == 0 : d.errors == 0);
    if (e == TR_OK && !strict) {
        printf("%s: %s: %s %s, %zu polic%s, %zu error%s, %zu warning%s, %zu note%s\n", label,
               valid ? "valid" : "invalid", r.organization_name, r.report_id, r.npolicies,
               r.npolicies == 1 ? "y" : "ies", d.errors, d.errors == 1 ? "" : "s", d.warnings,
               d.warnings == 1 ? "" : "s", d.notes, d.notes == 1 ? "" : "s");
    } else if (e == TR_OK) {
        printf("%s: %s: %s %s, %zu polic%s, %zu error%s (%zu warning%s and %zu note%s without "
               "--strict)\n",
               label, valid ? "valid (--strict)" : "invalid (--strict)", r.organization_name,
               r.report_id, r.npolicies, r.npolicies == 1 ? "y" : "ies", findings,
               findings == 1 ? "" : "s", d.warnings, d.warnings == 1 ? "" : "s", d.notes,
               d.notes == 1 ? "" : "s");
    } else {
        size_t errors = strict ? findings : d.errors;
        printf("%s: invalid: %zu error%s\n", label, errors, errors == 1 ? "" : "s");
    }
    if (e == TR_OK)
        report_free(&r);
    diag_list_free(&d);
    return valid;
}

int cmd_validate(int argc, char **argv)
{
    struct config cfg;
    struct ingest_args args;
    int rc = parse_args("validate", argc, argv, &cfg, validate_help, validate_flags, &args);
    if (rc != 0) {
        free_args(&cfg, &args);
        return rc < 0 ? 0 : rc;
    }
    struct ingest_limits lim;
    cli_config_limits(&cfg, &lim);
    bool strict = args.strict;

    struct walk_list inputs = {0};
    char err[TR_ERRLEN];
    for (size_t i = 0; i < args.ninputs; i++) {
        if (walk_add(&inputs, args.inputs[i], err) != TR_OK) {
            fprintf(stderr, "tlsrptd validate: %s\n", err);
            walk_free(&inputs);
            free_args(&cfg, &args);
            return EXIT_IOERR;
        }
    }
    for (size_t i = 0; i < inputs.n; i++) {
        const char *name = inputs.paths[i];
        struct buf in;
        tr_err e;
        read_input(name, &lim, &in, &e, err);
        if (e != TR_OK) {
            printf("%s: error: %s\n%s: %s\n", name, err, name,
                   e == TR_ETOOBIG ? "invalid" : "unreadable");
            if ((e == TR_ETOOBIG ? EXIT_DATAERR : EXIT_IOERR) > rc)
                rc = e == TR_ETOOBIG ? EXIT_DATAERR : EXIT_IOERR;
            buf_free(&in);
            continue;
        }
        struct ingest_decoded dec;
        if (ingest_decode(in.data, in.len, &lim, &dec, err) != TR_OK) {
            printf("%s: error: %s\n%s: invalid\n", name, err, name);
            if (rc < EXIT_DATAERR)
                rc = EXIT_DATAERR;
        } else {
            for (size_t k = 0; k < dec.npayloads; k++) {
                char label[4096];
                if (dec.npayloads > 1)
                    snprintf(label, sizeof label, "%s[part %zu]", name, k + 1);
                else
                    snprintf(label, sizeof label, "%s", name);
                if (!validate_payload(label, k, &dec, &lim, strict) && rc < EXIT_DATAERR)
                    rc = EXIT_DATAERR;
            }
        }
        ingest_decoded_free(&dec);
        buf_free(&in);
    }
    walk_free(&inputs);
    free_args(&cfg, &args);
    return rc;
}
