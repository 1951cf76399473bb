/* cli_ingest.c: `tlsrptd ingest` (files, directories, stdin; MDA exit codes)
 * and `tlsrptd validate` (every finding, nothing stored). */
#include <getopt.h>
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
#include "tlsrptd/walk.h"

/* ---- shared option handling ----------------------------------------------------------------- */

enum {
    OPT_DB = 256,
    OPT_BATCH,
    OPT_BUSY,
    OPT_MAX_INPUT,
    OPT_MAX_INFLATED,
    OPT_MAX_DEPTH,
    OPT_MAX_PARTS,
    OPT_QUARANTINE_BYTES,
    OPT_QUARANTINE_ROWS,
    OPT_STRICT,
    OPT_QUIET,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
};

/* Limits shared by ingest and validate; returns false after printing an error. */
static bool limit_option(const char *cmd, int opt, const char *arg, struct ingest_limits *lim)
{
    size_t v;
    long l;
    switch (opt) {
    case OPT_MAX_INPUT:
        if (!cli_parse_size(arg, &v))
            return cli_usage_error(cmd, "--max-input: '%s' is not a size", arg), false;
        lim->max_input = lim->mime.max_message = v;
        return true;
    case OPT_MAX_INFLATED:
        if (!cli_parse_size(arg, &v))
            return cli_usage_error(cmd, "--max-inflated: '%s' is not a size", arg), false;
        lim->max_inflated = v;
        return true;
    case OPT_MAX_DEPTH:
        if (!cli_parse_long(arg, 4, 1000, &l))
            return cli_usage_error(cmd, "--max-depth: '%s' is not in [4, 1000]", arg), false;
        lim->max_depth = (size_t)l;
        return true;
    case OPT_MAX_PARTS:
        if (!cli_parse_long(arg, 1, 100000, &l))
            return cli_usage_error(cmd, "--max-parts: '%s' is not in [1, 100000]", arg), false;
        lim->mime.max_parts = (size_t)l;
        return true;
    default:
        return false;
    }
}

/* ---- ingest --------------------------------------------------------------------------------- */

static const char ingest_help[] =
    "Usage: tlsrptd ingest [OPTIONS] FILE|DIR|- ...\n"
    "\n"
    "Store TLS-RPT reports. Each input is sniffed by content: JSON, gzip (or zlib)\n"
    "JSON, or a mail message whose report parts are extracted. Directories are\n"
    "walked recursively in sorted order (hidden entries skipped); '-' reads one\n"
    "input from stdin, which makes tlsrptd usable as an MDA.\n"
    "\n"
    "Prints one line per input: stored, duplicate or rejected (with the reason).\n"
    "Rejected inputs are kept in the database's quarantine.\n"
    "\n"
    "Options:\n"
    "  --db PATH              database file (default " DEFAULT_DB ")\n"
    "  --batch N              inputs committed together, at most (default 1024;\n"
    "                         a batch is also committed after one second)\n"
    "  --busy-timeout MS      wait this long for a locked database (default 5000)\n"
    "  --max-input SIZE       largest input accepted (default 64M)\n"
    "  --max-inflated SIZE    largest report after gunzip (default 32M)\n"
    "  --max-depth N          deepest JSON nesting (default 32)\n"
    "  --max-parts N          most MIME parts in one message (default 1000)\n"
    "  --quarantine-bytes SIZE  raw bytes kept in quarantine (default 256M)\n"
    "  --quarantine-rows N    quarantine entries kept (default 100000)\n"
    "  -q, --quiet            print only rejected and failed inputs\n"
    "  --progress, --no-progress  progress line on stderr (default: when a terminal)\n"
    "\n"
    "Exit status (sysexits.h, for MTAs): 0 all stored or duplicate; 65 an input is\n"
    "not an acceptable report; 74 an input could not be read; 75 the database is\n"
    "unavailable (try again later). The worst one wins.\n";

struct pending {
    char *name;
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
        fprintf(out, "%s: %s", ingest_outcome_name(res->outcome), res->reason);
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

/* Finish a batch: commit, then print every result (or mark all tempfail). */
static bool flush_batch(struct ingest_run *run, struct ingest *ig, struct pending *batch, size_t *n)
{
    char err[TR_ERRLEN];
    bool ok = ingest_commit(ig, err) == TR_OK;
    for (size_t i = 0; i < *n; i++) {
        if (!ok && batch[i].res.outcome != INGEST_UNREADABLE)
            ingest_result_tempfail(&batch[i].res, err);
        print_result(run, &batch[i]);
        ingest_result_free(&batch[i].res);
        free(batch[i].name);
    }
    *n = 0;
    return ok;
}

/* ---- the reader threads --------------------------------------------------------------------- */

/* Reader threads read and prepare (decode, validate) inputs into a ring; the
 * main thread stores them. Readers claim input indices in order and may finish
 * out of order, but the main thread takes them strictly in input order: which
 * copy of a report counts as the duplicate depends on that order. */
#define QUEUE_CAP   128
#define WAKE_BATCH  16 /* wake a sleeping writer only per this many ready inputs */
#define MAX_READERS 4

struct queue_item {
    struct ingest_job *job; /* NULL when out of memory */
    char *name;
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
};

static struct ingest_job *read_and_prepare(const char *name, const struct ingest_limits *lim)
{
    struct store_source src = {
        strcmp(name, "-") == 0 ? "stdin" : "file", name, NULL, NULL, NULL, NULL, NULL};
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
    struct reader *rd = arg;
    for (;;) {
        pthread_mutex_lock(&rd->mu);
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

        const char *name = rd->inputs->paths[i];
        struct queue_item item = {read_and_prepare(name, rd->lim), strdup(name)};

        pthread_mutex_lock(&rd->mu);
        rd->items[i % QUEUE_CAP] = item;
        rd->filled[i % QUEUE_CAP] = true;
        if (rd->writer_waiting &&
            (ready_run(rd) >= WAKE_BATCH || rd->next >= rd->inputs->n || rd->stop))
            pthread_cond_signal(&rd->ready);
        pthread_mutex_unlock(&rd->mu);
    }
    pthread_mutex_lock(&rd->mu);
    rd->active--;
    pthread_cond_broadcast(&rd->ready);
    pthread_mutex_unlock(&rd->mu);
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

    static const struct option longopts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"busy-timeout", required_argument, NULL, OPT_BUSY},
        {"max-input", required_argument, NULL, OPT_MAX_INPUT},
        {"max-inflated", required_argument, NULL, OPT_MAX_INFLATED},
        {"max-depth", required_argument, NULL, OPT_MAX_DEPTH},
        {"max-parts", required_argument, NULL, OPT_MAX_PARTS},
        {"quarantine-bytes", required_argument, NULL, OPT_QUARANTINE_BYTES},
        {"quarantine-rows", required_argument, NULL, OPT_QUARANTINE_ROWS},
        {"quiet", no_argument, NULL, 'q'},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = DEFAULT_DB;
    struct ingest_limits lim = INGEST_DEFAULT_LIMITS;
    struct store_options sopt = STORE_DEFAULT_OPTIONS;
    struct ingest_run run = {0};
    long batch_size = 1024, l;
    size_t v;
    int progress = -1, c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DB:
            db = optarg;
            break;
        case OPT_BATCH:
            if (!cli_parse_long(optarg, 1, 100000, &batch_size))
                return cli_usage_error("ingest", "--batch: '%s' is not in [1, 100000]", optarg);
            break;
        case OPT_BUSY:
            if (!cli_parse_long(optarg, 0, 3600000, &l))
                return cli_usage_error("ingest", "--busy-timeout: '%s' is not milliseconds",
                                       optarg);
            sopt.busy_timeout_ms = (int)l;
            break;
        case OPT_QUARANTINE_BYTES:
            if (!cli_parse_size(optarg, &v))
                return cli_usage_error("ingest", "--quarantine-bytes: '%s' is not a size", optarg);
            sopt.quarantine_max_bytes = v;
            break;
        case OPT_QUARANTINE_ROWS:
            if (!cli_parse_long(optarg, 1, 100000000, &l))
                return cli_usage_error("ingest", "--quarantine-rows: '%s' is not a count", optarg);
            sopt.quarantine_max_rows = (size_t)l;
            break;
        case 'q':
            run.quiet = true;
            break;
        case OPT_PROGRESS:
            progress = 1;
            break;
        case OPT_NO_PROGRESS:
            progress = 0;
            break;
        case 'h':
            fputs(ingest_help, stdout);
            return 0;
        case '?':
            return cli_usage_error("ingest", "unknown option");
        default:
            if (!limit_option("ingest", c, optarg, &lim))
                return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("ingest", "no input given (FILE, DIR or - for stdin)");

    struct walk_list inputs = {0};
    char err[TR_ERRLEN];
    for (int i = optind; i < argc; i++) {
        if (walk_add(&inputs, argv[i], err) != TR_OK) {
            fprintf(stderr, "tlsrptd ingest: %s\n", err);
            walk_free(&inputs);
            return EXIT_IOERR;
        }
    }

    struct store *st = NULL;
    if (store_open(db, &sopt, &st, err) != TR_OK) {
        fprintf(stderr, "tlsrptd ingest: %s\n", err);
        walk_free(&inputs);
        return EXIT_TEMPFAIL;
    }
    struct ingest *ig = ingest_new(st, &lim);
    struct pending *batch = calloc((size_t)batch_size, sizeof *batch);
    struct reader rd = {.inputs = &inputs, .lim = &lim};
    pthread_t readers[MAX_READERS];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nreaders = cpus >= MAX_READERS ? MAX_READERS : cpus >= 2 ? (size_t)cpus : 1;
    if (nreaders > inputs.n)
        nreaders = inputs.n ? inputs.n : 1;
    bool started = ig != NULL && batch != NULL && pthread_mutex_init(&rd.mu, NULL) == 0 &&
                   pthread_cond_init(&rd.ready, NULL) == 0 &&
                   pthread_cond_init(&rd.room, NULL) == 0;
    for (size_t k = 0; started && k < nreaders; k++) {
        pthread_mutex_lock(&rd.mu);
        rd.active++;
        pthread_mutex_unlock(&rd.mu);
        if (pthread_create(&readers[k], NULL, reader_main, &rd) != 0) {
            rd.active--;
            nreaders = k;
        }
    }
    if (!started || nreaders == 0) {
        fprintf(stderr, "tlsrptd ingest: out of memory\n");
        free(batch);
        ingest_free(ig);
        store_close(st);
        walk_free(&inputs);
        return EXIT_TEMPFAIL;
    }

    run.total = inputs.n;
    run.progress = progress == 1 || (progress == -1 && isatty(STDERR_FILENO) && inputs.n > 1);
    clock_gettime(CLOCK_MONOTONIC, &run.start);
    size_t nbatch = 0;
    bool ok = true;
    struct queue_item item;
    while (ok && reader_next(&rd, &item)) {
        if (ingest_begin(ig, err) != TR_OK) {
            fprintf(stderr, "tlsrptd ingest: %s\n", err);
            ingest_job_free(item.job);
            free(item.name);
            ok = false;
            break;
        }
        struct timespec batch_start, now;
        clock_gettime(CLOCK_MONOTONIC, &batch_start);
        for (;;) {
            struct pending *p = &batch[nbatch++];
            p->name = item.name;
            if (item.job != NULL) {
                ingest_store(ig, item.job, &p->res);
            } else {
                memset(&p->res, 0, sizeof p->res);
                ingest_result_tempfail(&p->res, "out of memory");
            }
            ingest_job_free(item.job);
            run.done++;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (ingest_failed(ig) || nbatch == (size_t)batch_size ||
                elapsed(&batch_start, &now) >= 1.0 || !reader_next(&rd, &item))
                break;
        }
        ok = flush_batch(&run, ig, batch, &nbatch);
        show_progress(&run, false);
    }
    if (!ok)
        reader_stop(&rd);
    for (size_t k = 0; k < nreaders; k++)
        pthread_join(readers[k], NULL);
    pthread_mutex_destroy(&rd.mu);
    pthread_cond_destroy(&rd.ready);
    pthread_cond_destroy(&rd.room);

    size_t skipped = inputs.n - run.done;
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
    free(batch);
    ingest_free(ig);
    store_close(st);
    walk_free(&inputs);
    return run.exit_code;
}

/* ---- validate ------------------------------------------------------------------------------- */

static const char validate_help[] =
    "Usage: tlsrptd validate [--strict] [OPTIONS] FILE|- ...\n"
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
    "  --strict               treat warnings and notes as errors (for people testing\n"
    "                         their own report generators)\n"
    "  --max-input SIZE, --max-inflated SIZE, --max-depth N, --max-parts N\n"
    "                         limits, as for ingest\n"
    "\n"
    "Exit status: 0 every report is acceptable; 65 one is not; 74 unreadable input.\n";

static bool validate_payload(const char *label, const struct ingest_payload *p,
                             const struct ingest_decoded *dec, const struct ingest_limits *lim,
                             bool strict)
{
    if (p->decode_err != TR_OK) {
        printf("%s: error: %s\n%s: invalid\n", label, p->decode_reason, label);
        return false;
    }
    struct report_options ropt = {lim->max_depth, dec->is_message ? dec->msg.report_domain : NULL,
                                  &lim->json};
    struct report r;
    struct diag_list d = {0};
    tr_err e = report_parse(p->json, p->jsonlen, &ropt, &r, &d);
    for (size_t i = 0; i < d.n; i++) {
        const struct diag *g = &d.items[i];
        printf("%s: %s: %s%s%s\n", label, diag_level_name(g->level), g->path,
               g->path[0] ? ": " : "", g->message);
    }
    bool valid = e == TR_OK && !(strict && (d.warnings || d.notes));
    if (e == TR_OK) {
        printf("%s: %s: %s %s, %zu polic%s, %zu error%s, %zu warning%s, %zu note%s\n", label,
               valid ? "valid" : "invalid (--strict)", r.organization_name, r.report_id,
               r.npolicies, r.npolicies == 1 ? "y" : "ies", d.errors, d.errors == 1 ? "" : "s",
               d.warnings, d.warnings == 1 ? "" : "s", d.notes, d.notes == 1 ? "" : "s");
        report_free(&r);
    } else {
        printf("%s: invalid: %zu error%s\n", label, d.errors, d.errors == 1 ? "" : "s");
    }
    diag_list_free(&d);
    return valid;
}

int cmd_validate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"strict", no_argument, NULL, OPT_STRICT},
        {"max-input", required_argument, NULL, OPT_MAX_INPUT},
        {"max-inflated", required_argument, NULL, OPT_MAX_INFLATED},
        {"max-depth", required_argument, NULL, OPT_MAX_DEPTH},
        {"max-parts", required_argument, NULL, OPT_MAX_PARTS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ingest_limits lim = INGEST_DEFAULT_LIMITS;
    bool strict = false;
    int c, rc = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_STRICT:
            strict = true;
            break;
        case 'h':
            fputs(validate_help, stdout);
            return 0;
        case '?':
            return cli_usage_error("validate", "unknown option");
        default:
            if (!limit_option("validate", c, optarg, &lim))
                return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("validate", "no input given (FILE or - for stdin)");

    struct walk_list inputs = {0};
    char err[TR_ERRLEN];
    for (int i = optind; i < argc; i++) {
        if (walk_add(&inputs, argv[i], err) != TR_OK) {
            fprintf(stderr, "tlsrptd validate: %s\n", err);
            walk_free(&inputs);
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
                if (!validate_payload(label, &dec.payloads[k], &dec, &lim, strict) &&
                    rc < EXIT_DATAERR)
                    rc = EXIT_DATAERR;
            }
        }
        ingest_decoded_free(&dec);
        buf_free(&in);
    }
    walk_free(&inputs);
    return rc;
}
